"""Tests of the C accelerator's Unpickler, load and loads.

brinery._accel.Unpickler must behave exactly like the pure
brinery._unpickler.Unpickler (results, exception types, messages and the
"when unpickling OP at byte N" notes), read everything the standard
library writes, and stay within bounds on hostile input. These tests
compare the C implementation with the pure one and with the standard
library (the oracle) over a catalogue of pickles, malformed and truncated
input, Python 2 pickles (literal bytes written by Python 2.7, see
PY2_GENERATOR), files of every kind, subclass hooks, the memo, threads and
memory use. The module is skipped when the accelerator has no Unpickler.
"""

import copyreg
import collections
import datetime
import decimal
import fractions
import gc
import io
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import threading
import tracemalloc
import types
import weakref

import pytest

import brinery
from brinery import _unpickler as pure_module

try:
    from brinery import _accel
    _accel.Unpickler
except (ImportError, AttributeError):  # pragma: no cover - build without C
    pytest.skip("brinery._accel has no Unpickler", allow_module_level=True)

pytestmark = pytest.mark.c_extension

C_LOADS = _accel.loads
C_LOAD = _accel.load
CUnpickler = _accel.Unpickler
PURE_LOADS = brinery._loads
PURE_LOAD = brinery._load
PureUnpickler = brinery._Unpickler


# ------------------------------------------------------------------ helpers

def canonical(obj):
    """A comparable form of an unpickled object: its pickle written by the
    standard library (types, values, sharing and dict order all show)."""
    try:
        return ("pickle", pickle.dumps(obj, 4))
    except Exception:
        if isinstance(obj, memoryview):
            return ("memoryview", obj.readonly, obj.tobytes())
        return ("type", type(obj).__qualname__)


def outcome(func, *args, **kwargs):
    """What calling func did: its result in canonical form, or the type,
    message and notes of the exception it raised."""
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc), getattr(exc, "__notes__", []))
    return ("returned", canonical(result))


def same_as_pure(data, **kwargs):
    """C loads and pure loads of data do exactly the same thing."""
    expected = outcome(PURE_LOADS, data, **kwargs)
    got = outcome(C_LOADS, data, **kwargs)
    assert got == expected, data
    return got


class UnseekableFile(io.BytesIO):
    """A stream that cannot seek, like a pipe, and whose peek() refuses
    (NotImplementedError, as CPython's tests' UnseekableIO): read exactly.
    (test_accel_io has unseekable files whose peek() works.)"""

    def peek(self, *args):
        raise NotImplementedError

    def seekable(self):
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")

    def tell(self, *args):
        raise io.UnsupportedOperation("tell")


class MinimalFile:
    """Only read() and readline()."""

    def __init__(self, data):
        self._bio = io.BytesIO(data)
        self.read = self._bio.read
        self.readline = self._bio.readline

    def rest(self):
        return self._bio.read()


class CountingFile(io.BytesIO):
    """A seekable file counting its read calls."""

    def __init__(self, data):
        super().__init__(data)
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        return super().read(*args)

    def readinto(self, buf):
        self.reads += 1
        return super().readinto(buf)


# --------------------------------------------------------------- catalogue

class Plain:
    def __init__(self, a=1):
        self.a = a
        self.b = [a, str(a)]

    def __eq__(self, other):
        return type(other) is type(self) and other.__dict__ == self.__dict__


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self):
        self.x = 1
        self.y = "two"


class SlottedWithDict:
    __slots__ = ("x", "__dict__")

    def __init__(self):
        self.x = 1
        self.z = 3


class WithSetstate:
    def __init__(self):
        self.v = 3

    def __getstate__(self):
        return {"v": self.v * 2}

    def __setstate__(self, state):
        self.v = state["v"] // 2


class WithProperty:
    """BUILD writes state into __dict__, bypassing data descriptors."""

    def __init__(self):
        self.__dict__["p"] = 5

    @property
    def p(self):
        return "from the property"


class ReorderedState:
    def __reduce_ex__(self, proto):
        return (copyreg.__newobj__, (ReorderedState,),
                {"zeta": 1, "alpha": [2], "mid": "3"})


class PropertyAmongKeys:
    """A state whose middle key names a property: BUILD still writes all
    three into __dict__, in order."""

    @property
    def mid(self):
        return "property"

    def __reduce_ex__(self, proto):
        return (copyreg.__newobj__, (PropertyAmongKeys,),
                {"first": 1, "mid": 2, "last": 3})


class WithNew:
    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.args = (args, kwargs)
        return self

    def __getnewargs_ex__(self):
        return (1, 2), {"k": 3}


class DictSubclass(dict):
    pass


class ListSubclass(list):
    pass


class SetSubclass(set):
    pass


class IntSubclass(int):
    pass


class Py2Old:
    """Receives Python 2 old-style instances (INST and OBJ)."""


class Py2OldArgs:
    def __init__(self, a, b):
        self.a = a
        self.b = b


class Py2New:
    pass


