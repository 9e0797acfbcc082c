"""The C Pickler (brinery._accel.Pickler, dump, dumps) on its own.

Runs whenever the accelerator has a Pickler, before the whole suite runs on
the C implementation (that needs the C Unpickler too). The oracles are the
standard library's pickle (bytes, behaviour of subclass hooks) and
brinery's pure-Python pickler (error messages and notes).
"""

import collections
import contextlib
import copyreg
import datetime
import decimal
import enum
import fractions
import gc
import inspect
import io
import pickle
import sys
import threading
import tracemalloc
import types
import weakref

import pytest

import brinery
from brinery import _accel

if not hasattr(_accel, "Pickler"):
    pytest.skip("brinery._accel has no Pickler (not built)",
                allow_module_level=True)

CPickler = _accel.Pickler
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)

pytestmark = pytest.mark.c_extension


# ------------------------------------------------------------ catalogue

class Plain:
    def __init__(self):
        self.x = 1
        self.y = [1, 2]


class Empty:
    pass


class Slots:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1


class SlotsAndDict:
    __slots__ = ("a", "__dict__")

    def __init__(self):
        self.a = 1
        self.b = 2


class Outer:
    class Inner:
        class Deepest:
            pass


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class ListSub(list):
    pass


class DictSub(dict):
    pass


class SetSub(set):
    pass


class WithGetState:
    def __getstate__(self):
        return {"z": 1}


class WithGetNewArgs:
    def __new__(cls, *args):
        return object.__new__(cls)

    def __getnewargs__(self):
        return (1, "a")


class WithGetNewArgsEx:
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __getnewargs_ex__(self):
        return (1,), {"k": 2}


class WithReduceString:
    def __reduce__(self):
        return "SINGLETON"


SINGLETON = WithReduceString()


class WithSetState:
    def __init__(self):
        self.v = 5

    def __setstate__(self, state):
        self.__dict__.update(state)


class WithStateSetter:
    def __reduce__(self):
        return (WithStateSetter, (), {"a": 1}, None, None, _set_state)


def _set_state(obj, state):
    obj.__dict__.update(state)


class WithItems:
    def __reduce__(self):
        return (list, (), None, iter(range(2003)),
                iter([(i, i) for i in range(1001)]))


class Point(collections.namedtuple("Point", "x y")):
    pass


class InstanceHook:
    """An instance whose __dict__ overrides a reduction hook."""

    def __init__(self):
        self.__getstate__ = lambda: {"fixed": True}
        self.other = 1


def module_function(x):
    return x


def _catalogue():
    shared = "shared string"
    rec_list = [1]
    rec_list.append(rec_list)
    rec_dict = {}
    rec_dict["self"] = rec_dict
    rec_tuple = ([],)
    rec_tuple[0].append(rec_tuple)
    rec_obj = Plain()
    rec_obj.me = rec_obj
    rec_fs_holder = Plain()
    rec_fs_holder.fs = frozenset([rec_fs_holder])
    plain = Plain()
    in_set = Plain()
    rec_set = {in_set}
    in_set.owner = rec_set
    in_frozenset = Plain()
    rec_frozenset = frozenset([in_frozenset])
    in_frozenset.owner = rec_frozenset
    deep = []
    for _ in range(200):
        deep = [deep, {"k": (deep,)}]
    items = {
        "none": None, "true": True, "false": False,
        "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, 2**31,
                 -2**31, -2**31 - 1, 2**63 - 1, -2**63, 2**63, 2**64,
                 -2**100, 10**300, -(2**2047), -(2**2048), 2**2048],
        "floats": [1.5, -0.0, 0.0, float("inf"), float("-inf"),
                   float("nan"), 1e300, 5e-324, 0.1],
        "strs": ["abc", "", "é\u1234\U00012345", "a\\b\nc\rd\0e\x1a",
                 "\ud800", "\udfff x", "x" * 300, "ü" * 200,
                 "\x7f\x80\xff"],
        "bytes": [b"", b"abc", b"\xff" * 300, b"\0\n"],
        "bytearrays": [bytearray(b"xy"), bytearray(), bytearray(300)],
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((),),
                   (None, (1, (2, (3,))))],
        "lists": [[], [1], [1, 2], list(range(1000)), list(range(1001)),
                  list(range(2500)), [[]] * 3],
        "dicts": [{}, {1: 2}, {1: 2, 3: 4}, {i: i for i in range(1000)},
                  {i: str(i) for i in range(2001)}, {(1, 2): [3]}],
        "sets": [set(), {1, 2}, set(range(1000)), set(range(2000)),
                 frozenset(), frozenset({1, 2}), frozenset(range(1500))],
        "plain": plain,
        "plain_shared": [plain, plain, Plain()],
        "empty": [Empty(), Empty()],
        "slots": Slots(),
        "slots_and_dict": SlotsAndDict(),
        "nested_classes": [Outer, Outer.Inner, Outer.Inner.Deepest,
                           Outer.Inner.Deepest()],
        "builtins": [len, pickle.dumps, int, str, object, type, dict.fromkeys,
                     collections.OrderedDict, module_function],
        "singletons": [Ellipsis, NotImplemented, type(None),
                       type(Ellipsis), type(NotImplemented)],
        "misc": [1j, range(3), slice(1, 2, None), Color.RED, Color,
                 datetime.datetime(2020, 1, 2, 3, 4, 5),
                 datetime.date(2000, 1, 1), decimal.Decimal("1.5"),
                 fractions.Fraction(1, 3), Point(1, 2)],
        "subclasses": [ListSub([1, 2, 3]), DictSub(a=1), SetSub({1})],
        "stdlib_containers": [collections.OrderedDict(a=1, b=[2]),
                              collections.deque([1, 2]),
                              collections.defaultdict(list, {1: [2]}),
                              collections.Counter("abracadabra")],
        "hooks": [WithGetState(), WithGetNewArgs(), WithGetNewArgsEx(),
                  SINGLETON, WithSetState(), WithStateSetter(), WithItems(),
                  InstanceHook()],
        "big_bytes": [b"x" * 70000, 1, b"y" * 65536],
        "big_str": ["y" * 70000, "z" * 100000, "é" * 40000],
        "big_bytearray": bytearray(b"q" * 70000),
        "many_frames": [str(i) * 10 for i in range(30000)],
        "big_list": list(range(100000)),
        "memo_sharing": [shared, shared, (shared,), {shared: shared}],
        "recursive_list": rec_list,
        "recursive_dict": rec_dict,
        "recursive_tuple": rec_tuple,
        "recursive_object": [rec_obj, rec_obj],
        "recursive_frozenset": rec_fs_holder,
        # The second set (frozenset, bytes) of a pickle below protocol 4
        # takes another path than the first: one of each, then more.
        "sets_in_sets": [set(), rec_set, frozenset(), rec_frozenset,
                         {frozenset({1}), frozenset({2, (3, b"x")})},
                         [set(range(i)) for i in range(0, 2003, 1001)]],
        "bytes_again": [b"first", b"\x80\xff", b"\x00" * 70000,
                        bytes(range(256)) * 300, b"latin1", "latin1"],
        "deep_mixed": deep,
        "many_memo_entries": [[i] for i in range(300)],
        "picklebuffers": [pickle.PickleBuffer(b"abc"),
                          pickle.PickleBuffer(bytearray(b"abc"))],
        "big_picklebuffer": pickle.PickleBuffer(bytearray(80000)),
    }
    return items


