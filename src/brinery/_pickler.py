"""The pure-Python Pickler.

It writes exactly the bytes CPython's C pickler (``_pickle``) writes for
the same object and protocol: the same opcode choices, memo indices,
batching and frame boundaries.

Unlike CPython it does not recurse. Saving a container is a *task*: a
generator that writes opcodes and, to save a child that is itself a
container, yields the child's task. One loop (`Pickler._run`) drives a
stack of tasks, so depth is bounded by memory, not by the recursion limit.
Inside a task, ``g = step(x); if g is not None: yield g`` means "save x":
`_step` writes atoms (None, bools, ints, floats, str, bytes, memo hits) at
once and returns None, or returns the task that saves a container.

When an error propagates, the driver throws it back into each suspended
task in turn, so each adds a note saying where the failing object sits
("when serializing dict item 'a'", "when serializing list item 3"), in the
words CPython 3.14 uses.

The class keeps the `pickle._Pickler` interface that dill- and
cloudpickle-style subclasses build on: a copyable ``dispatch`` mapping of
synchronous ``save_*(self, obj)`` functions, ``save``, ``save_reduce``,
``save_global``, ``memoize``, ``write``, ``persistent_id``,
``reducer_override`` and ``dispatch_table``.
"""

import codecs
import copyreg
import sys
from copyreg import _extension_registry
from functools import partial
from itertools import islice
from operator import index, length_hint
from struct import Struct
from types import FunctionType

import _compat_pickle
from pickle import PickleBuffer

from . import _versions
from ._errors import PicklingError
from ._opcodes import (
    APPEND, APPENDS, BATCHSIZE, BINBYTES, BINBYTES8, BINFLOAT, BININT,
    BININT2, BINPERSID, BINUNICODE, BINUNICODE8, BUILD, BYTEARRAY8,
    DEFAULT_PROTOCOL, DICT, EMPTY_DICT, EMPTY_LIST, EMPTY_SET, EMPTY_TUPLE,
    EXT1, EXT2, EXT4, FALSE, FLOAT, FRAME, FRAME_HEADER_SIZE, FRAME_SIZE_MIN,
    FRAME_SIZE_TARGET, FROZENSET, GLOBAL, HIGHEST_PROTOCOL, INT, LIST, LONG,
    LONG1, LONG4, LONG_BINGET, LONG_BINPUT, MARK, MEMOIZE, NEWFALSE, NEWOBJ,
    NEWOBJ_EX, NEWTRUE, NEXT_BUFFER, NONE, PERSID, POP, POP_MARK, PROTO,
    READONLY_BUFFER, REDUCE, SETITEM, SETITEMS, ADDITEMS, STACK_GLOBAL,
    STOP, TRUE, TUPLE, TUPLE1, TUPLE2, TUPLE3, UNICODE,
)

__all__ = ["Pickler", "dump", "dumps", "encode_long", "whichmodule"]

_pack_uint2 = Struct("<H").pack
_pack_int4 = Struct("<i").pack
_pack_uint4 = Struct("<I").pack
_pack_uint8 = Struct("<Q").pack
_pack_double = Struct(">d").pack
_raw_unicode_escape_encode = codecs.raw_unicode_escape_encode

# Opcode-with-argument byte strings for small arguments, built once.
_BININT1_OF = tuple(b"K" + bytes((i,)) for i in range(256))
_BINPUT_OF = tuple(b"q" + bytes((i,)) for i in range(256))
_BINGET_OF = tuple(b"h" + bytes((i,)) for i in range(256))
_SHORT_BINUNICODE_OF = tuple(b"\x8c" + bytes((i,)) for i in range(256))
_SHORT_BINBYTES_OF = tuple(b"C" + bytes((i,)) for i in range(256))
_TUPLE_OF_LEN = (None, TUPLE1, TUPLE2, TUPLE3)

# Frame limit used when framing is off: no buffer ever gets this long.
_NO_FRAME_LIMIT = sys.maxsize

_NoneType = type(None)
_Ellipsis_type = type(Ellipsis)
_NotImplemented_type = type(NotImplemented)


def encode_long(x):
    """Little-endian two's-complement bytes of int x, as LONG1/LONG4 hold.

    >>> encode_long(255), encode_long(-256), encode_long(0)
    (b'\\xff\\x00', b'\\x00\\xff', b'')
    """
    if x == 0:
        return b""
    nbytes = (x.bit_length() >> 3) + 1
    result = x.to_bytes(nbytes, "little", signed=True)
    # A negative number may carry one redundant sign byte.
    if x < 0 and nbytes > 1 and result[-1] == 0xFF and result[-2] & 0x80:
        result = result[:-1]
    return result


# "No such hook" (or registry entry): None is a value, which CPython's C
# pickler calls (or rejects).
_ABSENT = object()

# The range of a C long (LP64), which CPython reads extension codes into.
_C_LONG_MAX = (1 << 63) - 1
_C_LONG_MIN = -(1 << 63)


def _tp_name(cls):
    """The C-level tp_name of a type, as CPython's error messages show it."""
    if cls.__flags__ & (1 << 9):   # Py_TPFLAGS_HEAPTYPE
        return cls.__name__
    module = cls.__module__
    if module and module != "builtins":
        return f"{module}.{cls.__name__}"
    return cls.__name__


def _type_label(obj):
    """How error notes name the type of obj: 'dict', 'mymod.Thing'."""
    cls = type(obj)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    if module in (None, "builtins", "__main__"):
        return qualname
    return f"{module}.{qualname}"


def _dotted_path(name):
    """Split a qualified name; refuse names of objects local to a function."""
    parts = name.split(".")
    if "<locals>" in parts:
        raise AttributeError(_versions.LOCAL_OBJECT_MESSAGE.format(name))
    return parts


def _deep_getattr(obj, parts):
    """Follow parts from obj; return (found, parent of found)."""
    parent = None
    for part in parts:
        parent = obj
        obj = getattr(obj, part)
    return obj, parent


def whichmodule(obj, name):
    """The name of the module obj can be imported from as ``name``."""
    module_name = getattr(obj, "__module__", None)
    if module_name is not None:
        return module_name
    parts = name.split(".") if isinstance(name, str) else name
    # Bound methods of extension types may say nothing: search sys.modules.
    for module_name, module in sys.modules.copy().items():
        if module_name == "__main__" or module is None:
            continue
        try:
            if _deep_getattr(module, parts)[0] is obj:
                return module_name
        except AttributeError:
            pass
    return "__main__"


def _add_note(exc, text):
    if isinstance(exc, Exception):
        exc.add_note(text)