def _catalogue():
    shared = [1, 2]
    recursive = []
    recursive.append(recursive)
    self_dict = {}
    self_dict["self"] = self_dict
    return [
        None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -2 ** 31,
        2 ** 31 - 1, 2 ** 31, 2 ** 63, -2 ** 63 - 1, 2 ** 1000, -2 ** 1000,
        0.0, -0.5, 1e300, float("inf"), float("-inf"), "", "a", "é",
        "\u20ac", "\U0001f600", "x" * 300, "\ud800", "a\udfffb",
        "mixed é € \U0001f600 text", b"", b"ab", b"x" * 300,
        bytearray(b"abc"), (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [],
        [1], list(range(2100)), {}, {"a": 1}, {i: str(i) for i in range(1100)},
        set(), {1, 2, 3}, frozenset(), frozenset({1, 2}), set(range(1100)),
        complex(1, 2), range(3), slice(1, 2, 3), collections.OrderedDict(a=1),
        collections.deque([1, 2]), collections.Counter("abca"),
        collections.defaultdict(list, {"k": [1]}),
        datetime.datetime(2020, 1, 2, 3, 4, 5), decimal.Decimal("1.5"),
        fractions.Fraction(1, 3), Plain(), Slotted(), SlottedWithDict(),
        WithSetstate(), WithProperty(), ReorderedState(), WithNew(),
        PropertyAmongKeys(),
        DictSubclass(a=1), ListSubclass([1, 2]), SetSubclass({3}),
        IntSubclass(7), [Plain(5), Plain(5)], len, pickle.Pickler,
        collections.OrderedDict.fromkeys, ValueError("x"), type(None),
        NotImplemented, Ellipsis, [shared, shared, (shared,)], recursive,
        self_dict, [[[[[["deep"]]]]]],
    ]


CATALOGUE = _catalogue()


def _pickles():
    """(label, bytes) for every catalogue object at every protocol, as
    written by the standard library's C and Python picklers and by
    brinery's pure pickler."""
    out = []
    for index, obj in enumerate(CATALOGUE):
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            for writer, dumps in (("stdlib", pickle.dumps),
                                  ("stdlib-py", _py_dumps),
                                  ("brinery", brinery._dumps)):
                try:
                    data = dumps(obj, proto)
                except Exception:
                    continue
                out.append((f"{writer}-p{proto}-{index}", data))
    return out


def _py_dumps(obj, proto):
    buf = io.BytesIO()
    pickle._Pickler(buf, proto).dump(obj)
    return buf.getvalue()


PICKLES = _pickles()


# ------------------------------------------------------- same results

@pytest.mark.parametrize("label,data", PICKLES, ids=[p[0] for p in PICKLES])
def test_catalogue_loads_like_pure_and_stdlib(label, data):
    got = same_as_pure(data)
    assert got == outcome(pickle.loads, data)


@pytest.mark.parametrize("kind", ["BytesIO", "unseekable", "minimal"])
def test_catalogue_load_from_files(kind):
    for label, data in PICKLES[::7]:
        expected = outcome(pickle.loads, data)
        if kind == "BytesIO":
            file = io.BytesIO(data + b"rest")
        elif kind == "unseekable":
            file = UnseekableFile(data + b"rest")
        else:
            file = MinimalFile(data + b"rest")
        assert outcome(C_LOAD, file) == expected, label
        rest = file.rest() if kind == "minimal" else file.read()
        assert rest == b"rest", label


def test_loads_accepts_bytes_likes():
    data = pickle.dumps({"a": [1, 2.5, "x"]}, 5)
    for wrapped in (bytearray(data), memoryview(data),
                    memoryview(bytearray(data)).toreadonly(),
                    memoryview(data.ljust(len(data) + 8, b"\0"))[:len(data)],
                    memoryview(data).cast("c")):
        assert C_LOADS(wrapped) == {"a": [1, 2.5, "x"]}
    import array
    arr = array.array("b", data)
    assert C_LOADS(arr) == {"a": [1, 2.5, "x"]}
    same_as_pure(memoryview(data * 2)[::2])   # not contiguous: same error
    same_as_pure(12)
    same_as_pure("str")     # as _pickle: no bytes-like object


def test_results_share_and_recurse_like_the_original():
    shared = [1]
    value = C_LOADS(pickle.dumps([shared, shared, {"k": shared}], 2))
    assert value[0] is value[1] is value[2]["k"]
    rec = []
    rec.append(rec)
    loaded = C_LOADS(pickle.dumps(rec, 0))
    assert loaded[0] is loaded


def test_instances_get_the_same_dict_and_interned_keys():
    for obj in (Plain(3), ReorderedState(), WithProperty(), SlottedWithDict(),
                PropertyAmongKeys()):
        for proto in range(2 if isinstance(obj, SlottedWithDict) else 0, 6):
            data = pickle.dumps(obj, proto)
            pure = PURE_LOADS(data)
            got = C_LOADS(data)
            assert list(got.__dict__.items()) == list(pure.__dict__.items())
            assert all(sys.intern(key) is key for key in got.__dict__)
    got = C_LOADS(pickle.dumps(WithProperty(), 2))
    assert got.__dict__ == {"p": 5} and got.p == "from the property"


def test_text_of_every_length_and_width():
    """Strings around the 8-byte steps of the ASCII copy, with a wide
    character at every position, in every opcode that carries text."""
    for length in range(0, 41):
        for wide in [None] + list(range(length)):
            for char in ("\xe9", "\u20ac", "\U0001f600", "\udc80"):
                text = ["a"] * length
                if wide is not None:
                    text[wide] = char
                text = "".join(text)
                encoded = text.encode("utf-8", "surrogatepass")
                for data in (b"\x8c" + bytes([len(encoded)]) + encoded + b".",
                             b"X" + struct.pack("<I", len(encoded)) + encoded
                             + b"."):
                    assert C_LOADS(data) == text
                if wide is None and length:
                    for bad in (b"\x80", b"\xc3", b"\xed\xa0", b"\xff"):
                        broken = encoded[:-1] + bad
                        same_as_pure(b"\x8c" + bytes([len(broken)]) + broken
                                     + b".")


def test_deep_nesting_without_recursion():
    depth = 200_000
    data = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    value = C_LOADS(data)
    for _ in range(depth - 1):
        (value,) = value
    assert value == []
    data = b"(" * depth + b"t" * depth + b"."
    value = C_LOADS(data)
    for _ in range(depth - 1):
        (value,) = value
    assert value == ()


def test_batched_containers_of_every_size():
    for n in (0, 1, 999, 1000, 1001, 2000, 2001):
        for obj in (list(range(n)), {i: -i for i in range(n)},
                    set(range(n)), frozenset(range(n)),
                    ListSubclass(range(n)), DictSubclass.fromkeys(range(n))):
            for proto in range(6):
                data = pickle.dumps(obj, proto)
                assert canonical(C_LOADS(data)) == canonical(obj)


def test_appends_and_setitems_on_other_types():
    class Extendable:
        def __init__(self):
            self.items = []

        def extend(self, items):
            self.items.append(("extend", list(items)))

    class Appendable:
        def __init__(self):
            self.items = []

        def append(self, item):
            self.items.append(("append", item))

    # The targets come from a module, through GLOBAL and REDUCE.
    module = types.ModuleType("brinery_test_targets")
    sys.modules["brinery_test_targets"] = module
    try:
        made = []

        def make(kind):
            obj = {"e": Extendable, "a": Appendable}[kind]()
            made.append(obj)
            return obj
        module.make = make
        for kind, expected in (("e", [("extend", [1]), ("extend", [2, 3])]),
                               ("a", [("append", 1), ("append", 2),
                                      ("append", 3)])):
            data = (b"cbrinery_test_targets\nmake\n(V" + kind.encode()
                    + b"\ntRK\x01a(K\x02K\x03e.")
            for loads in (PURE_LOADS, C_LOADS):
                made.clear()
                loads(data)
                assert made[-1].items == expected
            same_as_pure(data)
        # SETITEMS through __setitem__, ADDITEMS through add().
        module.make_dict = lambda: collections.OrderedDict()
        data = b"cbrinery_test_targets\nmake_dict\n)R(K\x01K\x02K\x03K\x04u."
        assert C_LOADS(data) == collections.OrderedDict([(1, 2), (3, 4)])
        same_as_pure(data)
        data = b"cbrinery_test_targets\nmake_dict\n)R(K\x01u."
        same_as_pure(data)   # odd number of items
        same_as_pure(b"\x80\x04(\x91(K\x01\x90.")   # frozenset has no add
    finally:
        del sys.modules["brinery_test_targets"]


# ------------------------------------------------------ malformed input

# CPython's lists (test.pickletester): every one must raise the same as
# the pure implementation, which raises UnpicklingError for all of them.
BAD_STACK = [
    b".", b"0", b"1", b"2", b"(2", b"R", b")R", b"a", b"Na", b"b", b"Nb",
    b"d", b"e", b"(e", b"ibuiltins\nlist\n", b"l", b"o", b"(o", b"p1\n",
    b"q\x00", b"r\x00\x00\x00\x00", b"s", b"Ns", b"NNs", b"t", b"u", b"(u",
    b"}(Nu", b"\x81", b")\x81", b"\x85", b"\x86", b"N\x86", b"\x87",
    b"N\x87", b"NN\x87", b"\x90", b"(\x90", b"\x91", b"\x92", b")}\x92",
    b"\x93", b"Vlist\n\x93", b"\x94",
]
BAD_MARK = [
    b"N(.", b"N(2", b"cbuiltins\nlist\n)(R", b"cbuiltins\nlist\n()R",
    b"]N(a", b"cbuiltins\nValueError\n)R}(b",
    b"cbuiltins\nValueError\n)R(}b", b"(Nd", b"N(p1\n", b"N(q\x00",
    b"N(r\x00\x00\x00\x00", b"}NN(s", b"}N(Ns", b"}(NNs", b"}((u",
    b"cbuiltins\nlist\n)(\x81", b"cbuiltins\nlist\n()\x81", b"N(\x85",
    b"NN(\x86", b"N(N\x86", b"NNN(\x87", b"NN(N\x87", b"N(NN\x87",
    b"]((\x90", b"cbuiltins\nlist\n)}(\x92", b"cbuiltins\nlist\n)(}\x92",
    b"cbuiltins\nlist\n()}\x92", b"Vbuiltins\n(Vlist\n\x93",
    b"Vbuiltins\nVlist\n(\x93", b"N(\x94",
]
OTHER_BAD = [
    b"", b"N", b"\x80\x06N.", b"\x80\xffN.", b"\xff", b"\x00", b"'", b"\\",
    b"I12x\n.", b"I\n.", b"I 1\n.", b"I0x1F\n.", b"I-0x10\n.", b"I077\n.",
    b"I08\n.", b"I1_000\n.", b"I9223372036854775807\n.",
    b"I9223372036854775808\n.", b"I-9223372036854775808\n.",
    b"I-9223372036854775809\n.", b"I99999999999999999999999\n.",
    b"I00\n.", b"I01\n.", b"I02\n.", b"I1\x002\n.", b"I\x00\n.",
    b"L12L\n.", b"L12\n.", b"L\n.", b"L0x10L\n.", b"Labc\n.", b"L1 2\n.",
    b"F1.5\n.", b"F1e999\n.", b"F-inf\n.", b"Fnan\n.", b"Finfinity\n.",
    b"Finfinit\n.", b"F1e\n.", b"F.5\n.", b"F5.\n.", b"F 1\n.", b"Fx\n.",
    b"F1.5x\n.", b"F\xff\n.", b"F1.5\x00junk\n.", b"F+1.5e+3\n.",
    b"S'abc'\n.", b'S"abc"\n.', b"S'a\\x41\\n'\n.", b"S'\\'\n.",
    b"S'abc\"\n.", b"S'\n.", b"S\n.", b"S.", b"S'\\q'\n.",
    b"Vabc\n.", b"V\\u20ac\n.", b"V\\u20\n.", b"V\xff\n.",
    b"g0\n.", b"g-1\n.", b"gx\n.", b"g99999999999999999999999\n.",
    b"Np-1\n.", b"Np99999999999999999999999\n0.", b"Np 5\ng5\n.",
    b"Np5 \ng5\n.", b"Np1_0\ng10\n.", b"Nh\x00.", b"Nj\x00\x00\x00\x00.",
    b"Nq\x05h\x05.", b"Nr\xff\xff\xff\x0fj\xff\xff\xff\x0f.",
    b"c\nlen\n.", b"cbuiltins\n\n.", b"cbuiltins\nnope\n.",
    b"cno_such_module_xq\nx\n.", b"c\xff\nx\n.", b"cbuiltins\nlen.x\n.",
    b"\x80\x04cbuiltins\nlen.__name__\n.", b"\x80\x04cbuiltins\n<locals>\n.",
    b"\x80\x04\x8c\x08builtins\x8c\x03len\x93.", b"\x80\x04K\x01K\x02\x93.",
    b"\x80\x04\x8c\x08builtins\x8c\x0blen.__doc__\x93.",
    b"(ibuiltins\nlen\n.", b"(i\xff\nx\n.", b"(Vx\nibuiltins\nlist\n.",
    b"(cbuiltins\nlist\no.", b"(K\x01o.", b"(cbuiltins\nlist\nK\x01o.",
    b"N)R.", b"cbuiltins\nint\nNR.", b"cbuiltins\nlen\n)R.",
    b"cbuiltins\nint\n)\x81.", b"cbuiltins\nlen\n)\x81.",
    b"cbuiltins\nint\nN\x81.", b"N)\x81.", b"cbuiltins\nint\n)}\x92.",
    b"cbuiltins\nlen\n)}\x92.", b"cbuiltins\nint\nN}\x92.",
    b"cbuiltins\nint\n)N\x92.", b"N)}\x92.",
    b"cbuiltins\nint\n)}\x8c\x01xK\x01s\x92.",
    b"cbuiltins\nobject\n)\x81N}b.", b"cbuiltins\nobject\n)\x81K\x01b.",
    b"cbuiltins\nobject\n)\x81}K\x01K\x02sb.",
    b"cbuiltins\nobject\n)\x81N}\x86b.", b"cbuiltins\nobject\n)\x81NK\x01\x86b.",
    b"cbuiltins\nValueError\n)R}V__dict__\nK\x01sb.",
    b"]K\x01\x94(\x94t.", b"(d.", b"(K\x01d.", b"(K\x01K\x02d.",
    b"(K\x01\x91.", b"(]\x91.", b"(K\x01l.", b"(K\x01t.",
    b"\x82\x00.", b"\x82\xff.", b"\x83\x00\x00.", b"\x84\xff\xff\xff\xff.",
    b"\x84\x00\x00\x00\x80.", b"\x83\xfe\xff.",
    b"Pabc\n.", b"P\xff\n.", b"NQ.", b"Q.",
    b"\x97.", b"\x98.", b"N\x98.", b"C\x03abc\x98.",
    b"\x95\x00\x00\x00\x00\x00\x00\x00\x80N.",
    b"\x95\xff\xff\xff\xff\xff\xff\xff\xffN.",
    b"\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
    b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff.",
    b"\x8e\x00\x00\x00\x00\x00\x01\x00\x00.",
    b"\x96\xff\xff\xff\xff\xff\xff\xff\xff.",
    b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff.",
    b"\x8d\x00\x00\x00\x00\x00\x01\x00\x00.",
    b"B\xff\xff\xff\xffab.", b"T\xff\xff\xff\xffab.", b"X\xff\xff\xff\xff.",
    b"\x8b\xff\xff\xff\xff.", b"\x8b\x00\x00\x00\x80.",
    b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xff.", b"\x8a\x00.",
    b"X\x02\x00\x00\x00\xc3\x28.", b"\x8c\x01\x80.", b"\x8c\x03\xed\xa0\x80.",
    b"U\x03\xff\xfe\xfd.", b"T\x01\x00\x00\x00\x80.",
    b"\x88\x89N\x29\x85\x86\x87.",
]


@pytest.mark.filterwarnings("ignore:invalid escape sequence")
@pytest.mark.parametrize("data", BAD_STACK + BAD_MARK + OTHER_BAD)
def test_malformed_input_raises_like_pure(data):
    got = same_as_pure(data)
    if data in BAD_STACK or data in BAD_MARK:
        assert got[0] == "raised" and issubclass(got[1],
                                                 brinery.UnpicklingError)


@pytest.mark.parametrize("encoding,errors", [
    ("ASCII", "strict"), ("latin1", "strict"), ("bytes", "strict"),
    ("utf-8", "replace"), ("ascii", "surrogateescape"), ("koi8_r", "strict"),
    ("no-such-codec", "strict"), ("ascii", "no-such-handler"),
    ("a\0b", "strict"),
])
def test_python2_strings_with_encodings(encoding, errors):
    for data in (b"S'a\\x00\\xa0'\n.", b"U\x03a\x00\xa0.",
                 b"\x80\x02U\x03a\x00\xa0.", b"T\x03\x00\x00\x00abc.",
                 b"S'plain'\n.", b"\x80\x02X\x02\x00\x00\x00\xcf\x80."):
        same_as_pure(data, encoding=encoding, errors=errors)


def test_every_opcode_byte_at_start_and_after_proto():
    for code in range(256):
        for prefix in (b"", b"\x80\x05", b"N(", b"NN"):
            same_as_pure(prefix + bytes([code]))
            same_as_pure(prefix + bytes([code]) + b"\x00" * 9 + b".")


def test_truncated_at_every_offset():
    for label, data in PICKLES[::3]:
        if len(data) > 400:
            data = data[:200] + data[-200:]
        for end in range(len(data)):
            same_as_pure(data[:end])


def test_truncated_files_raise_like_loads():
    """A truncated file raises what loads raises on the same bytes (the
    same type, message and position note)."""
    for label, data in PICKLES[::11]:
        for end in range(0, len(data), max(1, len(data) // 40)):
            expected = outcome(PURE_LOADS, data[:end])
            for file in (io.BytesIO(data[:end]), UnseekableFile(data[:end]),
                         MinimalFile(data[:end])):
                assert outcome(C_LOAD, file) == expected, (label, end)


def test_random_mutations_raise_like_pure():
    """Mutated pickles: the C and pure implementations agree on every one.
    Only harmless globals may be imported (an audit hook blocks the rest
    while this test runs)."""
    rng = random.Random(20240517)
    corpus = [data for _, data in PICKLES if len(data) < 1500]
    _GUARD.active = True
    try:
        for _ in range(4000):
            data = bytearray(rng.choice(corpus))
            for _ in range(rng.randint(1, 4)):
                if not data:
                    break
                i = rng.randrange(len(data))
                roll = rng.random()
                if roll < 0.5:
                    data[i] = rng.randrange(256)
                elif roll < 0.7:
                    del data[i]
                elif roll < 0.9:
                    data.insert(i, rng.randrange(256))
                else:
                    data[i:i] = data[rng.randrange(len(data)):][:8]
            same_as_pure(bytes(data))
    finally:
        _GUARD.active = False


class _ImportGuard:
    """An audit hook (hooks cannot be removed, so it is inert unless
    active) refusing find_class outside an allow-list."""

    ALLOWED_MODULES = {"builtins", "__builtin__", "collections", "datetime",
                       "decimal", "fractions", "copyreg", "copy_reg",
                       "_codecs", "test_accel_unpickler"}
    ALLOWED_NAMES = {
        "set", "frozenset", "bytearray", "complex", "range", "slice",
        "object", "list", "dict", "tuple", "int", "str", "float", "bytes",
        "len", "ValueError", "NoneType", "NotImplemented", "Ellipsis",
        "getattr", "type", "OrderedDict", "deque", "Counter", "defaultdict",
        "datetime", "Decimal", "Fraction", "_reconstructor", "__newobj__",
        "__newobj_ex__", "encode", "xrange", "reduce",
    }

    def __init__(self):
        self.active = False

    def __call__(self, event, args):
        if self.active and event == "pickle.find_class":
            module, name = args
            if (module not in self.ALLOWED_MODULES
                    or name.split(".")[0] not in self.ALLOWED_NAMES):
                raise RuntimeError(f"blocked {module}.{name}")


_GUARD = _ImportGuard()
_GUARD.ALLOWED_NAMES |= {name for name, value in list(globals().items())
                         if isinstance(value, type)}
sys.addaudithook(_GUARD)


def test_errors_in_callbacks_get_the_position_note():
    module = types.ModuleType("brinery_test_raising")
    sys.modules["brinery_test_raising"] = module

    def boom(*args):
        raise KeyError("boom")
    module.boom = boom
    try:
        data = b"\x80\x02K\x01cbrinery_test_raising\nboom\n)R."
        got = same_as_pure(data)
        assert got[1] is KeyError
        assert got[3] == ["when unpickling REDUCE at byte 32"]
    finally:
        del sys.modules["brinery_test_raising"]
    # BaseException subclasses other than Exception pass untouched.
    module = types.ModuleType("brinery_test_exit")
    sys.modules["brinery_test_exit"] = module

    def leave():
        raise SystemExit(3)
    module.leave = leave
    try:
        with pytest.raises(SystemExit) as info:
            C_LOADS(b"cbrinery_test_exit\nleave\n)R.")
        assert not getattr(info.value, "__notes__", None)
    finally:
        del sys.modules["brinery_test_exit"]


# ------------------------------------------------- bounded resources

HUGE_CLAIMS = [
    b"\x80\x05\x8e" + struct.pack("<Q", 1 << 40) + b"abc.",
    b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"abc.",
    b"\x80\x05\x8d" + struct.pack("<Q", 1 << 40) + b"abc.",
    b"\x80\x05\x95" + struct.pack("<Q", 1 << 40) + b"N.",
    b"\x80\x03B" + struct.pack("<I", 0xFFFFFFF0) + b"abc.",
    b"\x80\x03X" + struct.pack("<I", 0xFFFFFFF0) + b"abc.",
    b"\x80\x02T" + struct.pack("<I", 0xFFFFFFF0) + b"abc.",
    b"\x80\x02\x8b" + struct.pack("<i", 0x7FFFFFF0) + b"abc.",
    b"\x80\x02Nr\xff\xff\xff\x0f.",
    b"\x80\x02Nr\xff\xff\xff\x0fj\xff\xff\xff\x0f.",
    b"Np268435455\ng268435455\n.",
    b"Np99999999999999\ng99999999999999\n.",
]


def _peak_bytes(func):
    """Peak memory allocated while func runs (its result dropped)."""
    gc.collect()
    tracemalloc.start()
    try:
        try:
            func()
        except Exception:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("data", HUGE_CLAIMS)
def test_declared_lengths_are_not_trusted(data):
    same_as_pure(data)
    limit = 2 << 20
    assert _peak_bytes(lambda: C_LOADS(data)) < limit
    for make in (io.BytesIO, UnseekableFile, MinimalFile):
        assert _peak_bytes(lambda: C_LOAD(make(data))) < limit
        assert (outcome(C_LOAD, make(data))[:3]
                == outcome(PURE_LOADS, data)[:3])


def test_sparse_memo_indices_stay_small():
    indices = [0, 5, 4095, 4096, 1 << 20, (1 << 32) - 1, 77, 3]
    data = b"\x80\x02" + b"".join(
        b"K" + bytes([i]) + b"r" + struct.pack("<I", index) + b"0"
        for i, index in enumerate(indices))
    data += b"(" + b"".join(b"j" + struct.pack("<I", index)
                            for index in indices) + b"l."
    assert C_LOADS(data) == list(range(len(indices)))
    same_as_pure(data)
    assert _peak_bytes(lambda: C_LOADS(data)) < 1 << 20
    unpickler = CUnpickler(io.BytesIO(data))
    unpickler.load()
    assert unpickler.memo == {index: i for i, index in enumerate(indices)}


# ---------------------------------------------------------------- files

def _several(proto):
    items = [[(x, str(x)) for x in range(300)], b"abcde", len, "é" * 70000,
             {"k": list(range(2000))}, None]
    return items, b"".join(pickle.dumps(item, proto) for item in items)


@pytest.mark.parametrize("proto", range(6))
def test_several_pickles_from_one_seekable_file(proto, tmp_path):
    items, data = _several(proto)
    path = tmp_path / "several.pkl"
    path.write_bytes(data + b"tail")
    offsets = []
    position = 0
    for item in items:
        position += len(pickle.dumps(item, proto))
        offsets.append(position)
    for opener in (lambda: io.BytesIO(data + b"tail"),
                   lambda: open(path, "rb"),
                   lambda: open(path, "rb", buffering=0),
                   lambda: io.BufferedReader(io.BytesIO(data + b"tail"), 7)):
        with opener() as file:
            unpickler = CUnpickler(file)
            for item, offset in zip(items, offsets):
                assert canonical(unpickler.load()) == canonical(item)
                assert file.tell() == offset
            assert file.read() == b"tail"
        with opener() as file:
            for item, offset in zip(items, offsets):
                assert canonical(C_LOAD(file)) == canonical(item)
                assert file.tell() == offset
            with pytest.raises(brinery.UnpicklingError):
                C_LOAD(file)     # "tail" is no pickle


@pytest.mark.parametrize("proto", range(6))
@pytest.mark.parametrize("make", [UnseekableFile, MinimalFile])
def test_several_pickles_from_unseekable_files(proto, make):
    items, data = _several(proto)
    file = make(data + b"tail")
    unpickler = CUnpickler(file)
    for item in items:
        assert canonical(unpickler.load()) == canonical(item)
    rest = file.rest() if make is MinimalFile else file.read()
    assert rest == b"tail"
    file = make(data)
    for item in items:
        assert canonical(C_LOAD(file)) == canonical(item)
    with pytest.raises(EOFError, match="Ran out of input"):
        C_LOAD(file)


def test_unseekable_files_are_read_exactly_frame_by_frame():
    data = pickle.dumps([list(range(100)), "x" * 100000], 4)
    reads = []

    class Recording(UnseekableFile):
        def read(self, n=-1):
            chunk = super().read(n)
            reads.append((n, len(chunk)))
            return chunk

        def readinto(self, buf):
            got = super().readinto(buf)
            reads.append((len(buf), got))
            return got

    assert C_LOAD(Recording(data + b"more")) == [list(range(100)),
                                                 "x" * 100000]
    assert all(n == got for n, got in reads)          # never past the end
    assert sum(got for _, got in reads) == len(data)
    assert len(reads) < 30                            # frames, not opcodes


def test_seekable_files_are_read_in_chunks():
    data = pickle.dumps([str(i) for i in range(20000)], 2)
    file = CountingFile(data)
    C_LOAD(file)
    assert file.reads <= len(data) // (64 * 1024) + 2
    assert file.tell() == len(data)


def test_readinto_is_used_when_present_and_read_otherwise():
    data = pickle.dumps(list(range(1000)), 1)
    calls = []

    class WithReadinto(io.BytesIO):
        def read(self, *args):
            calls.append("read")
            return super().read(*args)

        def readinto(self, buf):
            calls.append("readinto")
            return super().readinto(buf)

    assert C_LOAD(WithReadinto(data)) == list(range(1000))
    assert calls and set(calls) == {"readinto"}
    assert C_LOAD(MinimalFile(data)) == list(range(1000))


def test_file_attributes_are_looked_up_in_cpython_order():
    looked_up = []

    class Spy:
        def __getattr__(self, name):
            looked_up.append(name)
            raise AttributeError(name)

    with pytest.raises(TypeError,
                       match="file must have 'read' and 'readline'"):
        CUnpickler(Spy())
    assert looked_up == ["peek", "readinto", "read", "readline"]

    class BadRead:
        readline = None

        @property
        def read(self):
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        CUnpickler(BadRead())
    for cls in (type("OnlyRead", (), {"read": lambda self, n: b""}),
                type("OnlyReadline", (), {"readline": lambda self: b""})):
        with pytest.raises(TypeError):
            CUnpickler(cls())
        with pytest.raises(TypeError):
            C_LOAD(cls())


def test_text_opcodes_from_files_of_every_kind():
    for data in (pickle.dumps([1, -2, 3.5, "é", b"x", None, (1,)] * 50, 0),
                 b"I42\n.", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00"
                 b"I42\n.", b"(lp0\nI1\naI2\na.", b"S'ab'\np0\n.",
                 b"ccollections\nOrderedDict\np0\n(tRp1\n."):
        expected = outcome(pickle.loads, data)
        for size in (1, 2, 3, 5, 8, 64):
            file = io.BufferedReader(io.BytesIO(data), size)
            assert outcome(C_LOAD, file) == expected
        assert outcome(C_LOAD, UnseekableFile(data)) == expected
        assert outcome(C_LOAD, MinimalFile(data)) == expected


def test_file_read_errors_propagate():
    class Failing(io.BytesIO):
        def readinto(self, buf):
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        C_LOAD(Failing(b"N."))

    class NonBytes(UnseekableFile):
        def read(self, n=-1):
            return "text"

    with pytest.raises(TypeError):
        C_LOAD(NonBytes(b"N."))

    class Liar(io.BytesIO):
        def readinto(self, buf):
            return len(buf) + 10

    with pytest.raises(ValueError):
        C_LOAD(Liar(b"N."))


def test_large_payloads_cost_at_most_one_extra_copy(tmp_path):
    size = 24 << 20
    payload = b"\xab" * size
    for obj in (payload, bytearray(payload)):
        data = pickle.dumps(obj, 5)
        peak = _peak_bytes(lambda: C_LOADS(data))
        assert peak < size * 1.1 + (1 << 20)          # the result only
        path = tmp_path / "big.pkl"
        path.write_bytes(data)
        for opener in (lambda: open(path, "rb"),
                       lambda: UnseekableFile(data)):
            with opener() as file:
                peak = _peak_bytes(lambda: C_LOAD(file))
            assert peak < size * 2.2 + (1 << 20)      # result + one copy
        with open(path, "rb") as file:
            assert C_LOAD(file) == obj
    text = "\u20ac" * (size // 3)
    data = pickle.dumps(text, 5)
    assert C_LOADS(data) == text


# ------------------------------------------------------ API and hooks

def test_signatures_and_docstrings():
    import inspect
    for func in (C_LOAD, C_LOADS, CUnpickler.load, CUnpickler.find_class,
                 CUnpickler.persistent_load):
        assert func.__doc__
        inspect.signature(func)
    assert str(inspect.signature(C_LOADS)).startswith("(data, /, *,")
    assert str(inspect.signature(C_LOAD)).startswith("(file, *,")
    assert CUnpickler.__doc__
    assert CUnpickler.memo.__doc__


@pytest.mark.parametrize("call", [
    lambda: C_LOADS(),
    lambda: C_LOADS(b"N.", b"N."),
    lambda: C_LOADS(data=b"N."),
    lambda: C_LOADS(b"N.", nope=1),
    lambda: C_LOADS(b"N.", encoding=1),
    lambda: C_LOADS(b"N.", errors=b"strict"),
    lambda: C_LOADS(b"N.", buffers=1),
    lambda: C_LOAD(),
    lambda: C_LOAD(io.BytesIO(b"N."), file=io.BytesIO()),
    lambda: C_LOAD(io.BytesIO(b"N."), encoding=None),
    lambda: CUnpickler(),
    lambda: CUnpickler(io.BytesIO(), encoding=3),
    lambda: CUnpickler(io.BytesIO(), errors=3),
    lambda: CUnpickler(io.BytesIO(), buffers=3),
    lambda: CUnpickler(io.BytesIO(), 1),
])
def test_bad_arguments_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


def test_options_are_applied():
    data = b"\x80\x02c__builtin__\nset\n]K\x01a\x85R."
    assert C_LOADS(data) == {1}
    with pytest.raises(ModuleNotFoundError):
        C_LOADS(data, fix_imports=False)
    with pytest.raises(ModuleNotFoundError):
        C_LOAD(io.BytesIO(data), fix_imports=0)
    assert C_LOADS(b"U\x02\xe9a.", encoding="latin1") == "éa"
    assert C_LOADS(b"U\x02\xe9a.", encoding="bytes") == b"\xe9a"
    assert C_LOADS(b"U\x02\xe9a.", errors="replace") == "\ufffda"
    buffers = [b"first", bytearray(b"second")]
    data = pickle.dumps([pickle.PickleBuffer(b"first"),
                         pickle.PickleBuffer(bytearray(b"second"))], 5,
                        buffer_callback=lambda b: False)
    assert C_LOADS(data, buffers=buffers) == buffers
    assert C_LOADS(data, buffers=iter(buffers)) == buffers
    same_as_pure(data)
    same_as_pure(data, buffers=buffers[:1])
    same_as_pure(data, buffers=None)


def test_readonly_buffers():
    data = pickle.dumps(pickle.PickleBuffer(b"ro"), 5,
                        buffer_callback=lambda b: False)
    writable = bytearray(b"rw")
    view = C_LOADS(data, buffers=[writable])
    assert isinstance(view, memoryview) and view.readonly
    assert C_LOADS(data, buffers=[b"ro"]) == b"ro"
    same_as_pure(data, buffers=[writable])
    same_as_pure(data, buffers=[1])


class RestrictedUnpickler(CUnpickler):
    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in ("set", "list"):
            return super().find_class(module, name)
        raise brinery.UnpicklingError(f"global {module}.{name} is forbidden")


def test_find_class_override():
    ok = pickle.dumps([{1, 2}], 2)
    assert RestrictedUnpickler(io.BytesIO(ok)).load() == [{1, 2}]
    bad = pickle.dumps(len, 2)
    with pytest.raises(brinery.UnpicklingError,
                       match="global __builtin__.len is forbidden") as info:
        RestrictedUnpickler(io.BytesIO(bad)).load()
    assert info.value.__notes__ == ["when unpickling GLOBAL at byte 2"]
    for proto in range(6):
        data = pickle.dumps(collections.OrderedDict(), proto)
        with pytest.raises(brinery.UnpicklingError, match="forbidden"):
            RestrictedUnpickler(io.BytesIO(data)).load()


def test_find_class_override_sees_ext_codes_and_inst():
    seen = []

    class Recording(CUnpickler):
        def find_class(self, module, name):
            seen.append((module, name))
            return super().find_class(module, name)

    code = 0x7FFFFF01
    copyreg.add_extension("collections", "OrderedDict", code)
    try:
        data = b"\x84" + struct.pack("<i", code) + b")R."
        copyreg.clear_extension_cache()
        assert Recording(io.BytesIO(data)).load() == collections.OrderedDict()
        assert seen == [("collections", "OrderedDict")]
        seen.clear()
        assert Recording(io.BytesIO(data)).load() == collections.OrderedDict()
        assert seen == []             # cached by copyreg
        same_as_pure(data)
    finally:
        copyreg.remove_extension("collections", "OrderedDict", code)
        copyreg.clear_extension_cache()
    same_as_pure(b"\x84" + struct.pack("<i", code) + b".")
    seen.clear()
    Recording(io.BytesIO(b"(ibuiltins\nlist\n.")).load()
    assert seen == [("builtins", "list")]


def test_find_class_default_behaviour():
    unpickler = CUnpickler(io.BytesIO())
    assert unpickler.find_class("builtins", "len") is len
    assert unpickler.find_class("__builtin__", "xrange") is range   # proto 0
    with pytest.raises(AttributeError, match="Can't get attribute"):
        unpickler.find_class("collections", "OrderedDict.fromkeys")
    unpickler = CUnpickler(io.BytesIO(pickle.dumps(None, 4)))
    unpickler.load()                  # protocol 4: dotted names
    assert (unpickler.find_class("collections", "OrderedDict.fromkeys")
            == collections.OrderedDict.fromkeys)
    with pytest.raises(ModuleNotFoundError):
        unpickler.find_class("__builtin__", "xrange")   # no mapping at 4
    pure = PureUnpickler(io.BytesIO(pickle.dumps(None, 4)))
    pure.load()
    for args in ((1, "x"), ("builtins", 2), ("builtins", "<locals>"),
                 ("builtins", "len.<locals>.x"), ("builtins", "len.nope")):
        assert (outcome(unpickler.find_class, *args)
                == outcome(pure.find_class, *args))
    with pytest.raises(TypeError):
        unpickler.find_class("builtins")


# find_class's cache: tests/test_find_class.py (every implementation).


def test_persistent_load_hooks():
    data = b"\x80\x02(X\x03\x00\x00\x00pidQPabc\nl."
    with pytest.raises(brinery.UnpicklingError,
                       match="no persistent_load function"):
        C_LOADS(data)
    # The default method's message: pickle._Unpickler's before 3.13, then
    # _pickle's (the "no persistent_load" one), see brinery._versions.
    default_message = ("no persistent_load function"
                       if sys.version_info >= (3, 13) else
                       "unsupported persistent id encountered")
    with pytest.raises(brinery.UnpicklingError, match=default_message):
        CUnpickler(io.BytesIO()).persistent_load("x")

    class Method(CUnpickler):
        def persistent_load(self, pid):
            return ("method", pid)

    class Static(CUnpickler):
        @staticmethod
        def persistent_load(pid):
            return ("static", pid)

    class Class(CUnpickler):
        @classmethod
        def persistent_load(cls, pid):
            return ("class", pid)

    class Super(CUnpickler):
        def persistent_load(self, pid):
            if pid == "pid":
                return "known"
            return super().persistent_load(pid)

    for cls, tag in ((Method, "method"), (Static, "static"), (Class, "class")):
        assert cls(io.BytesIO(data)).load() == [(tag, "pid"), (tag, "abc")]
    with pytest.raises(brinery.UnpicklingError, match=default_message):
        Super(io.BytesIO(data)).load()
    unpickler = CUnpickler(io.BytesIO(data))
    unpickler.persistent_load = lambda pid: pid.upper()
    assert unpickler.load() == ["PID", "ABC"]

    class Nothing(CUnpickler):
        persistent_load = None

    with pytest.raises(brinery.UnpicklingError, match="no persistent_load"):
        Nothing(io.BytesIO(data)).load()
    with pytest.raises(brinery.UnpicklingError, match="must be ASCII"):
        Method(io.BytesIO(b"P\xe9\n.")).load()


def test_no_reference_cycle_after_load():
    class Pers(CUnpickler):
        def persistent_load(self, pid):
            return pid

        def find_class(self, module, name):
            return super().find_class(module, name)

    for proto in range(6):
        unpickler = Pers(io.BytesIO(pickle.dumps([len, "abc"], proto)))
        assert unpickler.load() == [len, "abc"]
        ref = weakref.ref(unpickler)
        del unpickler
        assert ref() is None


def test_init_not_called():
    class Lazy(CUnpickler):
        def __init__(self):
            pass

    with pytest.raises(brinery.UnpicklingError,
                       match=r"Unpickler.__init__\(\) was not called by "
                             r"Lazy.__init__\(\)"):
        Lazy().load()
    assert Lazy().memo == {}


def test_reinit_and_reuse():
    unpickler = CUnpickler(io.BytesIO(pickle.dumps(["a", "a"], 2)))
    first = unpickler.load()
    assert unpickler.memo
    unpickler.__init__(io.BytesIO(pickle.dumps(1, 2)))
    assert unpickler.memo == {}
    assert unpickler.load() == 1
    with pytest.raises(EOFError):
        unpickler.load()
    assert first == ["a", "a"]


def test_load_while_loading_is_refused():
    module = types.ModuleType("brinery_test_reenter")
    sys.modules["brinery_test_reenter"] = module
    try:
        holder = {}

        def reenter():
            return holder["unpickler"].load()
        module.reenter = reenter
        unpickler = CUnpickler(io.BytesIO(
            b"cbrinery_test_reenter\nreenter\n)R."))
        holder["unpickler"] = unpickler
        with pytest.raises(RuntimeError):
            unpickler.load()
    finally:
        del sys.modules["brinery_test_reenter"]


# ------------------------------------------------------------------ memo

def test_memo_get_and_set():
    data = pickle.dumps(["abcdefg", "abcdefg", 44], 2)
    unpickler = CUnpickler(io.BytesIO(data))
    first = unpickler.load()
    memo = unpickler.memo
    assert isinstance(memo, dict) and set(memo) == {0, 1}
    assert memo[1] is first[0] and memo[0] is first
    memo.clear()                                  # a copy
    assert len(unpickler.memo) == 2
    primed_data = b"\x80\x02h\x01."               # BINGET 1
    primed = CUnpickler(io.BytesIO(primed_data))
    primed.memo = unpickler.memo
    assert primed.load() is first[0]
    with pytest.raises(TypeError):
        primed.memo = object
    with pytest.raises(TypeError):
        primed.memo = {"a": 1}
    with pytest.raises(ValueError):
        primed.memo = {-1: None}
    with pytest.raises(TypeError):
        del primed.memo
    primed.memo = {1: None, 10 ** 30: "big", True: "one?"}
    assert primed.memo == {1: "one?", 10 ** 30: "big"}
    primed.memo = {}
    assert primed.memo == {}


def test_memo_persists_and_stack_resets_between_loads():
    shared = ["shared"]
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, 2)
    pickler.dump(shared)
    pickler.dump(shared)                          # a BINGET into the memo
    buf.write(b"(.")                              # a bare MARK, then STOP
    buf.write(pickle.dumps(7, 2))
    buf.seek(0)
    unpickler = CUnpickler(buf)
    first = unpickler.load()
    assert unpickler.load() is first
    with pytest.raises(brinery.UnpicklingError, match="unexpected MARK"):
        unpickler.load()
    # The failed load left the file after the bad pickle, as CPython's
    # unpickler does, and the next one starts with a fresh stack.
    assert unpickler.load() == 7


# --------------------------------------------------------------- threads

def test_threads():
    datas = [pickle.dumps(obj, proto) for obj in CATALOGUE[:60]
             for proto in (2, 5)]
    expected = [canonical(pickle.loads(d)) for d in datas]
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(300):
            i = rng.randrange(len(datas))
            try:
                if rng.random() < 0.5:
                    got = C_LOADS(datas[i])
                else:
                    got = CUnpickler(io.BytesIO(datas[i])).load()
                if canonical(got) != expected[i]:
                    errors.append(("mismatch", i))
            except Exception as exc:   # pragma: no cover - a failure
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_one_unpickler_shared_by_threads_never_crashes():
    data = pickle.dumps([str(i) for i in range(3000)], 2) * 200
    unpickler = CUnpickler(io.BytesIO(data))
    outcomes = []

    def worker():
        for _ in range(20):
            try:
                outcomes.append(len(unpickler.load()))
            except (RuntimeError, EOFError, brinery.UnpicklingError) as exc:
                outcomes.append(type(exc))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 80
    assert 3000 in outcomes


# ----------------------------------------------------------------- leaks

def _growth_per_call(func, calls_per_run, rounds=4, repeat=20):
    """Bytes still allocated after running func many times, per unpickling
    call. A leak of even one small object per call shows as 30 or more;
    caches and free lists filling up show as a few."""
    for _ in range(3):
        func()
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds * repeat):
            func()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    return grown / (rounds * repeat * calls_per_run)


def test_no_leaks_on_success():
    datas = [data for _, data in PICKLES[::5] if len(data) < 5000]
    assert _growth_per_call(lambda: [C_LOADS(d) for d in datas],
                            len(datas)) < 8
    assert _growth_per_call(lambda: [C_LOAD(io.BytesIO(d)) for d in datas],
                            len(datas)) < 8
    assert _growth_per_call(lambda: [CUnpickler(UnseekableFile(d)).load()
                                     for d in datas[:40]], 40) < 8


def test_bad_escape_in_string_warns_like_pure():
    for loads in (PURE_LOADS, C_LOADS):
        with pytest.warns(DeprecationWarning, match="invalid escape"):
            assert loads(b"S'\\q'\n.") == "\\q"


@pytest.mark.filterwarnings("ignore:invalid escape sequence")
def test_no_leaks_on_errors():
    bad = BAD_STACK + BAD_MARK + OTHER_BAD + HUGE_CLAIMS

    def run():
        for data in bad:
            try:
                C_LOADS(data)
            except Exception:
                pass
            try:
                C_LOAD(UnseekableFile(data))
            except Exception:
                pass
    assert _growth_per_call(run, 2 * len(bad), repeat=5) < 8


def test_no_leaks_with_unpickler_objects():
    data = pickle.dumps([Plain(i) for i in range(50)], 2)

    def run():
        unpickler = RestrictedUnpickler(io.BytesIO(data * 3))
        for _ in range(3):
            try:
                unpickler.load()
            except brinery.UnpicklingError:
                pass
        unpickler.memo = {1: [1]}
        unpickler.memo
    assert _growth_per_call(run, 3, repeat=100) < 8


# -------------------------------------------------------------- Python 2

PY2_GENERATOR = r'''
# Run with Python 2.7: prints PY2_PICKLES (wrapped by the caller).
import pickle, cPickle, sys, types, collections, datetime, decimal
mod = types.ModuleType('test_accel_unpickler')
sys.modules['test_accel_unpickler'] = mod
class Py2Old:
    def __init__(self, a=1):
        self.a = a
class Py2OldArgs:
    def __init__(self, a, b):
        self.a = a
        self.b = b
    def __getinitargs__(self):
        return (self.a, self.b)
class Py2New(object):
    def __init__(self):
        self.x = [1, 'two', u'three']
for c in (Py2Old, Py2OldArgs, Py2New):
    c.__module__ = 'test_accel_unpickler'
    setattr(mod, c.__name__, c)
rec = []
rec.append(rec)
shared = [1]
objs = [
    ('int', 7), ('neg', -123456), ('long', 12345678901234567890L),
    ('float', 1.5), ('bigfloat', 1e300), ('str_ascii', 'hello'),
    ('str_bytes', 'a\x00\xa0\xff'), ('unicode', u'caf\xe9 \u20ac \U0001f600'),
    ('list', [1, 2.0, 'x', u'y', None, True, False]), ('tuple', (1, (2, 3))),
    ('dict', {'a': 1, u'b': [2]}), ('set', set([1, 2, 3])),
    ('frozenset', frozenset(['a'])), ('xrange', xrange(1, 10, 2)),
    ('ordered', collections.OrderedDict([('a', 1), ('b', 2)])),
    ('date', datetime.date(2020, 1, 2)), ('decimal', decimal.Decimal('1.25')),
    ('exc', ValueError('bad')), ('complex', 1+2j), ('old', Py2Old(5)),
    ('oldargs', Py2OldArgs(1, 'q')), ('new', Py2New()),
    ('shared', [shared, shared]), ('recursive', rec),
]
print('{')
for name, obj in objs:
    for impl, module in (('pickle', pickle), ('cPickle', cPickle)):
        for proto in (0, 1, 2):
            print('(%r, %r, %d): b%s,' % (name, impl, proto,
                                          repr(module.dumps(obj, proto))))
print('}')
'''


PY2_PICKLES = {
    ('int', 'pickle', 0):
        b'I7\n.',
    ('int', 'pickle', 1):
        b'K\x07.',
    ('int', 'pickle', 2):
        b'\x80\x02K\x07.',
    ('int', 'cPickle', 0):
        b'I7\n.',
    ('int', 'cPickle', 1):
        b'K\x07.',
    ('int', 'cPickle', 2):
        b'\x80\x02K\x07.',
    ('neg', 'pickle', 0):
        b'I-123456\n.',
    ('neg', 'pickle', 1):
        b'J\xc0\x1d\xfe\xff.',
    ('neg', 'pickle', 2):
        b'\x80\x02J\xc0\x1d\xfe\xff.',
    ('neg', 'cPickle', 0):
        b'I-123456\n.',
    ('neg', 'cPickle', 1):
        b'J\xc0\x1d\xfe\xff.',
    ('neg', 'cPickle', 2):
        b'\x80\x02J\xc0\x1d\xfe\xff.',
    ('long', 'pickle', 0):
        b'L12345678901234567890L\n.',
    ('long', 'pickle', 1):
        b'L12345678901234567890L\n.',
    ('long', 'pickle', 2):
        b'\x80\x02\x8a\t\xd2\n\x1f\xeb\x8c\xa9T\xab\x00.',
    ('long', 'cPickle', 0):
        b'L12345678901234567890L\n.',
    ('long', 'cPickle', 1):
        b'L12345678901234567890L\n.',
    ('long', 'cPickle', 2):
        b'\x80\x02\x8a\t\xd2\n\x1f\xeb\x8c\xa9T\xab\x00.',
    ('float', 'pickle', 0):
        b'F1.5\n.',
    ('float', 'pickle', 1):
        b'G?\xf8\x00\x00\x00\x00\x00\x00.',
    ('float', 'pickle', 2):
        b'\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.',
    ('float', 'cPickle', 0):
        b'F1.5\n.',
    ('float', 'cPickle', 1):
        b'G?\xf8\x00\x00\x00\x00\x00\x00.',
    ('float', 'cPickle', 2):
        b'\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.',
    ('bigfloat', 'pickle', 0):
        b'F1e+300\n.',
    ('bigfloat', 'pickle', 1):
        b'G~7\xe4<\x88\x00u\x9c.',
    ('bigfloat', 'pickle', 2):
        b'\x80\x02G~7\xe4<\x88\x00u\x9c.',
    ('bigfloat', 'cPickle', 0):
        b'F1.0000000000000001e+300\n.',
    ('bigfloat', 'cPickle', 1):
        b'G~7\xe4<\x88\x00u\x9c.',
    ('bigfloat', 'cPickle', 2):
        b'\x80\x02G~7\xe4<\x88\x00u\x9c.',
    ('str_ascii', 'pickle', 0):
        b"S'hello'\np0\n.",
    ('str_ascii', 'pickle', 1):
        b'U\x05helloq\x00.',
    ('str_ascii', 'pickle', 2):
        b'\x80\x02U\x05helloq\x00.',
    ('str_ascii', 'cPickle', 0):
        b"S'hello'\np1\n.",
    ('str_ascii', 'cPickle', 1):
        b'U\x05helloq\x01.',
    ('str_ascii', 'cPickle', 2):
        b'\x80\x02U\x05helloq\x01.',
    ('str_bytes', 'pickle', 0):
        b"S'a\\x00\\xa0\\xff'\np0\n.",
    ('str_bytes', 'pickle', 1):
        b'U\x04a\x00\xa0\xffq\x00.',
    ('str_bytes', 'pickle', 2):
        b'\x80\x02U\x04a\x00\xa0\xffq\x00.',
    ('str_bytes', 'cPickle', 0):
        b"S'a\\x00\\xa0\\xff'\np1\n.",
    ('str_bytes', 'cPickle', 1):
        b'U\x04a\x00\xa0\xffq\x01.',
    ('str_bytes', 'cPickle', 2):
        b'\x80\x02U\x04a\x00\xa0\xffq\x01.',
    ('unicode', 'pickle', 0):
        b'Vcaf\xe9 \\u20ac \\U0001f600\np0\n.',
    ('unicode', 'pickle', 1):
        b'X\x0e\x00\x00\x00caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80q\x00.',
    ('unicode', 'pickle', 2):
        (b'\x80\x02X\x0e\x00\x00\x00caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80'
         b'q\x00.'),
    ('unicode', 'cPickle', 0):
        b'Vcaf\xe9 \\u20ac \\U0001f600\np1\n.',
    ('unicode', 'cPickle', 1):
        b'X\x0e\x00\x00\x00caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80q\x01.',
    ('unicode', 'cPickle', 2):
        (b'\x80\x02X\x0e\x00\x00\x00caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80'
         b'q\x01.'),
    ('list', 'pickle', 0):
        b"(lp0\nI1\naF2.0\naS'x'\np1\naVy\np2\naNaI01\naI00\na.",
    ('list', 'pickle', 1):
        (b']q\x00(K\x01G@\x00\x00\x00\x00\x00\x00\x00U\x01xq\x01X\x01\x00\x00'
         b'\x00yq\x02NI01\nI00\ne.'),
    ('list', 'pickle', 2):
        (b'\x80\x02]q\x00(K\x01G@\x00\x00\x00\x00\x00\x00\x00U\x01xq\x01X\x01'
         b'\x00\x00\x00yq\x02N\x88\x89e.'),
    ('list', 'cPickle', 0):
        b"(lp1\nI1\naF2\naS'x'\naVy\naNaI01\naI00\na.",
    ('list', 'cPickle', 1):
        (b']q\x01(K\x01G@\x00\x00\x00\x00\x00\x00\x00U\x01xX\x01\x00\x00\x00y'
         b'NI01\nI00\ne.'),
    ('list', 'cPickle', 2):
        (b'\x80\x02]q\x01(K\x01G@\x00\x00\x00\x00\x00\x00\x00U\x01xX\x01\x00'
         b'\x00\x00yN\x88\x89e.'),
    ('tuple', 'pickle', 0):
        b'(I1\n(I2\nI3\ntp0\ntp1\n.',
    ('tuple', 'pickle', 1):
        b'(K\x01(K\x02K\x03tq\x00tq\x01.',
    ('tuple', 'pickle', 2):
        b'\x80\x02K\x01K\x02K\x03\x86q\x00\x86q\x01.',
    ('tuple', 'cPickle', 0):
        b'(I1\n(I2\nI3\ntp1\ntp2\n.',
    ('tuple', 'cPickle', 1):
        b'(K\x01(K\x02K\x03tq\x01tq\x02.',
    ('tuple', 'cPickle', 2):
        b'\x80\x02K\x01K\x02K\x03\x86q\x01\x86q\x02.',
    ('dict', 'pickle', 0):
        b"(dp0\nS'a'\np1\nI1\nsVb\np2\n(lp3\nI2\nas.",
    ('dict', 'pickle', 1):
        b'}q\x00(U\x01aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03K\x02au.',
    ('dict', 'pickle', 2):
        (b'\x80\x02}q\x00(U\x01aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03K\x02a'
         b'u.'),
    ('dict', 'cPickle', 0):
        b"(dp1\nS'a'\nI1\nsVb\n(lp2\nI2\nas.",
    ('dict', 'cPickle', 1):
        b'}q\x01(U\x01aK\x01X\x01\x00\x00\x00b]q\x02K\x02au.',
    ('dict', 'cPickle', 2):
        b'\x80\x02}q\x01(U\x01aK\x01X\x01\x00\x00\x00b]q\x02K\x02au.',
    ('set', 'pickle', 0):
        b'c__builtin__\nset\np0\n((lp1\nI1\naI2\naI3\natp2\nRp3\n.',
    ('set', 'pickle', 1):
        b'c__builtin__\nset\nq\x00(]q\x01(K\x01K\x02K\x03etq\x02Rq\x03.',
    ('set', 'pickle', 2):
        (b'\x80\x02c__builtin__\nset\nq\x00]q\x01(K\x01K\x02K\x03e\x85q\x02Rq'
         b'\x03.'),
    ('set', 'cPickle', 0):
        b'c__builtin__\nset\np1\n((lp2\nI1\naI2\naI3\natRp3\n.',
    ('set', 'cPickle', 1):
        b'c__builtin__\nset\nq\x01(]q\x02(K\x01K\x02K\x03etRq\x03.',
    ('set', 'cPickle', 2):
        b'\x80\x02c__builtin__\nset\nq\x01]q\x02(K\x01K\x02K\x03e\x85Rq\x03.',
    ('frozenset', 'pickle', 0):
        b"c__builtin__\nfrozenset\np0\n((lp1\nS'a'\np2\natp3\nRp4\n.",
    ('frozenset', 'pickle', 1):
        b'c__builtin__\nfrozenset\nq\x00(]q\x01U\x01aq\x02atq\x03Rq\x04.',
    ('frozenset', 'pickle', 2):
        (b'\x80\x02c__builtin__\nfrozenset\nq\x00]q\x01U\x01aq\x02a\x85q\x03R'
         b'q\x04.'),
    ('frozenset', 'cPickle', 0):
        b"c__builtin__\nfrozenset\np1\n((lp2\nS'a'\natRp3\n.",
    ('frozenset', 'cPickle', 1):
        b'c__builtin__\nfrozenset\nq\x01(]q\x02U\x01aatRq\x03.',
    ('frozenset', 'cPickle', 2):
        b'\x80\x02c__builtin__\nfrozenset\nq\x01]q\x02U\x01aa\x85Rq\x03.',
    ('xrange', 'pickle', 0):
        b'c__builtin__\nxrange\np0\n(I1\nI11\nI2\ntp1\nRp2\n.',
    ('xrange', 'pickle', 1):
        b'c__builtin__\nxrange\nq\x00(K\x01K\x0bK\x02tq\x01Rq\x02.',
    ('xrange', 'pickle', 2):
        b'\x80\x02c__builtin__\nxrange\nq\x00K\x01K\x0bK\x02\x87q\x01Rq\x02.',
    ('xrange', 'cPickle', 0):
        b'c__builtin__\nxrange\np1\n(I1\nI11\nI2\ntRp2\n.',
    ('xrange', 'cPickle', 1):
        b'c__builtin__\nxrange\nq\x01(K\x01K\x0bK\x02tRq\x02.',
    ('xrange', 'cPickle', 2):
        b'\x80\x02c__builtin__\nxrange\nq\x01K\x01K\x0bK\x02\x87Rq\x02.',
    ('ordered', 'pickle', 0):
        (b"ccollections\nOrderedDict\np0\n((lp1\n(lp2\nS'a'\np3\naI1\naa(lp4"
         b"\nS'b'\np5\naI2\naatp6\nRp7\n."),
    ('ordered', 'pickle', 1):
        (b'ccollections\nOrderedDict\nq\x00(]q\x01(]q\x02(U\x01aq\x03K\x01e]q'
         b'\x04(U\x01bq\x05K\x02eetq\x06Rq\x07.'),
    ('ordered', 'pickle', 2):
        (b'\x80\x02ccollections\nOrderedDict\nq\x00]q\x01(]q\x02(U\x01aq\x03K'
         b'\x01e]q\x04(U\x01bq\x05K\x02ee\x85q\x06Rq\x07.'),
    ('ordered', 'cPickle', 0):
        (b"ccollections\nOrderedDict\np1\n((lp2\n(lp3\nS'a'\naI1\naa(lp4\nS'b"
         b"'\naI2\naatRp5\n."),
    ('ordered', 'cPickle', 1):
        (b'ccollections\nOrderedDict\nq\x01(]q\x02(]q\x03(U\x01aK\x01e]q\x04('
         b'U\x01bK\x02eetRq\x05.'),
    ('ordered', 'cPickle', 2):
        (b'\x80\x02ccollections\nOrderedDict\nq\x01]q\x02(]q\x03(U\x01aK\x01e'
         b']q\x04(U\x01bK\x02ee\x85Rq\x05.'),
    ('date', 'pickle', 0):
        b"cdatetime\ndate\np0\n(S'\\x07\\xe4\\x01\\x02'\np1\ntp2\nRp3\n.",
    ('date', 'pickle', 1):
        b'cdatetime\ndate\nq\x00(U\x04\x07\xe4\x01\x02q\x01tq\x02Rq\x03.',
    ('date', 'pickle', 2):
        (b'\x80\x02cdatetime\ndate\nq\x00U\x04\x07\xe4\x01\x02q\x01\x85q\x02R'
         b'q\x03.'),
    ('date', 'cPickle', 0):
        b"cdatetime\ndate\np1\n(S'\\x07\\xe4\\x01\\x02'\ntRp2\n.",
    ('date', 'cPickle', 1):
        b'cdatetime\ndate\nq\x01(U\x04\x07\xe4\x01\x02tRq\x02.',
    ('date', 'cPickle', 2):
        b'\x80\x02cdatetime\ndate\nq\x01U\x04\x07\xe4\x01\x02\x85Rq\x02.',
    ('decimal', 'pickle', 0):
        b"cdecimal\nDecimal\np0\n(S'1.25'\np1\ntp2\nRp3\n.",
    ('decimal', 'pickle', 1):
        b'cdecimal\nDecimal\nq\x00(U\x041.25q\x01tq\x02Rq\x03.',
    ('decimal', 'pickle', 2):
        b'\x80\x02cdecimal\nDecimal\nq\x00U\x041.25q\x01\x85q\x02Rq\x03.',
    ('decimal', 'cPickle', 0):
        b"cdecimal\nDecimal\np1\n(S'1.25'\ntRp2\n.",
    ('decimal', 'cPickle', 1):
        b'cdecimal\nDecimal\nq\x01(U\x041.25tRq\x02.',
    ('decimal', 'cPickle', 2):
        b'\x80\x02cdecimal\nDecimal\nq\x01U\x041.25\x85Rq\x02.',
    ('exc', 'pickle', 0):
        b"cexceptions\nValueError\np0\n(S'bad'\np1\ntp2\nRp3\n.",
    ('exc', 'pickle', 1):
        b'cexceptions\nValueError\nq\x00(U\x03badq\x01tq\x02Rq\x03.',
    ('exc', 'pickle', 2):
        (b'\x80\x02cexceptions\nValueError\nq\x00U\x03badq\x01\x85q\x02Rq\x03'
         b'.'),
    ('exc', 'cPickle', 0):
        b"cexceptions\nValueError\np1\n(S'bad'\np2\ntp3\nRp4\n.",
    ('exc', 'cPickle', 1):
        b'cexceptions\nValueError\nq\x01(U\x03badq\x02tq\x03Rq\x04.',
    ('exc', 'cPickle', 2):
        (b'\x80\x02cexceptions\nValueError\nq\x01U\x03badq\x02\x85q\x03Rq\x04'
         b'.'),
    ('complex', 'pickle', 0):
        b'c__builtin__\ncomplex\np0\n(F1.0\nF2.0\ntp1\nRp2\n.',
    ('complex', 'pickle', 1):
        (b'c__builtin__\ncomplex\nq\x00(G?\xf0\x00\x00\x00\x00\x00\x00G@\x00'
         b'\x00\x00\x00\x00\x00\x00tq\x01Rq\x02.'),
    ('complex', 'pickle', 2):
        (b'\x80\x02c__builtin__\ncomplex\nq\x00G?\xf0\x00\x00\x00\x00\x00\x00'
         b'G@\x00\x00\x00\x00\x00\x00\x00\x86q\x01Rq\x02.'),
    ('complex', 'cPickle', 0):
        b'c__builtin__\ncomplex\np1\n(F1\nF2\ntRp2\n.',
    ('complex', 'cPickle', 1):
        (b'c__builtin__\ncomplex\nq\x01(G?\xf0\x00\x00\x00\x00\x00\x00G@\x00'
         b'\x00\x00\x00\x00\x00\x00tRq\x02.'),
    ('complex', 'cPickle', 2):
        (b'\x80\x02c__builtin__\ncomplex\nq\x01G?\xf0\x00\x00\x00\x00\x00\x00'
         b'G@\x00\x00\x00\x00\x00\x00\x00\x86Rq\x02.'),
    ('old', 'pickle', 0):
        b"(itest_accel_unpickler\nPy2Old\np0\n(dp1\nS'a'\np2\nI5\nsb.",
    ('old', 'pickle', 1):
        (b'(ctest_accel_unpickler\nPy2Old\nq\x00oq\x01}q\x02U\x01aq\x03K\x05s'
         b'b.'),
    ('old', 'pickle', 2):
        (b'\x80\x02(ctest_accel_unpickler\nPy2Old\nq\x00oq\x01}q\x02U\x01aq'
         b'\x03K\x05sb.'),
    ('old', 'cPickle', 0):
        b"(itest_accel_unpickler\nPy2Old\np1\n(dp2\nS'a'\nI5\nsb.",
    ('old', 'cPickle', 1):
        b'(ctest_accel_unpickler\nPy2Old\nq\x01oq\x02}q\x03U\x01aK\x05sb.',
    ('old', 'cPickle', 2):
        (b'\x80\x02(ctest_accel_unpickler\nPy2Old\nq\x01oq\x02}q\x03U\x01aK'
         b'\x05sb.'),
    ('oldargs', 'pickle', 0):
        (b"(I1\nS'q'\np1\nitest_accel_unpickler\nPy2OldArgs\np2\n(dp3\nS'a'\n"
         b"p4\nI1\nsS'b'\np5\ng1\nsb."),
    ('oldargs', 'pickle', 1):
        (b'(ctest_accel_unpickler\nPy2OldArgs\nq\x01K\x01U\x01qq\x02oq\x03}q'
         b'\x04(U\x01aq\x05K\x01U\x01bq\x06h\x02ub.'),
    ('oldargs', 'pickle', 2):
        (b'\x80\x02(ctest_accel_unpickler\nPy2OldArgs\nq\x01K\x01U\x01qq\x02o'
         b'q\x03}q\x04(U\x01aq\x05K\x01U\x01bq\x06h\x02ub.'),
    ('oldargs', 'cPickle', 0):
        (b"(I1\nS'q'\nitest_accel_unpickler\nPy2OldArgs\np1\n(dp2\nS'a'\nI1\n"
         b"sS'b'\nS'q'\nsb."),
    ('oldargs', 'cPickle', 1):
        (b'(ctest_accel_unpickler\nPy2OldArgs\nq\x01K\x01U\x01qoq\x02}q\x03(U'
         b'\x01aK\x01U\x01bU\x01qub.'),
    ('oldargs', 'cPickle', 2):
        (b'\x80\x02(ctest_accel_unpickler\nPy2OldArgs\nq\x01K\x01U\x01qoq\x02'
         b'}q\x03(U\x01aK\x01U\x01bU\x01qub.'),
    ('new', 'pickle', 0):
        (b'ccopy_reg\n_reconstructor\np0\n(ctest_accel_unpickler\nPy2New\np1'
         b"\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nS'x'\np6\n(lp7\nI1\na"
         b"S'two'\np8\naVthree\np9\nasb."),
    ('new', 'pickle', 1):
        (b'ccopy_reg\n_reconstructor\nq\x00(ctest_accel_unpickler\nPy2New\nq'
         b'\x01c__builtin__\nobject\nq\x02Ntq\x03Rq\x04}q\x05U\x01xq\x06]q'
         b'\x07(K\x01U\x03twoq\x08X\x05\x00\x00\x00threeq\tesb.'),
    ('new', 'pickle', 2):
        (b'\x80\x02ctest_accel_unpickler\nPy2New\nq\x00)\x81q\x01}q\x02U\x01x'
         b'q\x03]q\x04(K\x01U\x03twoq\x05X\x05\x00\x00\x00threeq\x06esb.'),
    ('new', 'cPickle', 0):
        (b'ccopy_reg\n_reconstructor\np1\n(ctest_accel_unpickler\nPy2New\np2'
         b"\nc__builtin__\nobject\np3\nNtRp4\n(dp5\nS'x'\n(lp6\nI1\naS'two'\n"
         b'p7\naVthree\np8\nasb.'),
    ('new', 'cPickle', 1):
        (b'ccopy_reg\n_reconstructor\nq\x01(ctest_accel_unpickler\nPy2New\nq'
         b'\x02c__builtin__\nobject\nq\x03NtRq\x04}q\x05U\x01x]q\x06(K\x01U'
         b'\x03twoq\x07X\x05\x00\x00\x00threeq\x08esb.'),
    ('new', 'cPickle', 2):
        (b'\x80\x02ctest_accel_unpickler\nPy2New\nq\x01)\x81q\x02}q\x03U\x01x'
         b']q\x04(K\x01U\x03twoq\x05X\x05\x00\x00\x00threeq\x06esb.'),
    ('shared', 'pickle', 0):
        b'(lp0\n(lp1\nI1\naag1\na.',
    ('shared', 'pickle', 1):
        b']q\x00(]q\x01K\x01ah\x01e.',
    ('shared', 'pickle', 2):
        b'\x80\x02]q\x00(]q\x01K\x01ah\x01e.',
    ('shared', 'cPickle', 0):
        b'(lp1\n(lp2\nI1\naag2\na.',
    ('shared', 'cPickle', 1):
        b']q\x01(]q\x02K\x01ah\x02e.',
    ('shared', 'cPickle', 2):
        b'\x80\x02]q\x01(]q\x02K\x01ah\x02e.',
    ('recursive', 'pickle', 0):
        b'(lp0\ng0\na.',
    ('recursive', 'pickle', 1):
        b']q\x00h\x00a.',
    ('recursive', 'pickle', 2):
        b'\x80\x02]q\x00h\x00a.',
    ('recursive', 'cPickle', 0):
        b'(lp1\ng1\na.',
    ('recursive', 'cPickle', 1):
        b']q\x01h\x01a.',
    ('recursive', 'cPickle', 2):
        b'\x80\x02]q\x01h\x01a.',
}


@pytest.mark.parametrize("key", sorted(PY2_PICKLES))
def test_python2_pickles(key):
    data = PY2_PICKLES[key]
    for encoding in ("ASCII", "latin1", "bytes"):
        for errors in ("strict", "replace"):
            got = same_as_pure(data, encoding=encoding, errors=errors)
            expected = outcome(pickle.loads, data, encoding=encoding,
                               errors=errors)
            if expected[0] == "returned":
                assert got == expected
            else:
                assert got[0] == "raised" and got[1] is expected[1]
            file = UnseekableFile(data)
            assert outcome(C_LOAD, file, encoding=encoding,
                           errors=errors) == got


_PYTHON2 = "/root/.pyenv/versions/2.7.18/bin/python"


@pytest.mark.skipif(not os.path.exists(_PYTHON2), reason="no Python 2.7")
def test_python2_literals_match_their_generator():
    import ast
    out = subprocess.run([_PYTHON2, "-c", PY2_GENERATOR], check=True,
                         capture_output=True).stdout
    assert ast.literal_eval(out.decode("ascii")) == PY2_PICKLES


# ----------------------------------------------------------------- sizeof

def test_sizeof_counts_the_storage_it_owns():
    """As _pickle's (test_pickle.SizeofTests, whose exact sizes are its own
    layout's): the object itself, plus the memo, stack and read buffer it
    allocated."""
    P = struct.calcsize("P")
    unpickler = CUnpickler(io.BytesIO())
    base = object.__sizeof__(unpickler)
    assert base == type(unpickler).__basicsize__
    assert unpickler.__sizeof__() >= base
    assert sys.getsizeof(unpickler) > unpickler.__sizeof__()   # + GC header
    data = pickle.dumps([chr(i) for i in range(2000)], 2)
    unpickler = CUnpickler(io.BytesIO(data))
    unpickler.load()
    assert unpickler.__sizeof__() >= base + 2000 * P + len(data)
    empty = CUnpickler(io.BytesIO(pickle.dumps(0, 2)))
    empty.load()
    assert empty.__sizeof__() < unpickler.__sizeof__() - 2000 * P


# ------------------------------------------ SETITEMS + BUILD on plain objects
# loads() sets a plain instance's state straight from the stack when
# SETITEMS fills a fresh state dict and BUILD follows, and fills the state
# dict itself only if a GET fetches it. Every case below is compared with
# the standard library (types, values, sharing, order) and the pure
# implementation, and most are built to be refused by the fast path.

MOD = __name__


def glob(obj):
    """GLOBAL opcode for a module-level object of this module."""
    return b"c" + MOD.encode() + b"\n" + obj.__qualname__.encode() + b"\n"


def ustr(text):
    data = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data


def new_plain(cls=None):
    """cls.__new__(cls) through NEWOBJ, protocol 2."""
    return glob(cls or FusedPlain) + b")\x81"


def state_build(pairs, put=b"q\x01"):
    """EMPTY_DICT, a PUT, MARK, the pairs, SETITEMS, BUILD."""
    body = b"".join(key + value for key, value in pairs)
    return b"}" + put + b"(" + body + b"ub"


def same_as_stdlib_and_pure(data):
    """C loads, the C Unpickler and pure loads do the same as the stdlib
    (errors: the same type name and message; the notes, brinery's own,
    the same as pure)."""
    def summary(result):
        if result[0] == "raised":
            return (result[0], result[1].__name__, result[2])
        return result

    expected = outcome(pickle.loads, data)
    got = outcome(C_LOADS, data)
    assert summary(got) == summary(expected), data
    assert outcome(PURE_LOADS, data) == got, data
    assert outcome(lambda d: CUnpickler(io.BytesIO(d)).load(), data) \
        == got, data
    return got


class FusedPlain:
    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)


class FusedWithProperty:
    @property
    def x(self):
        return "property"

    @x.setter
    def x(self, value):
        raise AssertionError("BUILD must not call a property's setter")


class FusedGetattr:
    def __getattr__(self, name):
        if name == "__setstate__":
            raise AttributeError(name)
        return "computed"


class FusedSetattr:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, ("via __setattr__", value))


