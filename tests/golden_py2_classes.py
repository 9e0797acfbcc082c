"""Classes that the Python 2 golden pickles refer to (tests/gen_golden.py).

This module is valid Python 2 and Python 3: Python 2 pickles instances of
these classes by reference (``golden_py2_classes.Classic``), and Python 3
finds the same names here when it loads them. In Python 2 ``Classic`` and
``ClassicInitArgs`` are old-style classes (pickled with INST/OBJ); in
Python 3 every class is new-style.
"""


def _state(obj):
    state = {}
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(obj, name):
                state[name] = getattr(obj, name)
    state.update(getattr(obj, "__dict__", {}))
    return state


class _Comparable:
    def __eq__(self, other):
        return type(self) is type(other) and _state(self) == _state(other)

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, sorted(_state(self).items()))


class Classic:
    """Old-style in Python 2: no __init__ arguments are pickled."""

    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

    __eq__ = _Comparable.__dict__["__eq__"]
    __ne__ = _Comparable.__dict__["__ne__"]
    __repr__ = _Comparable.__dict__["__repr__"]


class ClassicInitArgs:
    """Old-style with __getinitargs__: INST/OBJ carry the arguments."""

    def __init__(self, x):
        self.x = x

    def __getinitargs__(self):
        return (self.x,)

    __eq__ = _Comparable.__dict__["__eq__"]
    __ne__ = _Comparable.__dict__["__ne__"]
    __repr__ = _Comparable.__dict__["__repr__"]


class NewStyle(_Comparable, object):
    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b


class WithSlots(_Comparable, object):
    __slots__ = ("x", "y")

    def __init__(self, x=None, y=None):
        self.x = x
        self.y = y

    def __getstate__(self):
        return (None, _state(self))

    def __setstate__(self, state):
        for key, value in state[1].items():
            setattr(self, key, value)


class WithState(_Comparable, object):
    def __init__(self, value=None):
        self.value = value

    def __getstate__(self):
        return {"stored": self.value}

    def __setstate__(self, state):
        self.value = state["stored"]


class GoldenError(Exception):
    pass
