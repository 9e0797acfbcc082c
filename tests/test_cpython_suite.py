"""CPython's own pickle test suite, run against brinery.

The standard library ships its pickle tests as abstract classes in
``test.pickletester``; ``test.test_pickle`` combines them with its two
implementations. Here the same combinations are made with brinery's
implementations, with each other, and with the standard library on the
other side (brinery dumps / stdlib loads and the reverse).

The abstract tests refer to a module-level ``pickle`` for exception classes,
opcode constants and helper dumps/loads; each class below points it at a
namespace whose exceptions are the ones the code under test raises.

Tests that cannot pass are listed in KNOWN_EXCEPTIONS with the reason.
The whole module is skipped when the ``test`` package is not installed.
"""

import abc
import collections
import io
import pickle as stdlib_pickle
import types

import pytest

try:
    from test import pickletester
    import test.test_pickle as test_pickle
except ImportError:  # pragma: no cover - depends on the Python build
    pytest.skip("the standard library's test package is not installed",
                allow_module_level=True)

import brinery
from impls import C, PURE, STDLIB

# ------------------------------------------------------------- shims


class _AnyUnpicklingError(Exception, metaclass=abc.ABCMeta):
    """Matches (in assertRaises) the UnpicklingError of either side."""


_AnyUnpicklingError.register(brinery.UnpicklingError)
_AnyUnpicklingError.register(stdlib_pickle.UnpicklingError)


def _shim(name, *, loads_from, picklingerror, unpicklingerror,
          pickleerror=brinery.PickleError):
    """A stand-in for the `pickle` module seen by pickletester."""
    module = types.ModuleType(f"pickle_shim_{name}")
    for key in dir(brinery):
        if not key.startswith("__"):
            setattr(module, key, getattr(brinery, key))
    module.dumps = loads_from.dumps
    module.loads = loads_from.loads
    module.PickleError = pickleerror
    module.PicklingError = picklingerror
    module.UnpicklingError = unpicklingerror
    return module


_BRINERY_SHIM = _shim("brinery", loads_from=PURE,
                      picklingerror=brinery.PicklingError,
                      unpicklingerror=brinery.UnpicklingError)
_TO_STDLIB_SHIM = _shim("to_stdlib", loads_from=PURE,
                        picklingerror=brinery.PicklingError,
                        unpicklingerror=_AnyUnpicklingError)
_FROM_STDLIB_SHIM = _shim("from_stdlib", loads_from=PURE,
                          pickleerror=stdlib_pickle.PickleError,
                          picklingerror=stdlib_pickle.PicklingError,
                          unpicklingerror=brinery.UnpicklingError)


class _UseShim:
    pickle_shim = _BRINERY_SHIM

    def setUp(self):
        saved = pickletester.pickle
        pickletester.pickle = self.pickle_shim
        self.addCleanup(setattr, pickletester, "pickle", saved)
        super().setUp()


# Tests that cannot pass, with the reason. Keyed by (class name prefix,
# test name); a None prefix applies to every class.
KNOWN_EXCEPTIONS = {
    ("TestCSizeofTests", "test_pickler"):
        "measures _pickle.Pickler itself (it names _pickle.Pickler, not a "
        "class attribute) against _pickle's struct layout "
        "(calcobjsize('7P2n3i2n3i2P')) and memo growth; brinery's Pickler "
        "has its own layout: test_accel_pickler checks its __sizeof__",
    ("TestCSizeofTests", "test_unpickler"):
        "measures _pickle.Unpickler itself against _pickle's struct layout "
        "and mark/memo growth policy; brinery's Unpickler has its own "
        "layout: test_accel_unpickler checks its __sizeof__",
}


def _apply_known_exceptions(cls):
    for (prefix, test_name), reason in KNOWN_EXCEPTIONS.items():
        if prefix is None or cls.__name__.startswith(prefix):
            if hasattr(cls, test_name):
                setattr(cls, test_name, pytest.mark.skip(reason=reason)(
                    getattr(cls, test_name)))
    return cls


# ------------------------------------------------------- combinations


