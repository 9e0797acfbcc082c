"""Structural comparison of object graphs, for tests.

`assert_same(expected, actual)` walks two object graphs side by side, with
an explicit stack (graphs a million levels deep are compared without
recursion), and fails with the path to the first difference. Two graphs
are the same when:

- every node has exactly the same type on both sides;
- scalars are equal, floats bit for bit (-0.0 is not 0.0, NaN is NaN);
- sequences, mappings (in order) and sets match element by element;
- instances have the same ``__dict__``, the same slot values and, for
  objects of C types (datetime, Decimal, deque...), the same reduce value;
- functions, classes, modules and other globals are the very same object;
- sharing is the same: where the expected graph reaches one container,
  tuple or instance by two paths (including cycles), the actual graph
  reaches one object by the same two paths, and where it reaches two
  distinct objects, so does the actual graph.

`assert_same_outcome` compares two "outcomes" (a value, or the exception a
call raised): used with the standard library's result as the oracle.
"""

import math
import struct
import types
from pickle import PickleBuffer

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None

import brinery

# Types compared by value, never by identity: CPython shares or copies them
# at will (small ints, one-character strings, interned names...).
_SCALARS = (type(None), bool, int, float, complex, str, bytes)

# Objects compared by identity: references to globals.
_BY_IDENTITY = (types.FunctionType, types.BuiltinFunctionType, type,
                types.ModuleType, types.MethodDescriptorType,
                types.WrapperDescriptorType, types.ClassMethodDescriptorType,
                type(Ellipsis), type(NotImplemented))

_float_bits = struct.Struct("<d").pack


class Outcome:
    """What calling a function gave: a value or an exception."""

    __slots__ = ("value", "error")

    def __init__(self, value=None, error=None):
        self.value = value
        self.error = error

    def __repr__(self):
        if self.error is not None:
            return f"Outcome(error={self.error!r})"
        return f"Outcome(value={self.value!r:.200})"


def outcome(function, *args, **kwargs):
    try:
        return Outcome(value=function(*args, **kwargs))
    except Exception as exc:      # the oracle may raise anything
        return Outcome(error=exc)


def error_kind(exc):
    """The exception's type, with pickle's classes mapped to brinery's."""
    import pickle
    cls = type(exc)
    mapping = {pickle.PickleError: brinery.PickleError,
               pickle.PicklingError: brinery.PicklingError,
               pickle.UnpicklingError: brinery.UnpicklingError}
    return mapping.get(cls, cls)


def assert_same_error(expected, actual, *, messages=True):
    """actual is the exception the oracle's expected exception predicts."""
    assert error_kind(actual) is error_kind(expected), (
        f"expected {type(expected).__name__}: {expected}, got "
        f"{type(actual).__name__}: {actual}")
    # CPython's RecursionError says where the interpreter happened to run
    # out ("... while pickling an object", "... while getting the repr of
    # an object", or nothing): only the type is behaviour.
    if messages and not isinstance(expected, RecursionError):
        assert str(actual) == str(expected), (
            f"{type(expected).__name__} message differs:\n"
            f"  expected: {expected}\n  actual:   {actual}")


def assert_same_outcome(expected, actual, *, messages=True):
    """Both raised the same kind of error, or both gave the same graph."""
    if expected.error is not None:
        assert actual.error is not None, (
            f"expected {type(expected.error).__name__}: {expected.error}, "
            f"got the value {actual.value!r:.300}")
        assert_same_error(expected.error, actual.error, messages=messages)
        return
    if actual.error is not None:
        raise AssertionError(
            f"expected a value, got {type(actual.error).__name__}: "
            f"{actual.error}") from actual.error
    assert_same(expected.value, actual.value)


def _bound_to_object(f):
    """A builtin method bound to an object or class (not a module): each
    attribute lookup makes a new one."""
    return type(f) is types.BuiltinMethodType and not isinstance(
        f.__self__, (types.ModuleType, type(None)))


def _scalar_equal(a, b):
    if type(a) is float:
        return _float_bits(a) == _float_bits(b) or (
            math.isnan(a) and math.isnan(b))
    if type(a) is complex:
        return (_scalar_equal(a.real, b.real)
                and _scalar_equal(a.imag, b.imag))
    return a == b


