"""Differential tests: the standard library is the oracle, protocols 0-5.

For every object of the catalogue (see catalogue.py) and every protocol:

- ``dumps`` (and ``Pickler.dump`` to a file) writes exactly the bytes
  ``pickle.dumps`` writes, or raises the exception it raises, with the same
  message; also with ``fix_imports=False`` below protocol 3;
- ``loads`` of the standard library's bytes gives the same object graph as
  ``pickle.loads`` (types, values, sharing, cycles), from memory and from a
  file, and leaves the file right after STOP;
- for every (dumper, loader) pair across brinery's implementations and the
  standard library, the round trip gives the graph the standard library's
  own round trip gives.
"""

import io
import pickle

import pytest

from catalogue import FACTORIES, NAMES
from compare import (Outcome, assert_same, assert_same_outcome, outcome)
from registry import registry  # noqa: F401  (fixture)

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))

pytestmark = pytest.mark.usefixtures("registry")


def _dump_to_file(dumps_impl, obj, proto, **kwargs):
    f = io.BytesIO()
    dumps_impl.Pickler(f, proto, **kwargs).dump(obj)
    return f.getvalue()


class _WriteOnly:
    """A file with nothing but write()."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)


def _dump_to_write_only(impl, obj, proto, **kwargs):
    f = _WriteOnly()
    impl.dump(obj, f, proto, **kwargs)
    return b"".join(f.chunks)


def _assert_same_bytes(expected, actual):
    if expected.error is None and actual.error is None:
        if expected.value != actual.value:
            import pickletools
            raise AssertionError(
                "pickles differ\nexpected:\n"
                + _dis(pickletools, expected.value)
                + "\nactual:\n" + _dis(pickletools, actual.value))
        return
    assert_same_outcome(expected, actual)


def _dis(pickletools, data):
    if len(data) > 4000:
        return repr(data[:300]) + "..."
    out = io.StringIO()
    try:
        pickletools.dis(data, out)
    except Exception as exc:
        out.write(f"<dis failed: {exc}>")
    return out.getvalue()


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("name", NAMES)
def test_dumps_same_bytes(impl, name, proto):
    obj = FACTORIES[name]()
    expected = outcome(pickle.dumps, obj, proto)
    _assert_same_bytes(expected, outcome(impl.dumps, obj, proto))
    _assert_same_bytes(expected, outcome(_dump_to_file, impl, obj, proto))
    _assert_same_bytes(expected,
                       outcome(_dump_to_write_only, impl, obj, proto))


@pytest.mark.parametrize("proto", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_dumps_same_bytes_without_fix_imports(impl, name, proto):
    obj = FACTORIES[name]()
    expected = outcome(pickle.dumps, obj, proto, fix_imports=False)
    _assert_same_bytes(
        expected, outcome(impl.dumps, obj, proto, fix_imports=False))
    _assert_same_bytes(
        expected, outcome(_dump_to_file, impl, obj, proto, fix_imports=False))


def _stdlib_pickle(name, proto):
    obj = FACTORIES[name]()
    try:
        return pickle.dumps(obj, proto)
    except Exception:
        pytest.skip("the standard library cannot pickle it")


def _load_from_file(impl, data, **kwargs):
    """Load from a file holding data and more: the file must be left
    right after STOP."""
    f = io.BytesIO(data + b"trailing")
    value = impl.load(f, **kwargs)
    assert f.read() == b"trailing", "load() did not stop right after STOP"
    return value


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("name", NAMES)
def test_loads_stdlib_pickles(impl, name, proto):
    data = _stdlib_pickle(name, proto)
    expected = outcome(pickle.loads, data)
    assert_same_outcome(expected, outcome(impl.loads, data))
    assert_same_outcome(expected, outcome(impl.loads, bytearray(data)))
    assert_same_outcome(expected, outcome(impl.loads, memoryview(data)))
    assert_same_outcome(expected, outcome(_load_from_file, impl, data))


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_across_implementations(pair, name, proto):
    dumper, loader = pair
    obj = FACTORIES[name]()
    try:
        oracle = pickle.loads(pickle.dumps(obj, proto))
    except Exception:
        pytest.skip("the standard library cannot round-trip it")
    data = dumper.dumps(obj, proto)
    assert_same_outcome(Outcome(value=oracle), outcome(loader.loads, data))


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_preserves_object(impl, name, proto):
    """Where the standard library gives back an equal graph, so does
    brinery (objects whose reduce builds something else are skipped)."""
    obj = FACTORIES[name]()
    try:
        assert_same(obj, pickle.loads(pickle.dumps(obj, proto)))
    except Exception:
        pytest.skip("not preserved by the standard library either")
    assert_same(obj, impl.loads(impl.dumps(obj, proto)))