CATALOGUE = _catalogue()


def outcomes(obj, protocol):
    """The outcome of pickling obj with the stdlib, the pure and the C
    pickler."""
    return (outcome(pickle.dumps, obj, protocol),
            outcome(brinery._dumps, obj, protocol),
            outcome(_accel.dumps, obj, protocol))


def outcome(dumps, obj, protocol):
    """dumps(obj, protocol) or (exception type name, message, notes)."""
    try:
        return dumps(obj, protocol)
    except Exception as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "__notes__", None))


def c_pickler_dumps(obj, protocol):
    buf = io.BytesIO()
    CPickler(buf, protocol).dump(obj)
    return buf.getvalue()


def c_dump(obj, protocol):
    buf = io.BytesIO()
    _accel.dump(obj, buf, protocol)
    return buf.getvalue()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_same_bytes_as_stdlib_and_pure(name, protocol):
    obj = CATALOGUE[name]
    expected, pure, got = outcomes(obj, protocol)
    if isinstance(expected, bytes):
        assert got == expected
    else:
        # The stdlib raises its own PicklingError class: compare the rest.
        assert got[0] == expected[0] and got[1] == expected[1]
    assert got == pure
    assert outcome(c_pickler_dumps, obj, protocol) == got
    assert outcome(c_dump, obj, protocol) == got


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_byte_bytes_and_bytearrays_memoized_as_pickle_does(protocol):
    # Regression (found by test_hypothesis): below protocol 5 a bytearray
    # is reduced to bytearray(bytes). _pickle makes a new bytes object each
    # time; the C pickler took CPython's shared one-byte bytes, which the
    # memo then found for the second bytearray (a GET instead of the
    # reduction).
    # The same for one-byte bytes: their latin-1 text is CPython's shared
    # one-character str, which _pickle's memo finds again.
    for obj in ([bytearray(b"\x00"), bytearray(b"\x00")],
                [b"x", b"z", "z"], [b"x", "z", b"z"], [b"x", b"\xe9", "\xe9"],
                {"a": bytearray(b"z"), "b": bytearray(b"z"), "c": b"z"},
                [bytearray(b"ab"), bytearray(b"ab"), bytearray()]):
        expected = pickle.dumps(obj, protocol)
        assert brinery._dumps(obj, protocol) == expected
        assert _accel.dumps(obj, protocol) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_loads_back(protocol):
    obj = {"a": [1, 2.5, "x", b"y", (None, True)], "p": Plain(),
           "c": Outer.Inner, "s": {1, 2}, "f": frozenset("ab")}
    restored = pickle.loads(_accel.dumps(obj, protocol))
    assert restored["a"] == obj["a"]
    assert restored["p"].__dict__ == obj["p"].__dict__
    assert restored["c"] is Outer.Inner
    assert restored["s"] == obj["s"] and restored["f"] == obj["f"]


def test_default_protocol():
    obj = [1, "a", Plain()]
    assert _accel.dumps(obj) == pickle.dumps(obj)
    assert _accel.dumps(obj, None) == pickle.dumps(obj, None)
    assert _accel.dumps(obj, -1) == pickle.dumps(obj, -1)
    buf = io.BytesIO()
    CPickler(buf).dump(obj)
    assert buf.getvalue() == pickle.dumps(obj)


@pytest.mark.parametrize("protocol", [0, 2, 3])
def test_fix_imports(protocol):
    obj = [collections.OrderedDict, dict, str, Exception, Color.RED,
           collections.deque]
    for fix in (True, False):
        expected = pickle.dumps(obj, protocol, fix_imports=fix)
        assert _accel.dumps(obj, protocol, fix_imports=fix) == expected
        buf = io.BytesIO()
        CPickler(buf, protocol, fix_imports=fix).dump(obj)
        assert buf.getvalue() == expected


def test_extension_registry():
    copyreg.add_extension(__name__, "Empty", 0x7F)
    copyreg.add_extension(__name__, "Plain", 0x1234)
    copyreg.add_extension(__name__, "Outer.Inner", 0x12345678)
    try:
        obj = [Empty, Plain, Outer.Inner, Empty, Plain()]
        for protocol in PROTOCOLS:
            assert _accel.dumps(obj, protocol) == pickle.dumps(obj, protocol)
    finally:
        copyreg.remove_extension(__name__, "Empty", 0x7F)
        copyreg.remove_extension(__name__, "Plain", 0x1234)
        copyreg.remove_extension(__name__, "Outer.Inner", 0x12345678)


# ------------------------------------------------------------ output