def _slot_names(cls):
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            names.append(name)
    return names


_MISSING = object()


def _instance_parts(obj):
    """(label, value) pairs that describe an instance's content."""
    parts = []
    cls = type(obj)
    # The builtin base's content (list/dict/set/... subclasses).
    for base, as_plain in ((list, list), (dict, lambda d: list(d.items())),
                           (set, _sorted_if_possible),
                           (frozenset, _sorted_if_possible),
                           (tuple, tuple), (str, str), (bytes, bytes),
                           (bytearray, bytes), (int, int), (float, float)):
        if isinstance(obj, base):
            parts.append((f"<{base.__name__} content>", as_plain(obj)))
            break
    inst_dict = getattr(obj, "__dict__", None)
    if isinstance(inst_dict, dict):
        parts.append(("__dict__", dict(sorted(inst_dict.items(),
                                              key=lambda kv: str(kv[0])))))
    for name in _slot_names(cls):
        parts.append((f".{name}", getattr(obj, name, _MISSING)))
    if not parts:
        # A C type without Python-visible state: its reduce value says
        # what it holds (datetime's bytes, Decimal's string, ...).
        try:
            rv = obj.__reduce_ex__(4)
        except Exception:
            rv = None
        if isinstance(rv, tuple):
            parts.append(("<reduce>", rv[1:]))
    return parts


def _sorted_if_possible(items):
    items = list(items)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def assert_same(expected, actual, path="obj"):
    """Fail with the path to the first difference between the graphs."""
    pairs = {}          # id(expected node) -> actual node
    reverse = {}        # id(actual node) -> expected node
    keep = []           # keep temporaries alive while ids are in use
    todo = [(expected, actual, path)]
    while todo:
        a, b, where = todo.pop()
        if a is _MISSING or b is _MISSING:
            assert a is b, f"{where}: attribute present on one side only"
            continue
        ta = type(a)
        assert ta is type(b), (
            f"{where}: type {ta.__qualname__} != "
            f"{type(b).__qualname__} ({a!r:.100} vs {b!r:.100})")
        if ta in _SCALARS:
            assert _scalar_equal(a, b), f"{where}: {a!r:.200} != {b!r:.200}"
            continue
        if (isinstance(a, _BY_IDENTITY) and not _bound_to_object(a)) \
                or a is Ellipsis or a is NotImplemented:
            assert a is b, f"{where}: {a!r} is not {b!r}"
            continue
        if ta is tuple and not a:
            continue
        # Sharing: the same expected node must map to the same actual one,
        # and two different expected nodes to two different actual ones.
        seen = pairs.get(id(a))
        if seen is not None:
            assert seen is b, f"{where}: sharing differs (a shared object " \
                              f"became two objects)"
            continue
        other = reverse.get(id(b))
        if other is not None:
            raise AssertionError(
                f"{where}: sharing differs (two objects became one)")
        pairs[id(a)] = b
        reverse[id(b)] = a
        keep.append((a, b))

        if ta in (list, tuple):
            assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
            todo.extend((x, y, f"{where}[{i}]")
                        for i, (x, y) in enumerate(zip(a, b)))
        elif ta is dict:
            assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
            for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(),
                                                         b.items())):
                todo.append((ka, kb, f"{where}.keys()[{i}]"))
                todo.append((va, vb, f"{where}[{ka!r:.50}]"))
        elif ta in (set, frozenset):
            _compare_sets(a, b, where, todo)
        elif ta is bytearray:
            assert a == b, f"{where}: {a!r:.200} != {b!r:.200}"
        elif ta is PickleBuffer:
            assert bytes(a.raw()) == bytes(b.raw()), f"{where}: buffers differ"
        elif ta is memoryview:
            assert a.readonly == b.readonly, f"{where}: readonly differs"
            assert a.tobytes() == b.tobytes(), f"{where}: buffers differ"
        elif numpy is not None and isinstance(a, numpy.ndarray):
            assert a.dtype == b.dtype, f"{where}: dtype {a.dtype}!={b.dtype}"
            assert a.shape == b.shape, f"{where}: shape {a.shape}!={b.shape}"
            if a.dtype.hasobject:
                todo.extend((x, y, f"{where}.flat[{i}]") for i, (x, y)
                            in enumerate(zip(a.flat, b.flat)))
            else:
                assert a.tobytes() == b.tobytes(), f"{where}: data differs"
        elif numpy is not None and isinstance(a, numpy.generic):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (
                f"{where}: {a!r} != {b!r}")
        elif _bound_to_object(a):
            # A method bound to an object: the same method of the same
            # (compared) object.
            assert a.__name__ == b.__name__, f"{where}: different methods"
            todo.append((a.__self__, b.__self__, f"{where}.__self__"))
        elif ta is types.MethodType:
            todo.append((a.__self__, b.__self__, f"{where}.__self__"))
            assert a.__func__ is b.__func__, f"{where}: different functions"
        else:
            pa = _instance_parts(a)
            pb = _instance_parts(b)
            assert [k for k, _ in pa] == [k for k, _ in pb], (
                f"{where}: attributes {[k for k, _ in pa]} != "
                f"{[k for k, _ in pb]}")
            keep.append((pa, pb))
            for (label, x), (_, y) in zip(pa, pb):
                todo.append((x, y, f"{where}{label}"))
            if not pa:
                assert a == b, f"{where}: {a!r:.200} != {b!r:.200}"


