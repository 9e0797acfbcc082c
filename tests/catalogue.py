"""A catalogue of objects to pickle, for differential tests.

`CATALOGUE` is a list of ``(name, factory)``: each factory builds a fresh
object (so that a test that changes an object cannot affect another). The
objects cover every opcode and every branch of the pickler: scalars at each
opcode's boundaries, strings and bytes at each length boundary (1-byte,
4-byte and 8-byte lengths, frame size), containers around the batch size,
recursive and shared structures, every form of the reduce protocol,
globals by qualified name, and common standard library types.

The classes are at module level so that they pickle by reference
(``catalogue.Plain``), and they are also used by the hypothesis strategies
and the golden files. Their ``repr`` shows their content, which lets
`compare.assert_same` pair up instances held in sets.

`EXTENSION_CODES` lists the copyreg extension codes registered by the
``extension_codes`` fixture (see `registry`): the pickles of
``catalogue.ExtensionTarget*`` depend on them.
"""

import array
import collections
import copyreg
import datetime
import decimal
import enum
import fractions
import functools
import ipaddress
import operator
import pathlib
import reprlib
import types
import uuid
from pickle import PickleBuffer


def _content_repr(self):
    state = dict(getattr(self, "__dict__", {}))
    for cls in type(self).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(self, name):
                state[name] = getattr(self, name)
    return f"{type(self).__qualname__}({state!r})"


class Plain:
    """An ordinary instance: its state is its __dict__."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    __repr__ = reprlib.recursive_repr()(_content_repr)

    def method(self):
        return "method of " + repr(self)

    @classmethod
    def a_classmethod(cls):
        return cls

    @staticmethod
    def a_staticmethod():
        return "static"


class Empty:
    """An instance with an empty __dict__ (no state is saved)."""

    __repr__ = _content_repr


class Slotted:
    __slots__ = ("a", "b", "__private")

    def __init__(self, a=1, b=2, private=3):
        self.a = a
        self.b = b
        self.__private = private

    __repr__ = reprlib.recursive_repr()(_content_repr)


class PartlySlotted(Slotted):
    """Slots in the base, some unset, and a __dict__ in the subclass."""

    def __init__(self):
        self.a = "only a"
        self.extra = [1, 2]


class WithState:
    """__getstate__/__setstate__ with a state that is not a dict."""

    def __init__(self, value=0):
        self.value = value

    def __getstate__(self):
        return ("state", self.value)

    def __setstate__(self, state):
        self.value = state[1]

    __repr__ = _content_repr


class FalsyState:
    """__getstate__ returning a false value: no BUILD is written."""

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        raise AssertionError("__setstate__ must not be called")

    __repr__ = _content_repr


class NoneState(Plain):
    def __getstate__(self):
        return None


class ReduceToString:
    """__reduce__ returning a string: pickled as the global of that name."""

    def __reduce__(self):
        return "THE_SINGLETON"

    def __repr__(self):
        return "THE_SINGLETON"


THE_SINGLETON = ReduceToString()


def rebuild(*args):
    """A module-level reconstructor: returns a Rebuilt holding args."""
    return Rebuilt(args)


class Rebuilt(list):
    """Built by `rebuild`; a list subclass so listitems can extend it."""

    def __init__(self, args=()):
        super().__init__()
        self.args = args

    def __setitem__(self, key, value):
        if isinstance(key, (int, slice)):
            super().__setitem__(key, value)
        else:
            self.__dict__.setdefault("items", {})[key] = value

    __repr__ = reprlib.recursive_repr()(_content_repr)


def set_state(obj, state):
    """A state_setter: stores the state under another name."""
    obj.set_by_state_setter = state


class Reduce2:
    def __reduce__(self):
        return (rebuild, (1, "two"))


class Reduce3:
    def __reduce__(self):
        return (rebuild, (3,), {"state": [1, 2]})


class Reduce4:
    def __reduce__(self):
        return (rebuild, (4,), None, iter([10, 20, [30]]))


class Reduce5:
    def __reduce__(self):
        return (rebuild, (5,), {"s": 5}, iter(range(3)),
                iter([("k", "v"), ("k2", [1])]))


class Reduce5Long:
    """listitems/dictitems iterators longer than a batch."""

    def __reduce__(self):
        return (rebuild, (), None, iter(range(1001)),
                iter((f"k{i}", i) for i in range(1001)))


class Reduce6:
    def __reduce__(self):
        return (rebuild, (6,), {"six": 6}, None, None, set_state)


class ReduceExByProtocol:
    """__reduce_ex__ whose answer depends on the protocol."""

    def __reduce_ex__(self, protocol):
        return (rebuild, (protocol,))


class ReduceWithNoneItems:
    """A 6-tuple whose optional parts are all None."""

    def __reduce__(self):
        return (rebuild, ("none",), None, None, None, None)


class NewArgs:
    """__getnewargs__: NEWOBJ at protocol 2+."""

    def __new__(cls, x, y):
        self = super().__new__(cls)
        self.new_args = (x, y)
        return self

    def __getnewargs__(self):
        return self.new_args

    __repr__ = _content_repr


class NewArgsEx:
    """__getnewargs_ex__ with keyword arguments: NEWOBJ_EX at protocol 4+,
    functools.partial(cls.__new__, ...) below."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.new_args = (args, kwargs)
        return self

    def __getnewargs_ex__(self):
        return self.new_args

    __repr__ = _content_repr


