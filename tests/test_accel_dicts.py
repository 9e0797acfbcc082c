"""Dicts built by the unpickler (SETITEMS, DICT, SETITEM, EMPTY_DICT) are
the standard library's, down to what only internals show.

Every load must give what `pickle.loads` gives, down to `sys.getsizeof` of
every dict (the table size and layout, which depend on how the dict was
grown: one insertion at a time, batches of 1000 pairs), key order, which
value a duplicate key keeps, object identity through the memo, GC
tracking, and the calls made to keys' `__hash__`: a shortcut in building
dicts (presizing them, say) must keep all of that. The standard library is
the oracle throughout; pickles it cannot write (duplicate keys, odd memo
shapes, DICT with items) are built opcode by opcode here.
"""

import gc
import io
import pickle
import struct
import sys

import pytest

from brinery import safe
from impls import C, IMPLEMENTATIONS

PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)
SIZES = range(0, 3001)      # SETITEMS takes 1000 pairs: up to 4 per dict


def records(n, kind="str"):
    """A dict of n keys of one kind (insertion order kept)."""
    if kind == "str":
        return {f"k{i}": i for i in range(n)}
    if kind == "int":
        return {i * 7: str(i) for i in range(n)}
    if kind == "int-then-str":
        return {(i if i == 0 else f"k{i}"): i for i in range(n)}
    if kind == "str-then-int":
        return {(f"k{i}" if i < n - 1 else i): i for i in range(n)}
    raise AssertionError(kind)


def assert_same_dict(got, want):
    assert type(got) is type(want)
    assert list(got.items()) == list(want.items())
    assert [type(k) for k in got] == [type(k) for k in want]
    assert sys.getsizeof(got) == sys.getsizeof(want), len(want)
    assert gc.is_tracked(got) == gc.is_tracked(want)


# -- pickles built opcode by opcode -------------------------------------

def op_str(s):
    data = s.encode("utf-8")
    assert len(data) < 256
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


def op_int(i):
    return pickle.BININT + struct.pack("<i", i)


def op_obj(x):
    return op_str(x) if isinstance(x, str) else op_int(x)


def pairs_ops(pairs):
    return b"".join(op_obj(k) + op_obj(v) for k, v in pairs)


def wrap(body):
    return pickle.PROTO + b"\x02" + body + pickle.STOP


def setitems_pickle(pairs, put=b""):
    """EMPTY_DICT [put] MARK k v ... SETITEMS."""
    return wrap(pickle.EMPTY_DICT + put + pickle.MARK + pairs_ops(pairs)
                + pickle.SETITEMS)


def load_all(data):
    """(stdlib's result, [each brinery implementation's result])."""
    return pickle.loads(data), [impl.loads(data) for impl in IMPLEMENTATIONS]


# -- sizes ---------------------------------------------------------------

ALL_SIZES = [records(n) for n in SIZES]
# The pure implementation inserts one at a time as CPython does: a sample.
SAMPLED = [d for d in ALL_SIZES if len(d) < 100 or len(d) % 97 == 0]


def sizes_for(impl):
    return ALL_SIZES if impl is C else SAMPLED


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_size_loads_as_the_stdlib_does(impl, protocol):
    data = pickle.dumps(sizes_for(impl), protocol)
    want = pickle.loads(data)
    got = impl.loads(data)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same_dict(g, w)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_every_size_memoized_and_shared(impl, protocol):
    shared = [[d, d, {"outer": d}] for d in sizes_for(impl)]
    data = pickle.dumps(shared, protocol)
    want = pickle.loads(data)
    got = impl.loads(data)
    for g, w in zip(got, want):
        assert g[0] is g[1] is g[2]["outer"]
        assert_same_dict(g[0], w[0])


@pytest.mark.parametrize("protocol", [2, 5])
def test_every_size_one_per_load(protocol):
    # A load of its own each: the dict is the first thing in the memo.
    for d in ALL_SIZES:
        data = pickle.dumps(d, protocol)
        want = pickle.loads(data)
        for impl in IMPLEMENTATIONS:
            if impl is C or d in SAMPLED:
                assert_same_dict(impl.loads(data), want)