def _compare_sets(a, b, where, todo):
    assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
    if all(type(x) in _SCALARS for x in a):
        rest = set(b)
        for x in a:
            if x in rest:
                rest.discard(x)
            else:
                match = [y for y in rest if type(y) is type(x)
                         and _scalar_equal(x, y)]
                assert match, f"{where}: {x!r:.100} missing"
                rest.discard(match[0])
        return
    # Elements that are not plain scalars (instances, tuples): pair them
    # up by a fingerprint of their content that does not depend on
    # addresses or set order.
    by_print = {}
    for y in b:
        by_print.setdefault(_fingerprint(y), []).append(y)
    alike = {fp for fp, ys in by_print.items() if len(ys) > 1}
    for x in a:
        fp = _fingerprint(x)
        candidates = by_print.get(fp)
        assert candidates, f"{where}: no element like {x!r:.100}"
        label = f"{where}{{{x!r:.50}}}"
        if fp not in alike:
            todo.append((x, candidates.pop(), label))
            continue
        # Several elements look alike (equal content, kept apart by a NaN
        # or by identity): which loaded one is which cannot be told, and
        # pairing them by set order would report a sharing difference
        # that is not there. Each is matched to one whose content is the
        # same; its sharing with the rest of the graph is not checked.
        for i, y in enumerate(candidates):
            try:
                assert_same(x, y, label)
            except AssertionError:
                continue
            del candidates[i]
            break
        else:
            raise AssertionError(f"{where}: no element like {x!r:.100}")


def _fingerprint(x, depth=3):
    """A string describing x's type and content down to a few levels."""
    t = type(x)
    if t in _SCALARS:
        return f"{t.__name__}:{x!r}"
    name = t.__qualname__
    if depth == 0:
        return name
    if t in (list, tuple):
        inner = [_fingerprint(y, depth - 1) for y in x]
    elif t is dict:
        inner = sorted(_fingerprint(k, depth - 1) + "=" +
                       _fingerprint(v, depth - 1) for k, v in x.items())
    elif t in (set, frozenset):
        inner = sorted(_fingerprint(y, depth - 1) for y in x)
    else:
        attrs = getattr(x, "__dict__", None)
        if not isinstance(attrs, dict):
            return f"{name}:{x!r}" if isinstance(x, _BY_IDENTITY) else name
        inner = sorted(f"{k}={_fingerprint(v, depth - 1)}"
                       for k, v in attrs.items())
    return f"{name}({', '.join(inner)})"


__all__ = ["Outcome", "outcome", "error_kind", "assert_same",
           "assert_same_error", "assert_same_outcome"]