class ChunkWriter:
    """A file-like object recording each write() call."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(data)
        return len(memoryview(data).cast("B"))

    def value(self):
        return b"".join(bytes(memoryview(c).cast("B")) for c in self.chunks)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", ["big_bytes", "big_str", "many_frames",
                                  "big_list", "plain", "big_bytearray"])
def test_custom_writer_gets_the_pure_pickler_chunks(name, protocol):
    obj = CATALOGUE[name]
    c_writer, pure_writer = ChunkWriter(), ChunkWriter()
    CPickler(c_writer, protocol).dump(obj)
    brinery._Pickler(pure_writer, protocol).dump(obj)
    assert c_writer.value() == pickle.dumps(obj, protocol)
    assert ([len(memoryview(c).cast("B")) for c in c_writer.chunks]
            == [len(memoryview(c).cast("B")) for c in pure_writer.chunks])


def test_large_bytes_are_written_without_a_copy():
    payload = b"p" * 200_000
    writer = ChunkWriter()
    CPickler(writer, 5).dump([payload, payload])
    assert any(chunk is payload for chunk in writer.chunks)
    assert writer.value() == pickle.dumps([payload, payload], 5)


def test_large_picklebuffer_is_streamed_as_a_view():
    data = bytearray(b"v" * 100_000)
    writer = ChunkWriter()
    CPickler(writer, 5).dump(pickle.PickleBuffer(data))
    views = [c for c in writer.chunks if isinstance(c, memoryview)]
    assert len(views) == 1 and views[0].obj is data
    assert writer.value() == pickle.dumps(pickle.PickleBuffer(data), 5)


def test_dump_writes_nothing_on_error():
    writer = ChunkWriter()
    with pytest.raises(TypeError):
        CPickler(writer, 2).dump([1, threading.Lock()])
    assert writer.chunks == []


@pytest.mark.parametrize("in_band", [False, True])
def test_buffer_callback(in_band):
    buffers = [pickle.PickleBuffer(b"ro" * 10),
               pickle.PickleBuffer(bytearray(b"rw" * 40000))]
    obj = [buffers[0], buffers[1], buffers[0]]
    expected_seen, seen = [], []
    expected = pickle.dumps(obj, 5, buffer_callback=lambda b: (
        expected_seen.append(b), in_band)[1])
    got = _accel.dumps(obj, 5, buffer_callback=lambda b: (
        seen.append(b), in_band)[1])
    assert got == expected
    assert seen == expected_seen
    writer = ChunkWriter()
    CPickler(writer, 5, buffer_callback=lambda b: in_band).dump(obj)
    assert writer.value() == expected


def test_buffer_callback_errors():
    with pytest.raises(ValueError, match="buffer_callback needs protocol"):
        _accel.dumps(1, 4, buffer_callback=print)
    with pytest.raises(ValueError, match="buffer_callback needs protocol"):
        CPickler(io.BytesIO(), 4, buffer_callback=print)

    def fail(buf):
        raise KeyError("no")
    with pytest.raises(KeyError):
        _accel.dumps(pickle.PickleBuffer(b"x"), 5, buffer_callback=fail)


def test_non_contiguous_picklebuffer():
    np = pytest.importorskip("numpy")
    buf = pickle.PickleBuffer(np.arange(10)[::2])
    with pytest.raises(brinery.PicklingError) as info:
        _accel.dumps(buf, 5)
    with pytest.raises(pickle.PicklingError) as expected:
        pickle.dumps(buf, 5)
    assert str(info.value) == str(expected.value)


def test_numpy_arrays():
    np = pytest.importorskip("numpy")
    arrays = [np.arange(10), np.zeros((300, 300)), np.array(["a", "b"]),
              np.arange(12).reshape(3, 4).T]
    for protocol in PROTOCOLS:
        assert (_accel.dumps(arrays, protocol)
                == pickle.dumps(arrays, protocol))
    buffers = []
    data = _accel.dumps(arrays, 5, buffer_callback=buffers.append)
    restored = pickle.loads(data, buffers=buffers)
    assert all((a == b).all() for a, b in zip(arrays, restored))


# ------------------------------------------------------------ arguments

def test_argument_errors():
    with pytest.raises(ValueError, match="pickle protocol must be <= 5"):
        _accel.dumps(1, 6)
    with pytest.raises(ValueError, match="pickle protocol must be <= 5"):
        CPickler(io.BytesIO(), 6)
    with pytest.raises(TypeError, match="file must have a 'write'"):
        _accel.dump(1, object())
    with pytest.raises(TypeError, match="file must have a 'write'"):
        CPickler(object())
    with pytest.raises(TypeError):
        _accel.dumps()
    with pytest.raises(TypeError):
        _accel.dumps(1, 2, 3)
    with pytest.raises(TypeError):
        _accel.dumps(1, nonsense=2)
    with pytest.raises(TypeError):
        _accel.dumps(1, 2, protocol=2)
    with pytest.raises(TypeError):
        _accel.dumps(1.0, 2.5)


def test_keyword_arguments():
    obj = {"a": b"b"}
    assert _accel.dumps(obj=obj, protocol=2) == pickle.dumps(obj, 2)
    assert (_accel.dumps(obj, protocol=1, fix_imports=False)
            == pickle.dumps(obj, 1, fix_imports=False))
    buf = io.BytesIO()
    _accel.dump(obj=obj, file=buf, protocol=3)
    assert buf.getvalue() == pickle.dumps(obj, 3)


def test_init_not_called():
    class Lazy(CPickler):
        def __init__(self):
            pass
    with pytest.raises(brinery.PicklingError, match="__init__"):
        Lazy().dump(1)


def test_reinit_resets_protocol_and_memo():
    buf = io.BytesIO()
    p = CPickler(buf, 0)
    p.dump("x")
    p.__init__(buf, 2)
    assert p.memo == {}
    p.dump("x")
    assert buf.getvalue() == pickle.dumps("x", 0) + pickle.dumps("x", 2)


class PicklesInside:
    """An object whose reduction pickles something else meanwhile."""

    def __reduce__(self):
        inner = _accel.dumps([Plain(), "inner", {1: Outer.Inner}], 2)
        return (bytes, (inner,))


def test_nested_dumps_from_a_reduction():
    obj = [PicklesInside(), "outer", PicklesInside()]
    for protocol in PROTOCOLS:
        assert _accel.dumps(obj, protocol) == pickle.dumps(obj, protocol)
        buf = io.BytesIO()
        CPickler(buf, protocol).dump(obj)
        assert buf.getvalue() == pickle.dumps(obj, protocol)


def test_dump_refuses_reentry():
    class Reentrant(CPickler):
        def persistent_id(self, obj):
            if obj == "inner":
                self.dump(1)
            return None
    with pytest.raises(RuntimeError, match="while the same Pickler"):
        Reentrant(io.BytesIO(), 2).dump(["inner"])


# ------------------------------------------------------------ errors

class RaisingReduce:
    def __reduce__(self):
        raise ValueError("no reduce")


class BadState:
    def __reduce__(self):
        return (BadState, (), {"lock": threading.Lock()})


class BadArgs:
    def __reduce__(self):
        return (BadArgs, (threading.Lock(),))


class HasLock:
    def __init__(self):
        self.inner = [1, {"k": (2, threading.Lock())}]


class BadSetter:
    def __reduce__(self):
        return (BadSetter, (), {"a": threading.Lock()}, None, None,
                _set_state)


class NewObjExLock:
    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj_ex__,
                (NewObjExLock, (threading.Lock(),), {}))


class NewObjExWrongLength:
    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj_ex__, (NewObjExLock, (), {}, 1))


class NewObjEmpty:
    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, ())


class NewObjWrongClass:
    def __reduce_ex__(self, protocol):
        return (copyreg.__newobj__, (int,))


class ReduceNotTuple:
    def __reduce__(self):
        return 42


class ReduceTooShort:
    def __reduce__(self):
        return (list,)


class ReduceNotCallable:
    def __reduce__(self):
        return (1, ())


class ReduceBadListItems:
    def __reduce__(self):
        return (list, (), None, [1])


class NotSameObject:
    pass


NotSameObject.__qualname__ = "Empty"


def _local_class():
    class Local:
        pass
    return Local


ERROR_CASES = {
    "lock_in_dict_list": {"a": [1, 2, threading.Lock()]},
    "raising_reduce": [1, RaisingReduce()],
    "bad_state": [BadState()],
    "bad_args": (1, BadArgs()),
    "attribute_path": HasLock(),
    "state_setter": BadSetter(),
    "newobj_ex": NewObjExLock(),
    "newobj_ex_length": NewObjExWrongLength(),
    "newobj_empty": NewObjEmpty(),
    "newobj_wrong_class": NewObjWrongClass(),
    "not_tuple": ReduceNotTuple(),
    "too_short": [ReduceTooShort()],
    "not_callable": ReduceNotCallable(),
    "listitems_not_iterator": ReduceBadListItems(),
    "local_class": [_local_class()],
    "local_function": {"f": lambda: 1},
    "not_same_object": NotSameObject,
    "frozenset_element": frozenset({(1, RaisingReduce())}),
    "set_element": {(1, RaisingReduce())},
    "second_set_element": [set(), {(1, RaisingReduce())}],
    "second_frozenset_element": [frozenset(), frozenset({RaisingReduce()})],
    "second_big_set": [set(), set(range(1500)) | {RaisingReduce()}],
    "nested_tuples": ((1, (2, [3, RaisingReduce()])),),
    "big_dict": {i: (RaisingReduce() if i == 1500 else i)
                 for i in range(2000)},
    "big_list": [RaisingReduce() if i == 1500 else i for i in range(2000)],
    "dict_key": {RaisingReduce(): 1, 2: 3},
    "single_item_dict": {"only": RaisingReduce()},
    "single_item_list": [RaisingReduce()],
    "proto0_dict": {"x": 1, "y": RaisingReduce()},
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_errors_and_notes_match_pure(name, protocol):
    expected, pure, got = outcomes(ERROR_CASES[name], protocol)
    assert got == pure
    if isinstance(expected, bytes):     # not an error at this protocol
        assert got == expected
    else:
        assert got[:2] == expected[:2]


class ListItemsLock:
    def __reduce__(self):
        return (list, (), None, iter([1, 2, threading.Lock()]))


class DictItemsLock:
    def __reduce__(self):
        return (dict, (), None, None, iter([(1, 2), ("z", threading.Lock())]))


class DictItemsNotPairs:
    def __reduce__(self):
        return (dict, (), None, None, iter([(1, 2), 5]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_notes_for_reduce_items(protocol):
    # Every level adds its note, the reduced object included. (The pure
    # pickler leaves out "... object" here while it is shallow.)
    label = f"{__name__}.ListItemsLock"
    with pytest.raises(Exception) as info:
        _accel.dumps([ListItemsLock()], protocol)
    assert info.value.__notes__[-3:] == [f"when serializing {label} item 2",
                                         f"when serializing {label} object",
                                         "when serializing list item 0"]
    label = f"{__name__}.DictItemsLock"
    with pytest.raises(Exception) as info:
        _accel.dumps({"q": DictItemsLock()}, protocol)
    assert info.value.__notes__[-3:] == [f"when serializing {label} item 'z'",
                                         f"when serializing {label} object",
                                         "when serializing dict item 'q'"]
    with pytest.raises(TypeError, match="must return 2-tuples"):
        _accel.dumps(DictItemsNotPairs(), protocol)


def test_dict_items_pairs_may_be_tuple_subclasses():
    # As in the standard library: any tuple of two items is a pair.
    class Pairs:
        def __reduce__(self):
            return (dict, (), None, None, iter([Point(1, 2), Point(3, 4)]))
    for protocol in PROTOCOLS:
        assert (_accel.dumps(Pairs(), protocol)
                == pickle.dumps(Pairs(), protocol))


def test_notes_only_on_exceptions():
    class Interrupting:
        def __reduce__(self):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as info:
        _accel.dumps([[Interrupting()]], 2)
    assert not hasattr(info.value, "__notes__")


def test_notes_when_deep():
    obj = RaisingReduce()
    for _ in range(3000):
        obj = [obj]
    with pytest.raises(ValueError) as info:
        _accel.dumps(obj, 4)
    assert info.value.__notes__ == ["when serializing list item 0"] * 3000


def test_dict_changed_size():
    d = {i: i for i in range(10)}

    class Grow:
        def __reduce__(self):
            d["new"] = 1
            return (int, ())
    d[5] = Grow()
    with pytest.raises(RuntimeError, match="changed size"):
        _accel.dumps(d, 2)


def test_set_changed_size():
    s = set(range(10))

    class Grow:
        def __reduce__(self):
            s.add("new")
            return (int, ())
    s.add(Grow())
    with pytest.raises(RuntimeError, match="changed size"):
        _accel.dumps(s, 4)


def test_list_changed_while_pickled():
    # CPython re-reads the list: an item appended meanwhile is pickled.
    def make():
        items = [1, None, 2]

        class Grow:
            def __reduce__(self):
                items.append("late")
                return (int, ())
        items[1] = Grow()
        return items
    for protocol in PROTOCOLS:
        expected = pickle.dumps(make(), protocol)
        assert _accel.dumps(make(), protocol) == expected
        assert brinery._dumps(make(), protocol) == expected


# ------------------------------------------------------------ depth

def test_million_deep_list():
    deep = []
    for _ in range(1_000_000):
        deep = [deep]
    data = _accel.dumps(deep, 4)
    assert data.startswith(b"\x80\x04\x95")
    assert data.count(b"]") == 1_000_001
    del deep
    restored = pickle.loads(data)
    depth = 0
    while restored:
        restored, depth = restored[0], depth + 1
    assert depth == 1_000_000


class Node:
    def __init__(self, next_node):
        self.next = next_node


def test_million_object_chain():
    head = None
    for _ in range(1_000_000):
        head = Node(head)
    for protocol in (2, 5):
        data = _accel.dumps(head, protocol)
        restored = pickle.loads(data)
        count = 0
        while restored is not None:
            restored, count = restored.next, count + 1
        assert count == 1_000_000


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deep_structures_match_pure(protocol):
    deep = None
    for i in range(3000):
        kind = i % 3
        if kind == 0:
            deep = (i, [deep])
        elif kind == 1:
            deep = {"k": Node(deep), "i": i}
        else:
            deep = [frozenset([i, -i]), deep, {i}, (deep,)]
    assert _accel.dumps(deep, protocol) == brinery._dumps(deep, protocol)


# ------------------------------------------------------------ subclasses

def both(body):
    """The same subclass body on the stdlib's Pickler and on the C one."""
    return (type("StdPickler", (pickle.Pickler,), dict(body)),
            type("CPickler", (CPickler,), dict(body)))


