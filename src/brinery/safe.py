"""Safe loading of untrusted pickles: an allow-list policy and hard limits.

``brinery.safe.loads(data)`` / ``load(file)`` read a pickle the way
`pickle.loads` does, except that

- only globals on an allow-list can be used, and only in the ways the
  list permits (a class may be callable, or only constructible without
  arguments, or only usable as a value); the check is made on the exact
  (module, qualname) after the protocol's compatibility mapping and
  *before* anything is imported;
- calls (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) go only to allowed
  callables, with arguments each rule checks (``bytearray(2**33)`` is
  refused: bytearray accepts bytes or a latin-1 str, never a size);
- BUILD only touches objects this load created through an allowed
  constructor whose rule accepts state; SETITEM(S)/APPEND(S)/ADDITEMS only
  touch lists, dicts and sets this load created, or instances of allowed
  types that accept items; never a class, module, function, a global or
  an object handed in by ``persistent_load`` or out-of-band buffers;
- persistent IDs are refused unless the caller gives ``persistent_load``;
- EXT1/2/4 codes are resolved through copyreg's registry and the same
  allow-list (never through ``copyreg._extension_cache``);
- resources are bounded (`Limits`): with the defaults no input makes the
  loader hold more than about 16 times its size plus 64 MiB, or spend
  more than about a second of CPU per MB;
- every failure is an `UnpicklingError` (often its subclasses
  `UnsafePickleError` or `PickleLimitError`) with an ``offset`` attribute,
  never IndexError, KeyError, MemoryError, RecursionError or ValueError.
  There is no fallback to unsafe loading.

The default policy is "data": builtin scalars and containers at every
protocol (with the globals CPython writes for them: set, frozenset,
bytearray, complex, bytes via ``_codecs.encode(str, 'latin1')``, range,
``type(None)``...), ``copyreg._reconstructor`` for allowed types, datetime,
decimal, fractions, uuid and collections' OrderedDict, deque, Counter and
defaultdict (with allowed factories). The preset "numpy" adds arrays,
dtypes and scalars. Callers add names (``allow=["mod.Class"]``, or
``"mod:Outer.Inner"`` for nested qualnames, or the objects themselves);
an added name is trusted: it may be called with any arguments, built and
filled like an ordinary class, and the resource guarantee does not cover
what its code does.

Design: one machine, two halves
===============================

The unpickler does the byte-level work (parsing, limits, the memory
model) and hands every operation that can reach code to a `Session`, a
plain Python object holding the policy decisions and the per-unpickler
registries. There are two unpicklers, with the same outcomes (value and
charges, or error type, ``limit``/``what`` and ``offset``; the
differential test tests/test_safe_differential.py holds them to it):

- `_PySafeUnpickler`, the pure Unpickler with its own checked loop
  (the reference). `brinery.scan` runs the same loop with a session that
  returns placeholders instead of importing or calling, so the scanner
  and the loader read the same bytes the same way; the scanner always
  uses this one.
- `_CSafeUnpickler`, the C Unpickler (``brinery._accel``) in safe mode:
  a subclass of it whose ``load()`` runs the C machine with the checks of
  the section below (src/brinery/_accel/unpickler_safe.c) and converts
  errors as the pure one does. None when the C implementation is not
  active.

``SafeUnpickler`` is `_CSafeUnpickler` when ``brinery.IMPLEMENTATION``
is "c" and `_PySafeUnpickler` otherwise (``BRINERY_PURE_PYTHON=1``);
``loads``/``load`` use it unless given ``impl=`` (either class, or a
subclass). Both may be subclassed to override ``find_class`` (only what
the session resolved can be called) and ``persistent_load``; both have
``session``, ``memo`` and ``load()`` for several pickles from one file.

The budget is compared with the input consumed by the current opcode
(before it, after its payload for str/bytes/int/float opcodes); the pure
loop refreshes it lazily but checks any apparent overrun against the
current value, so when it is refreshed never changes an outcome.

What the C unpickler must enforce in safe mode
==============================================

The C implementation is given the same `Limits` and a `Session` (one per
unpickler, from ``Session(policy, limits)``) and must accept and refuse
exactly the same pickles, with the same error types, ``limit``/``what``
and offsets. Concretely:

1. Limits: plain ints, read once per load. On violation raise
   ``PickleLimitError(message, limit=<field name>)`` with ``offset`` set to
   the byte offset of the opcode (see 5). Checked before the work:

   - ``max_input_bytes``: bytes of this pickle (files: bytes read through
     ``read``/``readline`` during this load, never more, read-ahead
     included; a declared length that would cross the limit fails before
     anything is read or allocated; in memory the input is cut at the
     limit and any read past it is this error);
   - ``max_opcodes``: opcodes executed by this load (checked as each one
     is read);
   - ``max_stack_depth``: items on the stack, all MARK frames counted;
   - ``max_mark_depth``: open MARKs;
   - ``max_memo_entries``: a memo index must be below it (PUT, BINPUT,
     LONG_BINPUT, MEMOIZE);
   - ``max_container_len``: items in one list/tuple/dict/set after LIST,
     TUPLE, DICT, FROZENSET, APPEND(S), SETITEM(S), ADDITEMS (dict: pairs);
   - ``max_str_bytes``: total len() of the str, bytes and bytearray
     objects opcodes and allowed calls create (``session.count_str_bytes``);
   - ``max_int_digits``: the text argument line of INT, LONG, FLOAT, GET
     and PUT, newline included, may be at most max_int_digits + 3 bytes
     (before parsing: decimal int() is quadratic); ``max_int_bytes``: an
     int from LONG1/LONG4 may have at most 8 * max_int_bytes bits;
   - ``max_key_depth``, ``max_hash_collisions``, ``work_*``: enforced by
     ``session.check_keys`` (see 4);
   - ``memory_*``: by ``session.charge`` (see 2).

2. The memory model. Every allocation is charged, before it is made when
   its size is known (``session.charge(n)`` raises PickleLimitError
   "memory_per_input_byte" when ``session.memory`` passes
   ``session.budget``). The unpickler keeps ``session.consumed`` (bytes
   of this unpickler's input before the current opcode, after it for
   str/bytes/int/float opcodes, whose payload counts) and
   ``session.budget = memory_per_input_byte * consumed +
   memory_allowance`` up to date; it may refresh them lazily, but at
   least every 4096 bytes and before every session call. The charges
   (`COSTS`, identical in both implementations):

   - the stack's high-water mark, all frames counted, reserved 1024 slots
     at a time (``min(max_stack_depth, (depth | 1023) + 1)``):
     ``stack_slot`` per slot; each MARK: ``mark``;
   - the memo is dense: growing it to index i charges ``memo_slot`` for
     each new index up to i;
   - str, bytes, bytearray, int and float objects that opcodes create
     (INT, BININT, BININT2, LONG, LONG1, LONG4, FLOAT, BINFLOAT, STRING,
     BINSTRING, SHORT_BINSTRING, UNICODE, BINUNICODE, SHORT_BINUNICODE,
     BINUNICODE8, BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8):
     ``sys.getsizeof`` of the object, 0 for ints in [-5, 256] and
     for str of at most one character (shared singletons);
   - EMPTY_LIST ``list``, EMPTY_DICT ``dict``, EMPTY_SET ``set``; LIST
     ``list + n * list_item``; TUPLE ``tuple + n * tuple_item``; TUPLE1/2/3
     ``tuple + k * tuple_item``; DICT ``dict + n/2 * dict_item``;
     FROZENSET ``set + n * set_item``; APPEND(S) to a list ``list_item``,
     SETITEM(S) to a dict ``dict_item``, ADDITEMS to a set ``set_item`` per
     item; READONLY_BUFFER ``memoryview``;
   - everything the session does, it charges itself.

3. Every operation that can reach code goes through the session; the C
   side only parses and does the stack work, with the pure unpickler's
   checks and messages:

   - GLOBAL, STACK_GLOBAL (both str, else "STACK_GLOBAL requires str"),
     INST's names: ``self.find_class(module, name)``, whose safe version is
     ``session.resolve(module, name, proto, fix_imports)`` (compatibility
     mapping, policy check, then import); a subclass may override
     find_class, but only objects the session resolved can be called;
   - EXT1/2/4: ``session.ext(code, proto, fix_imports, find_class)``,
     never ``copyreg._extension_cache``;
   - REDUCE: ``session.reduce(func, args)`` (args must be a tuple);
     NEWOBJ: ``session.newobj(cls, args, {})``, NEWOBJ_EX:
     ``session.newobj(cls, args, kwargs)`` (after the type/tuple/dict
     checks); INST and OBJ: ``session.instantiate(cls, args, "INST" or
     "OBJ")``; BUILD: ``session.build(inst, state)``, which checks and
     performs it;
   - PERSID, BINPERSID: ``session.persistent(pid)`` (it calls the
     caller's persistent_load, or refuses); NEXT_BUFFER: push
     ``session.buffer(obj)``;
   - APPEND(S) to an exact list, SETITEM(S) to an exact dict, ADDITEMS to
     an exact set, whose ``id()`` is not a key of ``session.guarded``: do
     it natively after the length check, calling
     ``session.check_keys(keys, len(target) + n)`` first for dict keys and
     set items; any other target: ``session.add_items(target, opname,
     items)``, which checks and performs it;
   - DICT: ``session.check_keys(keys, n/2)``, FROZENSET:
     ``session.check_keys(items, n)``, before building.

4. ``session.check_keys(keys, size)`` before hashing any key or set item
   an opcode inserts: it refuses tuples nested deeper than
   ``max_key_depth`` (their hash() recurses in C and overflows the stack),
   charges hashing work (tuple nodes, counting shared subtuples each
   time) against ``work_per_input_byte * consumed + work_allowance``, and
   counts distinct keys with equal hashes in containers of 32 items or
   more (``max_hash_collisions``: colliding hashes make a dict quadratic).

5. Errors: an exception other than UnpicklingError raised while loading
   becomes ``UnpicklingError("<type>: <message>")`` chained to it
   (MemoryError becomes PickleLimitError "memory_per_input_byte"); a
   truncation caused by the input limit becomes PickleLimitError
   "max_input_bytes"; EOF before the first opcode raises
   `EndOfInputError` (an UnpicklingError and an EOFError). Every error
   gets ``offset`` (the failing opcode's byte offset) if it has none, and
   " (at byte N)" at the end of its message.
"""