@pytest.mark.parametrize("kind", ["int", "int-then-str", "str-then-int"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_other_key_kinds(kind, protocol):
    for n in list(range(0, 100)) + [341, 342, 1000, 1001, 1365, 1366, 2500]:
        data = pickle.dumps(records(n, kind), protocol)
        want = pickle.loads(data)
        for impl in IMPLEMENTATIONS:
            assert_same_dict(impl.loads(data), want)


class Name(str):
    pass


def test_str_subclass_keys():
    for n in (6, 12, 21, 22, 100):
        for where in (0, n // 2, n - 1):
            pairs = [(Name(f"k{i}") if i == where else f"k{i}", i)
                     for i in range(n)]
            data = pickle.dumps(dict(pairs), 2)
            want = pickle.loads(data)
            for impl in IMPLEMENTATIONS:
                assert_same_dict(impl.loads(data), want)


@pytest.mark.parametrize("protocol", [2, 5])
def test_values_decide_gc_tracking(protocol):
    for n in (6, 12, 30):
        atoms = {f"k{i}": i for i in range(n)}
        nested = {f"k{i}": (i if i != n - 1 else [i]) for i in range(n)}
        for d in (atoms, nested):
            data = pickle.dumps(d, protocol)
            want = pickle.loads(data)
            for impl in IMPLEMENTATIONS:
                assert_same_dict(impl.loads(data), want)


# -- duplicate keys ---------------------------------------------------------

DUPLICATE_SIZES = [6, 7, 10, 11, 12, 20, 21, 22, 23, 42, 43, 85, 86, 100]


@pytest.mark.parametrize("n", DUPLICATE_SIZES)
def test_duplicate_keys(n):
    # Every number of repeats, first/last/spread: the size must be the one
    # insertion one at a time gives (which counts distinct keys).
    for repeats in range(0, n):
        for layout in ("tail", "head", "spread"):
            keys = [f"k{i}" for i in range(n - repeats)]
            if layout == "tail":
                keys += keys[:repeats]
            elif layout == "head":
                keys = keys[:repeats] + keys
            else:
                keys += [keys[(i * 5) % len(keys)] for i in range(repeats)]
            pairs = [(k, i) for i, k in enumerate(keys)]
            for data in (setitems_pickle(pairs),
                         setitems_pickle(pairs, pickle.BINPUT + b"\x00")):
                want, gots = load_all(data)
                for got in gots:
                    assert_same_dict(got, want)


def test_duplicate_keys_over_several_setitems():
    first = [(f"k{i}", i) for i in range(30)]
    second = [(f"k{i}", -i) for i in range(10, 50)]
    data = wrap(pickle.EMPTY_DICT + pickle.BINPUT + b"\x00"
                + pickle.MARK + pairs_ops(first) + pickle.SETITEMS
                + pickle.MARK + pairs_ops(second) + pickle.SETITEMS)
    want, gots = load_all(data)
    for got in gots:
        assert_same_dict(got, want)


# -- who else sees the empty dict -------------------------------------------

PAIRS_12 = [(f"key{i}", i) for i in range(12)]
SPARSE_INDEX = struct.pack("<I", 100_000)   # kept in a dict by brinery


def memo_shapes():
    """Pickles where the empty dict is held by more than the stack."""
    items = pickle.MARK + pairs_ops(PAIRS_12) + pickle.SETITEMS
    put0 = pickle.BINPUT + b"\x00"
    get0 = pickle.BINGET + b"\x00"
    return {
        "binput then get": wrap(pickle.EMPTY_DICT + put0 + items + get0
                                + pickle.TUPLE2),
        "memoize then get": wrap(pickle.EMPTY_DICT + pickle.MEMOIZE + items
                                 + get0 + pickle.TUPLE2),
        "long_binput then get": wrap(
            pickle.EMPTY_DICT + pickle.LONG_BINPUT + struct.pack("<I", 7)
            + items + pickle.LONG_BINGET + struct.pack("<I", 7)
            + pickle.TUPLE2),
        "sparse memo index": wrap(
            pickle.EMPTY_DICT + pickle.LONG_BINPUT + SPARSE_INDEX + items
            + pickle.LONG_BINGET + SPARSE_INDEX + pickle.TUPLE2),
        "two memo entries": wrap(
            pickle.EMPTY_DICT + put0 + pickle.BINPUT + b"\x01" + items
            + get0 + pickle.BINGET + b"\x01" + pickle.TUPLE3),
        "fetched before it is filled": wrap(
            pickle.EMPTY_DICT + put0 + get0 + items + pickle.TUPLE2),
        "put later": wrap(
            pickle.EMPTY_DICT + pickle.MARK + pairs_ops(PAIRS_12[:6])
            + pickle.SETITEMS + put0 + pickle.MARK + pairs_ops(PAIRS_12[6:])
            + pickle.SETITEMS + get0 + pickle.TUPLE2),
        "put overwritten": wrap(
            pickle.EMPTY_DICT + put0 + pickle.EMPTY_LIST + put0 + pickle.POP
            + items + get0 + pickle.TUPLE2),
        "dup": wrap(pickle.EMPTY_DICT + pickle.DUP + items + pickle.TUPLE2),
        "dup and put": wrap(pickle.EMPTY_DICT + put0 + pickle.DUP + items
                            + get0 + pickle.TUPLE3),
        "second empty dict": wrap(
            pickle.EMPTY_DICT + put0 + pickle.EMPTY_DICT
            + pickle.BINPUT + b"\x01" + items + pickle.POP + items
            + get0 + pickle.BINGET + b"\x01" + pickle.TUPLE3),
    }


def identities(obj):
    """Which positions of a tuple are the same object."""
    return [[a is b for b in obj] for a in obj]


@pytest.mark.parametrize("shape", list(memo_shapes()))
def test_shared_empty_dict(shape):
    data = memo_shapes()[shape]
    want, gots = load_all(data)
    for got in gots:
        assert identities(got) == identities(want)
        for g, w in zip(got, want):
            if type(w) is dict:
                assert_same_dict(g, w)
            else:
                assert g == w and type(g) is type(w)


@pytest.mark.parametrize("protocol", [1, 2, 5])
def test_self_referencing_dict(protocol):
    for n in (5, 6, 12, 21, 100, 1500):
        d = records(n)
        d["self"] = d
        data = pickle.dumps(d, protocol)
        want = pickle.loads(data)
        for impl in IMPLEMENTATIONS:
            got = impl.loads(data)
            assert got["self"] is got
            assert list(got) == list(want)
            assert sys.getsizeof(got) == sys.getsizeof(want)


def test_unpickler_memo_holds_the_filled_dict():
    d = records(12)
    data = pickle.dumps([d, d], 2)
    for impl in IMPLEMENTATIONS:
        unpickler = impl.Unpickler(io.BytesIO(data))
        got = unpickler.load()
        memoized = [v for v in unpickler.memo.values() if type(v) is dict]
        assert len(memoized) == 1 and memoized[0] is got[0] is got[1]
        assert_same_dict(memoized[0], pickle.loads(data)[0])


# -- other ways to make a dict -----------------------------------------------

class Sub(dict):
    pass


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dict_subclass_untouched(protocol):
    for n in (0, 5, 6, 12, 21, 1001):
        s = Sub(records(n))
        s.attr = n
        data = pickle.dumps([s, s], protocol)
        want = pickle.loads(data)
        for impl in IMPLEMENTATIONS:
            got = impl.loads(data)
            assert got[0] is got[1] and got[0].attr == n
            assert_same_dict(got[0], want[0])


def test_setitem_one_at_a_time():
    for n in (6, 12, 21, 22, 100):
        pairs = [(f"k{i}", i) for i in range(n)] + [("k0", "again")]
        body = pickle.EMPTY_DICT + pickle.BINPUT + b"\x00" + b"".join(
            op_obj(k) + op_obj(v) + pickle.SETITEM for k, v in pairs)
        want, gots = load_all(wrap(body))
        for got in gots:
            assert_same_dict(got, want)


def test_dict_opcode_with_items():
    for n in list(range(0, 30)) + [85, 86, 341, 1365, 2000]:
        pairs = [(f"k{i}", i) for i in range(n)]
        for extra in ([], [("k0", "dup")], [(7, "int key")]):
            data = wrap(pickle.MARK + pairs_ops(pairs + extra) + pickle.DICT)
            want, gots = load_all(data)
            for got in gots:
                assert_same_dict(got, want)


def test_empty_setitems_and_errors():
    cases = [
        wrap(pickle.EMPTY_DICT + pickle.MARK + pickle.SETITEMS),
        # odd number of items
        wrap(pickle.EMPTY_DICT + pickle.MARK + pairs_ops(PAIRS_12)
             + op_str("lonely") + pickle.SETITEMS),
        # an unhashable key after 11 good ones
        wrap(pickle.EMPTY_DICT + pickle.MARK + pairs_ops(PAIRS_12[:11])
             + pickle.EMPTY_LIST + op_int(1) + pickle.SETITEMS),
        wrap(pickle.MARK + pairs_ops(PAIRS_12[:11]) + pickle.EMPTY_LIST
             + op_int(1) + pickle.DICT),
    ]
    for data in cases:
        try:
            want = pickle.loads(data)
        except Exception as exc:
            for impl in IMPLEMENTATIONS:
                with pytest.raises(Exception) as raised:
                    impl.loads(data)
                # brinery has its own UnpicklingError (same name, message)
                assert type(raised.value).__name__ == type(exc).__name__
                assert str(raised.value) == str(exc)
        else:
            for impl in IMPLEMENTATIONS:
                assert_same_dict(impl.loads(data), want)


class CountingKey:
    calls = 0

    def __init__(self, name):
        self.name = name

    def __hash__(self):
        CountingKey.calls += 1
        return hash(self.name)

    def __eq__(self, other):
        return isinstance(other, CountingKey) and self.name == other.name

    def __reduce__(self):
        return CountingKey, (self.name,)


def test_key_hash_calls_as_the_stdlib():
    d = {CountingKey(f"k{i}"): i for i in range(12)}
    d.update({f"s{i}": i for i in range(12)})
    data = pickle.dumps(d, 2)
    CountingKey.calls = 0
    want = pickle.loads(data)
    expected = CountingKey.calls
    for impl in IMPLEMENTATIONS:
        CountingKey.calls = 0
        got = impl.loads(data)
        assert CountingKey.calls == expected
        assert sys.getsizeof(got) == sys.getsizeof(want)


# -- the other entry points ---------------------------------------------------

@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_safe_loads(protocol):
    for n in (0, 6, 12, 21, 1001, 2001):
        d = records(n)
        data = pickle.dumps([d, d], protocol)
        want = pickle.loads(data)
        got = safe.loads(data)
        assert got[0] is got[1]
        assert_same_dict(got[0], want[0])


class Thing:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return type(other) is Thing and other.n == self.n


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_unpickler_with_overrides(protocol):
    d = records(30)
    d["thing"] = Thing(3)
    d["ext"] = "external"
    outer = {"a": d, "b": d, "c": records(12), "self": None}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "EXT" if obj == "external" else None

    buf = io.BytesIO()
    Pickler(buf, protocol).dump(outer)
    data = buf.getvalue()

    def make(base):
        class Unpickler(base):
            found = []

            def find_class(self, module, name):
                Unpickler.found.append(name)
                return super().find_class(module, name)

            def persistent_load(self, pid):
                assert pid == "EXT"
                return "external"
        return Unpickler

    stdlib = make(pickle.Unpickler)
    want = stdlib(io.BytesIO(data)).load()
    for impl in IMPLEMENTATIONS:
        cls = make(impl.Unpickler)
        got = cls(io.BytesIO(data)).load()
        assert cls.found == stdlib.found
        assert got["a"] is got["b"]
        assert got == want
        for key in ("a", "c"):
            assert_same_dict(got[key], want[key])
        assert sys.getsizeof(got) == sys.getsizeof(want)


def test_file_load_and_many_dicts():
    rows = [records(6 + i % 40) for i in range(500)]
    for protocol in (2, 5):
        data = pickle.dumps(rows, protocol)
        want = pickle.load(io.BytesIO(data))
        for impl in IMPLEMENTATIONS:
            got = impl.load(io.BytesIO(data))
            for g, w in zip(got, want):
                assert_same_dict(g, w)