def dump_with(cls, obj, protocol, **kwargs):
    buf = io.BytesIO()
    cls(buf, protocol, **kwargs).dump(obj)
    return buf.getvalue()


def persistent_strings(self, obj):
    if isinstance(obj, str) and obj.startswith("pid:"):
        return obj[4:]
    if isinstance(obj, Empty):
        return ("empty", [1, 2])
    return None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_id_method(protocol):
    std, c = both({"persistent_id": persistent_strings})
    obj = ["pid:a", "b", Empty(), {"pid:k": Empty()}, Outer.Inner, Plain()]
    assert dump_with(c, obj, protocol) == dump_with(std, obj, protocol)


def test_persistent_id_protocol0_ascii():
    std, c = both({"persistent_id": lambda self, obj:
                   "é" if obj == "x" else None})
    with pytest.raises(brinery.PicklingError, match="ASCII"):
        dump_with(c, ["x"], 0)
    with pytest.raises(pickle.PicklingError, match="ASCII"):
        dump_with(std, ["x"], 0)


def test_persistent_id_super_and_instance_attribute():
    class Sub(CPickler):
        def persistent_id(self, obj):
            return super().persistent_id(obj)
    assert CPickler.persistent_id(CPickler(io.BytesIO()), 1) is None
    assert dump_with(Sub, [1, "a"], 2) == pickle.dumps([1, "a"], 2)

    buf = io.BytesIO()
    p = CPickler(buf, 2)
    p.persistent_id = lambda obj: "P" if obj == "a" else None
    p.dump([1, "a"])
    std_buf = io.BytesIO()
    # _pickle.Pickler refuses the instance attribute since 3.13: brinery
    # keeps accepting it (test_api.KNOWN_EXCEPTIONS); pickle._Pickler too.
    q = (pickle._Pickler if sys.version_info >= (3, 13) else
         pickle.Pickler)(std_buf, 2)
    q.persistent_id = lambda obj: "P" if obj == "a" else None
    q.dump([1, "a"])
    assert buf.getvalue() == std_buf.getvalue()