import io as _io
import re
import sys
import types
from dataclasses import dataclass, fields, replace
from struct import Struct

from ._errors import PickleLimitError, UnpicklingError, UnsafePickleError
from ._opcodes import OPCODE_BY_NAME
from ._unpickler import (Unpickler, _DISPATCH, _Stop, add_items, build,
                         byte_view, compat_name, extension_key, getattribute)

__all__ = ["loads", "load", "SafeUnpickler", "Limits", "Policy", "Rule",
           "Session", "COSTS", "PRESETS", "EndOfInputError",
           "UnsafePickleError", "PickleLimitError"]

_sys_getsizeof = sys.getsizeof


def _getsizeof(obj):
    """sys.getsizeof, except 0 for a str of at most one character: those
    are CPython's shared singletons, whose size grows when any code caches
    their UTF-8 form, so measuring them would depend on the process's
    past (like ints in [-5, 256], they cost nothing new)."""
    if type(obj) is str and len(obj) <= 1:
        return 0
    return _sys_getsizeof(obj)


_FLOAT_SIZE = sys.getsizeof(0.0)
_unpack_uint4 = Struct("<I").unpack_from
_unpack_double = Struct(">d").unpack_from


class EndOfInputError(UnpicklingError, EOFError):
    """The input ended before the first opcode of a pickle.

    An `UnpicklingError` like every safe-mode error, and an EOFError so that
    ``while True: try: load(f) except EOFError: break`` still works.
    """


# ------------------------------------------------------------------ limits

@dataclass(frozen=True)
class Limits:
    """Resource limits of a safe load. Every field is a plain int.

    The defaults are generous for data and still bound memory to about
    ``16 * input + 64 MiB`` (the charged model is capped at
    ``memory_per_input_byte * input + memory_allowance``; the rest is the
    loader's own overhead) and CPU to about a second per MB.
    ``Limits(max_opcodes=10**6)`` or ``Limits().replace(...)`` change some.
    """

    max_input_bytes: int = 1 << 31
    max_opcodes: int = 1 << 31
    max_stack_depth: int = 1 << 24
    max_mark_depth: int = 1 << 20
    max_memo_entries: int = 1 << 24
    max_container_len: int = 1 << 26
    max_str_bytes: int = 1 << 32
    max_int_digits: int = 4300
    max_int_bytes: int = 1 << 20
    max_key_depth: int = 200
    max_hash_collisions: int = 64
    memory_per_input_byte: int = 12
    memory_allowance: int = 48 << 20
    work_per_input_byte: int = 64
    work_allowance: int = 1 << 24

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise TypeError(
                    f"Limits.{f.name} must be a non-negative int, not "
                    f"{value!r}")

    def replace(self, **changes):
        """A copy with some fields changed."""
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()

# The memory model: what each allocation is charged, in bytes. The values
# are CPython's object sizes on 64-bit builds (sys.getsizeof) and the
# measured peak cost of one more item in a growing container, resizes
# included; both implementations charge exactly these.
COSTS = {
    "stack_slot": 9,
    "mark": 80,
    "memo_slot": 9,
    "list": 56, "list_item": 9,
    "tuple": 40, "tuple_item": 8,
    "dict": 64, "dict_item": 96,
    "set": 216, "set_item": 120,
    "memoryview": 200,
    "registry_entry": 64,     # the session remembering one object
    "hash_entry": 104,        # the collision tracker remembering one hash
    "object": 64,             # an instance of an allowed class, by default
}
_C = COSTS


def _limit(limit, message):
    return PickleLimitError(f"{message} (Limits.{limit})", limit=limit)


def _unsafe(message, what):
    return UnsafePickleError(message, what=what)


def _describe(obj):
    """A short description of obj for messages: never its repr."""
    describe = getattr(type(obj), "_safe_description", None)
    if describe is not None and type(obj).__module__ == "brinery.scan":
        return describe(obj)        # a scanner's stand-in for an object
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if type(obj) in (str, bytes):
        text = repr(obj)
        return text if len(text) <= 60 else text[:57] + "..."
    if obj is None or type(obj) in (bool, int, float) and \
            abs(hash(obj)) < 1 << 60:
        return repr(obj)
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__} object"


# ------------------------------------------------------------------- rules

FOREIGN = "foreign"     # a call's result is an existing object


class Rule:
    """What a pickle may do with one allowed global.

    ``call(session, func, args)`` checks the arguments of REDUCE/INST/OBJ and
    returns ``(cost, kind)``; ``new(session, cls, args, kwargs)`` does the same
    for ``cls.__new__(cls, *args, **kwargs)`` (NEWOBJ, NEWOBJ_EX,
    copyreg.__newobj__, copyreg._reconstructor, INST/OBJ without
    arguments). ``kind`` describes the result: None for plain data,
    FOREIGN for an existing object, or the Rule that governs it (its
    ``build`` and ``items``). ``build(session, inst, state)`` checks a
    BUILD's state and returns its cost; ``items`` is the set of
    "append", "setitem", "add" allowed on instances. ``factory``: may be a
    defaultdict's default_factory. ``trusted``: added by the caller,
    anything goes. A rule without call/new is a value only. ``model(args)``
    computes the result of a call to a builtin data constructor with
    builtins alone, for the scanner (which never calls what a pickle
    names).
    """

    __slots__ = ("name", "call", "new", "build", "items", "item_cost",
                 "factory", "trusted", "shallow", "model")

    def __init__(self, name, *, call=None, new=None, build=None, items=(),
                 item_cost=96, factory=False, trusted=False, shallow=False,
                 model=None):
        self.name = name
        self.model = model
        self.call = call
        self.new = new
        self.build = build
        self.items = frozenset(items)
        self.item_cost = item_cost
        self.factory = factory
        self.trusted = trusted
        # Instances free their items by plain recursion in C (no
        # "trashcan"): they may not directly contain one another, or a
        # long chain would overflow the C stack when it is freed.
        self.shallow = shallow

    def __repr__(self):
        return f"<Rule {self.name}>"


def _trusted_rule(name):
    def anything(session, func, args, kwargs=None):
        return _C["object"], rule
    rule = Rule(name, call=anything, new=anything, build=_build_trusted,
                items=("append", "setitem", "add"), factory=True,
                trusted=True)
    return rule


def _build_trusted(session, inst, state):
    if type(state) is tuple and len(state) == 2 and \
            isinstance(state[1], dict) and "__class__" in state[1]:
        raise _unsafe("BUILD may not assign __class__", "BUILD __class__")
    return _C["object"]


def _need(condition, func_name, what):
    if not condition:
        raise _unsafe(f"{func_name}() refused: {what}", func_name)


def _int_args(args):
    return all(type(a) is int or type(a) is bool for a in args)


def _seq_items(session, obj):
    """The items of a list/tuple argument (or None if it is not one)."""
    if type(obj) in (list, tuple):
        if len(obj) > session.limits.max_container_len:
            raise _limit("max_container_len",
                         f"{type(obj).__name__} of {len(obj)} items")
        return obj
    return None


def _call_set(session, func, args):
    name = session.global_rule(func).name
    _need(len(args) <= 1, name, "at most one argument")
    items = ()
    if args:
        items = _seq_items(session, args[0])
        _need(items is not None, name, "the argument must be a list or tuple")
    session.check_keys(items, len(items))
    return _C["set"] + _C["set_item"] * len(items), None


def _call_bytearray(session, func, args):
    n = 0
    if len(args) == 1:
        _need(type(args[0]) in (bytes, bytearray), "builtins.bytearray",
              "one argument must be bytes")
        n = len(args[0])
    elif len(args) == 2:
        _need(type(args[0]) is str and args[1] in ("latin-1", "latin1"),
              "builtins.bytearray", "(str, 'latin-1') only")
        n = len(args[0])
    else:
        _need(not args, "builtins.bytearray", "bytes or (str, 'latin-1')")
    session.count_str_bytes(n)
    return _getsizeof(bytearray()) + n, None


def _call_bytes(session, func, args):
    _need(not args, "builtins.bytes", "only bytes() (the empty bytes)")
    return 0, None


def _call_complex(session, func, args, kwargs=None):
    _need(not kwargs and len(args) <= 2 and all(
        type(a) in (int, float, bool) for a in args), "builtins.complex",
        "numbers only")
    for a in args:
        if type(a) is int:
            _check_int_size(session, a)
    return _getsizeof(0j), None


def _call_range(session, func, args):
    _need(1 <= len(args) <= 3 and _int_args(args), "builtins.range",
          "1 to 3 ints")
    for a in args:
        _check_int_size(session, a)
    return 48 + sum(_getsizeof(a) for a in args), None


def _call_type(session, func, args):
    rule = session.global_rule(args[0]) if len(args) == 1 else None
    _need(len(args) == 1 and (args[0] is None or rule is not None and
                              rule.name in ("builtins.Ellipsis",
                                            "builtins.NotImplemented")),
          "builtins.type", "only type(None), type(...), type(NotImplemented)")
    return 0, FOREIGN


def _call_encode(session, func, args):
    _need(len(args) == 2 and type(args[0]) is str
          and args[1] in ("latin1", "latin-1"), "_codecs.encode",
          "only encode(str, 'latin1')")
    session.count_str_bytes(len(args[0]))
    return _getsizeof(b"") + len(args[0]), None


def _new_object(session, cls, args, kwargs=None):
    _need(not args and not kwargs, "builtins.object", "no arguments")
    return 16, None


def _new_plain(session, cls, args, kwargs=None):
    """cls.__new__(cls) for an allowed class that accepts BUILD."""
    rule = session.global_rule(cls)
    _need(not args and not kwargs, rule.name, "no arguments")
    return _C["object"], rule


def _call_reconstructor(session, func, args):
    _need(len(args) == 3, "copyreg._reconstructor", "three arguments")
    cls, base, state = args
    cls_rule = session.global_rule(cls)
    base_rule = session.global_rule(base)
    _need(cls_rule is not None and cls_rule.new is not None,
          "copyreg._reconstructor",
          "the class must be an allowed constructible class")
    if base_rule is _RULES["builtins.object"]:
        _need(state is None, "copyreg._reconstructor",
              "state must be None with base object")
        return cls_rule.new(session, cls, ())
    _need(cls_rule.trusted and base_rule is not None and
          base_rule.name in _RECONSTRUCTOR_BASES, "copyreg._reconstructor",
          "base must be object, or a builtin type for an added class")
    _need(type(state).__name__ == base_rule.name.split(".")[1],
          "copyreg._reconstructor", "state must be an instance of base")
    if not session.symbolic:
        _need(isinstance(cls, type) and issubclass(cls, base),
              "copyreg._reconstructor", "the class must derive from base")
    size = len(state) if hasattr(state, "__len__") else 1
    return _C["object"] + 96 * size, cls_rule