def add_property_to_fused_plain():
    """Called by REDUCE in the middle of a load: the class changes."""
    FusedPlain.late = property(lambda self: "property",
                               lambda self, value: None)
    return "changed"


@pytest.fixture
def restore_fused_plain():
    yield
    if "late" in FusedPlain.__dict__:
        del FusedPlain.late


def test_fused_build_shared_state_dict_is_filled_on_get():
    a = FusedPlain()
    a.x, a.y = 1, [2]
    for proto in range(1, 6):
        for obj in ([a, a.__dict__], [a, a.__dict__, a.__dict__],
                    [a.__dict__, a], {"k": a, "d": a.__dict__}):
            data = pickle.dumps(obj, proto)
            result = C_LOADS(data)
            expected = pickle.loads(data)
            assert canonical(result) == canonical(expected)
            assert outcome(PURE_LOADS, data) == outcome(pickle.loads, data)
    result = C_LOADS(pickle.dumps([a, a.__dict__], 2))
    assert result[1] == {"x": 1, "y": [2]}
    assert result[1] is not vars(result[0])
    assert result[1]["y"] is result[0].y


def test_fused_build_hand_made_pickles():
    x, y = ustr("x"), ustr("y")
    one, two = b"K\x01", b"K\x02"
    cases = [
        # The state dict fetched by BINGET, by LONG_BINGET and by GET.
        b"\x80\x02(" + new_plain() + state_build([(x, one)]) + b"h\x01l.",
        b"\x80\x02(" + new_plain() + state_build([(x, one)], b"r\x01\x00\x00\x00")
        + b"j\x01\x00\x00\x00l.",
        b"\x80\x02(" + new_plain() + state_build([(x, one)]) + b"g1\nl.",
        # MEMOIZE, then the dict fetched twice and extended by SETITEM.
        b"\x80\x04(" + new_plain() + state_build([(x, one)], b"\x94")
        + b"h\x00" + y + two + b"sh\x00l.",
        # Duplicate keys: the last value wins, the first position stays.
        b"\x80\x02(" + new_plain() + state_build([(x, one), (y, two),
                                                  (x, two)])
        + b"h\x01l.",
        # Not memoized at all: nobody else sees the dict.
        b"\x80\x02(" + new_plain() + state_build([(x, one)], b"") + b"l.",
        # Put twice: the second entry must see the items.
        b"\x80\x02(" + new_plain() + state_build([(x, one)], b"q\x01q\x02")
        + b"h\x02h\x01l.",
        # The index is reused for another object before the GET.
        b"\x80\x02(" + new_plain() + state_build([(x, one)])
        + b"K\x07q\x01h\x01l.",
        # Decreasing memo indices: the second is not deferred.
        b"\x80\x02(" + new_plain() + state_build([(x, one)], b"q\x05")
        + new_plain() + state_build([(y, two)], b"q\x03")
        + b"h\x05h\x03l.",
        # The same object built twice, the second time with the same dict.
        b"\x80\x02(" + new_plain() + b"q\x00" + state_build([(x, one)])
        + b"0h\x00h\x01bh\x01l.",
        # Non-str key, str subclass of a key impossible here: int key.
        b"\x80\x02(" + new_plain() + state_build([(x, one), (one, two)])
        + b"h\x01l.",
        # A dict that already has items (fetched, then SETITEMS again).
        b"\x80\x02(" + new_plain() + state_build([(x, one)])
        + b"0" + new_plain() + b"h\x01(" + y + two + b"ubh\x01l.",
    ]
    for data in cases:
        expected = same_as_stdlib_and_pure(data)
        assert expected[0] == "returned", (data, expected)