def test_persistent_id_sees_every_object():
    seen = []

    class Recorder(CPickler):
        def persistent_id(self, obj):
            seen.append(type(obj).__name__)
            return None

    class StdRecorder(pickle.Pickler):
        def persistent_id(self, obj):
            seen.append(type(obj).__name__)
            return None
    obj = [Plain(), Outer.Inner, b"x", {1: (2.0,)}, {3}]
    for protocol in PROTOCOLS:
        seen.clear()
        dump_with(StdRecorder, obj, protocol)
        expected = list(seen)
        seen.clear()
        dump_with(Recorder, obj, protocol)
        assert seen == expected


def reducer_override(self, obj):
    if isinstance(obj, Plain):
        return (dict, ((("plain", obj.x),),))
    if obj is Outer:
        return (getattr, (Empty, "__name__"))
    if isinstance(obj, types.FunctionType):
        return NotImplemented
    return NotImplemented


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_override(protocol):
    std, c = both({"reducer_override": reducer_override})
    obj = [Plain(), Outer, module_function, 1, "s", [Plain()], Empty()]
    assert dump_with(c, obj, protocol) == dump_with(std, obj, protocol)


def test_reducer_override_not_called_for_builtins():
    seen = []

    class Recorder(CPickler):
        def reducer_override(self, obj):
            seen.append(obj)
            return NotImplemented
    obj = [None, True, 1, 2.0, "s", b"b", bytearray(b"x"), (1,), {1: 2},
           {1}, frozenset({2}), pickle.PickleBuffer(b"x")]
    dump_with(Recorder, obj, 5)
    assert seen == []
    dump_with(Recorder, [Empty, len, Plain], 5)
    assert seen == [Empty, len, Plain]


def test_no_default_hook_attributes():
    p = CPickler(io.BytesIO())
    assert not hasattr(p, "reducer_override")
    assert not hasattr(p, "dispatch_table")
    assert p.persistent_id(1) is None
    # The class itself cannot grow hooks (as _pickle.Pickler cannot):
    # subclasses are where they go.
    with pytest.raises(TypeError):
        CPickler.reducer_override = reducer_override


def reduce_plain(obj):
    return (Plain, ())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dispatch_table_class_attribute(protocol):
    table = {Plain: reduce_plain, Empty: lambda obj: (list, ())}
    std, c = both({"dispatch_table": table})
    obj = [Plain(), Empty(), WithGetState()]
    assert dump_with(c, obj, protocol) == dump_with(std, obj, protocol)
    chained = collections.ChainMap({Plain: reduce_plain},
                                   copyreg.dispatch_table)
    std, c = both({"dispatch_table": chained})
    assert dump_with(c, obj, protocol) == dump_with(std, obj, protocol)


def test_dispatch_table_instance_attribute():
    buf, std_buf = io.BytesIO(), io.BytesIO()
    p, q = CPickler(buf, 2), pickle.Pickler(std_buf, 2)
    p.dispatch_table = q.dispatch_table = {Plain: reduce_plain}
    p.dump([Plain(), Empty()])
    q.dump([Plain(), Empty()])
    assert buf.getvalue() == std_buf.getvalue()


def test_dispatch_table_mapping_errors():
    class Table:
        def __getitem__(self, key):
            if key is Empty:
                raise LookupError("boom")
            raise KeyError(key)
    std, c = both({"dispatch_table": Table()})
    assert dump_with(c, [Plain()], 2) == dump_with(std, [Plain()], 2)
    with pytest.raises(LookupError, match="boom"):
        dump_with(c, [Empty()], 2)