_RECONSTRUCTOR_BASES = frozenset(
    "builtins." + n for n in ("list", "dict", "set", "frozenset", "tuple",
                              "int", "float", "str", "bytes", "complex"))


def _call_newobj(session, func, args):
    _need(args, "copyreg.__newobj__", "a class")
    return session.check_new(args[0], args[1:], {})


def _call_newobj_ex(session, func, args):
    _need(len(args) == 3 and type(args[1]) is tuple
          and type(args[2]) is dict, "copyreg.__newobj_ex__",
          "(cls, tuple, dict)")
    return session.check_new(args[0], args[1], args[2])


def _check_int_size(session, value):
    if value.bit_length() > 8 * session.limits.max_int_bytes:
        raise _limit("max_int_bytes",
                     f"int of {value.bit_length()} bits")


def _call_datetime(session, func, args):
    name = "datetime constructor"
    _need(1 <= len(args) <= 9, name, "1 to 9 arguments")
    for a in args:
        t = type(a)
        if t is int or t is bool:
            _check_int_size(session, a)
        elif t in (bytes, str):
            _need(len(a) <= 16, name, "a short state string")
        elif a is not None:
            _need(session.kind_of(a) is _RULES["datetime.timezone"], name,
                  "tzinfo must be a datetime.timezone")
    return 96, None


def _call_timedelta(session, func, args):
    _need(len(args) <= 3 and _int_args(args), "datetime.timedelta",
          "up to 3 ints")
    for a in args:
        _check_int_size(session, a)
    return 48, _RULES["datetime.timedelta"]


def _call_timezone(session, func, args):
    _need(1 <= len(args) <= 2 and session.kind_of(args[0]) is
          _RULES["datetime.timedelta"] and
          (len(args) == 1 or type(args[1]) is str), "datetime.timezone",
          "(timedelta[, str])")
    return 64, _RULES["datetime.timezone"]


def _call_decimal(session, func, args):
    _need(len(args) == 1 and type(args[0]) is str, "decimal.Decimal",
          "one str")
    s = args[0]
    _need(len(s) <= 4 * session.limits.max_int_digits + 64,
          "decimal.Decimal", f"at most {4 * session.limits.max_int_digits}"
          f" characters")
    return 104 + len(s), None


def _call_fraction(session, func, args):
    limit = session.limits.max_int_digits
    if len(args) == 1 and type(args[0]) is str:
        if len(args[0]) > 2 * limit + 8:
            raise _limit("max_int_digits", "Fraction string too long")
        return 128 + 2 * len(args[0]), None
    _need(1 <= len(args) <= 2 and all(type(a) is int for a in args),
          "fractions.Fraction", "a str or one or two ints")
    for a in args:
        # gcd() of the two is quadratic in their size.
        if a.bit_length() > limit * 10 // 3 + 1:
            raise _limit("max_int_digits",
                         f"Fraction term of {a.bit_length()} bits")
    return 128 + sum(_getsizeof(a) for a in args), None


def _build_uuid(session, inst, state):
    _need(type(state) is dict and "int" in state and
          set(state) <= {"int", "is_safe"}, "uuid.UUID",
          "state must be {'int': ..., 'is_safe': ...}")
    value = state["int"]
    _need(type(value) is int and 0 <= value < 1 << 128, "uuid.UUID",
          "int must be in [0, 2**128)")
    _need(state.get("is_safe") in (None, 0, -1), "uuid.UUID",
          "is_safe must be 0, -1 or None")
    return 0


def _call_enum_lookup(session, func, args):
    _need(len(args) == 1 and (args[0] is None or type(args[0]) in
                              (int, str, bool)), "enum lookup",
          "one int, str or None")
    if type(args[0]) is int:
        _check_int_size(session, args[0])
    return 0, FOREIGN


def _pairs(session, name, obj):
    """The (key, value) items of a dict or list of pairs argument."""
    if type(obj) is dict:
        return list(obj.keys()), list(obj.values())
    items = _seq_items(session, obj)
    _need(items is not None, name, "a dict or a list of pairs")
    keys, values = [], []
    for pair in items:
        _need(type(pair) in (list, tuple) and len(pair) == 2, name,
              "a dict or a list of pairs")
        keys.append(pair[0])
        values.append(pair[1])
    return keys, values


def _call_ordered_dict(session, func, args):
    _need(len(args) <= 1, "collections.OrderedDict", "at most one argument")
    keys = values = ()
    if args:
        keys, values = _pairs(session, "collections.OrderedDict", args[0])
    session.check_keys(keys, len(keys))
    rule = _RULES["collections.OrderedDict"]
    return 128 + rule.item_cost * len(keys), rule


def _call_counter(session, func, args):
    _need(len(args) <= 1, "collections.Counter", "at most one argument")
    keys = ()
    if args:
        _need(type(args[0]) is dict, "collections.Counter",
              "the argument must be a dict")
        keys = list(args[0])
    session.check_keys(keys, len(keys))
    return 88 + _C["dict_item"] * len(keys), _RULES["collections.Counter"]


def _check_shallow(session, name, values):
    """Refuse a shallow container (or an object array) directly inside
    another: a chain of them would overflow the C stack when freed."""
    for value in values:
        kind = session.kind_of(value)
        if kind is not None and kind is not FOREIGN and kind.shallow:
            raise _unsafe(f"{name} may not directly contain a {kind.name}",
                          f"{name} nesting")


def _call_defaultdict(session, func, args):
    name = "collections.defaultdict"
    _need(len(args) <= 2, name, "(factory[, mapping])")
    if args and args[0] is not None:
        rule = session.global_rule(args[0])
        _need(rule is not None and rule.factory, name,
              "the default factory must be an allowed type")
    keys = ()
    if len(args) == 2:
        keys, values = _pairs(session, name, args[1])
        _check_shallow(session, name, values)
    session.check_keys(keys, len(keys))
    return 72 + _C["dict_item"] * len(keys), _RULES[name]


def _call_deque(session, func, args):
    name = "collections.deque"
    _need(len(args) <= 2, name, "(iterable[, maxlen])")
    items = ()
    if args:
        items = _seq_items(session, args[0])
        _need(items is not None, name, "the iterable must be a list or tuple")
        _check_shallow(session, name, items)
    if len(args) == 2:
        _need(args[1] is None or type(args[1]) is int and args[1] >= 0, name,
              "maxlen must be None or an int >= 0")
    return 760 + 9 * len(items), _RULES[name]


# -- numpy (preset "numpy"): arrays, dtypes and scalars, nothing else.

_DTYPE_SPEC = re.compile(r"[A-Za-z?][0-9]{0,10}(?:\[[A-Za-z0-9]{1,8}\])?\Z")


def _is_dtype(session, obj):
    return session.kind_of(obj) is _NUMPY_DTYPE


def _call_dtype(session, func, args):
    name = "numpy.dtype"
    _need(1 <= len(args) <= 3 and type(args[0]) is str and
          _DTYPE_SPEC.match(args[0]), name, "a type code such as 'f8'")
    _need(all(a in (0, 1) and type(a) in (int, bool) for a in args[1:]),
          name, "align and copy must be booleans")
    # copy=False would return numpy's shared descriptor, which a BUILD
    # would then modify for the whole process.
    _need(len(args) == 3 and args[2], name, "copy must be True")
    return 256, _NUMPY_DTYPE


def _build_dtype(session, inst, state):
    name = "numpy.dtype"
    _need(type(state) is tuple and len(state) in (8, 9), name,
          "state must be a tuple of 8 or 9 items")
    version, endian, sub, names, flds, elsize, align, flags = state[:8]
    _need(type(version) is int and 0 <= version <= 4, name, "bad version")
    _need(type(endian) is str and endian in "<>|=" and len(endian) == 1,
          name, "bad byte order")
    _need(all(type(v) is int for v in (elsize, align, flags)) and
          -1 <= elsize < 1 << 31 and -1 <= align <= 64, name,
          "bad sizes")
    if len(state) == 9:
        meta = state[8]
        if type(meta) is tuple:          # datetimes: (dict, (unit, ...))
            _need(len(meta) == 2 and (meta[0] is None or type(meta[0]) is
                                      dict) and type(meta[1]) is tuple and
                  len(meta[1]) == 4 and type(meta[1][0]) in (bytes, str) and
                  _int_args(meta[1][1:]), name, "bad datetime metadata")
        else:
            _need(meta is None or type(meta) is dict, name,
                  "metadata must be a dict")
    symbolic = session.symbolic
    if sub is not None:
        _need(type(sub) is tuple and len(sub) == 2 and
              _is_dtype(session, sub[0]) and type(sub[1]) is tuple and
              _int_args(sub[1]) and all(0 <= d < 1 << 31 for d in sub[1]),
              name, "bad subarray")
        if not symbolic:
            count = 1
            for d in sub[1]:
                count *= d
            _need(count * sub[0].itemsize == elsize, name,
                  "subarray size does not match")
    _need((names is None) == (flds is None), name, "names without fields")
    if names is not None:
        _need(type(names) is tuple and type(flds) is dict and
              all(type(n) is str for n in names) and
              set(names) == set(flds) and len(names) == len(flds),
              name, "names and fields differ")
        for field in flds.values():
            _need(type(field) is tuple and len(field) in (2, 3) and
                  _is_dtype(session, field[0]) and type(field[1]) is int,
                  name, "bad field")
            if not symbolic:
                _need(0 <= field[1] and
                      field[1] + field[0].itemsize <= elsize, name,
                      "field outside the item")
    return 256 + 128 * (len(flds) if flds else 0)


def _array_count(session, name, shape):
    _need(type(shape) is tuple and _int_args(shape) and
          all(d >= 0 for d in shape) and len(shape) <= 64, name,
          "shape must be a tuple of ints >= 0")
    count = 1
    for d in shape:
        count *= d
    if count > session.limits.max_container_len:
        raise _limit("max_container_len", f"array of {count} items")
    return count