def _make_classes(impl):
    """The test_pickle.py combinations for one brinery implementation."""
    n = impl.name.capitalize()
    bad_errors = (brinery.UnpicklingError,)
    classes = {}

    class ModuleTests(_UseShim, test_pickle.PyPickleTests):
        dump = staticmethod(impl.dump)
        dumps = staticmethod(impl.dumps)
        load = staticmethod(impl.load)
        loads = staticmethod(impl.loads)
        Pickler = impl.Pickler
        Unpickler = impl.Unpickler

    class UnpicklerTests(_UseShim, test_pickle.PyUnpicklerTests):
        unpickler = impl.Unpickler
        bad_stack_errors = bad_errors
        truncated_errors = bad_errors

    class PicklerTests(_UseShim, test_pickle.PyPicklerTests):
        pickler = impl.Pickler
        unpickler = impl.Unpickler

    class InMemoryTests(_UseShim, test_pickle.InMemoryPickleTests):
        bad_stack_errors = bad_errors
        truncated_errors = bad_errors

        def dumps(self, arg, protocol=None, **kwargs):
            return impl.dumps(arg, protocol, **kwargs)

        def loads(self, buf, **kwds):
            return impl.loads(buf, **kwds)

    class PersPicklerTests(_UseShim, test_pickle.PyPersPicklerTests):
        pickler = impl.Pickler
        unpickler = impl.Unpickler

    class IdPersPicklerTests(_UseShim, test_pickle.PyIdPersPicklerTests):
        pickler = impl.Pickler
        unpickler = impl.Unpickler
        # test_pickle names the standard library's class (3.13+ tests)
        persistent_load_error = brinery.UnpicklingError

    class PicklerUnpicklerObjectTests(
            _UseShim, test_pickle.PyPicklerUnpicklerObjectTests):
        pickler_class = impl.Pickler
        unpickler_class = impl.Unpickler

    if impl is C:
        # test_pickle.CPicklerUnpicklerObjectTests's own test: the C
        # Unpickler's memo is a checked property, not a plain attribute.
        def test_issue18339(self):
            test_pickle.CPicklerUnpicklerObjectTests.test_issue18339(self)
        PicklerUnpicklerObjectTests.test_issue18339 = test_issue18339

        class SizeofTests(_UseShim, test_pickle.SizeofTests):
            pass

    class DispatchTableTests(_UseShim, test_pickle.PyDispatchTableTests):
        pickler_class = impl.Pickler

        def get_dispatch_table(self):
            return brinery.dispatch_table.copy()

    class ChainDispatchTableTests(_UseShim,
                                  test_pickle.PyChainDispatchTableTests):
        pickler_class = impl.Pickler

        def get_dispatch_table(self):
            return collections.ChainMap({}, brinery.dispatch_table)

    class CustomPicklerClass(impl.Pickler,
                             pickletester.AbstractCustomPicklerClass):
        pass

    class PicklerHookTests(_UseShim, test_pickle.PyPicklerHookTests):
        pickler_class = CustomPicklerClass

    # Across the border with the standard library's C pickle.
    class DumpToStdlibTests(_UseShim, test_pickle.PyPicklerTests):
        pickle_shim = _TO_STDLIB_SHIM
        pickler = impl.Pickler
        unpickler = STDLIB.Unpickler

    class DumpFromStdlibTests(_UseShim, test_pickle.PyPicklerTests):
        pickle_shim = _FROM_STDLIB_SHIM
        pickler = STDLIB.Pickler
        unpickler = impl.Unpickler

    for name, cls in list(locals().items()):
        if isinstance(cls, type) and name.endswith("Tests"):
            cls.__name__ = cls.__qualname__ = f"Test{n}{name}"
            classes[cls.__name__] = _apply_known_exceptions(cls)
    return classes


def _make_cross_classes(dumper, loader):
    """brinery implementation A dumps, implementation B loads."""
    name = f"Test{dumper.name.capitalize()}To{loader.name.capitalize()}"

    class CrossTests(_UseShim, test_pickle.PyPicklerTests):
        pickler = dumper.Pickler
        unpickler = loader.Unpickler

    CrossTests.__name__ = CrossTests.__qualname__ = name + "PicklerTests"
    return {CrossTests.__name__: _apply_known_exceptions(CrossTests)}


globals().update(_make_classes(PURE))
if C is not None:
    globals().update(_make_classes(C))
    globals().update(_make_cross_classes(C, PURE))
    globals().update(_make_cross_classes(PURE, C))


def test_suite_is_wired_to_brinery():
    """The classes above really test brinery, not the standard library."""
    cls = globals()["TestPythonPicklerTests"]
    assert cls.pickler is brinery._Pickler
    assert cls.unpickler is brinery._Unpickler
    buf = io.BytesIO()
    cls.pickler(buf, 2).dump([1])
    assert buf.getvalue() == stdlib_pickle.dumps([1], 2)