def test_copyreg_dispatch_table():
    copyreg.pickle(Empty, lambda obj: (Empty, ()))
    try:
        assert _accel.dumps([Empty()], 2) == pickle.dumps([Empty()], 2)
    finally:
        del copyreg.dispatch_table[Empty]


def test_memo_get_set_and_clear():
    data = ["abcdefg", "abcdefg", 44, Outer.Inner]
    for cls in (pickle.Pickler, CPickler):
        f = io.BytesIO()
        pickler = cls(f, 2)
        pickler.dump(data)
        first = f.getvalue()
        memo = pickler.memo
        if not isinstance(memo, dict):
            memo = memo.copy()
        assert sorted(index for index, _ in memo.values()) == \
            list(range(len(memo)))
        assert any(obj is data for _, obj in memo.values())
        assert {id(obj): (i, obj) for i, obj in memo.values()} == memo
        f2 = io.BytesIO()
        primed = cls(f2, 2)
        primed.memo = pickler.memo
        primed.dump(data)
        if cls is pickle.Pickler:
            expected = (first, f2.getvalue())
        else:
            assert (first, f2.getvalue()) == expected
        pickler.clear_memo()
        assert len(pickler.memo if isinstance(pickler.memo, dict)
                   else pickler.memo.copy()) == 0
    c = CPickler(io.BytesIO())
    with pytest.raises(TypeError):
        c.memo = {1: "not a pair"}
    with pytest.raises(TypeError):
        c.memo = 5
    with pytest.raises(TypeError):
        del c.memo
    std = pickle.Pickler(io.BytesIO())
    std.dump([1, "x"])
    c.memo = std.memo      # a stdlib memo proxy, through its copy()
    assert len(c.memo) == 2


def test_memo_persists_across_dumps():
    obj = ["x", Outer.Inner]
    for protocol in PROTOCOLS:
        std_buf, buf = io.BytesIO(), io.BytesIO()
        std, c = pickle.Pickler(std_buf, protocol), CPickler(buf, protocol)
        for p in (std, c):
            p.dump(obj)
            p.dump(obj)
        assert buf.getvalue() == std_buf.getvalue()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fast_mode(protocol):
    obj = [["x"] * 3, ("y", "y"), Plain(), {"a": [1, 2]}] * 2
    outputs = []
    for cls in (pickle.Pickler, CPickler):
        buf = io.BytesIO()
        p = cls(buf, protocol)
        p.fast = 1
        assert p.fast
        p.dump(obj)
        outputs.append(buf.getvalue())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("cyclic", ["list", "dict", "object"])
def test_fast_mode_refuses_cycles(cyclic):
    if cyclic == "list":
        obj = []
        obj.append([obj])
    elif cyclic == "dict":
        obj = {}
        obj["k"] = [obj]
    else:
        obj = Plain()
        obj.y = [obj]
    for protocol in PROTOCOLS:
        p = CPickler(io.BytesIO(), protocol)
        p.fast = True
        with pytest.raises(ValueError, match="fast mode: can't pickle "
                                             "cyclic objects"):
            p.dump(obj)


def test_bin_attribute():
    p = CPickler(io.BytesIO(), 0)
    assert p.bin == 0
    p = CPickler(io.BytesIO(), 3)
    assert p.bin == 1


def test_subclass_attributes_and_dict():
    class Sub(CPickler):
        def __init__(self, file, protocol=None):
            super().__init__(file, protocol)
            self.proto = protocol
            self.extra = []
    s = Sub(io.BytesIO(), 3)
    assert s.proto == 3 and s.extra == []
    s.dump(1)
    assert "proto" in s.__dict__


# ------------------------------------------------------------ cloudpickle

def cloudpickle_style_class(base, module):
    """cloudpickle's CloudPickler, rebuilt on `base`.

    Its methods refer to the module-level name `Pickler` (the stdlib's C
    Pickler) and, in cloudpickle 3, to their class through `super()`:
    they get a copy of their globals where that name is `base`, and a
    `__class__` cell holding the new class.
    """
    namespace = dict(vars(module))
    namespace["Pickler"] = base
    cls = type("CloudPickler", (base,), {})
    for key, value in vars(module.CloudPickler).items():
        if key in ("__dict__", "__weakref__"):
            continue
        if isinstance(value, types.FunctionType):
            closure = value.__closure__
            if "__class__" in value.__code__.co_freevars:
                cells = list(closure)
                cells[value.__code__.co_freevars.index("__class__")] = \
                    types.CellType(cls)
                closure = tuple(cells)
            value = types.FunctionType(value.__code__, namespace,
                                       value.__name__, value.__defaults__,
                                       closure)
        setattr(cls, key, value)
    return cls


def _make_closure():
    captured = [1, 2]

    def inner(a):
        return a + len(captured)
    return inner


class DynamicLike:
    attr = 1

    def method(self):
        return self.attr


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cloudpickle_subclass(protocol):
    cloudpickle = pytest.importorskip("cloudpickle")
    # CloudPickler lives in cloudpickle_fast up to cloudpickle 2, in
    # cloudpickle.cloudpickle from 3 on.
    module = sys.modules[cloudpickle.CloudPickler.__module__]
    cls = cloudpickle_style_class(CPickler, module)
    dynamic = type("Dynamic", (DynamicLike,), {"x": 5})
    objs = [lambda x: x + 1, _make_closure(), dynamic, dynamic(),
            [dynamic, dynamic()], {"f": _make_closure()},
            property(lambda self: 1), collections.OrderedDict(a=1),
            types.SimpleNamespace(a=1)]
    for obj in objs:
        expected = cloudpickle.dumps(obj, protocol)
        assert dump_with(cls, obj, protocol) == expected
        restored = cloudpickle.loads(expected)
        assert type(restored) is type(cloudpickle.loads(expected))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cloudpickle_like_subclass_without_cloudpickle(protocol):
    # The parts of CloudPickler's design that matter to the pickler:
    # __init__ through the base class, self.proto, a ChainMap dispatch
    # table as class attribute, reducer_override for classes and functions,
    # and dump() calling the base class's dump.
    def make(base):
        def __init__(self, file, protocol=None, buffer_callback=None):
            base.__init__(self, file, protocol=protocol,
                          buffer_callback=buffer_callback)
            self.proto = int(protocol)
            self.globals_ref = {}

        def reducer_override(self, obj):
            if isinstance(obj, type) and obj.__name__.startswith("Dyn"):
                return (type, (obj.__name__, (), {"tag": self.proto}))
            if isinstance(obj, types.FunctionType) and \
                    obj.__name__ == "<lambda>":
                return (eval, ("lambda: None",))
            return NotImplemented

        def dump(self, obj):
            return base.dump(self, obj)
        return type("Cloudish", (base,), {
            "__init__": __init__, "reducer_override": reducer_override,
            "dump": dump,
            "dispatch_table": collections.ChainMap(
                {Plain: reduce_plain}, copyreg.dispatch_table)})
    dyn = type("Dynamic", (), {})
    obj = [dyn, dyn, lambda: 1, Plain(), Empty(), module_function]
    assert (dump_with(make(CPickler), obj, protocol)
            == dump_with(make(pickle.Pickler), obj, protocol))


