"""Subclassing the pure Pickler and Unpickler, as dill and cloudpickle do.

The pure `Pickler` keeps `pickle._Pickler`'s subclass API: a copyable
``dispatch`` mapping of ``save_*(self, obj)`` functions, and the methods
``save``, ``save_reduce``, ``save_global``, ``save_pers``, ``memoize``,
``write``, ``persistent_id``, ``reducer_override`` and ``dispatch_table``.
Subclasses built on it produce the bytes the same subclass of
``pickle._Pickler`` produces, and their pickles load in every
implementation.
"""

import io
import pickle

import brinery
import catalogue
from compare import assert_same


def _dumps_with(pickler_class, obj, proto):
    f = io.BytesIO()
    pickler_class(f, proto).dump(obj)
    return f.getvalue()


def _counting_save_reduce(base):
    class CountingPickler(base):
        calls = 0

        def save_reduce(self, *args, **kwargs):
            type(self).calls += 1
            return super().save_reduce(*args, **kwargs)
    return CountingPickler


def test_overridden_save_reduce_calling_super():
    obj = [catalogue.Plain(a=1), catalogue.Reduce3(), {1, 2}]
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        ours = _counting_save_reduce(brinery._Pickler)
        theirs = _counting_save_reduce(pickle._Pickler)
        data = _dumps_with(ours, obj, proto)
        assert data == _dumps_with(theirs, obj, proto)
        assert ours.calls == theirs.calls > 0
        assert_same(pickle.loads(data), brinery.loads(data))