class NewArgsExNoKwargs(NewArgsEx):
    """__getnewargs_ex__ without keyword arguments: NEWOBJ at 2+."""


class MyList(list):
    __repr__ = reprlib.recursive_repr()(_content_repr)


class MyDict(dict):
    __repr__ = reprlib.recursive_repr()(_content_repr)


class MyTuple(tuple):
    pass


class MyStr(str):
    pass


class MyBytes(bytes):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MySet(set):
    pass


class MyFrozenSet(frozenset):
    pass


class Outer:
    """Nested classes and functions: pickled by qualified name."""

    class Inner:
        class Deeper:
            pass

        def inner_function():
            return "inner"

    def outer_function():
        return "outer"


def module_function():
    return "module"


class Color(enum.Enum):
    RED = 1
    GREEN = "green"


class Number(enum.IntEnum):
    ONE = 1


class Perm(enum.Flag):
    R = 4
    W = 2


Point = collections.namedtuple("Point", "x y")


class Registered:
    """Pickled through a reducer in copyreg.dispatch_table (the
    ``registry`` fixture registers it)."""

    def __init__(self, value):
        self.value = value

    __repr__ = _content_repr


def reduce_registered(obj):
    return (Registered, (obj.value * 1,))


class ExtensionTarget1:
    pass


class ExtensionTarget2:
    pass


class ExtensionTarget4:
    pass


class ExtensionTargetMax:
    pass


# (module, name, code): registered by the registry fixture.
EXTENSION_CODES = [
    (__name__, "ExtensionTarget1", 0xF0),
    (__name__, "ExtensionTarget2", 0xFFFF),
    (__name__, "ExtensionTarget4", 0x10000),
    (__name__, "ExtensionTargetMax", 0x7FFFFFFF),
]


# ------------------------------------------------------- edge values

INT_EDGES = [
    0, 1, -1, 127, 128, 255, 256, -128, -129, -255, -256, -257,
    65535, 65536, -65535, -65536, -65537,
    2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32,
    2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1, 2**64, -2**64,
    # LONG1 holds up to 255 bytes, LONG4 from 256 on.
    2**(8 * 255 - 1) - 1, 2**(8 * 255 - 1), -2**(8 * 255 - 1),
    -2**(8 * 255 - 1) - 1,
    2**100_000, -2**100_000 + 12345,
]

FLOAT_EDGES = [
    0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 1e16, 1e22, 1e300, -1e-300,
    5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    float("inf"), float("-inf"), float("nan"), -float("nan"),
]

STR_EDGES = [
    "", "a", "\x00", "\n", "\r", "\\", "\x1a", "\\u1234", "'\"", "é", "€",
    "😀", "\udc80", "\ud800", "\ud800\udc00", "a\udcffb", "\u0085\u2028",
    "ascii text with spaces",
    "x" * 255, "x" * 256, "é" * 127 + "x", "é" * 128,
    "y" * 65535, "y" * 65536, "y" * 65537,
]

BYTES_EDGES = [
    b"", b"\x00", b"\xff", b"abc", bytes(range(256)),
    b"b" * 255, b"b" * 256, b"b" * 65535, b"b" * 65536, b"b" * 65537,
]

CONTAINER_SIZES = [0, 1, 2, 999, 1000, 1001, 2000, 2001]