def test_fused_build_errors_match():
    x = ustr("x")
    cases = [
        # Odd number of items: SETITEMS's error.
        b"\x80\x02" + new_plain() + b"}q\x01(" + x + b"ub.",
        # No instance under the dict: BUILD's stack underflow.
        b"\x80\x02}q\x01(" + x + b"K\x01ub.",
        b"\x80\x02(}q\x01(" + x + b"K\x01ub.",
        # BUILD on something that has no __dict__.
        b"\x80\x02K\x05}q\x01(" + x + b"K\x01ub.",
        b"\x80\x02" + glob(FusedPlain) + b"}q\x01(" + x + b"K\x01ub.",
        # Truncated right after BUILD.
        b"\x80\x02" + new_plain() + b"}q\x01(" + x + b"K\x01ub",
    ]
    for data in cases:
        expected = same_as_stdlib_and_pure(data)
        assert expected[0] == "raised", (data, expected)


def test_fused_build_refused_where_build_differs():
    x = ustr("x")
    for cls in (FusedWithProperty, FusedGetattr, FusedSetattr, WithSetstate,
                SlottedWithDict, Slotted, DictSubclass):
        data = b"\x80\x02(" + new_plain(cls) + state_build([(x, b"K\x01")]) \
            + b"h\x01l."
        same_as_stdlib_and_pure(data)
    result = C_LOADS(b"\x80\x02" + new_plain(FusedWithProperty)
                     + state_build([(x, b"K\x01")]) + b".")
    assert vars(result) == {"x": 1}
    result = C_LOADS(b"\x80\x02" + new_plain(FusedSetattr)
                     + state_build([(x, b"K\x01")]) + b".")
    assert vars(result) == {"x": 1}