class Pickler:
    """Write pickles of objects to a binary file.

    ``Pickler(file, protocol=None, fix_imports=True,
    buffer_callback=None)``; see `pickle.Pickler`. (As in CPython's C
    pickler, fix_imports and buffer_callback may also be positional.)
    """

    # type -> synchronous save function(self, obj); filled in below.
    dispatch = {}

    def __init__(self, file, protocol=None, fix_imports=True,
                 buffer_callback=None):
        self._configure(protocol, fix_imports, buffer_callback)
        try:
            self._file_write = file.write
        except AttributeError:
            raise TypeError("file must have a 'write' attribute") from None
        self.memo = {}
        self.fast = 0

    def _configure(self, protocol, fix_imports, buffer_callback):
        self._unmemoized = {}
        self._open_reduces = 0
        if protocol is None:
            protocol = DEFAULT_PROTOCOL
        protocol = index(protocol)   # TypeError for non-integers, as C
        if not -sys.maxsize - 1 <= protocol <= sys.maxsize:
            # CPython reads it into a C long.
            raise OverflowError("Python int too large to convert to C long")
        if protocol < 0:
            protocol = HIGHEST_PROTOCOL
        elif protocol > HIGHEST_PROTOCOL:
            raise ValueError(f"pickle protocol must be <= {HIGHEST_PROTOCOL}")
        if buffer_callback is not None and protocol < 5:
            raise ValueError("buffer_callback needs protocol >= 5")
        self._buffer_callback = buffer_callback
        self.proto = protocol
        self.bin = protocol >= 1
        self.fix_imports = bool(fix_imports) and protocol < 3

    # Hooks read at each dump() (see _read_hooks); these class-level values
    # are the defaults, in effect for the module-level dumps().
    _pers = None
    _reducer_override = _ABSENT
    _dispatch_table = None
    _save_reduce_hook = None
    _save_global_hook = None
    _save_is_overridden = False
    _fast_active = None
    _buf = None

    # ------------------------------------------------------------ public

    def clear_memo(self):
        """Forget the objects pickled so far (and their memo indices)."""
        self.memo.clear()

    def persistent_id(self, obj):
        """Return a persistent ID for obj, or None to pickle it as usual.

        Does nothing by default; subclasses override it.
        """
        return None

    def dump(self, obj):
        """Write a pickle of obj to the file given to the constructor."""
        if not hasattr(self, "_file_write"):
            raise PicklingError(
                f"Pickler.__init__() was not called by "
                f"{type(self).__name__}.__init__()")
        self._read_hooks()
        try:
            self._dump(obj)
        finally:
            self._drop_hooks()

    def _dump(self, obj):
        """Write the pickle of obj; the hooks have been read."""
        self._buf = bytearray()
        self._chunks = []          # finished output, for dumps()
        self._result = None
        self._frame_start = -1
        self._frame_limit = _NO_FRAME_LIMIT
        self._depth = 0
        if self.fast:
            self._fast_active = {}     # id -> obj being saved
        if self.proto >= 2:
            self._buf += PROTO + bytes((self.proto,))
            if self.proto >= 4:
                self._start_framing()
        if self._save_is_overridden:
            self.save(obj)
        else:
            self._run(self._step(obj))
        self._buf += STOP
        self._finish()

    # Synchronous helpers with the pickle._Pickler signatures. They work
    # only while dump() runs (from persistent_id, reducer_override or a
    # dispatch function), as they do in the standard library.

    def write(self, data):
        self._buf += data

    def save(self, obj, save_persistent_id=True):
        self._run(self._step_base(obj, not save_persistent_id))

    def memoize(self, obj):
        """Store obj in the memo and write the opcode that does so."""
        if self.fast:
            return
        assert id(obj) not in self.memo
        self._memoize(obj)

    def put(self, idx):
        """The opcode that stores the stack top at memo index idx."""
        if self.proto >= 4:
            return MEMOIZE
        if self.bin:
            return _BINPUT_OF[idx] if idx < 256 else \
                LONG_BINPUT + _pack_uint4(idx)
        return b"p%d\n" % idx

    def get(self, idx):
        """The opcode that pushes memo entry idx."""
        if self.bin:
            return _BINGET_OF[idx] if idx < 256 else \
                LONG_BINGET + _pack_uint4(idx)
        return b"g%d\n" % idx

    def save_reduce(self, func, args, state=None, listitems=None,
                    dictitems=None, state_setter=None, *, obj=None):
        rv = (func, args, state, listitems, dictitems, state_setter)
        # Not through _save_reduce_value: when a subclass overrides this
        # method and calls it back, that would call the override again.
        self._run(self._task_reduce(rv, obj))

    def save_global(self, obj, name=None):
        self._run(self._save_global_base(obj, name))

    def save_pers(self, pid):
        self._run(self._save_pers(pid))

    def _batch_appends(self, items):
        self._run(self._task_batched(iter(items), False, "list"))

    def _batch_setitems(self, items):
        self._run(self._task_batched(iter(items), True, "dict"))

    # ---------------------------------------------------- dump lifecycle

    def _read_hooks(self):
        """Find what a subclass or the instance overrides, for this dump."""
        cls = type(self)
        pers = self.persistent_id
        if getattr(pers, "__func__", pers) is Pickler.persistent_id:
            pers = None
        self._pers = pers
        # As CPython's C pickler: a hook set to None is called (and fails).
        self._reducer_override = getattr(self, "reducer_override", _ABSENT)
        self._dispatch_table = getattr(self, "dispatch_table", None)
        self._save_is_overridden = cls.save is not Pickler.save
        if self._save_is_overridden:
            self._step = self._step_via_save
        self._save_reduce_hook = (
            None if cls.save_reduce is Pickler.save_reduce
            else self.save_reduce)
        self._save_global_hook = (
            None if cls.save_global is Pickler.save_global
            else self.save_global)
        dispatch = self.dispatch
        self._savers = (_SAVERS if dispatch is Pickler.dispatch
                        else _savers_for(dispatch))

    def _drop_hooks(self):
        """Drop per-dump references (bound methods would make cycles)."""
        for name in ("_pers", "_reducer_override", "_dispatch_table",
                     "_save_reduce_hook", "_save_global_hook",
                     "_save_is_overridden", "_fast_active", "_chunks",
                     "_buf", "_step", "_savers"):
            self.__dict__.pop(name, None)

    def _finish(self):
        """Close the last frame and hand the output over."""
        buf = self._buf
        self._end_frame()
        if self._file_write is not None:
            if buf:
                self._file_write(bytes(buf))
            return
        chunks = self._chunks
        if chunks:
            chunks.append(buf)
            self._result = b"".join(chunks)
        else:
            self._result = bytes(buf)

    # ---------------------------------------------------------- framing

    def _start_framing(self):
        buf = self._buf
        self._frame_start = len(buf)
        buf += b"\0" * FRAME_HEADER_SIZE
        self._frame_limit = len(buf) + FRAME_SIZE_TARGET

    def _end_frame(self):
        """Write the pending frame's header, or drop it if tiny."""
        start = self._frame_start
        if start < 0:
            return
        buf = self._buf
        length = len(buf) - start - FRAME_HEADER_SIZE
        if length >= FRAME_SIZE_MIN:
            buf[start:start + FRAME_HEADER_SIZE] = FRAME + _pack_uint8(length)
        else:
            del buf[start:start + FRAME_HEADER_SIZE]
        self._frame_start = -1
        self._frame_limit = _NO_FRAME_LIMIT

    def _frame_boundary(self):
        """At an opcode boundary with a full frame: close it, open the next.

        When writing to a file, the closed frame goes to the file now, so a
        large pickle never sits whole in memory.
        """
        self._end_frame()
        self._flush_to_file()
        self._start_framing()

    def _flush_to_file(self):
        if self._file_write is not None:
            buf = self._buf
            if buf:
                self._file_write(bytes(buf))
                buf.clear()

    def _write_large(self, header, payload):
        """Write header and a payload of FRAME_SIZE_TARGET bytes or more.

        Such payloads go outside any frame. In memory the payload is kept
        by reference (copied once, into the result); to a file it is
        written with its own write() call.
        """
        framing = self._frame_start >= 0
        if framing:
            self._end_frame()
        buf = self._buf
        buf += header
        if self._file_write is not None:
            self._flush_to_file()
            self._file_write(payload)
        else:
            # Kept by reference and copied once, into the result. (A
            # mutable buffer changed by user code later in the same dump
            # would be seen as it is at the end; copying it here instead
            # would cost a second copy of every large payload.)
            self._chunks.append(bytes(buf))
            buf.clear()
            self._chunks.append(payload)
        if framing:
            self._start_framing()

    # ------------------------------------------------------------ driver

    def _run(self, task):
        """Run a task and every task it spawns, without recursion.

        While it runs, savers return tasks instead of recursing.
        """
        if task is None:
            return
        stack = [task]
        push = stack.append
        pop = stack.pop
        depth = self._depth
        self._depth = _DRIVING
        try:
            while stack:
                sub = next(stack[-1], None)
                if sub is None:
                    pop()
                else:
                    push(sub)
        except BaseException as exc:
            # The task on top failed; let each suspended task below add
            # its note (it sees the error at its `yield`) and re-raise.
            pop()
            error = exc
            while stack:
                try:
                    stack.pop().throw(error)
                except BaseException as outer:
                    error = outer
            raise error
        finally:
            self._depth = depth

    def _start_task(self, task):
        """Save a container: at once while shallow, else hand back its task.

        Up to _SYNC_DEPTH container levels are saved by plain recursion,
        which is fastest; a task that would go deeper is returned to the
        caller, and from there on one loop (_run) drives the tasks.
        """
        depth = self._depth
        if depth >= _SYNC_DEPTH:
            return task
        self._depth = depth + 1
        try:
            for sub in task:
                try:
                    self._run(sub)
                except BaseException as exc:
                    # As in _run: the task sees the error at its yield and
                    # adds its note before re-raising.
                    task.throw(exc)
        finally:
            self._depth = depth
        return None

    # ------------------------------------------------------------- saving

    def _step_via_save(self, obj, pers_save=False):
        """_step for subclasses that override save(): go through it."""
        if pers_save:
            self.save(obj, False)
        else:
            self.save(obj)
        return None

    def _step_base(self, obj, pers_save=False):
        """Save obj: write it at once and return None, or return its task.

        The order of checks is CPython's: frame boundary, persistent ID,
        atoms (not memoized), memo, builtin types, reducer_override,
        classes and functions, dispatch table, __reduce_ex__.
        """
        if len(self._buf) >= self._frame_limit:
            self._frame_boundary()
        if self._pers is not None and not pers_save:
            pid = self._pers(obj)
            if pid is not None:
                return self._save_pers(pid)
        t = type(obj)
        save = self._savers.get(t)
        if save is not None:
            # Atoms are never memoized; the other builtin savers check the
            # memo first themselves.
            return save(self, obj)
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        return self._save_other(obj, t)

    _step = _step_base

    def _save_pers(self, pid):
        if self.bin:
            task = self._step(pid, True)
            if task is None:
                self._buf += BINPERSID
                return None
            return self._then_write(task, BINPERSID)
        text = str(pid)
        if not text.isascii():
            raise PicklingError(
                "persistent IDs in protocol 0 must be ASCII strings")
        self._buf += PERSID + text.encode("ascii") + b"\n"
        return None

    def _then_write(self, task, data):
        yield task
        self._buf += data

    def _save_other(self, obj, t):
        """Objects that are not of an exact builtin type."""
        reduce = self._reducer_override
        if reduce is not _ABSENT:
            rv = reduce(obj)
            if rv is not NotImplemented:
                return self._save_reduce_result(obj, rv)
        if t is type:
            return self._save_type(obj)
        if t is FunctionType:
            return self._save_global(obj, None)
        table = self._dispatch_table
        if table is None:
            reduce = copyreg.dispatch_table.get(t, _ABSENT)
        else:
            try:
                reduce = table[t]
            except KeyError:
                reduce = _ABSENT
        if reduce is not _ABSENT:
            rv = reduce(obj)
        elif issubclass(t, type):
            return self._save_global(obj, None)
        else:
            reduce = getattr(obj, "__reduce_ex__", None)
            if reduce is not None:
                rv = reduce(self.proto)
            else:
                reduce = getattr(obj, "__reduce__", None)
                if reduce is None:
                    raise PicklingError(
                        f"can't pickle {_tp_name(t)!r} object: {obj!r}")
                rv = reduce()
        return self._save_reduce_result(obj, rv)

    def _save_reduce_result(self, obj, rv):
        if isinstance(rv, str):
            return self._save_global(obj, rv)
        if not isinstance(rv, tuple):
            exc = PicklingError("__reduce__ must return a string or tuple")
            _add_note(exc, f"when serializing {_type_label(obj)} object")
            raise exc
        return self._save_reduce_value(rv, obj, True)

    # Atoms: written at once, never memoized, never a task.

    def _save_none(self, obj):
        self._buf += NONE

    def _save_bool(self, obj):
        if self.proto >= 2:
            self._buf += NEWTRUE if obj else NEWFALSE
        else:
            self._buf += TRUE if obj else FALSE

    def _save_int(self, obj):
        if self.bin:
            if obj >= 0:
                if obj <= 0xFF:
                    self._buf += _BININT1_OF[obj]
                    return
                if obj <= 0xFFFF:
                    self._buf += BININT2 + _pack_uint2(obj)
                    return
            if -0x80000000 <= obj <= 0x7FFFFFFF:
                self._buf += BININT + _pack_int4(obj)
                return
            if self.proto >= 2:
                encoded = encode_long(obj)
                n = len(encoded)
                if n < 256:
                    self._buf += LONG1 + bytes((n,)) + encoded
                elif n <= 0x7FFFFFFF:
                    self._buf += LONG4 + _pack_int4(n) + encoded
                else:
                    raise OverflowError("int too large to pickle")
                return
        if -0x80000000 <= obj <= 0x7FFFFFFF:
            self._buf += INT + b"%d\n" % obj
        else:
            self._buf += LONG + b"%dL\n" % obj

    def _save_float(self, obj):
        if self.bin:
            self._buf += BINFLOAT + _pack_double(obj)
        else:
            self._buf += FLOAT + repr(obj).encode("ascii") + b"\n"

    # Strings and bytes: written at once and memoized.

    def _save_str(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        buf = self._buf
        if self.bin:
            encoded = obj.encode("utf-8", "surrogatepass")
            n = len(encoded)
            if n <= 0xFF and self.proto >= 4:
                buf += _SHORT_BINUNICODE_OF[n]
                buf += encoded
            else:
                if n <= 0xFFFFFFFF:
                    header = BINUNICODE + _pack_uint4(n)
                elif self.proto >= 4:
                    header = BINUNICODE8 + _pack_uint8(n)
                else:
                    raise OverflowError(
                        "serializing a string larger than 4 GiB requires "
                        "pickle protocol 4 or higher")
                if n >= FRAME_SIZE_TARGET:
                    self._write_large(header, encoded)
                else:
                    buf += header
                    buf += encoded
        else:
            text = obj
            if ("\\" in text or "\0" in text or "\n" in text
                    or "\r" in text or "\x1a" in text):
                text = (text.replace("\\", "\\u005c")
                        .replace("\0", "\\u0000")
                        .replace("\n", "\\u000a").replace("\r", "\\u000d")
                        .replace("\x1a", "\\u001a"))
            buf += UNICODE
            # ASCII is its own raw-unicode-escape encoding; otherwise the
            # codec's function, which skips str.encode's codec lookup.
            buf += text.encode() if text.isascii() else \
                _raw_unicode_escape_encode(text)[0]
            buf += b"\n"
        self._memoize(obj)

    def _save_bytes(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        if self.proto < 3:
            # No bytes opcode: Python 2 reads codecs.encode(str, 'latin1')
            # as a str, Python 3 as bytes.
            if not obj:
                return self._save_reduce_value((bytes, ()), obj)
            return self._save_reduce_value(
                (codecs.encode, (str(obj, "latin1"), "latin1")), obj)
        self._save_bytes_data(obj, obj)
        return None

    def _save_bytes_data(self, obj, data):
        n = len(data)
        if n <= 0xFF:
            self._buf += _SHORT_BINBYTES_OF[n]
            self._buf += data
        else:
            if n <= 0xFFFFFFFF:
                header = BINBYTES + _pack_uint4(n)
            elif self.proto >= 4:
                header = BINBYTES8 + _pack_uint8(n)
            else:
                raise OverflowError(
                    "serializing a bytes object larger than 4 GiB requires "
                    "pickle protocol 4 or higher")
            if n >= FRAME_SIZE_TARGET:
                self._write_large(header, data)
            else:
                self._buf += header
                self._buf += data
        self._memoize(obj)

    def _save_bytearray(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        if self.proto < 5:
            if not obj:
                return self._save_reduce_value((bytearray, ()), obj)
            return self._save_reduce_value((bytearray, (bytes(obj),)), obj)
        self._save_bytearray_data(obj, obj)
        return None

    def _save_bytearray_data(self, obj, data):
        n = len(data)
        header = BYTEARRAY8 + _pack_uint8(n)
        if n >= FRAME_SIZE_TARGET:
            self._write_large(header, data)
        else:
            self._buf += header
            self._buf += data
        self._memoize(obj)

    def _save_picklebuffer(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        if self.proto < 5:
            raise PicklingError(_versions.PICKLEBUFFER_PROTOCOL_MESSAGE)
        try:
            with obj.raw() as view:
                readonly = view.readonly
        except BufferError:
            raise PicklingError(
                "PickleBuffer can not be pickled when pointing to a "
                "non-contiguous buffer") from None
        in_band = True
        if self._buffer_callback is not None:
            in_band = bool(self._buffer_callback(obj))
        if in_band:
            view = obj.raw()
            data = view if view.nbytes >= FRAME_SIZE_TARGET else \
                view.tobytes()
            if readonly:
                self._save_bytes_data(obj, data)
            else:
                self._save_bytearray_data(obj, data)
        else:
            self._buf += NEXT_BUFFER
            if readonly:
                self._buf += READONLY_BUFFER
        return None

    # Containers: tasks.

    # Tuples, lists and dicts have two forms: a plain loop, used while the
    # nesting is shallow (below _SYNC_DEPTH container levels), and a task
    # (generator) for deeper levels. Both write exactly the same opcodes.

    def _save_tuple(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        n = len(obj)
        if n == 0:
            self._buf += EMPTY_TUPLE if self.bin else MARK + TUPLE
            return None
        short = n <= 3 and self.proto >= 2
        if not short:
            self._buf += MARK
        depth = self._depth
        if depth >= _SYNC_DEPTH:
            return self._task_tuple(obj, n, short)
        self._depth = depth + 1
        step = self._step
        i = 0
        try:
            for item in obj:
                task = step(item)
                if task is not None:
                    self._run(task)
                i += 1
        except Exception as exc:
            _add_note(exc, f"when serializing tuple item {i}")
            raise
        finally:
            self._depth = depth
        self._end_tuple(obj, n, short)
        return None

    def _task_tuple(self, obj, n, short):
        step = self._step
        i = 0
        try:
            for item in obj:
                task = step(item)
                if task is not None:
                    yield task
                i += 1
        except Exception as exc:
            _add_note(exc, f"when serializing tuple item {i}")
            raise
        self._end_tuple(obj, n, short)

    # An object saved from its reduce value is memoized only after its
    # arguments. Reached again while being saved, it is saved again from
    # the start: legitimate data does that a few times (arguments holding
    # lists that hold the object), a reduce value containing its own
    # object does it forever (every endless loop goes through one: lists,
    # dicts and sets are memoized first, tuples cannot hold themselves).
    # CPython runs out of recursion there; without a recursion limit this
    # pickler would run out of memory, so an object open more than
    # _MAX_REENTRY times at once raises the same RecursionError. Counted
    # only while more than _GUARD_REDUCES reduced objects are open, the
    # same rule as in the C pickler, so both fail at the same place.

    def _enter_unmemoized(self, obj):
        key = id(obj)
        count = self._unmemoized.get(key, 0)
        if count >= _MAX_REENTRY:
            raise RecursionError(
                "maximum recursion depth exceeded while pickling an object")
        self._unmemoized[key] = count + 1
        return key

    def _leave_unmemoized(self, key):
        count = self._unmemoized.pop(key)
        if count > 1:
            self._unmemoized[key] = count - 1

    def _end_tuple(self, obj, n, short):
        buf = self._buf
        x = self.memo.get(id(obj))
        if x is not None:
            # The tuple was memoized while saving its items: it contains
            # itself (through a mutable object). Drop the items, fetch it.
            if short:
                buf += POP * n
            elif self.bin:
                buf += POP_MARK
            else:
                buf += POP * (n + 1)
            buf += self.get(x[0])
            return
        buf += _TUPLE_OF_LEN[n] if short else TUPLE
        self._memoize(obj)

    def _save_list(self, obj):
        """An exact list: APPEND for one item, else batches of BATCHSIZE
        items between MARK and APPENDS (APPEND each at protocol 0).

        The list is re-read as it goes, as CPython does, so that a list
        changed by a reduce function while being pickled gives the same
        output.
        """
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        self._enter_fast(obj)
        self._buf += EMPTY_LIST if self.bin else MARK + LIST
        self._memoize(obj)
        if not obj:
            self._leave_fast(obj)
            return None
        depth = self._depth
        if not self.bin:
            if depth >= _SYNC_DEPTH:
                return self._task_batched(iter(obj), False, "list", obj)
            self._save_items_text(obj, depth)
            return None
        if depth >= _SYNC_DEPTH:
            return self._task_list_items(obj)
        self._depth = depth + 1
        step = self._step
        buf = self._buf
        items = iter(obj)
        try:
            if len(obj) == 1:
                task = step(obj[0])
                if task is not None:
                    self._run(task)
                buf += APPEND
            else:
                while True:
                    buf += MARK
                    for item in islice(items, BATCHSIZE):
                        task = step(item)
                        if task is not None:
                            self._run(task)
                    buf += APPENDS
                    if not length_hint(items):
                        break
        except Exception as exc:
            _add_note(exc, _list_item_note(obj, items))
            raise
        finally:
            self._depth = depth
        self._leave_fast(obj)
        return None

    def _save_items_text(self, obj, depth):
        """Protocol 0 list items, saved at once: what _task_batched does
        for them (one APPEND each), without a generator per list."""
        self._depth = depth + 1
        step = self._step
        buf = self._buf
        count = 0
        try:
            for item in obj:
                task = step(item)
                if task is not None:
                    self._run(task)
                buf += APPEND
                count += 1
        except Exception as exc:
            _add_note(exc, f"when serializing list item {count}")
            raise
        finally:
            self._depth = depth
        self._leave_fast(obj)

    def _task_list_items(self, obj):
        step = self._step
        buf = self._buf
        items = iter(obj)
        try:
            if len(obj) == 1:
                task = step(obj[0])
                if task is not None:
                    yield task
                buf += APPEND
            else:
                while True:
                    buf += MARK
                    for item in islice(items, BATCHSIZE):
                        task = step(item)
                        if task is not None:
                            yield task
                    buf += APPENDS
                    if not length_hint(items):
                        break
        except Exception as exc:
            _add_note(exc, _list_item_note(obj, items))
            raise
        self._leave_fast(obj)

    def _task_batched(self, items, pairs, label, obj=None):
        """APPEND(S) or SETITEM(S) for items read from an iterator.

        Used for list and dict subclasses (through their reduce value),
        for reduce values' listitems/dictitems, and for protocol 0. With
        pairs, each item is a (key, value) pair. At protocol 0 each item
        gets its own APPEND/SETITEM. Otherwise items go in batches of
        BATCHSIZE between MARK and APPENDS/SETITEMS; the iterator is read
        one item ahead, in CPython's order, to write a lone last item with
        APPEND/SETITEM instead of a batch.
        """
        one, many = (SETITEM, SETITEMS) if pairs else (APPEND, APPENDS)
        parts_of = _check_pair if pairs else _single
        step = self._step
        buf = self._buf
        count = 0
        noted = _NO_KEY     # for pairs: the key whose value is being saved
        try:
            if not self.bin:
                for item in items:
                    parts = parts_of(item)
                    for i, part in enumerate(parts):
                        if pairs and i:
                            noted = parts[0]
                        task = step(part)
                        if task is not None:
                            yield task
                    noted = _NO_KEY
                    buf += one
                    count += 1
            else:
                while True:
                    first = next(items, _END)
                    if first is _END:
                        break
                    parts = parts_of(first)
                    item = next(items, _END)
                    if item is not _END:
                        buf += MARK
                    for i, part in enumerate(parts):
                        if pairs and i:
                            noted = parts[0]
                        task = step(part)
                        if task is not None:
                            yield task
                    noted = _NO_KEY
                    count += 1
                    if item is _END:
                        buf += one
                        break
                    n = 1
                    while True:
                        parts = parts_of(item)
                        for i, part in enumerate(parts):
                            if pairs and i:
                                noted = parts[0]
                            task = step(part)
                            if task is not None:
                                yield task
                        noted = _NO_KEY
                        count += 1
                        n += 1
                        if n == BATCHSIZE:
                            break
                        item = next(items, _END)
                        if item is _END:
                            break
                    buf += many
                    if n != BATCHSIZE:
                        break
        except Exception as exc:
            # A list item is noted by its index; a dict item only when its
            # value fails (as in CPython), by its key.
            if not pairs:
                _add_note(exc, f"when serializing {label} item {count}")
            elif noted is not _NO_KEY:
                _add_note(exc, f"when serializing {label} item {noted!r}")
            raise
        if obj is not None:
            self._leave_fast(obj)

    def _save_dict(self, obj):
        """An exact dict: SETITEM for one item, else batches of BATCHSIZE
        pairs between MARK and SETITEMS (SETITEM each at protocol 0). As in
        CPython, a dict of 1000*k items ends with an empty batch."""
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        self._enter_fast(obj)
        self._buf += EMPTY_DICT if self.bin else MARK + DICT
        self._memoize(obj)
        if not obj:
            self._leave_fast(obj)
            return None
        depth = self._depth
        if depth >= _SYNC_DEPTH:
            if not self.bin:
                return self._task_batched(iter(obj.items()), True, "dict",
                                          obj)
            return self._task_dict_items(obj)
        self._depth = depth + 1
        step = self._step
        buf = self._buf
        size = len(obj)
        noted = _NO_KEY     # the key whose value is being saved
        try:
            if size == 1 or not self.bin:
                # One SETITEM per pair: the lone pair, or every pair at
                # protocol 0, read from the live view as CPython does (a
                # change of size during the dump is then an error).
                pairs = obj.items()
                if self.bin:
                    for pair in pairs:
                        break
                    pairs = (pair,)
                for key, value in pairs:
                    task = step(key)
                    if task is not None:
                        self._run(task)
                    noted = key
                    task = step(value)
                    if task is not None:
                        self._run(task)
                    noted = _NO_KEY
                    buf += SETITEM
            else:
                items = iter(obj.items())
                while True:
                    buf += MARK
                    n = 0
                    for key, value in islice(items, BATCHSIZE):
                        task = step(key)
                        if task is not None:
                            self._run(task)
                        noted = key
                        task = step(value)
                        if task is not None:
                            self._run(task)
                        noted = _NO_KEY
                        n += 1
                    buf += SETITEMS
                    if len(obj) != size:
                        raise RuntimeError(
                            "dictionary changed size during iteration")
                    if n != BATCHSIZE:
                        break
        except Exception as exc:
            # As in CPython, only a failing value is noted, not a key.
            if noted is not _NO_KEY:
                _add_note(exc, f"when serializing dict item {noted!r}")
            raise
        finally:
            self._depth = depth
        self._leave_fast(obj)
        return None

    def _task_dict_items(self, obj):
        step = self._step
        buf = self._buf
        size = len(obj)
        noted = _NO_KEY     # the key whose value is being saved
        try:
            if size == 1:
                for key, value in obj.items():
                    break
                task = step(key)
                if task is not None:
                    yield task
                noted = key
                task = step(value)
                if task is not None:
                    yield task
                noted = _NO_KEY
                buf += SETITEM
            else:
                items = iter(obj.items())
                while True:
                    buf += MARK
                    n = 0
                    for key, value in islice(items, BATCHSIZE):
                        task = step(key)
                        if task is not None:
                            yield task
                        noted = key
                        task = step(value)
                        if task is not None:
                            yield task
                        noted = _NO_KEY
                        n += 1
                    buf += SETITEMS
                    if len(obj) != size:
                        raise RuntimeError(
                            "dictionary changed size during iteration")
                    if n != BATCHSIZE:
                        break
        except Exception as exc:
            # As in CPython, only a failing value is noted, not a key.
            if noted is not _NO_KEY:
                _add_note(exc, f"when serializing dict item {noted!r}")
            raise
        self._leave_fast(obj)

    def _save_set(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        if self.proto < 4:
            return self._save_reduce_value((set, (list(obj),)), obj)
        self._buf += EMPTY_SET
        self._memoize(obj)
        if not obj:
            return None
        return self._start_task(self._task_set_items(obj))

    def _task_set_items(self, obj):
        step = self._step
        size = len(obj)
        items = iter(obj)
        try:
            while True:
                self._buf += MARK
                n = 0
                for item in islice(items, BATCHSIZE):
                    task = step(item)
                    if task is not None:
                        yield task
                    n += 1
                self._buf += ADDITEMS
                if len(obj) != size:
                    raise RuntimeError("set changed size during iteration")
                if n != BATCHSIZE:
                    break
        except Exception as exc:
            _add_note(exc, "when serializing set element")
            raise

    def _save_frozenset(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        if self.proto < 4:
            return self._save_reduce_value((frozenset, (list(obj),)), obj)
        return self._start_task(self._task_frozenset(obj))

    def _task_frozenset(self, obj):
        step = self._step
        buf = self._buf
        buf += MARK
        try:
            for item in obj:
                task = step(item)
                if task is not None:
                    yield task
        except Exception as exc:
            _add_note(exc, "when serializing frozenset element")
            raise
        x = self.memo.get(id(obj))
        if x is not None:
            buf += POP_MARK
            buf += self.get(x[0])
            return
        buf += FROZENSET
        self._memoize(obj)

    # Classes and functions.

    def _save_type(self, obj):
        if obj is _NoneType:
            return self._save_reduce_value((type, (None,)), obj)
        if obj is _Ellipsis_type:
            return self._save_reduce_value((type, (Ellipsis,)), obj)
        if obj is _NotImplemented_type:
            return self._save_reduce_value((type, (NotImplemented,)), obj)
        return self._save_global(obj, None)

    def _save_global(self, obj, name):
        if self._save_global_hook is not None:
            self._save_global_hook(obj, name)
            return None
        return self._save_global_base(obj, name)

    def _save_global_base(self, obj, name=None):
        """Write a reference to obj by module and qualified name."""
        if name is None:
            name = getattr(obj, "__qualname__", None)
            if name is None:
                name = obj.__name__
        parts = _dotted_path(name)
        module_name = whichmodule(obj, parts)
        try:
            module = sys.modules.get(module_name)
            if module is None:
                __import__(module_name, level=0)
                module = sys.modules[module_name]
        except Exception:
            raise PicklingError(
                f"Can't pickle {obj!r}: import of module {module_name!r} "
                f"failed") from None
        try:
            found, parent = _deep_getattr(module, parts)
        except Exception:
            raise PicklingError(
                f"Can't pickle {obj!r}: attribute lookup {name} on "
                f"{module_name} failed") from None
        if found is not obj:
            raise PicklingError(
                f"Can't pickle {obj!r}: it's not the same object as "
                f"{module_name}.{name}")

        proto = self.proto
        if proto >= 2:
            code = _extension_registry.get((module_name, name), _ABSENT)
            if code is not _ABSENT:
                self._write_ext(obj, code)
                return None
        lastname = parts[-1]
        if parent is module:
            name = lastname
        if proto >= 4:
            # STACK_GLOBAL after the two names; they are plain strs, saved
            # at once unless persistent_id turns one into a task.
            task = self._step(module_name)
            if task is None:
                task = self._step(name)
                name = None
                if task is None:
                    self._buf += STACK_GLOBAL
                    self._memoize(obj)
                    return None
            return self._start_task(
                self._task_stack_global(obj, task, name))
        if parent is not module:
            if _versions.NESTED_NAMES_AS_GETATTR_CHAIN:
                return self._start_task(
                    self._task_getattr_chain(obj, module_name, parts))
            # A nested name at protocols 0-3: getattr(parent, lastname).
            return self._start_task(
                self._task_nested_global(obj, parent, lastname))
        self._write_global_line(module_name, name)
        self._memoize(obj)
        return None

    def _write_global_line(self, module_name, name):
        """GLOBAL with both names, mapped to Python 2's below protocol 3."""
        proto = self.proto
        if self.fix_imports:
            module_name, name = _map_name_3to2(module_name, name)
        encoding = "utf-8" if proto == 3 else "ascii"
        try:
            module_bytes = module_name.encode(encoding)
        except UnicodeEncodeError:
            raise PicklingError(
                f"can't pickle module identifier '{module_name}' using "
                f"pickle protocol {proto}") from None
        try:
            name_bytes = name.encode(encoding)
        except UnicodeEncodeError:
            raise PicklingError(
                f"can't pickle global identifier '{name}' using pickle "
                f"protocol {proto}") from None
        self._buf += GLOBAL + module_bytes + b"\n" + name_bytes + b"\n"

    def _task_getattr_chain(self, obj, module_name, parts):
        """A nested name at protocols 0-3 as CPython 3.13 writes it:
        getattr(...getattr(TOP, parts[1])..., parts[-1]), TOP a GLOBAL."""
        with_mark = self.proto < 2     # TUPLE, not TUPLE2, closes the args
        for _ in parts[1:]:
            task = self._step(getattr)
            if task is not None:
                yield task
            if with_mark:
                self._buf += MARK
        self._write_global_line(module_name, parts[0])
        for attrname in parts[1:]:
            task = self._step(attrname)
            if task is not None:
                yield task
            self._buf += (TUPLE if with_mark else TUPLE2) + REDUCE
        self._memoize(obj)

    def _task_stack_global(self, obj, pending, name):
        """The rest of STACK_GLOBAL: finish the pending task, save the
        name if it is not saved yet, write the opcode, memoize obj."""
        yield pending
        if name is not None:
            task = self._step(name)
            if task is not None:
                yield task
        self._buf += STACK_GLOBAL
        self._memoize(obj)

    def _write_ext(self, obj, code):
        if _versions.EXTENSION_CODE_THROUGH_INDEX:
            code = index(code)
        elif not isinstance(code, int):
            raise PicklingError(
                f"Can't pickle {obj!r}: extension code {code!r} isn't an "
                f"integer")
        if not _C_LONG_MIN <= code <= _C_LONG_MAX:
            raise OverflowError("Python int too large to convert to C long")
        if not 0 < code <= 0x7FFFFFFF:
            if _versions.EXTENSION_CODE_THROUGH_INDEX:
                raise RuntimeError(f"extension code {int(code)} is out of "
                                   f"range")
            raise PicklingError(
                f"Can't pickle {obj!r}: extension code {int(code)} is out "
                f"of range")
        code = int(code)
        if code <= 0xFF:
            self._buf += EXT1 + bytes((code,))
        elif code <= 0xFFFF:
            self._buf += EXT2 + _pack_uint2(code)
        else:
            self._buf += EXT4 + _pack_int4(code)

    # The reduce protocol.

    def _save_reduce_value(self, rv, obj, note_object=False):
        """Save obj from its reduce value rv (callable, args, ...)."""
        if self._save_reduce_hook is not None:
            if not isinstance(rv, tuple):
                raise PicklingError(
                    "__reduce__ must return a string or tuple")
            self._save_reduce_hook(*rv, obj=obj)
            return None
        return self._start_task(self._task_reduce(rv, obj, note_object))

    def _task_reduce(self, rv, obj, note_object=False):
        step = self._step
        what = None
        guard = None
        opened = obj is not None
        try:
            if opened:
                self._open_reduces += 1
                if self._open_reduces > _GUARD_REDUCES:
                    guard = self._enter_unmemoized(obj)
            n = len(rv)
            if not 2 <= n <= 6:
                raise PicklingError(
                    "tuple returned by __reduce__ must contain 2 through 6 "
                    "elements")
            func, args, state, listitems, dictitems, state_setter = \
                rv + (None,) * (6 - n)
            if not callable(func):
                raise PicklingError(
                    "first item of the tuple returned by __reduce__ must be "
                    "callable")
            if not isinstance(args, tuple):
                raise PicklingError(
                    "second item of the tuple returned by __reduce__ must be "
                    "a tuple")
            if listitems is not None and not hasattr(type(listitems),
                                                     "__next__"):
                raise PicklingError(
                    "fourth element of the tuple returned by __reduce__ must "
                    f"be an iterator, not {_tp_name(type(listitems))}")
            if dictitems is not None and not hasattr(type(dictitems),
                                                     "__next__"):
                raise PicklingError(
                    "fifth element of the tuple returned by __reduce__ must "
                    f"be an iterator, not {_tp_name(type(dictitems))}")
            if state_setter is not None and not callable(state_setter):
                raise PicklingError(
                    "sixth element of the tuple returned by __reduce__ must "
                    f"be a function, not {_tp_name(type(state_setter))}")

            use_newobj = use_newobj_ex = False
            if self.proto >= 2:
                name = getattr(func, "__name__", None)
                if isinstance(name, str):
                    use_newobj_ex = name == "__newobj_ex__"
                    use_newobj = not use_newobj_ex and name == "__newobj__"

            if obj is not None:
                self._enter_fast(obj)
            if use_newobj_ex:
                if len(args) != 3:
                    raise PicklingError(
                        "length of the NEWOBJ_EX argument tuple must be "
                        f"exactly 3, not {len(args)}")
                cls, cls_args, kwargs = args
                if not isinstance(cls, type):
                    raise PicklingError(
                        "first item from NEWOBJ_EX argument tuple must be a "
                        f"class, not {_tp_name(type(cls))}")
                if not isinstance(cls_args, tuple):
                    raise PicklingError(
                        "second item from NEWOBJ_EX argument tuple must be a "
                        f"tuple, not {_tp_name(type(cls_args))}")
                if not isinstance(kwargs, dict):
                    raise PicklingError(
                        "third item from NEWOBJ_EX argument tuple must be a "
                        f"dict, not {_tp_name(type(kwargs))}")
                if self.proto >= 4:
                    what = "class"
                    task = step(cls)
                    if task is not None:
                        yield task
                    what = "__new__ arguments"
                    task = step(cls_args)
                    if task is not None:
                        yield task
                    task = step(kwargs)
                    if task is not None:
                        yield task
                    self._buf += NEWOBJ_EX
                else:
                    what = "reconstructor"
                    task = step(partial(cls.__new__, cls, *cls_args,
                                        **kwargs))
                    if task is not None:
                        yield task
                    what = "reconstructor arguments"
                    task = step(())
                    if task is not None:
                        yield task
                    self._buf += REDUCE
            elif use_newobj:
                if not args:
                    raise PicklingError("__newobj__ arglist is empty")
                cls = args[0]
                if not isinstance(cls, type):
                    raise PicklingError(
                        "args[0] from __newobj__ args is not a type")
                if obj is not None and cls is not obj.__class__:
                    raise PicklingError(
                        "args[0] from __newobj__ args has the wrong class")
                what = "class"
                task = step(cls)
                if task is not None:
                    yield task
                what = "__new__ arguments"
                task = step(args[1:])
                if task is not None:
                    yield task
                self._buf += NEWOBJ
            else:
                what = "reconstructor"
                task = step(func)
                if task is not None:
                    yield task
                what = "reconstructor arguments"
                task = step(args)
                if task is not None:
                    yield task
                self._buf += REDUCE

            if obj is not None:
                x = self.memo.get(id(obj))
                if x is not None:
                    # obj was pickled while pickling its own arguments.
                    self._buf += POP
                    self._buf += self.get(x[0])
                    self._leave_fast(obj)
                    return
                self._memoize(obj)

            if listitems is not None:
                what = None
                yield self._task_batched(listitems, False, _type_label(obj))
            if dictitems is not None:
                what = None
                yield self._task_batched(dictitems, True, _type_label(obj))
            if state is not None:
                if state_setter is None:
                    what = "state"
                    task = step(state)
                    if task is not None:
                        yield task
                    self._buf += BUILD
                else:
                    # state_setter(obj, state), its result popped.
                    what = "state setter"
                    task = step(state_setter)
                    if task is not None:
                        yield task
                    what = "object"
                    task = step(obj)
                    if task is not None:
                        yield task
                    what = "state"
                    task = step(state)
                    if task is not None:
                        yield task
                    self._buf += TUPLE2 + REDUCE + POP
        except Exception as exc:
            if obj is not None:
                label = _type_label(obj)
                if what is not None and what != "object":
                    _add_note(exc, f"when serializing {label} {what}")
                # As in CPython, only a reduce value from __reduce_ex__,
                # a dispatch table or reducer_override gets this note; not
                # the ones the pickler makes itself (sets below protocol 4).
                if note_object:
                    _add_note(exc, f"when serializing {label} object")
            raise
        finally:
            if opened:
                self._open_reduces -= 1
                if guard is not None:
                    self._leave_unmemoized(guard)
        if obj is not None:
            self._leave_fast(obj)

    def _task_nested_global(self, obj, parent, lastname):
        # Counted and guarded like a reduced object: a class whose
        # qualified name leads back to itself (C.__qualname__ = "C.ref",
        # C.ref = C) would be saved forever.
        guard = None
        self._open_reduces += 1
        try:
            if self._open_reduces > _GUARD_REDUCES:
                guard = self._enter_unmemoized(obj)
            task = self._save_reduce_value((getattr, (parent, lastname)),
                                           None)
            if task is not None:
                yield task
        finally:
            self._open_reduces -= 1
            if guard is not None:
                self._leave_unmemoized(guard)
        self._memoize(obj)

    # Memo.

    def _memoize(self, obj):
        if self.fast:
            return
        memo = self.memo
        idx = len(memo)
        memo[id(obj)] = (idx, obj)
        if self.proto >= 4:
            self._buf += MEMOIZE
        elif self.bin:
            self._buf += _BINPUT_OF[idx] if idx < 256 else \
                LONG_BINPUT + _pack_uint4(idx)
        else:
            self._buf += b"p%d\n" % idx

    # Fast mode (no memo): refuse cycles instead of looping forever.

    def _enter_fast(self, obj):
        if self.fast and self._fast_active is not None:
            active = self._fast_active
            key = id(obj)
            if key in active:
                raise ValueError(
                    "fast mode: can't pickle cyclic objects including "
                    f"object type {_tp_name(type(obj))} at {key:#x}")
            active[key] = obj

    def _leave_fast(self, obj):
        if self.fast and self._fast_active is not None:
            self._fast_active.pop(id(obj), None)


_END = object()
_NO_KEY = object()


def _list_item_note(obj, items):
    """The error note for the list item being saved when items stopped."""
    if len(obj) == 1:
        return "when serializing list item 0"
    index = len(obj) - length_hint(items) - 1
    return f"when serializing list item {index}"


def _check_pair(pair):
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise TypeError("dict items iterator must return 2-tuples")
    return pair


def _single(item):
    return (item,)


def _map_name_3to2(module_name, name):
    """fix_imports: Python 3 names to the Python 2 names they had."""
    mapped = _compat_pickle.REVERSE_NAME_MAPPING.get((module_name, name))
    if mapped is not None:
        return mapped
    return (_compat_pickle.REVERSE_IMPORT_MAPPING.get(module_name,
                                                      module_name), name)


# ----------------------------------------------------- dispatch tables

# Internal savers by exact type: they return None (all written) or a task.
# Atoms come first in CPython's order and are never memoized; the other
# savers look the object up in the memo themselves.
_SAVERS = {
    _NoneType: Pickler._save_none,
    bool: Pickler._save_bool,
    int: Pickler._save_int,
    float: Pickler._save_float,
    bytes: Pickler._save_bytes,
    str: Pickler._save_str,
    dict: Pickler._save_dict,
    set: Pickler._save_set,
    frozenset: Pickler._save_frozenset,
    list: Pickler._save_list,
    tuple: Pickler._save_tuple,
    bytearray: Pickler._save_bytearray,
    PickleBuffer: Pickler._save_picklebuffer,
}

Pickler._savers = _SAVERS

# Container levels saved by plain recursion before tasks take over.
_SYNC_DEPTH = 50
_MAX_REENTRY = 1000
_GUARD_REDUCES = 32
_DRIVING = 1 << 30


def _synchronous(task_function, name):
    """The public dispatch function for an internal saver."""
    def save(self, obj):
        self._run(task_function(self, obj))
    save.__name__ = save.__qualname__ = name
    save._brinery_task = task_function
    return save


Pickler.save_none = _synchronous(Pickler._save_none, "save_none")
Pickler.save_bool = _synchronous(Pickler._save_bool, "save_bool")
Pickler.save_long = _synchronous(Pickler._save_int, "save_long")
Pickler.save_float = _synchronous(Pickler._save_float, "save_float")
Pickler.save_bytes = _synchronous(Pickler._save_bytes, "save_bytes")
Pickler.save_bytearray = _synchronous(Pickler._save_bytearray,
                                      "save_bytearray")
Pickler.save_picklebuffer = _synchronous(Pickler._save_picklebuffer,
                                         "save_picklebuffer")
Pickler.save_str = _synchronous(Pickler._save_str, "save_str")
Pickler.save_tuple = _synchronous(Pickler._save_tuple, "save_tuple")
Pickler.save_list = _synchronous(Pickler._save_list, "save_list")
Pickler.save_dict = _synchronous(Pickler._save_dict, "save_dict")
Pickler.save_set = _synchronous(Pickler._save_set, "save_set")
Pickler.save_frozenset = _synchronous(Pickler._save_frozenset,
                                      "save_frozenset")
Pickler.save_type = _synchronous(Pickler._save_type, "save_type")

Pickler.dispatch = {
    _NoneType: Pickler.save_none,
    bool: Pickler.save_bool,
    int: Pickler.save_long,
    float: Pickler.save_float,
    bytes: Pickler.save_bytes,
    bytearray: Pickler.save_bytearray,
    PickleBuffer: Pickler.save_picklebuffer,
    str: Pickler.save_str,
    tuple: Pickler.save_tuple,
    list: Pickler.save_list,
    dict: Pickler.save_dict,
    set: Pickler.save_set,
    frozenset: Pickler.save_frozenset,
    FunctionType: Pickler.save_global,
    type: Pickler.save_type,
}
_DEFAULT_DISPATCH = dict(Pickler.dispatch)


def _savers_for(dispatch):
    """The saver table for a subclass whose dispatch mapping differs.

    Entries that are still brinery's own savers keep their fast internal
    form; anything else is called synchronously, after the memo check, as
    pickle._Pickler calls its dispatch entries.
    """
    savers = dict(_SAVERS)
    for cls, function in dispatch.items():
        if _DEFAULT_DISPATCH.get(cls) is not function:
            savers[cls] = _call_dispatch_entry(function)
    for cls in _DEFAULT_DISPATCH:
        if cls not in dispatch:
            savers.pop(cls, None)
    return savers


def _call_dispatch_entry(function):
    def call(self, obj):
        x = self.memo.get(id(obj))
        if x is not None:
            self._buf += self.get(x[0])
            return None
        function(self, obj)
        return None
    return call


# ---------------------------------------------------- module functions

def dump(obj, file, protocol=None, *, fix_imports=True, buffer_callback=None):
    """Write a pickle of obj to the open binary file."""
    Pickler(file, protocol, fix_imports=fix_imports,
            buffer_callback=buffer_callback).dump(obj)


def dumps(obj, protocol=None, *, fix_imports=True, buffer_callback=None):
    """Return the pickle of obj as a bytes object."""
    # A fresh base-class pickler has no hooks to read and nothing to clean
    # up: skip both (this matters for many small dumps() calls).
    pickler = Pickler.__new__(Pickler)
    pickler._configure(protocol, fix_imports, buffer_callback)
    pickler._file_write = None
    pickler.memo = {}
    pickler.fast = 0
    pickler._dump(obj)
    return pickler._result