# ----------------------------------------------------------- builders

def _recursive_list():
    a = [1]
    a.append(a)
    return a


def _recursive_dict():
    d = {"x": 1}
    d["self"] = d
    return d


def _recursive_tuple():
    inner = []
    t = (inner, 1)
    inner.append(t)
    return t


def _recursive_tuple_deep():
    inner = []
    t = ((inner,), "a", 2)
    inner.append(t)
    return [t, inner]


def _recursive_frozenset():
    holder = Plain()
    f = frozenset([holder, 1])
    holder.f = f
    return f


def _recursive_instance():
    p = Plain(name="p")
    p.me = p
    p.items = [p, {"p": p}]
    return p


def _recursive_set_in_instance():
    p = Plain()
    p.s = {1, 2}
    p.again = p.s
    return p


def _shared():
    shared_list = [1, 2]
    shared_tuple = (3, "four")
    shared_str = "shared string"
    shared_bytes = b"shared bytes"
    return [shared_list, shared_list, shared_tuple, shared_tuple,
            shared_str, shared_str, shared_bytes, shared_bytes,
            {"a": shared_list, "b": shared_tuple}]


def _many_refs():
    """Enough memo entries for LONG_BINPUT/LONG_BINGET (index > 255)."""
    items = [[i] for i in range(300)]
    return items + items


def _mutual():
    a, b = [], []
    a.append(b)
    b.append(a)
    return (a, b)


def _reduce_returning_shared():
    r = Rebuilt(("x",))
    return [r, r, Reduce3(), Reduce3()]


def _frame_crossing_strings():
    return ["z" * 30_000 + str(i) for i in range(5)]


def _frame_crossing_small():
    return [i for i in range(70_000)]


def _class_keys():
    return {Plain: 1, Outer.Inner: 2, module_function: 3}


def _deque():
    return collections.deque([1, "two", [3]], maxlen=5)


def _defaultdict():
    d = collections.defaultdict(list)
    d["a"].append(1)
    return d


def _ordered():
    return collections.OrderedDict([("b", 1), ("a", [2])])


def _namespace():
    return types.SimpleNamespace(a=1, b=[2])


def _partly_slotted():
    return PartlySlotted()


def _instance_with_many_types():
    return Plain(i=1, f=2.5, s="three", b=b"four", t=(5,), l=[6],
                 d={7: 8}, n=None, bo=True, c=3j)


def _picklebuffer_readonly():
    return PickleBuffer(b"read-only buffer data")


def _picklebuffer_writable():
    return PickleBuffer(bytearray(b"writable buffer data"))


def _sets_of_sizes():
    return {n: set(range(n)) for n in (0, 1, 999, 1000, 1001, 2001)}


def _frozensets_of_sizes():
    return [frozenset(range(n)) for n in (0, 1, 999, 1000, 1001)]


def _shared_frozenset():
    f = frozenset({1, 2})
    return [f, f, (f,)]


def _bytes_in_list_p2():
    b = b"\x00\x80\xff"
    return [b, b, b""]


def _bound_methods():
    p = Plain(x=1)
    return [p.method, p, Plain.a_classmethod, [].append]


def _array():
    return [array.array("i", [1, -2, 3]), array.array("d", [0.5]),
            array.array("u", "text")]


CATALOGUE = []


def _add(name, factory):
    CATALOGUE.append((name, factory))


for _i, _value in enumerate(INT_EDGES):
    _add(f"int:{_i}:{_value if abs(_value) < 2**70 else 'huge'}",
         (lambda v: lambda: v)(_value))
for _i, _value in enumerate(FLOAT_EDGES):
    _add(f"float:{_i}:{_value!r}", (lambda v: lambda: v)(_value))
for _i, _value in enumerate(STR_EDGES):
    _add(f"str:{_i}:len{len(_value)}", (lambda v: lambda: v)(_value))
for _i, _value in enumerate(BYTES_EDGES):
    _add(f"bytes:{_i}:len{len(_value)}", (lambda v: lambda: v)(_value))
    _add(f"bytearray:{_i}:len{len(_value)}",
         (lambda v: lambda: bytearray(v))(_value))