def _call_reconstruct(session, func, args):
    name = "numpy._reconstruct"
    _need(len(args) == 3 and session.global_rule(args[0]) is
          _NUMPY_NDARRAY and args[1] == (0,) and args[2] in (b"b", "b"),
          name, "only _reconstruct(ndarray, (0,), b'b')")
    return 128, _NUMPY_NDARRAY_RESULT


def _build_ndarray(session, inst, state):
    name = "numpy.ndarray"
    _need(type(state) is tuple and len(state) in (4, 5), name,
          "state must be (version, shape, dtype, is_fortran, data)")
    if len(state) == 5:
        _need(state[0] == 1 and type(state[0]) is int, name, "version 1")
        state = state[1:]
    shape, dtype, fortran, raw = state
    count = _array_count(session, name, shape)
    _need(_is_dtype(session, dtype) and type(fortran) in (bool, int), name,
          "dtype and is_fortran")
    if type(raw) is list:
        _need(session.symbolic or dtype.hasobject, name,
              "a list of items only for object arrays")
        _need(len(raw) == count, name, "item count does not match shape")
        _check_shallow(session, name, raw)
        if not session.symbolic:
            for item in raw:
                _need(not (type(item).__module__ == "numpy" and
                           type(item).__name__ == "ndarray" and
                           item.dtype.hasobject), name,
                      "object arrays may not contain object arrays")
        return 128 + 8 * count
    _need(type(raw) in (bytes, str), name, "data must be bytes")
    if not session.symbolic:
        _need(not dtype.hasobject, name, "object arrays need a list")
        _need(len(raw) == count * dtype.itemsize, name,
              "data size does not match shape and dtype")
    return 128 + len(raw)


def _call_scalar(session, func, args):
    name = "numpy.scalar"
    _need(1 <= len(args) <= 2 and _is_dtype(session, args[0]), name,
          "(dtype, data)")
    if session.symbolic:
        return 128, None
    if args[0].hasobject:
        return 0, None
    _need(len(args) == 2 and type(args[1]) in (bytes, str) and
          len(args[1]) == args[0].itemsize, name,
          "data must be bytes of the dtype's item size")
    return 128 + len(args[1]), None


def _call_frombuffer(session, func, args):
    name = "numpy._frombuffer"
    _need(len(args) == 4 and _is_dtype(session, args[1]) and
          args[3] in ("C", "F", "A"), name, "(buffer, dtype, shape, order)")
    buf = args[0]
    count = _array_count(session, name, args[2])
    if not session.symbolic:
        _need(not args[1].hasobject, name, "not for object arrays")
        try:
            nbytes = memoryview(buf).nbytes
        except TypeError:
            raise _unsafe(f"{name}() refused: the buffer is not a buffer",
                          name) from None
        _need(nbytes == count * args[1].itemsize, name,
              "buffer size does not match")
    return 128, None


_NUMPY_DTYPE = Rule("numpy.dtype", call=_call_dtype, build=_build_dtype)
_NUMPY_NDARRAY = Rule("numpy.ndarray")
_NUMPY_NDARRAY_RESULT = Rule("numpy.ndarray", build=_build_ndarray)


def _make_rules():
    rules = {}

    def add(name, **kw):
        rules[name] = Rule(name, **kw)

    for n in ("bool", "int", "float", "str", "list", "dict", "tuple"):
        add("builtins." + n, factory=True)
    add("builtins.object", new=_new_object, factory=True)
    add("builtins.set", call=_call_set, factory=True,
        model=lambda args: set(*args))
    add("builtins.frozenset", call=_call_set, factory=True,
        model=lambda args: frozenset(*args))
    add("builtins.bytearray", call=_call_bytearray, factory=True,
        model=lambda args: bytearray(args[0].encode("latin-1") if len(args)
                                     == 2 else args[0] if args else b""))
    add("builtins.bytes", call=_call_bytes, factory=True,
        model=lambda args: b"")
    add("builtins.complex", call=_call_complex, new=_call_complex,
        factory=True, model=lambda args: complex(*args))
    add("builtins.range", call=_call_range, model=lambda args: range(*args))
    add("builtins.type", call=_call_type)
    add("builtins.Ellipsis")
    add("builtins.NotImplemented")
    add("_codecs.encode", call=_call_encode,
        model=lambda args: args[0].encode("latin-1"))
    add("copyreg._reconstructor", call=_call_reconstructor)
    add("copyreg.__newobj__", call=_call_newobj)
    add("copyreg.__newobj_ex__", call=_call_newobj_ex)
    for n in ("datetime", "date", "time"):
        add("datetime." + n, call=_call_datetime)
    add("datetime.timedelta", call=_call_timedelta)
    add("datetime.timezone", call=_call_timezone)
    add("decimal.Decimal", call=_call_decimal)
    add("fractions.Fraction", call=_call_fraction)
    add("uuid.UUID", new=_new_plain, build=_build_uuid)
    add("uuid.SafeUUID", call=_call_enum_lookup)
    add("collections.OrderedDict", call=_call_ordered_dict,
        items=("setitem",), item_cost=144, factory=True)
    add("collections.Counter", call=_call_counter, items=("setitem",),
        factory=True)
    add("collections.defaultdict", call=_call_defaultdict,
        items=("setitem",), factory=True, shallow=True)
    add("collections.deque", call=_call_deque, items=("append",),
        item_cost=9, factory=True, shallow=True)
    return rules


_RULES = _make_rules()


def _numpy_rules():
    rules = {"numpy.dtype": _NUMPY_DTYPE, "numpy.ndarray": _NUMPY_NDARRAY}
    # NumPy 1.x writes numpy.core.*, NumPy 2 writes numpy._core.*.
    for core in ("numpy.core", "numpy._core"):
        rules[core + ".multiarray._reconstruct"] = Rule(
            core + ".multiarray._reconstruct", call=_call_reconstruct)
        rules[core + ".multiarray.scalar"] = Rule(
            core + ".multiarray.scalar", call=_call_scalar)
        rules[core + ".numeric._frombuffer"] = Rule(
            core + ".numeric._frombuffer", call=_call_frombuffer)
    return rules


PRESETS = {"numpy": _numpy_rules()}


# ------------------------------------------------------------------ policy

def _split_name(item):
    """A user's allow-list entry -> (module, qualname)."""
    if isinstance(item, tuple) and len(item) == 2 and \
            all(type(p) is str for p in item):
        return item
    if isinstance(item, str):
        if ":" in item:
            module, _, qualname = item.partition(":")
        else:
            module, _, qualname = item.rpartition(".")
        if module and qualname:
            return module, qualname
        raise ValueError(
            f"allow-list entry {item!r} must be 'module.name' or "
            f"'module:qualname'")
    module = getattr(item, "__module__", None)
    qualname = getattr(item, "__qualname__", None)
    if type(module) is str and type(qualname) is str:
        return module, qualname
    raise TypeError(
        f"allow-list entries are 'module.name' strings, (module, qualname) "
        f"pairs, classes or functions, not {type(item).__name__}")


class Policy:
    """An allow-list of exact (module, qualname) names and their rules.

    ``Policy(allow=(), presets=(), data=True)``: the data rules (unless
    ``data`` is false), the rules of each named preset, and every name in
    ``allow`` as a trusted name.
    """

    def __init__(self, allow=(), presets=(), *, data=True):
        rules = dict(_RULES) if data else {}
        if isinstance(presets, str):
            presets = (presets,)
        for preset in presets:
            try:
                rules.update(PRESETS[preset])
            except KeyError:
                raise ValueError(
                    f"unknown preset {preset!r}; known: "
                    f"{', '.join(sorted(PRESETS))}") from None
        if isinstance(allow, str):
            allow = (allow,)
        for item in allow:
            module, qualname = _split_name(item)
            name = f"{module}:{qualname}"
            rules[name] = _trusted_rule(f"{module}.{qualname}")
        # Data rules are keyed "module.name" with one dot before a simple
        # name; trusted names "module:qualname" so a nested qualname cannot
        # be confused with a module path.
        self._rules = rules
        self.presets = tuple(presets)

    def rule(self, module, qualname):
        """The Rule for (module, qualname), or None if it is not allowed."""
        rule = self._rules.get(f"{module}:{qualname}")
        if rule is None and "." not in qualname:
            rule = self._rules.get(f"{module}.{qualname}")
        return rule

    def allows(self, module, qualname):
        return self.rule(module, qualname) is not None

    def names(self):
        """Every allowed name, as "module.qualname"."""
        return sorted({r.name for r in self._rules.values()})


DEFAULT_POLICY = Policy()


def _policy_for(policy, allow, preset):
    if policy is not None:
        if allow or preset:
            raise TypeError("give either policy or allow/preset, not both")
        return policy
    if not allow and not preset:
        return DEFAULT_POLICY
    return Policy(allow, preset or ())


# ----------------------------------------------------------------- session

_UNTRACKED_KEYS = frozenset({str, bytes, type(None), bool})
_HASH_MODULUS = sys.hash_info.modulus
_NOT_TARGETS = (type, types.ModuleType, types.FunctionType,
                types.BuiltinFunctionType, types.MethodType,
                types.BuiltinMethodType, types.WrapperDescriptorType,
                types.MethodWrapperType, types.MethodDescriptorType,
                types.ClassMethodDescriptorType, types.GetSetDescriptorType,
                types.MemberDescriptorType)
_ITEM_KIND = {"APPEND": "append", "APPENDS": "append", "SETITEM": "setitem",
              "SETITEMS": "setitem", "ADDITEMS": "add"}