def test_fused_build_instance_level_setstate():
    # The first BUILD gives the instance a __setstate__ attribute (a
    # function found by name); the second BUILD must call it.
    data = (b"\x80\x02" + new_plain() + b"q\x00"
            + state_build([(ustr("__setstate__"), glob(record_setstate))])
            + b"0h\x00" + state_build([(ustr("x"), b"K\x01")], b"q\x02")
            + b".")
    calls.clear()
    expected = outcome(pickle.loads, data)
    assert calls == [{"x": 1}]
    calls.clear()
    assert outcome(C_LOADS, data) == expected
    assert calls == [{"x": 1}]


calls = []


def record_setstate(state):
    calls.append(dict(state))


def test_fused_build_follows_class_changes(restore_fused_plain):
    # REDUCE adds a data descriptor named like a later state key in the
    # middle of the load: the second BUILD must write __dict__ directly.
    late = ustr("late")
    data = (b"\x80\x02(" + new_plain() + state_build([(late, b"K\x01")])
            + glob(add_property_to_fused_plain) + b")R"
            + new_plain() + state_build([(late, b"K\x02")], b"q\x02")
            + b"h\x01h\x02l.")
    first = C_LOADS(data)
    del FusedPlain.late
    second = pickle.loads(data)
    del FusedPlain.late
    assert [vars(first[0]), first[1], vars(first[2]), first[3], first[4]] \
        == [vars(second[0]), second[1], vars(second[2]), second[3],
            second[4]]
    assert vars(first[2]) == {"late": 2}