for _n in CONTAINER_SIZES:
    _add(f"list:{_n}", (lambda n: lambda: list(range(n)))(_n))
    _add(f"list-of-str:{_n}",
         (lambda n: lambda: [str(i) for i in range(n)])(_n))
    _add(f"dict:{_n}", (lambda n: lambda: {i: -i for i in range(n)})(_n))
    _add(f"dict-str-keys:{_n}",
         (lambda n: lambda: {f"k{i}": [i] for i in range(n)})(_n))
    _add(f"set:{_n}", (lambda n: lambda: set(range(n)))(_n))
    _add(f"frozenset:{_n}", (lambda n: lambda: frozenset(range(n)))(_n))
    _add(f"tuple:{_n}", (lambda n: lambda: tuple(range(n)))(_n))
    _add(f"MyList:{_n}", (lambda n: lambda: MyList(range(n)))(_n))
    _add(f"MyDict:{_n}",
         (lambda n: lambda: MyDict((i, i) for i in range(n)))(_n))
for _n in range(5):
    _add(f"tuple:{_n}:nested",
         (lambda n: lambda: tuple([i, (i,)] for i in range(n)))(_n))

for _name, _factory in [
    ("None", lambda: None),
    ("True", lambda: True),
    ("False", lambda: False),
    ("bools-in-list", lambda: [True, False, None]),
    ("complex", lambda: complex(1.5, -0.0)),
    ("Ellipsis", lambda: Ellipsis),
    ("NotImplemented", lambda: NotImplemented),
    ("NoneType", lambda: type(None)),
    ("EllipsisType", lambda: type(Ellipsis)),
    ("NotImplementedType", lambda: type(NotImplemented)),
    ("recursive-list", _recursive_list),
    ("recursive-dict", _recursive_dict),
    ("recursive-tuple", _recursive_tuple),
    ("recursive-tuple-deep", _recursive_tuple_deep),
    ("recursive-frozenset", _recursive_frozenset),
    ("recursive-instance", _recursive_instance),
    ("recursive-set-in-instance", _recursive_set_in_instance),
    ("mutual-recursion", _mutual),
    ("shared", _shared),
    ("many-refs", _many_refs),
    ("shared-frozenset", _shared_frozenset),
    ("bytes-shared", _bytes_in_list_p2),
    ("frame-crossing-strings", _frame_crossing_strings),
    ("frame-crossing-small", _frame_crossing_small),
    ("sets-of-sizes", _sets_of_sizes),
    ("frozensets-of-sizes", _frozensets_of_sizes),
    ("Plain", lambda: Plain(a=1, b="two", c=[3])),
    ("Plain-empty", Plain),
    ("Empty", Empty),
    ("Plain-many-types", _instance_with_many_types),
    ("Slotted", lambda: Slotted(1, [2], "three")),
    ("PartlySlotted", _partly_slotted),
    ("WithState", lambda: WithState([1, 2])),
    ("FalsyState", FalsyState),
    ("NoneState", lambda: NoneState(x=1)),
    ("ReduceToString", lambda: THE_SINGLETON),
    ("Reduce2", Reduce2),
    ("Reduce3", Reduce3),
    ("Reduce4", Reduce4),
    ("Reduce5", Reduce5),
    ("Reduce5Long", Reduce5Long),
    ("Reduce6", Reduce6),
    ("ReduceExByProtocol", ReduceExByProtocol),
    ("ReduceWithNoneItems", ReduceWithNoneItems),
    ("reduce-shared", _reduce_returning_shared),
    ("NewArgs", lambda: NewArgs(1, [2])),
    ("NewArgsEx", lambda: NewArgsEx(1, key="word")),
    ("NewArgsExNoKwargs", lambda: NewArgsExNoKwargs(1, 2)),
    ("MyList-attr", lambda: _with_attr(MyList([1, 2]), "attr", "x")),
    ("MyDict-attr", lambda: _with_attr(MyDict(a=1), "attr", [2])),
    ("MyTuple", lambda: MyTuple((1, 2))),
    ("MyStr", lambda: MyStr("sub")),
    ("MyBytes", lambda: MyBytes(b"sub")),
    ("MyInt", lambda: MyInt(2**70)),
    ("MyFloat", lambda: MyFloat(-0.0)),
    ("MySet", lambda: MySet([1, 2])),
    ("MyFrozenSet", lambda: MyFrozenSet([1, 2])),
    ("class", lambda: Plain),
    ("class-nested", lambda: Outer.Inner),
    ("class-nested-deeper", lambda: Outer.Inner.Deeper),
    ("function", lambda: module_function),
    ("function-nested", lambda: Outer.Inner.inner_function),
    ("function-in-class", lambda: Outer.outer_function),
    ("staticmethod", lambda: Plain.a_staticmethod),
    ("classmethod", lambda: Plain.a_classmethod),
    ("bound-methods", _bound_methods),
    ("class-keys", _class_keys),
    ("builtin-function", lambda: len),
    ("builtin-types", lambda: [int, str, dict, object, type, bytearray]),
    ("builtin-exceptions", lambda: [ValueError, KeyError, StopIteration]),
    ("exception-instance", lambda: ValueError("bad", 1)),
    ("method-descriptor", lambda: str.upper),
    ("builtin-method", lambda: "abc".upper),
    ("classmethod-descriptor", lambda: int.from_bytes),
    ("stdlib-functions", lambda: [functools.reduce, operator.add,
                                  copyreg._reconstructor]),
    ("fix-imports-names", lambda: [range, str, bytes, dict, map, filter,
                                   zip, input, IOError, collections.UserDict,
                                   functools.reduce, ConnectionError]),
    ("range", lambda: [range(10), range(-5, 5, 2)]),
    ("slice", lambda: slice(1, None, -1)),
    ("partial", lambda: functools.partial(module_function)),
    ("itemgetter", lambda: operator.itemgetter(1, "a")),
    ("attrgetter", lambda: operator.attrgetter("a.b")),
    ("enum", lambda: [Color.RED, Color.GREEN, Number.ONE, Perm.R | Perm.W]),
    ("namedtuple", lambda: Point(1, y=[2])),
    ("deque", _deque),
    ("OrderedDict", _ordered),
    ("defaultdict", _defaultdict),
    ("Counter", lambda: collections.Counter("abracadabra")),
    ("SimpleNamespace", _namespace),
    ("date", lambda: datetime.date(2024, 2, 29)),
    ("time", lambda: datetime.time(23, 59, 59, 999999)),
    ("datetime", lambda: datetime.datetime(1999, 12, 31, 23, 59, 1, 5)),
    ("datetime-tz", lambda: datetime.datetime(
        2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5,
                                                                minutes=30),
                                             "IST"))),
    ("datetime-utc", lambda: datetime.datetime(2020, 1, 1,
                                               tzinfo=datetime.timezone.utc)),
    ("timedelta", lambda: datetime.timedelta(days=-1, microseconds=3)),
    ("decimal", lambda: [decimal.Decimal("1.10"), decimal.Decimal("-0"),
                         decimal.Decimal("NaN"), decimal.Decimal("-Inf"),
                         decimal.Decimal("1e-1000")]),
    ("fraction", lambda: fractions.Fraction(-1, 3)),
    ("uuid", lambda: uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("ipaddress", lambda: [ipaddress.ip_address("10.0.0.1"),
                           ipaddress.ip_network("2001:db8::/32")]),
    ("path", lambda: pathlib.PurePosixPath("/a/b")),
    ("array", _array),
    ("PickleBuffer-readonly", _picklebuffer_readonly),
    ("PickleBuffer-writable", _picklebuffer_writable),
    ("Registered", lambda: Registered(7)),
    ("extension-codes", lambda: [ExtensionTarget1, ExtensionTarget2,
                                 ExtensionTarget4, ExtensionTargetMax,
                                 ExtensionTarget1]),
    # Objects the pickler refuses: the standard library's error is the
    # expected outcome.
    ("unpicklable-lambda", lambda: (lambda: 0)),
    ("unpicklable-local-class", lambda: _local_class()),
    ("unpicklable-generator", lambda: (i for i in ())),
    ("unpicklable-module", lambda: types),
    ("unpicklable-in-list", lambda: [1, 2, 3, (lambda: 0)]),
    ("unpicklable-in-dict", lambda: {"a": 1, "b": (i for i in ())}),
    ("unpicklable-memoryview", lambda: memoryview(b"abc")),
]:
    _add(_name, _factory)


def _with_attr(obj, name, value):
    setattr(obj, name, value)
    return obj


def _local_class():
    class Local:
        pass
    return Local()


NAMES = [name for name, _ in CATALOGUE]
FACTORIES = dict(CATALOGUE)
assert len(NAMES) == len(FACTORIES), "catalogue names must be unique"