# ------------------------------------------------------------ resources

def _leak_candidates():
    names = ["plain", "plain_shared", "nested_classes", "builtins", "misc",
             "hooks", "dicts", "strs", "recursive_object", "subclasses",
             "stdlib_containers", "picklebuffers", "deep_mixed", "ints"]
    return [CATALOGUE[name] for name in names]


def test_no_leaks_repeated_dumps():
    objs = _leak_candidates()
    errors = list(ERROR_CASES.values())

    def work():
        for obj in objs:
            for protocol in (PROTOCOLS if obj is not CATALOGUE["picklebuffers"]
                             else [5]):
                _accel.dumps(obj, protocol)
                _accel.dump(obj, io.BytesIO(), protocol)
                p = CPickler(io.BytesIO(), protocol)
                p.dump(obj)
                p.memo
        for obj in errors:
            for protocol in (0, 2, 5):
                try:
                    _accel.dumps(obj, protocol)
                except Exception:
                    pass
    for _ in range(3):
        work()
    gc.collect()
    tracemalloc.start()
    try:
        work()
        gc.collect()
        before = tracemalloc.take_snapshot()
        for _ in range(5):
            work()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = sum(stat.size_diff for stat in
                 after.filter_traces(filters).compare_to(
                     before.filter_traces(filters), "filename"))
    assert growth < 64 * 1024


def test_no_references_left_behind():
    obj = Plain()
    state = obj.__dict__
    refs = sys.getrefcount(obj), sys.getrefcount(state), \
        sys.getrefcount(Plain)
    for protocol in PROTOCOLS:
        _accel.dumps([obj, obj], protocol)
        p = CPickler(io.BytesIO(), protocol)
        p.dump(obj)
        del p
    assert (sys.getrefcount(obj), sys.getrefcount(state),
            sys.getrefcount(Plain)) == refs


def test_pickler_is_collected():
    class Sub(CPickler):
        def persistent_id(self, obj):
            return None
    buf = io.BytesIO()
    p = Sub(buf, 2)
    p.me = p                     # a cycle through the instance dict
    p.dump([Plain()])
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None


@contextlib.contextmanager
def module_global(name, cls):
    """cls, published for the time being as this module's `name`."""
    cls.__module__ = __name__
    cls.__qualname__ = name
    globals()[name] = cls
    try:
        yield cls
    finally:
        globals().pop(name, None)


def test_global_cache_does_not_keep_classes_alive():
    with module_global("Temporary", type("Temporary", (), {})) as cls:
        assert _accel.dumps(cls, 2) == pickle.dumps(cls, 2)
        assert _accel.dumps(cls(), 2) == pickle.dumps(cls(), 2)
    ref = weakref.ref(cls)
    del cls
    gc.collect()
    assert ref() is None


def test_cached_globals_follow_changes():
    class Moving:
        pass
    with module_global("MovingTarget", Moving):
        for protocol in PROTOCOLS:
            assert _accel.dumps(Moving, protocol) == \
                pickle.dumps(Moving, protocol)
        Moving.__qualname__ = "MovedTarget"
        globals()["MovedTarget"] = Moving
        for protocol in PROTOCOLS:
            assert _accel.dumps(Moving, protocol) == \
                pickle.dumps(Moving, protocol)
        globals()["MovedTarget"] = Empty
        with pytest.raises(brinery.PicklingError, match="not the same"):
            _accel.dumps(Moving, 2)
        del globals()["MovedTarget"]
    renamed = module_function
    old = renamed.__qualname__
    try:
        renamed.__qualname__ = "no_such_function"
        with pytest.raises(brinery.PicklingError, match="attribute lookup"):
            _accel.dumps(renamed, 2)
    finally:
        renamed.__qualname__ = old
    assert _accel.dumps(renamed, 2) == pickle.dumps(renamed, 2)


def _outcome(dumps, obj, protocol, **kwargs):
    """dumps' bytes, or its exception's type and message."""
    try:
        return dumps(obj, protocol, **kwargs)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _same_as_stdlib(obj, protocols=PROTOCOLS, **kwargs):
    """C dumps and the standard library agree (bytes or error), twice, so
    that the second time runs from the global cache."""
    for _ in range(2):
        for protocol in protocols:
            got = _outcome(_accel.dumps, obj, protocol, **kwargs)
            expected = _outcome(pickle.dumps, obj, protocol, **kwargs)
            assert got == expected, (obj, protocol)