def test_fused_build_keys_are_interned_and_state_keys_kept():
    key = "".join(["fused", "_key"])       # not interned by the compiler
    obj = FusedPlain()
    setattr(obj, key, 1)
    for loads in (C_LOADS, pickle.loads):
        result = loads(pickle.dumps([obj, obj.__dict__], 2))
        (name,) = vars(result[0])
        assert name is sys.intern(name)
        assert list(result[1]) == [key]


def test_fused_build_no_leaks():
    a = FusedPlain()
    a.x = [1]
    data = pickle.dumps([a, a.__dict__, [a] * 3], 2)
    bad = data[:-2] + b"\xff."
    C_LOADS(data)
    gc.collect()
    before = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") \
        else None
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            C_LOADS(data)
            with pytest.raises(brinery.UnpicklingError):
                C_LOADS(bad)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    if before is not None:  # pragma: no cover - debug builds only
        assert sys.gettotalrefcount() - before < 100


# ----------------------------------------------------------- short UTF-8 text
# Non-ASCII text up to 128 bytes is decoded by brinery itself; longer text
# and invalid input go to CPython's decoder. Both must give what the
# standard library gives: the same characters in the narrowest kind (so
# equal strings hash equal), lone surrogates passed through, the same
# UnicodeDecodeError.