class Session:
    """The policy side of one unpickler: decisions and registries.

    The pure and the C unpickler call it for every operation that can reach
    code (see the module docstring); it raises UnsafePickleError or
    PickleLimitError (without offset: the unpickler adds it) and adds what
    it allocates to ``memory`` and its hashing work to ``work``.

    Registries (kept for the unpickler's life, like its memo):
    ``globals`` id -> (object, Rule) of every global resolved;
    ``guarded`` id -> object that BUILD and item opcodes may not touch
    (globals, persistent and out-of-band objects, existing objects
    returned by calls); ``kinds`` id -> (object, Rule) of objects made by
    allowed constructors whose rule governs BUILD or items.
    """

    symbolic = False

    def __init__(self, policy=None, limits=None, persistent_load=None):
        self.policy = policy if policy is not None else DEFAULT_POLICY
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.persistent_load = persistent_load
        self.memory = 0
        self.work = 0
        self.str_bytes = 0
        # Bytes of input consumed before the current opcode and the memory
        # budget they give, set by the unpickler (set_consumed).
        self.consumed = 0
        self.budget = self.limits.memory_allowance
        self.globals = {}
        self.guarded = {}
        self.kinds = {}
        self._hashes = {}
        self._collisions = {}

    # -- budgets: charged before the allocation they pay for

    def set_consumed(self, consumed):
        self.consumed = consumed
        self.budget = self.limits.memory_per_input_byte * consumed + \
            self.limits.memory_allowance

    def charge(self, n):
        """Add n bytes to the memory model; refuse if over budget."""
        self.memory += n
        if self.memory > self.budget:
            limits = self.limits
            raise _limit(
                "memory_per_input_byte",
                f"the load would hold more than "
                f"{limits.memory_per_input_byte} bytes per input byte + "
                f"{limits.memory_allowance} (charged {self.memory} after "
                f"{self.consumed} bytes of input)")

    def charge_work(self, n):
        """Add n units of hashing work; refuse if over budget."""
        self.work += n
        limits = self.limits
        if self.work > limits.work_per_input_byte * self.consumed + \
                limits.work_allowance:
            raise _limit("work_per_input_byte",
                         f"hashing work {self.work} after {self.consumed} "
                         f"bytes of input")

    # -- questions validators ask

    def global_rule(self, obj):
        """The Rule of obj if it is a global this session resolved."""
        entry = self.globals.get(id(obj))
        return entry[1] if entry is not None else None

    def kind_of(self, obj):
        """The Rule governing obj, if an allowed constructor made it."""
        entry = self.kinds.get(id(obj))
        if entry is not None:
            return entry[1]
        return FOREIGN if id(obj) in self.guarded else None

    def count_str_bytes(self, n):
        self.str_bytes += n
        if self.str_bytes > self.limits.max_str_bytes:
            raise _limit("max_str_bytes",
                         f"{self.str_bytes} bytes of str/bytes")

    # -- globals

    def resolve(self, module, name, proto, fix_imports):
        """find_class for safe mode: map, check, then import."""
        rule = self.check_global(module, name, proto, fix_imports)
        if proto < 3 and fix_imports:
            module, name = compat_name(module, name)
        sys.audit("pickle.find_class", module, name)
        __import__(module, level=0)
        obj = getattribute(sys.modules[module], name, proto >= 4)
        self.register_global(obj, rule)
        return obj

    def check_global(self, module, name, proto, fix_imports):
        """The Rule for a global named in the stream, or refuse it."""
        if type(module) is not str or type(name) is not str:
            raise UnpicklingError("global names must be str")
        if proto < 3 and fix_imports:
            module, name = compat_name(module, name)
        rule = self.policy.rule(module, name)
        if rule is None:
            shown = f"{module}.{name}"
            if len(shown) > 200:
                shown = shown[:197] + "..."
            raise _unsafe(f"global '{shown}' is not allowed", shown)
        return rule

    def register_global(self, obj, rule):
        key = id(obj)
        if key not in self.globals:
            self.charge(_C["registry_entry"])
            self.globals[key] = (obj, rule)
            self.guarded[key] = obj

    def ext(self, code, proto, fix_imports, find_class):
        """EXT1/2/4: the registry's name, through find_class."""
        module, name = extension_key(code)
        return find_class(module, name)

    # -- calls

    def _callable_rule(self, func, opname):
        rule = self.global_rule(func)
        if rule is None:
            raise _unsafe(f"{opname} of {self._name_of(func)}: only "
                          f"allowed globals may be called", opname)
        return rule

    def check_call(self, func, args, opname="REDUCE"):
        rule = self._callable_rule(func, opname)
        if rule.call is None:
            raise _unsafe(f"{opname}: {rule.name} may not be called",
                          rule.name)
        return rule.call(self, func, args)

    def check_new(self, cls, args, kwargs, opname="NEWOBJ"):
        rule = self._callable_rule(cls, opname)
        if rule.new is None:
            raise _unsafe(f"{opname}: {rule.name} may not be created this "
                          f"way", rule.name)
        return rule.new(self, cls, args, kwargs)

    def _reserve(self, checked):
        cost, kind = checked
        if kind is not None:
            cost += _C["registry_entry"]
        self.charge(cost)
        return kind

    def _made(self, result, kind):
        if kind is FOREIGN:
            self.guarded[id(result)] = result
        elif kind is not None:
            self.kinds[id(result)] = (result, kind)
        return result

    def reduce(self, func, args):
        kind = self._reserve(self.check_call(func, args))
        return self._made(func(*args), kind)

    def newobj(self, cls, args, kwargs):
        opname = "NEWOBJ_EX" if kwargs else "NEWOBJ"
        kind = self._reserve(self.check_new(cls, args, kwargs, opname))
        return self._made(cls.__new__(cls, *args, **kwargs), kind)

    def instantiate(self, cls, args, opname="INST"):
        """INST/OBJ: cls.__new__(cls) without args (and no
        __getinitargs__), else cls(*args)."""
        if not args and isinstance(cls, type) and \
                getattr(cls, "__getinitargs__", None) is None:
            kind = self._reserve(self.check_new(cls, args, {}, opname))
            return self._made(cls.__new__(cls), kind)
        kind = self._reserve(self.check_call(cls, args, opname))
        return self._made(cls(*args), kind)

    # -- BUILD and items

    def _check_target(self, obj, opname):
        if id(obj) in self.guarded or isinstance(obj, _NOT_TARGETS):
            raise _unsafe(f"{opname} on {self._name_of(obj)} is not allowed",
                          f"{opname} {self._name_of(obj)}")

    def _name_of(self, obj):
        rule = self.global_rule(obj)
        if rule is not None:
            return rule.name
        if id(obj) in self.guarded:
            return f"an object this load did not create ({_describe(obj)})"
        return _describe(obj)

    def check_build(self, inst, state):
        self._check_target(inst, "BUILD")
        kind = self.kind_of(inst)
        if kind is None or kind.build is None:
            what = kind.name if kind is not None else _describe(inst)
            raise _unsafe(f"BUILD on {what} is not allowed (only objects "
                          f"made by an allowed constructor that takes "
                          f"state)", f"BUILD {what}")
        return kind.build(self, inst, state)

    def build(self, inst, state):
        self.charge(self.check_build(inst, state))
        build(inst, state)

    def check_items(self, target, opname, items):
        """Check that an item opcode may touch target; return item cost."""
        self._check_target(target, opname)
        t = type(target)
        kind = self.kind_of(target)
        if kind is None:
            plain = {list: "append", dict: "setitem", set: "add"}.get(t)
            if plain != _ITEM_KIND[opname]:
                raise _unsafe(f"{opname} on {_describe(target)} is not "
                              f"allowed", f"{opname} {t.__name__}")
            cost = {list: _C["list_item"], dict: _C["dict_item"],
                    set: _C["set_item"]}[t]
        else:
            if _ITEM_KIND[opname] not in kind.items:
                raise _unsafe(f"{opname} on {kind.name} is not allowed",
                              f"{opname} {kind.name}")
            cost = kind.item_cost
        n = len(items) // 2 if _ITEM_KIND[opname] == "setitem" else len(items)
        if not self.symbolic and \
                len(target) + n > self.limits.max_container_len:
            raise _limit("max_container_len",
                         f"container of {len(target) + n} items")
        if _ITEM_KIND[opname] == "setitem":
            self.check_keys(items[::2], n)
            if kind is not None and kind.shallow:
                _check_shallow(self, kind.name, items[1::2])
        elif _ITEM_KIND[opname] == "add":
            self.check_keys(items, n)
        elif kind is not None and kind.shallow:
            _check_shallow(self, kind.name, items)
        return cost * n

    def add_items(self, target, opname, items):
        """APPEND(S)/SETITEM(S)/ADDITEMS on anything but the fast cases."""
        self.charge(self.check_items(target, opname, items))
        add_items(target, opname, items)

    # -- keys: deep tuples crash hash(), colliding hashes make dicts
    #    quadratic, and a DAG of shared tuples is exponential to hash.

    def check_keys(self, keys, size):
        max_depth = self.limits.max_key_depth
        track = size >= 32
        work = 0
        for key in keys:
            t = type(key)
            if t in _UNTRACKED_KEYS:
                continue
            if t is int:
                if -_HASH_MODULUS < key < _HASH_MODULUS:
                    continue
                work += 1 + (key.bit_length() >> 9)
            elif t is tuple:
                work += self._tuple_work(key, max_depth)
            else:
                work += 1
            if track:
                self._track_hash(key)
        if work:
            self.charge_work(work)

    def _tuple_work(self, key, max_depth):
        """Nodes hash(key) visits (shared subtuples counted each time),
        computed without recursion; refuses nesting deeper than
        max_depth."""
        done = {}                 # id -> work of finished subtuples
        path = [(key, iter(key))]
        while path:
            node, items = path[-1]
            for item in items:
                if type(item) is tuple and id(item) not in done:
                    if len(path) >= max_depth:
                        raise _limit("max_key_depth",
                                     f"a key nests tuples deeper than "
                                     f"{max_depth}")
                    path.append((item, iter(item)))
                    break
            else:
                path.pop()
                work = 1
                for item in node:
                    t = type(item)
                    if t is tuple:
                        work += done[id(item)]
                    elif t is int:
                        work += item.bit_length() >> 9
                done[id(node)] = work
        return done[id(key)]

    def _track_hash(self, key):
        try:
            h = hash(key)
        except TypeError:
            return          # unhashable: the insertion itself will fail
        seen = self._hashes.get(h, _MISSING)
        if seen is _MISSING:
            self.charge(_C["hash_entry"])
            self._hashes[h] = key
            return
        if seen is key or type(seen) is type(key) and seen == key:
            return
        count = self._collisions.get(h, 0) + 1
        self._collisions[h] = count
        if count > self.limits.max_hash_collisions:
            raise _limit("max_hash_collisions",
                         f"more than {self.limits.max_hash_collisions} "
                         f"distinct keys with the same hash")

    # -- persistent IDs and out-of-band buffers

    def persistent(self, pid):
        if self.persistent_load is None:
            raise _unsafe("persistent IDs are refused (no persistent_load "
                          "was given)", "persistent id")
        obj = self.persistent_load(pid)
        self.charge(_C["registry_entry"])
        self.guarded[id(obj)] = obj
        return obj

    def buffer(self, obj):
        self.charge(_C["registry_entry"])
        self.guarded[id(obj)] = obj
        return obj