@contextlib.contextmanager
def scratch_module(name, **attrs):
    """A module `name` in sys.modules holding attrs, for the time being."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    try:
        yield module
    finally:
        sys.modules.pop(name, None)


def test_globals_by_name_match_stdlib_from_the_cache():
    import math
    import operator
    import os
    globals_ = [len, pow, math.pow, math.sin, operator.add, os.getcwd,
                int, str, object, type, zip, memoryview, types.GenericAlias,
                collections.OrderedDict, collections.namedtuple,
                enum.Enum, enum.IntFlag, decimal.Decimal, io.BytesIO,
                inspect.signature, fractions.Fraction, datetime.date,
                OSError, ConnectionResetError, ValueError]
    for obj in globals_:
        _same_as_stdlib(obj)
        _same_as_stdlib(obj, fix_imports=False)
    _same_as_stdlib(globals_)


def test_rebinding_a_module_attribute_between_dumps_is_seen():
    def helper():
        pass
    helper.__module__ = "brinery_scratch_mod"
    helper.__qualname__ = "helper"

    class Klass:
        pass
    Klass.__module__ = "brinery_scratch_mod"
    Klass.__qualname__ = "Klass"
    import math
    with scratch_module("brinery_scratch_mod", helper=helper, Klass=Klass,
                        sin=math.sin) as module:
        saved_module = math.sin.__module__
        math.sin.__module__ = "brinery_scratch_mod"
        try:
            for obj in (helper, Klass, math.sin):
                _same_as_stdlib(obj)
            # rebound to another object: "not the same object"
            module.helper, module.Klass, module.sin = Klass, helper, math.cos
            for obj in (helper, Klass, math.sin):
                _same_as_stdlib(obj)
                with pytest.raises(brinery.PicklingError,
                                   match="not the same object"):
                    _accel.dumps(obj, 2)
            # removed: "attribute lookup ... failed"
            del module.helper, module.Klass, module.sin
            for obj in (helper, Klass, math.sin):
                _same_as_stdlib(obj)
                with pytest.raises(brinery.PicklingError,
                                   match="attribute lookup"):
                    _accel.dumps(obj, 5)
            # put back: pickled by name again
            module.helper, module.Klass, module.sin = helper, Klass, math.sin
            for obj in (helper, Klass, math.sin):
                _same_as_stdlib(obj)
        finally:
            math.sin.__module__ = saved_module
    _same_as_stdlib(math.sin)


def test_a_builtins_module_attribute_change_is_seen():
    import math
    with scratch_module("brinery_other_math", hypot=math.hypot):
        _same_as_stdlib(math.hypot)
        saved = math.hypot.__module__
        math.hypot.__module__ = "brinery_other_math"
        try:
            _same_as_stdlib(math.hypot)
            assert b"brinery_other_math" in _accel.dumps(math.hypot, 2)
        finally:
            math.hypot.__module__ = saved
        _same_as_stdlib(math.hypot)
        assert b"brinery_other_math" not in _accel.dumps(math.hypot, 2)


def test_globals_of_module_subclasses_and_module_getattr():
    class LazyModule(types.ModuleType):
        def __getattr__(self, name):
            if name == "lazy_thing":
                return lazy_thing
            raise AttributeError(name)

    def lazy_thing():
        pass
    lazy_thing.__module__ = "brinery_lazy_mod"
    lazy_thing.__qualname__ = "lazy_thing"
    module = LazyModule("brinery_lazy_mod")
    sys.modules["brinery_lazy_mod"] = module
    try:
        _same_as_stdlib(lazy_thing)
        # a plain module with a module-level __getattr__ (PEP 562)
        plain = types.ModuleType("brinery_pep562_mod")
        plain.__getattr__ = lambda name: lazy_thing
        sys.modules["brinery_pep562_mod"] = plain
        lazy_thing.__module__ = "brinery_pep562_mod"
        _same_as_stdlib(lazy_thing)
        plain.lazy_thing = len          # now an own attribute, not it
        _same_as_stdlib(lazy_thing)
    finally:
        sys.modules.pop("brinery_lazy_mod", None)
        sys.modules.pop("brinery_pep562_mod", None)


def test_many_globals_sharing_cache_buckets_stay_right():
    # More globals than the cache has entries: evictions must only cost.
    made = {}
    for i in range(5000):
        def func():
            pass
        func.__module__ = "brinery_many_mod"
        func.__qualname__ = func.__name__ = f"f{i}"
        made[f"f{i}"] = func
    with scratch_module("brinery_many_mod", **made) as module:
        objs = list(made.values())
        for protocol in (0, 2, 4, 5):
            assert _accel.dumps(objs, protocol) == pickle.dumps(objs, protocol)
            assert _accel.dumps(objs, protocol) == pickle.dumps(objs, protocol)
        module.f17 = None
        with pytest.raises(brinery.PicklingError, match="not the same"):
            _accel.dumps(objs, 2)


def test_plain_class_changes_are_seen():
    class Changing:
        pass
    with module_global("ChangingClass", Changing):
        obj = Changing()
        obj.a = 1
        for _ in range(3):
            assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)
        Changing.__getstate__ = lambda self: {"replaced": True}
        assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)
        del Changing.__getstate__
        assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)
        Changing.__reduce_ex__ = lambda self, proto: (Changing, ())
        assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)
        del Changing.__reduce_ex__
        obj.__reduce_ex__ = lambda proto: (Changing, ())
        assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)
        del obj.__reduce_ex__
        obj.__class__ = Plain
        assert _accel.dumps(obj, 2) == pickle.dumps(obj, 2)


def test_threads_with_separate_picklers():
    objs = [CATALOGUE[name] for name in ("plain_shared", "dicts", "misc",
                                         "nested_classes", "hooks")]
    expected = [pickle.dumps(obj, protocol) for obj in objs
                for protocol in PROTOCOLS]
    failures = []

    def worker():
        try:
            for _ in range(30):
                got = []
                for obj in objs:
                    for protocol in PROTOCOLS:
                        buf = io.BytesIO()
                        CPickler(buf, protocol).dump(obj)
                        got.append(buf.getvalue())
                if got != expected:
                    failures.append("different output")
                for obj in objs:
                    _accel.dumps(obj)
        except Exception as exc:    # pragma: no cover - reported below
            failures.append(repr(exc))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert failures == []


def test_docstrings():
    # _pickle.Pickler takes fix_imports and buffer_callback positionally.
    assert inspect.signature(CPickler) == inspect.signature(pickle.Pickler)
    for method in ("dump", "clear_memo", "persistent_id"):
        assert getattr(CPickler, method).__text_signature__.startswith(
            "($self")
        assert getattr(CPickler, method).__doc__
    assert _accel.dumps.__text_signature__ == \
        "(obj, protocol=None, *, fix_imports=True, buffer_callback=None)"
    assert _accel.dump.__text_signature__ == \
        "(obj, file, protocol=None, *, fix_imports=True, buffer_callback=None)"


def test_sizeof_counts_the_memo_and_buffer():
    """As _pickle's (test_pickle.SizeofTests, whose exact sizes are its own
    layout's): the object itself plus the memo table and output buffer."""
    pickler = CPickler(io.BytesIO(), 2)
    base = object.__sizeof__(pickler)
    assert base == type(pickler).__basicsize__
    assert sys.getsizeof(pickler) > pickler.__sizeof__() >= base
    empty = pickler.__sizeof__()
    values = [str(i) for i in range(2000)]
    pickler.dump(values)
    # every string is memoized: at least a pointer and an index each
    assert pickler.__sizeof__() >= empty + 2000 * 16
    pickler.clear_memo()
    assert pickler.__sizeof__() < empty + 2000 * 16