TEXT_ALPHABETS = [
    "abcXYZ 09",
    "".join(map(chr, range(0xA0, 0x100))),             # Latin-1: 1 byte/char
    "".join(map(chr, range(0x400, 0x450))),            # Cyrillic: 2 bytes
    "".join(map(chr, range(0x4E00, 0x4E40))),          # CJK: 3 bytes
    "\U0001F600\U0001F64F\U0010FFFF\U00010000",         # 4 bytes
    "\x7f\x80\u07ff\u0800\uffff\ud800\udbff\udc00\udfff",  # edges, surrogates
]


def text_pickle(data, opcode=b"X"):
    size = struct.pack("<I", len(data)) if opcode == b"X" \
        else struct.pack("<B", len(data))
    return b"\x80\x04" + opcode + size + data + b"."


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65,
                                    120, 127, 128, 129, 200])
def test_short_text_decodes_like_stdlib(length):
    rng = random.Random(length)
    for _ in range(200):
        alphabets = rng.sample(TEXT_ALPHABETS, rng.randint(1, 3))
        chars = "".join(rng.choice(alphabets) for _ in range(length))
        text = "".join(rng.choice(chars) for _ in range(length))
        prefix = "a" * rng.choice([0, 0, 3, 8, 20])
        text = prefix + text
        data = text.encode("utf-8", "surrogatepass")
        for opcode in (b"X", b"\x8c") if len(data) < 256 else (b"X",):
            result = C_LOADS(text_pickle(data, opcode))
            assert type(result) is str
            assert result == text
            assert hash(result) == hash(text)
            if len(text) == 1 and ord(text) < 256:
                # CPython shares these; its decoder returns the shared one.
                assert result is pickle.loads(text_pickle(data, opcode))
            else:
                # Narrowest kind: as large as a fresh copy.
                assert sys.getsizeof(result) == sys.getsizeof(
                    "".join(list(text))), text