_MISSING = object()


# --------------------------------------------------------------- unpickler

def _op(name):
    return OPCODE_BY_NAME[name].byte


# Opcodes that push one new str/bytes/bytearray/int/float, charged at
# sys.getsizeof of what they pushed.
_LEAF = [False] * 256
for _name in ("INT", "BININT", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
              "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
              "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
              "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
    _LEAF[_op(_name)] = True
_STR_TYPES = (str, bytes, bytearray)
_LONG_OPS = (_op("LONG1"), _op("LONG4"))
_INPUT_CAPPED = "the input was cut at max_input_bytes"


def _safe_error(exc, offset, at_start, input_cut):
    """The exception to raise for exc, raised at byte offset (both
    implementations). input_cut: the input was cut at max_input_bytes."""
    if isinstance(exc, EOFError) and not isinstance(
            exc, UnpicklingError):
        if input_cut:
            new = _limit("max_input_bytes", _INPUT_CAPPED)
        elif at_start:
            new = EndOfInputError("Ran out of input")
        else:
            new = UnpicklingError("pickle data was truncated")
    elif isinstance(exc, UnpicklingError):
        if input_cut and type(exc) is UnpicklingError and \
                str(exc) == "pickle data was truncated":
            new = _limit("max_input_bytes", _INPUT_CAPPED)
        else:
            new = exc
    elif isinstance(exc, MemoryError):
        new = _limit("memory_per_input_byte", "out of memory")
    else:
        text = str(exc)
        if len(text) > 200:
            text = text[:197] + "..."
        new = UnpicklingError(f"{type(exc).__name__}: {text}")
    if new is not exc:
        for note in getattr(exc, "__notes__", ()):
            new.add_note(note)
    if getattr(new, "offset", None) is None:
        new.offset = offset
        if new.args and isinstance(new.args[0], str):
            new.args = (f"{new.args[0]} (at byte {offset})",) + \
                new.args[1:]
    return new


class _CappedFile:
    """A file that never delivers more than ``cap`` bytes in total.

    A read that asks for more gets what fits and sets ``hit_cap``: when
    the pickle then turns out truncated, the unpickler reports the limit
    instead. Seeking back (the Unpickler gives back what it read past
    STOP) returns those bytes to the allowance.
    """

    def __init__(self, file, cap):
        self._file = file
        self._cap = cap
        self._read = file.read
        self.got = 0
        self.hit_cap = False

    def read(self, n=-1):
        room = self._cap - self.got
        cut = n is None or n < 0 or n > room
        if cut:
            n = room
        data = self._read(n)
        if data is not None:
            self.got += len(data)
            if cut and len(data) == n:
                self.hit_cap = True
        return data

    def readline(self, size=-1):
        room = self._cap - self.got
        try:
            line = self._file.readline(room)
        except TypeError:                    # readline() without a size
            parts = []
            for _ in range(room):
                ch = self._read(1)
                if not ch:
                    break
                parts.append(ch)
                if ch == b"\n":
                    break
            line = b"".join(parts)
        if len(line) >= room and not line.endswith(b"\n"):
            self.hit_cap = True
        self.got += len(line)
        return line

    def seekable(self):
        try:
            return bool(self._file.seekable())
        except Exception:
            return False

    def seek(self, offset, whence=0):
        if whence == 1:
            self.got += offset
        here = self._file.seek(offset, whence)
        return here

    def tell(self):
        return self._file.tell()


class _PySafeUnpickler(Unpickler):
    """The pure SafeUnpickler: an Unpickler that enforces a `Policy` and
    `Limits`.

    ``SafeUnpickler(file, *, allow=(), preset=(), policy=None, limits=None,
    persistent_load=None, fix_imports=True, encoding="ASCII",
    errors="strict", buffers=None)``. Like `Unpickler`, ``load()`` may be
    called repeatedly; the memo and the session's registries persist.
    """

    _session_class = Session

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._dispatch = _dispatch_for(cls)

    def __init__(self, file, *, allow=(), preset=(), policy=None,
                 limits=None, persistent_load=None, fix_imports=True,
                 encoding="ASCII", errors="strict", buffers=None):
        limits = limits if limits is not None else DEFAULT_LIMITS
        super().__init__(_CappedFile(file, limits.max_input_bytes),
                         fix_imports=fix_imports, encoding=encoding,
                         errors=errors, buffers=buffers)
        self._setup(_policy_for(policy, allow, preset), limits,
                    persistent_load)

    @classmethod
    def _for_bytes(cls, data, fix_imports=True, encoding="ASCII",
                   errors="strict", buffers=None, *, allow=(), preset=(),
                   policy=None, limits=None, persistent_load=None):
        self = super()._for_bytes(data, fix_imports, encoding, errors,
                                  buffers)
        self._setup(_policy_for(policy, allow, preset),
                    limits if limits is not None else DEFAULT_LIMITS,
                    persistent_load)
        return self

    def _setup(self, policy, limits, persistent_load):
        self._limits = limits
        self._session = self._session_class(policy, limits)
        if persistent_load is not None:
            self.persistent_load = persistent_load
        self.memo = []                  # dense: index -> object or _HOLE
        self._start = 0
        self._capped = False
        self._consumed_before = 0
        self.op_offset = 0

    @property
    def session(self):
        return self._session

    def find_class(self, module, name):
        """Resolve a global through the policy (checked before import)."""
        return self._session.resolve(module, name, self.proto,
                                     self.fix_imports)

    # ------------------------------------------------------------ loop

    def _run(self, pos):
        """The checked loop. Returns the position after STOP.

        The most frequent opcodes are handled inline, with their checks
        and charges, exactly as their load_* methods do; every other opcode
        (and the slow cases) goes to its method, after which the MARK
        frames and the stack's high-water mark are brought up to date.
        """
        # What Unpickler._run resets at the start of each load.
        self.proto = 0
        self._base = 0
        self._prev = None
        self.stack = []
        self.metastack = []
        pos = self._start
        session = self._session
        limits = self._limits
        pers = self._pers
        if pers is not None:
            session.persistent_load = pers
        self._pers = session.persistent
        if self._file is None:
            cap = pos + limits.max_input_bytes
            if self._end > cap:
                self._end = cap
                self._capped = True
        else:                       # max_input_bytes is per pickle
            self._file.got = 0
            self._file.hit_cap = False
        dispatch = self._dispatch
        leaf = _LEAF
        max_ops = limits.max_opcodes
        max_marks = limits.max_mark_depth
        max_len = limits.max_container_len
        max_memo = limits.max_memo_entries
        mem_factor = limits.memory_per_input_byte
        mem_allow = limits.memory_allowance
        memo_slot = _C["memo_slot"]
        mark_cost = _C["mark"]
        list_cost, list_item = _C["list"], _C["list_item"]
        dict_cost, dict_item = _C["dict"], _C["dict_item"]
        tuple_cost, tuple_item = _C["tuple"], _C["tuple_item"]
        guarded = session.guarded
        check_keys = session.check_keys
        getsizeof = _getsizeof
        unpack_uint4 = _unpack_uint4
        # Budgets count the input of every load of this unpickler.
        first = self._base + pos - self._consumed_before
        frames = []                 # sizes of the frames under each MARK
        below = 0                   # their sum
        high = 0                    # the stack's high-water mark
        ops = 0
        horizon = -1                # refresh the budget past this position
        budget = 0
        data = self._data
        end = self._end
        base = self._base
        stack = self.stack
        append = stack.append
        memo = self.memo
        metastack = self.metastack
        marks = len(metastack)
        start = pos
        try:
            while True:
                start = pos
                if pos >= end:
                    pos = start = self._fill_opcode(pos)
                    data = self._data
                    end = self._end
                    base = self._base
                    horizon = -1
                op = data[pos]
                pos += 1
                ops += 1
                if ops > max_ops:
                    raise _limit("max_opcodes", f"more than {max_ops} "
                                 f"opcodes")
                if pos > horizon:
                    # Budgets follow the input consumed, refreshed every
                    # 4 KiB (and exactly before every method call).
                    session.consumed = base + start - first
                    session.budget = budget = \
                        mem_factor * session.consumed + mem_allow
                    horizon = pos + 4096
                if op >= 0x80:
                    if op == 0x94:                              # MEMOIZE
                        if stack and len(memo) < max_memo:
                            memo.append(stack[-1])
                            session.memory += memo_slot
                            if session.memory > budget:
                                self._over(base + start - first)
                            continue
                    elif op == 0x8C:                   # SHORT_BINUNICODE
                        if pos < end:
                            stop = pos + 1 + data[pos]
                            if stop <= end:
                                obj = str(data[pos + 1:stop], "utf-8",
                                          "surrogatepass")
                                append(obj)
                                pos = stop
                                session.count_str_bytes(len(obj))
                                session.memory += getsizeof(obj)
                                if session.memory > budget:
                                    self._over(base + pos - first)
                                if len(stack) + below > high:
                                    high = self._deeper(len(stack) + below,
                                                        high,
                                                        base + pos - first)
                                continue
                    elif op == 0x86:                             # TUPLE2
                        if len(stack) >= 2:
                            stack[-2:] = [(stack[-2], stack[-1])]
                            session.memory += tuple_cost + 2 * tuple_item
                            if session.memory > budget:
                                self._over(base + start - first)
                            continue
                    elif op == 0x85:                             # TUPLE1
                        if stack:
                            stack[-1] = (stack[-1],)
                            session.memory += tuple_cost + tuple_item
                            if session.memory > budget:
                                self._over(base + start - first)
                            continue
                    elif op == 0x87:                             # TUPLE3
                        if len(stack) >= 3:
                            stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                            session.memory += tuple_cost + 3 * tuple_item
                            if session.memory > budget:
                                self._over(base + start - first)
                            continue
                    elif op == 0x88 or op == 0x89:        # NEWTRUE/FALSE
                        append(op == 0x88)
                        if len(stack) + below > high:
                            high = self._deeper(len(stack) + below, high,
                                base + start - first)
                        continue
                elif op == 0x71 or op == 0x72:      # BINPUT, LONG_BINPUT
                    size = 1 if op == 0x71 else 4
                    if pos + size <= end and stack:
                        idx = data[pos] if size == 1 else \
                            unpack_uint4(data, pos)[0]
                        if idx < len(memo):
                            memo[idx] = stack[-1]
                            pos += size
                            continue
                        if idx == len(memo) and idx < max_memo:
                            memo.append(stack[-1])
                            pos += size
                            session.memory += memo_slot
                            if session.memory > budget:
                                self._over(base + start - first)
                            continue
                elif op == 0x4B:                                # BININT1
                    if pos < end:
                        append(data[pos])
                        pos += 1
                        if len(stack) + below > high:
                            high = self._deeper(len(stack) + below, high,
                                base + start - first)
                        continue
                elif op == 0x68:                                 # BINGET
                    if pos < end and data[pos] < len(memo):
                        obj = memo[data[pos]]
                        if obj is not _HOLE:
                            append(obj)
                            pos += 1
                            if len(stack) + below > high:
                                high = self._deeper(len(stack) + below,
                                                    high,
                                                    base + start - first)
                            continue
                elif op == 0x28:                                   # MARK
                    if marks < max_marks:
                        metastack.append(stack)
                        frames.append(len(stack))
                        below += len(stack)
                        marks += 1
                        self.stack = stack = []
                        append = stack.append
                        session.memory += mark_cost
                        if session.memory > budget:
                            self._over(base + start - first)
                        continue
                elif op == 0x65:                                # APPENDS
                    if metastack and metastack[-1]:
                        target = metastack[-1][-1]
                        if type(target) is list and \
                                id(target) not in guarded and \
                                len(target) + len(stack) <= max_len:
                            session.memory += list_item * len(stack)
                            if session.memory > budget:
                                self._over(base + start - first)
                            target.extend(stack)
                            self.stack = stack = metastack.pop()
                            append = stack.append
                            below -= frames.pop()
                            marks -= 1
                            continue
                elif op == 0x75:                               # SETITEMS
                    if metastack and metastack[-1] and not len(stack) % 2:
                        target = metastack[-1][-1]
                        n = len(stack) >> 1
                        if type(target) is dict and \
                                id(target) not in guarded and \
                                len(target) + n <= max_len:
                            keys = stack[::2]
                            self._refresh(base + start - first)
                            check_keys(keys, len(target) + n)
                            session.memory += dict_item * n
                            if session.memory > budget:
                                self._over(base + start - first)
                            target.update(zip(keys, stack[1::2]))
                            self.stack = stack = metastack.pop()
                            append = stack.append
                            below -= frames.pop()
                            marks -= 1
                            continue
                elif op == 0x58:                             # BINUNICODE
                    if pos + 4 <= end:
                        stop = pos + 4 + unpack_uint4(data, pos)[0]
                        if stop <= end:
                            obj = str(data[pos + 4:stop], "utf-8",
                                      "surrogatepass")
                            append(obj)
                            pos = stop
                            session.consumed = base + pos - first
                            session.budget = budget = \
                                mem_factor * session.consumed + mem_allow
                            session.count_str_bytes(len(obj))
                            session.charge(getsizeof(obj))
                            if len(stack) + below > high:
                                high = self._deeper(len(stack) + below, high,
                                    base + pos - first)
                            continue
                elif op == 0x47:                               # BINFLOAT
                    if pos + 8 <= end:
                        append(_unpack_double(data, pos)[0])
                        pos += 8
                        session.memory += _FLOAT_SIZE
                        if session.memory > budget:
                            self._over(base + pos - first)
                        if len(stack) + below > high:
                            high = self._deeper(len(stack) + below, high,
                                base + pos - first)
                        continue
                elif op == 0x4D or op == 0x4A:          # BININT2, BININT
                    size = 2 if op == 0x4D else 4
                    if pos + size <= end:
                        obj = int.from_bytes(data[pos:pos + size], "little",
                                             signed=size == 4)
                        append(obj)
                        pos += size
                        if not -5 <= obj <= 256:
                            session.memory += getsizeof(obj)
                            if session.memory > budget:
                                self._over(base + pos - first)
                        if len(stack) + below > high:
                            high = self._deeper(len(stack) + below, high,
                                base + pos - first)
                        continue
                elif op == 0x61:                                 # APPEND
                    if len(stack) >= 2:
                        target = stack[-2]
                        if type(target) is list and \
                                id(target) not in guarded and \
                                len(target) < max_len:
                            session.memory += list_item
                            if session.memory > budget:
                                self._over(base + start - first)
                            target.append(stack.pop())
                            continue
                elif op == 0x73:                                # SETITEM
                    if len(stack) >= 3:
                        target = stack[-3]
                        if type(target) is dict and \
                                id(target) not in guarded and \
                                len(target) < max_len:
                            key = stack[-2]
                            if type(key) is not str:
                                self._refresh(base + start - first)
                                check_keys((key,), len(target) + 1)
                            session.memory += dict_item
                            if session.memory > budget:
                                self._over(base + start - first)
                            target[key] = stack[-1]
                            del stack[-2:]
                            continue
                elif op == 0x5D or op == 0x7D:      # EMPTY_LIST, EMPTY_DICT
                    if op == 0x5D:
                        append([])
                        session.memory += list_cost
                    else:
                        append({})
                        session.memory += dict_cost
                    if session.memory > budget:
                        self._over(base + start - first)
                    if len(stack) + below > high:
                        high = self._deeper(len(stack) + below, high,
                            base + start - first)
                    continue
                elif op == 0x32:                                    # DUP
                    if stack:
                        append(stack[-1])
                        if len(stack) + below > high:
                            high = self._deeper(len(stack) + below, high,
                                base + start - first)
                        continue
                elif op == 0x30:                                    # POP
                    if stack:
                        stack.pop()
                        continue
                elif op == 0x29 or op == 0x4E:      # EMPTY_TUPLE, NONE
                    append(() if op == 0x29 else None)
                    if len(stack) + below > high:
                        high = self._deeper(len(stack) + below, high,
                            base + start - first)
                    continue
                elif op == 0x2E:                                   # STOP
                    if stack:
                        self._result = stack.pop()
                        self._consumed_before = base + pos - first
                        return pos
                # Everything else, and the slow cases of the above.
                session.consumed = base + start - first
                session.budget = budget = \
                    mem_factor * session.consumed + mem_allow
                self.op_offset = base + start
                pos = dispatch[op](self, pos)
                if leaf[op]:
                    # Its payload was input: it counts for the budget.
                    session.consumed = self._base + pos - first
                    session.budget = budget = \
                        mem_factor * session.consumed + mem_allow
                    self._charge_leaf(op)
                stack = self.stack
                append = stack.append
                memo = self.memo
                if len(metastack) != marks:
                    if len(metastack) > marks:
                        frames.append(len(metastack[-1]))
                        below += frames[-1]
                        session.charge(mark_cost)
                        if len(metastack) > max_marks:
                            raise _limit("max_mark_depth",
                                         f"more than {max_marks} open MARKs")
                    else:
                        below -= frames.pop()
                    marks = len(metastack)
                if len(stack) + below > high:
                    high = self._deeper(len(stack) + below, high)
                # The handler may have moved the window: until here, a
                # failure is reported at this opcode's offset in the old one.
                data = self._data
                end = self._end
                base = self._base
        except _Stop as stop:
            self._consumed_before = self._base + stop.args[0] - first
            return stop.args[0]
        except Exception as exc:
            self._note_position(exc, data, start)
            new = self._safe_error(exc, base + start, ops <= 1 and
                                   start == self._start and
                                   isinstance(exc, EOFError))
            if new is exc:
                raise
            raise new from exc

    def _refresh(self, consumed):
        """Bring the session's consumed input and budget up to date."""
        session = self._session
        session.consumed = consumed
        session.budget = self._limits.memory_per_input_byte * consumed + \
            self._limits.memory_allowance

    def _over(self, consumed):
        """The loop's lazily refreshed budget was passed: refuse only if
        the current budget is passed too (so the outcome never depends on
        when the budget was last refreshed)."""
        self._refresh(consumed)
        self._session.charge(0)

    def _deeper(self, depth, high, consumed=None):
        """The stack passed its high-water mark: check it and charge the
        slots up to the new mark, reserved 1024 at a time. consumed: the
        input consumed, when the session's may be stale."""
        if consumed is not None:
            self._refresh(consumed)
        limit = self._limits.max_stack_depth
        if depth > limit:
            raise _limit("max_stack_depth",
                         f"more than {limit} items on the stack")
        new = min(limit, (depth | 1023) + 1)
        self._session.charge(_C["stack_slot"] * (new - high))
        return new

    @property
    def _input_cut(self):
        return self._capped or getattr(self._file, "hit_cap", False)

    def _safe_error(self, exc, offset, at_start):
        return _safe_error(exc, offset, at_start, self._input_cut)

    def _charge_leaf(self, op):
        obj = self.stack[-1]
        t = type(obj)
        session = self._session
        if t is int:
            if -5 <= obj <= 256:
                return
            if op in _LONG_OPS and \
                    obj.bit_length() > 8 * self._limits.max_int_bytes:
                raise _limit("max_int_bytes",
                             f"int of {obj.bit_length()} bits")
        elif t in _STR_TYPES:
            session.count_str_bytes(len(obj))
        session.charge(_getsizeof(obj))

    # ------------------------------------------------------- input caps

    def _fill(self, pos, n, after=1):
        if self._capped and pos + n > self._end:
            raise _limit("max_input_bytes", _INPUT_CAPPED)
        return super()._fill(pos, n, after)

    def _fill_opcode(self, pos):
        if self._capped:
            raise _limit("max_input_bytes", _INPUT_CAPPED)
        return super()._fill_opcode(pos)

    def _numeric_line(self, pos):
        """A numeric text argument, refused before parsing if too long."""
        line, pos = self._readline(pos)
        if len(line) > self._limits.max_int_digits + 3:
            raise _limit("max_int_digits",
                         f"numeric text argument of {len(line)} bytes")
        return line, pos

    # The memo is a dense list (8 bytes per index, like C's array), so a
    # memo index is charged as one slot up to the highest index used.

    def _memo_put(self, idx):
        top = self._top()
        memo = self.memo
        if idx < len(memo):
            memo[idx] = top
            return
        if idx >= self._limits.max_memo_entries:
            raise _limit("max_memo_entries", f"memo index {idx}")
        grow = idx + 1 - len(memo)
        self._session.charge(_C["memo_slot"] * grow)
        if grow > 1:
            memo.extend([_HOLE] * (grow - 1))
        memo.append(top)

    def _memo_get(self, idx):
        memo = self.memo
        if 0 <= idx < len(memo):
            obj = memo[idx]
            if obj is not _HOLE:
                return obj
        raise UnpicklingError(f"Memo value not found at index {idx}")

    # Containers: lengths and keys are checked before anything is built.

    def _frame_len(self, what):
        n = len(self.stack)
        if n > self._limits.max_container_len:
            raise _limit("max_container_len", f"{what} of {n} items")
        return n

    def load_list(self, pos):
        self._session.charge(
            _C["list"] + _C["list_item"] * self._frame_len("list"))
        return Unpickler.load_list(self, pos)

    def load_tuple(self, pos):
        self._session.charge(
            _C["tuple"] + _C["tuple_item"] * self._frame_len("tuple"))
        return Unpickler.load_tuple(self, pos)

    def load_tuple1(self, pos):
        self._session.charge(_C["tuple"] + _C["tuple_item"])
        return Unpickler.load_tuple1(self, pos)

    def load_tuple2(self, pos):
        self._session.charge(_C["tuple"] + 2 * _C["tuple_item"])
        return Unpickler.load_tuple2(self, pos)

    def load_tuple3(self, pos):
        self._session.charge(_C["tuple"] + 3 * _C["tuple_item"])
        return Unpickler.load_tuple3(self, pos)

    def load_empty_list(self, pos):
        self._session.charge(_C["list"])
        self.stack.append([])
        return pos

    def load_empty_dict(self, pos):
        self._session.charge(_C["dict"])
        self.stack.append({})
        return pos

    def load_empty_set(self, pos):
        self._session.charge(_C["set"])
        self.stack.append(set())
        return pos

    def load_dict(self, pos):
        n = self._frame_len("dict")
        if not n % 2:
            self._session.check_keys(self.stack[::2], n // 2)
        self._session.charge(_C["dict"] + _C["dict_item"] * (n // 2))
        return Unpickler.load_dict(self, pos)

    def load_frozenset(self, pos):
        n = self._frame_len("frozenset")
        self._session.check_keys(self.stack, n)
        self._session.charge(_C["set"] + _C["set_item"] * n)
        return Unpickler.load_frozenset(self, pos)

    def _add_items(self, target, opname, items):
        """Item opcodes: a list/dict/set this load created, fast; anything
        else through the session."""
        session = self._session
        t = type(target)
        if id(target) in session.guarded or \
                _FAST_TARGET.get(t) != _ITEM_KIND[opname]:
            session.add_items(target, opname, items)
            return
        n = len(items)
        if t is dict:
            n //= 2
        if len(target) + n > self._limits.max_container_len:
            raise _limit("max_container_len",
                         f"container of {len(target) + n} items")
        if t is list:
            session.charge(_C["list_item"] * n)
            target.extend(items)
        elif t is dict:
            session.check_keys(items[::2], len(target) + n)
            session.charge(_C["dict_item"] * n)
            target.update(zip(items[::2], items[1::2]))
        else:
            session.check_keys(items, len(target) + n)
            session.charge(_C["set_item"] * n)
            set.update(target, items)

    # Globals, calls, BUILD: all through the session.

    def _load_ext(self, pos, size):
        code, pos = self._read_ext_code(pos, size)
        self.stack.append(self._session.ext(code, self.proto,
                                            self.fix_imports,
                                            self.find_class))
        return pos

    def _call(self, func, args):
        return self._session.reduce(func, args)

    def _new(self, cls, args, kwargs):
        return self._session.newobj(cls, args, kwargs)

    def _instantiate(self, cls, args, opname):
        return self._session.instantiate(cls, args, opname)

    def _build(self, inst, state):
        self._session.build(inst, state)

    def load_next_buffer(self, pos):
        pos = Unpickler.load_next_buffer(self, pos)
        self.stack[-1] = self._session.buffer(self.stack[-1])
        return pos

    def load_readonly_buffer(self, pos):
        self._session.charge(_C["memoryview"])
        return Unpickler.load_readonly_buffer(self, pos)


_HOLE = object()
_FAST_TARGET = {list: "append", dict: "setitem", set: "add"}


def _dispatch_for(cls):
    """The handler of each opcode byte for cls (invalid bytes: the
    Unpickler's error handler)."""
    table = list(_DISPATCH)
    for op in OPCODE_BY_NAME.values():
        table[op.byte] = getattr(cls, "load_" + op.name.lower())
    return table


_PySafeUnpickler._dispatch = _dispatch_for(_PySafeUnpickler)


# ------------------------------------------------------- the C machine

def _c_unpickler():
    """brinery._accel.Unpickler when the C implementation is active."""
    from . import IMPLEMENTATION
    if IMPLEMENTATION != "c":
        return None
    from . import _accel
    return _accel.Unpickler


_CUnpickler = _c_unpickler()
_NO_INPUT = b""


if _CUnpickler is not None:
    class _CSafeUnpickler(_CUnpickler):
        """SafeUnpickler on the C machine (see "What the C unpickler must
        enforce in safe mode"): the same constructor, attributes
        (``session``, ``memo``), overridable ``find_class`` and
        ``persistent_load``, and the same outcomes as `_PySafeUnpickler`.
        """

        _session_class = Session

        def __init__(self, file, *, allow=(), preset=(), policy=None,
                     limits=None, persistent_load=None, fix_imports=True,
                     encoding="ASCII", errors="strict", buffers=None):
            limits = limits if limits is not None else DEFAULT_LIMITS
            self._capped_file = _CappedFile(file, limits.max_input_bytes)
            super().__init__(self._capped_file, fix_imports=fix_imports,
                             encoding=encoding, errors=errors,
                             buffers=buffers)
            self._view = None
            self._setup(_policy_for(policy, allow, preset), limits,
                        persistent_load, fix_imports)

        @classmethod
        def _for_bytes(cls, data, fix_imports=True, encoding="ASCII",
                       errors="strict", buffers=None, *, allow=(), preset=(),
                       policy=None, limits=None, persistent_load=None):
            self = cls.__new__(cls)
            _CUnpickler.__init__(self, _io.BytesIO(_NO_INPUT),
                                 fix_imports=fix_imports, encoding=encoding,
                                 errors=errors, buffers=buffers)
            self._capped_file = None
            self._view = byte_view(data)
            self._setup(_policy_for(policy, allow, preset),
                        limits if limits is not None else DEFAULT_LIMITS,
                        persistent_load, fix_imports)
            return self

        def _setup(self, policy, limits, persistent_load, fix_imports):
            self._limits = limits
            self._fix_imports = bool(fix_imports)
            self._session = self._session_class(policy, limits)
            if persistent_load is not None:
                self.persistent_load = persistent_load
            self._capped = False
            self._safe_setup(self._session, limits, self.find_class, _limit)

        @property
        def session(self):
            return self._session

        @property
        def proto(self):
            return self._proto

        @property
        def fix_imports(self):
            return self._fix_imports

        def find_class(self, module, name):
            """Resolve a global through the policy (checked before
            import)."""
            return self._session.resolve(module, name, self._proto,
                                         self._fix_imports)

        def load(self):
            session = getattr(self, "_session", None)
            if session is None:
                raise UnpicklingError(
                    f"Unpickler.__init__() was not called by "
                    f"{type(self).__name__}.__init__()")
            # Overridden (by a subclass or on the instance) or not.
            pers = self.persistent_load
            if pers != _CUnpickler.persistent_load.__get__(self):
                session.persistent_load = pers
            find = self.find_class
            if find == _CSafeUnpickler.find_class.__get__(self):
                find = None
            data = None
            if self._view is not None:
                # (Like the pure one, each load from memory reads the
                # bytes from the start.)
                cap = self._limits.max_input_bytes
                self._capped = len(self._view) > cap
                data = self._view[:cap] if self._capped else self._view
            else:
                self._capped_file.got = 0
                self._capped_file.hit_cap = False
            try:
                result = self._safe_load(find, session.persistent, data)
            except Exception as exc:
                offset, ops, _ = self._safe_info()
                input_cut = self._capped or (
                    self._capped_file is not None and
                    self._capped_file.hit_cap)
                new = _safe_error(exc, offset, ops <= 1 and
                                  offset == 0 and isinstance(exc, EOFError),
                                  input_cut)
                if new is exc:
                    raise
                raise new from exc
            return result

    _CSafeUnpickler.__name__ = _CSafeUnpickler.__qualname__ = \
        "SafeUnpickler"
else:
    _CSafeUnpickler = None


def _choose():
    return _CSafeUnpickler if _CSafeUnpickler is not None else \
        _PySafeUnpickler


SafeUnpickler = _choose()


# ------------------------------------------------------------------- API

def loads(data, /, *, allow=(), preset=(), policy=None, limits=None,
          persistent_load=None, fix_imports=True, encoding="ASCII",
          errors="strict", buffers=None, impl=None):
    """Load a pickle from bytes under the safe policy and limits.
    impl: the unpickler class (default SafeUnpickler, see the module
    docstring)."""
    if isinstance(data, str):
        raise TypeError("Can't load pickle from unicode string")
    return (impl or SafeUnpickler)._for_bytes(
        data, fix_imports, encoding, errors, buffers, allow=allow,
        preset=preset, policy=policy, limits=limits,
        persistent_load=persistent_load).load()


def load(file, *, allow=(), preset=(), policy=None, limits=None,
         persistent_load=None, fix_imports=True, encoding="ASCII",
         errors="strict", buffers=None, impl=None):
    """Load one pickle from a binary file under the safe policy and
    limits. The file is left right after the pickle's STOP when it is
    seekable. impl: the unpickler class (default SafeUnpickler)."""
    return (impl or SafeUnpickler)(
        file, allow=allow, preset=preset, policy=policy, limits=limits,
        persistent_load=persistent_load, fix_imports=fix_imports,
        encoding=encoding, errors=errors, buffers=buffers).load()