@pytest.mark.parametrize("bad", [
    b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xc2A",
    b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xe1\x80", b"\xe1\x80A", b"\xed\xa0",
    b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xff", b"\xf0\x9f\x98",
])
def test_invalid_short_text_raises_like_stdlib(bad):
    for prefix in (b"", b"abc", b"\xd0\xb6" * 3, b"x" * 40, b"\xc3\xa9" * 70):
        for suffix in (b"", b"tail", b"\xe4\xb8\x80"):
            data = text_pickle(prefix + bad + suffix)
            expected = outcome(pickle.loads, data)
            got = outcome(C_LOADS, data)
            assert got[0] == expected[0] == "raised"
            assert (got[1].__name__, got[2]) == (expected[1].__name__,
                                                 expected[2]), data
            assert outcome(PURE_LOADS, data) == got


# ------------------------------------------- bytes below protocol 3 (latin1)
# Below protocol 3 bytes pickle as _codecs.encode(text, "latin1"); loads
# builds them without the codec lookup when the call is exactly that.

def encode_call(text_op, encoding=b"latin1"):
    return (b"\x80\x02c_codecs\nencode\n" + text_op
            + b"X" + struct.pack("<I", len(encoding)) + encoding + b"\x86R.")


def test_bytes_below_protocol_3_like_stdlib():
    values = [b"", b"a", b"\x00", b"\xff", bytes(range(256)), b"abc" * 100,
              [b"x", b"x", b"\x80\x81"], {b"k": b"v"}]
    for proto in (0, 1, 2):
        for value in values:
            data = pickle.dumps(value, proto)
            result = C_LOADS(data)
            assert canonical(result) == canonical(pickle.loads(data))
            assert result == value
    # One-byte results are CPython's shared singletons, as the codec's.
    assert C_LOADS(pickle.dumps(b"q", 2)) is pickle.loads(
        pickle.dumps(b"q", 2))


def test_latin1_call_that_must_reach_the_codec():
    cases = [
        encode_call(ustr("\u0100")),                 # not latin-1: raises
        encode_call(ustr("\xe9t\xe9"), b"latin-1"),  # another spelling
        encode_call(ustr("\xe9t\xe9"), b"utf-8"),
        encode_call(ustr("abc"), b"LATIN1"),
        encode_call(ustr("\udc80"), b"latin1"),
        encode_call(b"C\x03abc", b"latin1"),         # bytes, not str
    ]
    for data in cases:
        expected = outcome(pickle.loads, data)
        got = outcome(C_LOADS, data)
        if expected[0] == "raised":
            assert (got[1].__name__, got[2]) == (expected[1].__name__,
                                                 expected[2]), data
        else:
            assert got == expected, data
        assert outcome(PURE_LOADS, data) == got


def test_latin1_shortcut_only_for_codecs_encode_itself(monkeypatch):
    calls = []

    def fake_encode(text, encoding):
        calls.append((text, encoding))
        return "replaced"

    class Redirecting(CUnpickler):
        def find_class(self, module, name):
            if (module, name) == ("_codecs", "encode"):
                return fake_encode
            return super().find_class(module, name)

    data = pickle.dumps(b"abc", 2)
    assert Redirecting(io.BytesIO(data)).load() == "replaced"
    assert calls == [("abc", "latin1")]
    import _codecs
    monkeypatch.setattr(_codecs, "encode", fake_encode)
    assert C_LOADS(data) == "replaced"
    assert calls == [("abc", "latin1")] * 2
