"""The pure-Python Unpickler.

It reads every pickle CPython writes, protocols 0 to 5, and Python 2
pickles, with the semantics of CPython's C unpickler (``_pickle``): the
same results, the same exception types for malformed input (nearly always
`UnpicklingError`), the same MARK discipline (opcodes cannot pop below the
topmost mark).

The machine works on an in-memory buffer and a position. `loads` reads
straight from the caller's bytes. For a file, the buffer is filled from
``read()``: in chunks when the file is seekable (the unread rest is given
back with ``seek`` when the load ends, so the file is left right after
STOP). An unseekable file with ``peek()`` (a pipe or socket behind a
buffered reader) is read from what ``peek()`` shows, taken with ``read()``
once all of it is needed or, at the end, up to STOP. One without ``peek()``
is read ahead in whole opcodes, up to 64 kB, each argument with the byte
after it (a valid pickle has at least one more opcode after any argument),
never past STOP (`Unpickler._read_ahead`). A declared length
is never trusted: in memory it is checked against the bytes that remain
before anything is allocated, and large reads from files grow with the
data actually received.

Each opcode has a handler ``load_<name>(self, pos) -> pos``: it receives
the position just after the opcode byte and returns the position after its
argument. The dispatch list is built from the opcode table in `_opcodes`.

Every error raised while loading carries a note saying at which byte and
in which opcode it happened.
"""

import codecs
import io
import re
import sys
from copyreg import _extension_cache, _inverted_registry
from struct import Struct

import _compat_pickle

from . import _versions
from ._errors import UnpicklingError
from ._pickler import _tp_name
from ._opcodes import (
    HIGHEST_PROTOCOL, OPCODE_BY_BYTE, OPCODES, TAKEN_FROM_ARGUMENT1,
    TAKEN_FROM_ARGUMENT8U, UP_TO_NEWLINE)

__all__ = ["Unpickler", "load", "loads", "decode_long"]

_unpack_int4 = Struct("<i").unpack_from
_unpack_uint2 = Struct("<H").unpack_from
_unpack_uint4 = Struct("<I").unpack_from
_unpack_uint8 = Struct("<Q").unpack_from
_unpack_double = Struct(">d").unpack_from

# A seekable file is read in chunks of this size.
_CHUNK = 64 * 1024
# A file that can neither seek nor peek is read this far ahead, in whole
# opcodes (_read_ahead).
_READ_AHEAD = 64 * 1024
# Needs below this size are met from peek() on an unseekable file.
_PEEK_MAX = 4096
# Reads larger than this are done with care (see _read_file).
_LARGE_READ = 1 << 20
_SSIZE_MAX = sys.maxsize


def _ahead_kinds():
    """For each byte, how _read_ahead finds the end of that opcode's
    argument: a fixed size (0: no argument), or a negative kind: one of
    the table's TAKEN_FROM_ARGUMENT* (a counted argument), a line, two
    lines, the 8-byte size of a FRAME (after which it stops), or the end
    (STOP, and bytes that are no opcode: the loop reports those)."""
    kinds = [_AHEAD_END] * 256
    for info in OPCODES:
        arg = info.arg
        if info.name == "STOP":
            continue
        if info.name == "FRAME":
            kinds[info.byte] = _AHEAD_FRAME
        elif arg is None:
            kinds[info.byte] = 0
        elif arg.name == "stringnl_noescape_pair":
            kinds[info.byte] = _AHEAD_TWO_LINES
        else:
            kinds[info.byte] = arg.n        # > 0, or a negative kind
    return kinds


_AHEAD_LINE = UP_TO_NEWLINE
_AHEAD_TWO_LINES = -6
_AHEAD_FRAME = -7
_AHEAD_END = -8
_AHEAD_KIND = _ahead_kinds()
_NAME_MAPPING = _compat_pickle.NAME_MAPPING
_IMPORT_MAPPING = _compat_pickle.IMPORT_MAPPING
_intern = sys.intern


def decode_long(data):
    """The int whose little-endian two's-complement bytes are data.

    >>> decode_long(b'\\xff\\x00'), decode_long(b'\\x00\\xff')
    (255, -256)
    """
    return int.from_bytes(data, "little", signed=True)


def _truncated():
    return UnpicklingError("pickle data was truncated")


# ----------------------------------------------- text argument parsing
# The protocol 0 opcodes carry text arguments. These functions give them
# the meaning the C unpickler gives them (it parses with C's strtol and
# PyOS_string_to_double, and stops at a NUL byte); brinery.scan reads them
# with the same functions.

_C_SPACE = frozenset(b" \t\n\v\f\r")
_NONZERO_DIGITS = frozenset(bytes((d,)) for d in b"123456789")
_FLOAT_LAX_START = frozenset(bytes((c,)) for c in b" \t\n\v\f\r") | {b""}
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


def _strtol(s):
    """C strtol(s, &end, 0): (value, end index, overflowed)."""
    n = len(s)
    i = 0
    while i < n and s[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and s[i] in b"+-":
        negative = s[i] == 0x2D
        i += 1
    base = 10
    if i < n and s[i] == 0x30:                           # '0'
        if (i + 2 < n and s[i + 1] in b"xX"
                and s[i + 2] in _HEX_DIGITS):
            base = 16
            i += 2
        else:
            base = 8
    start = i
    if base == 16:
        valid = _HEX_DIGITS
    elif base == 8:
        valid = b"01234567"
    else:
        valid = b"0123456789"
    while i < n and s[i] in valid:
        i += 1
    if i == start:
        return 0, 0, False
    if base == 10 and i - start > 19:
        # Overflows a C long; int() might even refuse that many digits.
        return 0, i, True
    value = int(s[start:i], base)
    if negative:
        value = -value
    return value, i, not _LONG_MIN <= value <= _LONG_MAX


def _c_string(line):
    """The line as C code sees it: up to the first NUL byte."""
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def _c_text(s):
    """s as C's "%.200s" puts it in a message: 200 bytes, decoded as
    UTF-8 with replacement (the newline that ends a line included)."""
    return s[:200].decode("utf-8", "replace")


def parse_int_line(line):
    """The value of INT's argument line (newline included)."""
    # Fast path: a plain decimal with no leading zero (strtol base 0 would
    # read a leading zero as octal, and I00/I01 are bools) means the same
    # to int() and to C.
    if line == b"01\n":            # how Python 2.2+ wrote True and False
        return True
    if line == b"00\n":
        return False
    first = line[:1]
    if first in _NONZERO_DIGITS or (first == b"-"
                                    and line[1:2] in _NONZERO_DIGITS):
        try:
            return int(line)
        except ValueError:
            pass            # the exact rules below decide
    if len(line) < 2:
        raise _truncated()
    s = _c_string(line)
    value, end, overflow = _strtol(s)
    if overflow or s[end:end + 1] not in (b"\n", b""):
        try:
            return int(s, 0)
        except ValueError:
            raise ValueError("could not convert string to int") from None
    if len(line) == 3 and value in (0, 1):
        return bool(value)          # Python 2.2 wrote bools as I00/I01
    return value


def parse_long_line(line):
    """The value of LONG's argument line: decimal digits, optional L."""
    if len(line) < 2:
        raise _truncated()
    s = line[:-2] if line[-2:-1] == b"L" else line
    return _c_int(_c_string(s), 0)


def _c_int(s, base):
    """int(s, base) with the error C's PyLong_FromString(s, NULL, base)
    raises: the base it settled on and the text's repr (200 bytes at most,
    strict UTF-8)."""
    try:
        return int(s, base)
    except ValueError as exc:
        if not str(exc).startswith("invalid literal"):
            raise       # too many digits: C raises the same error
    text = s[:200].decode("utf-8")
    if base == 0:
        digits = s.lstrip(b" \t\n\r\v\f")
        if digits[:1] in (b"+", b"-"):
            digits = digits[1:]
        if digits[:1] != b"0":
            base = 10
        elif digits[1:2] in (b"x", b"X"):
            base = 16
        elif digits[1:2] in (b"o", b"O"):
            base = 8
        elif digits[1:2] in (b"b", b"B"):
            base = 2
    raise ValueError(
        f"invalid literal for int() with base {base}: {repr(text)[:200]}")


_FLOAT_PREFIX = re.compile(
    rb"[+-]?(?:inf(?:inity)?|nan|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)",
    re.IGNORECASE)


def parse_float_line(line):
    """The value of FLOAT's argument line."""
    # Fast path: what repr() writes parses the same with float(); float()
    # is laxer than C (spaces before or after, underscores, overflow to
    # inf), so anything unusual goes through the exact rules below.
    # (0x5F is '_': an int operand keeps `in` from trying int first.)
    if (line[:1] not in _FLOAT_LAX_START
            and line[-2:-1] not in _FLOAT_LAX_START and 0x5F not in line):
        try:
            value = float(line)
        except ValueError:
            pass
        else:
            if value - value == 0.0:            # finite
                return value
    if len(line) < 2:
        raise _truncated()
    s = _c_string(line)
    match = _FLOAT_PREFIX.match(s)
    if match is None:
        raise ValueError(
            f"could not convert string to float: '{_c_text(s)}'")
    text = match.group()
    value = float(text)
    if value in (float("inf"), float("-inf")) and b"n" not in text.lower():
        raise OverflowError(
            f"value too large to convert to float: '{_c_text(s)}'")
    if s[match.end():match.end() + 1] not in (b"\n", b""):
        raise ValueError("could not convert string to float")
    return value


def parse_memo_index(line):
    """A GET/PUT argument line: a base-10 memo index."""
    if len(line) < 2:
        raise _truncated()
    return _c_int(_c_string(line), 10)


def decode_string_line(line):
    """STRING's argument: a quoted, escaped Python 2 literal -> bytes."""
    body = line[:-1]
    if len(body) < 2 or body[0] != body[-1] or body[0] not in b"'\"":
        raise UnpicklingError("the STRING opcode argument must be quoted")
    return codecs.escape_decode(body[1:-1])[0]


def decode_unicode_line(line):
    """UNICODE's argument: raw-unicode-escape text -> str."""
    return _decode_raw_unicode_escape(line[:-1])


def _decode_raw_unicode_escape(text):
    # Without a backslash (0x5C) raw-unicode-escape is Latin-1, which has
    # a fast path; the codec's own function skips the codec lookup that
    # bytes.decode does for this name.
    if 0x5C not in text:
        return text.decode("latin-1")
    return codecs.raw_unicode_escape_decode(text)[0]


def decode_name_line(line, encoding="utf-8"):
    """One line of GLOBAL's or INST's argument -> str."""
    if len(line) < 2:
        raise _truncated()
    return str(line[:-1], encoding, "strict")


# How CPython words a '<locals>' name in find_class.
_LOCAL_ATTRIBUTE = ("Can't get local attribute" if sys.version_info >= (3, 13)
                    else "Can't pickle local attribute")


def compat_name(module, name):
    """The Python 3 (module, name) for a name a Python 2 pickle uses.

    Applied to globals of protocols 0-2 when fix_imports is on; brinery.safe
    checks its allow-list against the result.
    """
    mapped = _NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _IMPORT_MAPPING.get(module, module), name


def byte_view(data):
    """The input of loads(): bytes as they are, another buffer as a flat
    memoryview of bytes. Errors as CPython's: TypeError for what is not a
    buffer; for a non-contiguous one, CPython asks the exporter for a
    contiguous buffer and most refuse, so raise what the exporter raises
    (a view of a copy when it accepts)."""
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not "
                        f"'{type(data).__name__}'") from None
    if not view.c_contiguous:
        io.BytesIO().write(data)
        view = memoryview(view.tobytes())
    return view.cast("B")


def getattribute(obj, name, allow_qualname):
    """Resolve name (a dotted qualname when allowed) on obj."""
    if not allow_qualname:
        try:
            return getattr(obj, name)
        except AttributeError:
            raise AttributeError(
                f"Can't get attribute {name!r} on {obj!r}") from None
    parts = name.split(".")
    if "<locals>" in parts:
        raise AttributeError(f"{_LOCAL_ATTRIBUTE} {name!r} on {obj!r}")
    found = obj
    for part in parts:
        try:
            found = getattr(found, part)
        except AttributeError:
            # C names the whole path and the module it started from.
            raise AttributeError(
                f"Can't get attribute {name!r} on {obj!r}") from None
    return found


class _NoBuffers(tuple):
    """The default of ``buffers``: shown as ``()`` in the signature, as
    CPython's is, but told apart from an explicit ``()``, which (unlike
    the default) makes NEXT_BUFFER fail with 'not enough out-of-band
    buffers'."""

    __slots__ = ()


_NO_BUFFERS = _NoBuffers()


class _Stop(Exception):
    pass


class Unpickler:
    """Read objects back from a pickle data stream.

    ``Unpickler(file, *, fix_imports=True, encoding="ASCII",
    errors="strict", buffers=())``; see `pickle.Unpickler`.
    """

    def __init__(self, file, *, fix_imports=True, encoding="ASCII",
                 errors="strict", buffers=_NO_BUFFERS):
        # Looked up in CPython's order; only AttributeError means "absent".
        self._file_peek = getattr(file, "peek", None)
        getattr(file, "readinto", None)
        self._file_read = getattr(file, "read", None)
        self._file_readline = getattr(file, "readline", None)
        if self._file_read is None or self._file_readline is None:
            raise TypeError(
                "file must have 'read' and 'readline' attributes")
        self._file = file
        self._seekable = None       # decided at the first load
        self._init_common(fix_imports, encoding, errors, buffers)

    def _init_common(self, fix_imports, encoding, errors, buffers):
        if not isinstance(encoding, str):
            raise TypeError(
                f"argument 'encoding' must be str, not "
                f"{type(encoding).__name__}")
        if not isinstance(errors, str):
            raise TypeError(
                f"argument 'errors' must be str, not {type(errors).__name__}")
        if buffers is None or buffers is _NO_BUFFERS:
            self._buffers = None
        else:
            self._buffers = iter(buffers)
        self.memo = {}
        self.encoding = encoding
        self.errors = errors
        self.fix_imports = bool(fix_imports)
        self.proto = 0
        self.stack = []
        self.metastack = []
        self._data = b""
        self._end = 0
        self._base = 0

    @classmethod
    def _for_bytes(cls, data, fix_imports, encoding, errors, buffers):
        """An unpickler reading from memory (loads)."""
        self = cls.__new__(cls)
        self._file = None
        self._file_read = self._file_readline = self._file_peek = None
        self._seekable = False
        self._init_common(fix_imports, encoding, errors, buffers)
        if type(data) is not bytes:
            data = bytes(byte_view(data))
        self._data = data
        self._end = len(data)
        return self

    # ------------------------------------------------------------ public

    def persistent_load(self, pid):
        """Return the object for persistent ID pid; subclasses override.

        The default refuses: a pickle that refers to persistent objects
        needs an unpickler that knows them.
        """
        if _versions.PERSISTENT_HOOKS_ARE_METHODS:
            raise UnpicklingError(_versions.NO_PERSISTENT_LOAD_MESSAGE)
        raise UnpicklingError("unsupported persistent id encountered")

    def find_class(self, module, name):
        """Import module and return its attribute name (a dotted path at
        protocol 4+). Subclasses override this to restrict globals."""
        sys.audit("pickle.find_class", module, name)
        if self.proto < 3 and self.fix_imports:
            # compat_name, inline: this runs for every global loaded.
            mapped = _NAME_MAPPING.get((module, name))
            if mapped is not None:
                module, name = mapped
            else:
                module = _IMPORT_MAPPING.get(module, module)
        __import__(module)                  # level 0, the default
        if self.proto >= 4:
            return getattribute(sys.modules[module], name, True)
        try:
            return getattr(sys.modules[module], name)
        except AttributeError:
            raise AttributeError(
                f"Can't get attribute {name!r} on {sys.modules[module]!r}") \
                from None

    def load(self):
        """Read one pickle and return the object it holds.

        Bytes after the pickle's STOP opcode are not consumed.
        """
        if "_data" not in self.__dict__:
            raise UnpicklingError(
                f"Unpickler.__init__() was not called by "
                f"{type(self).__name__}.__init__()")
        pers = self.persistent_load
        if getattr(pers, "__func__", pers) is Unpickler.persistent_load:
            pers = None
        self._pers = pers
        if self._file is not None:
            if self._seekable is None:
                self._seekable = _is_seekable(self._file)
            self._data = b""
            self._end = 0
            self._shown = 0
            self._exact_reads = not self._seekable \
                and self._file_peek is None
        pos = 0
        try:
            pos = self._run(0)
            return self._result
        finally:
            self._release(pos)
            self.stack = []
            self.metastack = []
            self._pers = None
            self._result = None

    # The defaults load() replaces, in effect for the module-level loads().
    _pers = None
    _prev = None
    # Bytes at the end of the buffer that peek() showed and the file has
    # not given with read() yet (unseekable files).
    _shown = 0
    # The file can neither seek nor peek: it is read ahead in whole opcodes
    # (_read_ahead).
    _exact_reads = False

    def _run(self, pos):
        """The machine's loop. Returns the position after STOP.

        The most frequent opcodes are handled here, inline, on local
        variables; each does exactly what its load_* method does (the
        methods stay the reference, and handle the rare slow cases such as
        an argument that crosses the end of a file buffer). Every other
        opcode goes to its method, after which the locals are refreshed.
        """
        dispatch = _DISPATCH
        # end is always len(data) here (only brinery.safe, with its own
        # loop, reads less than the buffer), so a line's newline is found
        # with data.find(b"\n", pos): fewer arguments to parse than with
        # an explicit end.
        data = self._data
        end = self._end
        self.proto = 0
        self._base = 0
        self._prev = None
        self.stack = stack = []
        self.metastack = metastack = []
        append = stack.append
        memo = self.memo
        start = pos
        try:
            while True:
                start = pos
                if pos >= end:
                    pos = self._fill_opcode(pos)
                    data = self._data
                    end = self._end
                    start = pos
                op = data[pos]
                pos += 1
                # Split by byte range, then range again, so that every inlined
                # opcode is a few comparisons away: >= 0x80 are protocol 2+
                # opcodes, 0x60-0x7f mostly lower-case letters (memo, lists,
                # dicts), the rest upper-case letters and punctuation.
                if op >= 0x80:
                    if op == 0x94:                                    # MEMOIZE
                        if stack:
                            memo[len(memo)] = stack[-1]
                            continue
                    elif op == 0x8C:                         # SHORT_BINUNICODE
                        if pos < end:
                            stop = pos + 1 + data[pos]
                            if stop <= end:
                                append(data[pos + 1:stop].decode("utf-8",
                                                               "surrogatepass"))
                                pos = stop
                                continue
                    elif op == 0x86:                                   # TUPLE2
                        if len(stack) >= 2:
                            stack[-2:] = [(stack[-2], stack[-1])]
                            continue
                    elif op == 0x85:                                   # TUPLE1
                        if stack:
                            stack[-1] = (stack[-1],)
                            continue
                    elif op == 0x87:                                   # TUPLE3
                        if len(stack) >= 3:
                            stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                            continue
                    elif op == 0x88:                                  # NEWTRUE
                        append(True)
                        continue
                    elif op == 0x89:                                 # NEWFALSE
                        append(False)
                        continue
                elif op >= 0x70:
                    if op == 0x71:                                     # BINPUT
                        if pos < end and stack:
                            memo[data[pos]] = stack[-1]
                            pos += 1
                            continue
                    elif op == 0x75:                                 # SETITEMS
                        if (metastack and metastack[-1]
                                and not len(stack) % 2):
                            target = metastack[-1][-1]
                            if type(target) is dict:
                                target.update(zip(stack[::2], stack[1::2]))
                                self.stack = stack = metastack.pop()
                                append = stack.append
                                continue
                    elif op == 0x73:                                  # SETITEM
                        if len(stack) >= 3 and type(stack[-3]) is dict:
                            value = stack.pop()
                            key = stack.pop()
                            stack[-1][key] = value
                            continue
                    elif op == 0x7D:                               # EMPTY_DICT
                        append({})
                        continue
                    elif op == 0x72:                              # LONG_BINPUT
                        if pos + 4 <= end and stack:
                            memo[_unpack_uint4(data, pos)[0]] = stack[-1]
                            pos += 4
                            continue
                    elif op == 0x70:                                      # PUT
                        stop = data.find(b"\n", pos)
                        if stop > pos and stack:
                            try:
                                idx = int(data[pos:stop])
                            except ValueError:
                                pass
                            else:
                                if 0 <= idx <= _SSIZE_MAX:
                                    memo[idx] = stack[-1]
                                    pos = stop + 1
                                    continue
                    elif op == 0x74:                                    # TUPLE
                        if metastack:
                            items = tuple(stack)
                            self.stack = stack = metastack.pop()
                            append = stack.append
                            append(items)
                            continue
                elif op >= 0x60:
                    if op == 0x68:                                     # BINGET
                        if pos < end:
                            idx = data[pos]
                            if idx in memo:
                                append(memo[idx])
                                pos += 1
                                continue
                    elif op == 0x65:                                  # APPENDS
                        if metastack and metastack[-1]:
                            target = metastack[-1][-1]
                            if type(target) is list:
                                target.extend(stack)
                                self.stack = stack = metastack.pop()
                                append = stack.append
                                continue
                    elif op == 0x61:                                   # APPEND
                        if len(stack) >= 2 and type(stack[-2]) is list:
                            stack[-2].append(stack.pop())
                            continue
                    elif op == 0x6A:                              # LONG_BINGET
                        if pos + 4 <= end:
                            idx = _unpack_uint4(data, pos)[0]
                            if idx in memo:
                                append(memo[idx])
                                pos += 4
                                continue
                    elif op == 0x67:                                      # GET
                        # One or two digits, the common case, without
                        # bytes.find (its argument parsing costs more).
                        if pos + 3 <= end and 0x30 <= data[pos] <= 0x39:
                            second = data[pos + 1]
                            if second == 0x0A:
                                idx = data[pos] - 0x30
                                if idx in memo:
                                    append(memo[idx])
                                    pos += 2
                                    continue
                            elif 0x30 <= second <= 0x39 \
                                    and data[pos + 2] == 0x0A:
                                idx = data[pos] * 10 + second - 0x210
                                if idx in memo:
                                    append(memo[idx])
                                    pos += 3
                                    continue
                        stop = data.find(b"\n", pos)
                        if stop > pos:
                            try:
                                idx = int(data[pos:stop])
                            except ValueError:
                                pass
                            else:
                                if idx in memo:
                                    append(memo[idx])
                                    pos = stop + 1
                                    continue
                    elif op == 0x6C:                                     # LIST
                        if metastack:
                            items = stack
                            self.stack = stack = metastack.pop()
                            append = stack.append
                            append(items)
                            continue
                    elif op == 0x64:                                     # DICT
                        if metastack and not len(stack) % 2:
                            items = stack
                            self.stack = stack = metastack.pop()
                            append = stack.append
                            append(dict(zip(items[::2], items[1::2])))
                            continue
                    elif op == 0x63:                                   # GLOBAL
                        first = data.find(b"\n", pos)
                        second = data.find(b"\n", first + 1) \
                            if first > pos else -1
                        if second > first + 1:
                            append(self.find_class(
                                data[pos:first].decode("utf-8"),
                                data[first + 1:second].decode("utf-8")))
                            pos = second + 1
                            continue
                elif op >= 0x4A:
                    if op == 0x4B:                                    # BININT1
                        if pos < end:
                            append(data[pos])
                            pos += 1
                            continue
                    elif op == 0x58:                               # BINUNICODE
                        if pos + 4 <= end:
                            stop = pos + 4 + _unpack_uint4(data, pos)[0]
                            if stop <= end:
                                append(data[pos + 4:stop].decode("utf-8",
                                                               "surrogatepass"))
                                pos = stop
                                continue
                    elif op == 0x4D:                                  # BININT2
                        if pos + 2 <= end:
                            append(_unpack_uint2(data, pos)[0])
                            pos += 2
                            continue
                    elif op == 0x4A:                                   # BININT
                        if pos + 4 <= end:
                            append(_unpack_int4(data, pos)[0])
                            pos += 4
                            continue
                    elif op == 0x5D:                               # EMPTY_LIST
                        append([])
                        continue
                    elif op == 0x4E:                                     # NONE
                        append(None)
                        continue
                    elif op == 0x56:                                  # UNICODE
                        stop = data.find(b"\n", pos)
                        if stop >= 0:
                            append(_decode_raw_unicode_escape(
                                data[pos:stop]))
                            pos = stop + 1
                            continue
                    elif op == 0x4C:                                     # LONG
                        stop = data.find(b"\n", pos)
                        if stop > pos + 1 and data[stop - 1] == 0x4C:
                            # parse_long_line's first try; anything it
                            # rejects goes to load_long for the exact error.
                            try:
                                append(int(data[pos:stop - 1], 0))
                                pos = stop + 1
                                continue
                            except ValueError:
                                pass
                elif op == 0x28:                                         # MARK
                        metastack.append(stack)
                        self.stack = stack = []
                        append = stack.append
                        continue
                elif op == 0x47:                                     # BINFLOAT
                        if pos + 8 <= end:
                            append(_unpack_double(data, pos)[0])
                            pos += 8
                            continue
                elif op == 0x29:                                  # EMPTY_TUPLE
                        append(())
                        continue
                elif op == 0x49:                                          # INT
                        stop = data.find(b"\n", pos)
                        if stop > pos:
                            first = data[pos]
                            if 0x31 <= first <= 0x39:
                                # No leading zero: int() reads it as C does
                                # (parse_int_line's fast path).
                                try:
                                    append(int(data[pos:stop]))
                                    pos = stop + 1
                                    continue
                                except ValueError:
                                    pass
                            elif (first == 0x30 and stop == pos + 2
                                    and 0x30 <= data[pos + 1] <= 0x31):
                                append(data[pos + 1] == 0x31)   # I00, I01
                                pos = stop + 1
                                continue
                            append(parse_int_line(data[pos:stop + 1]))
                            pos = stop + 1
                            continue
                elif op == 0x46:                                        # FLOAT
                        stop = data.find(b"\n", pos)
                        if stop > pos:
                            line = data[pos:stop]
                            first = line[0]
                            # What repr() writes (a digit or '-' first, a
                            # digit last, no '_') means the same to float()
                            # as to C, unless it overflows.
                            if ((0x30 <= first <= 0x39 or first == 0x2D)
                                    and 0x30 <= line[-1] <= 0x39
                                    and 0x5F not in line):       # '_'
                                try:
                                    value = float(line)
                                except ValueError:
                                    pass
                                else:
                                    if value - value == 0.0:
                                        append(value)
                                        pos = stop + 1
                                        continue
                            append(parse_float_line(data[pos:stop + 1]))
                            pos = stop + 1
                            continue
                elif op == 0x2E:                                         # STOP
                        if stack:
                            self._result = stack.pop()
                            return pos
                # Everything else, and the slow cases of the above.
                pos = dispatch[op](self, pos)
                data = self._data
                end = self._end
                stack = self.stack
                append = stack.append
        except _Stop as stop:
            return stop.args[0]
        except Exception as exc:
            self._note_position(exc, data, start)
            raise

    def _note_position(self, exc, data, pos):
        base = self._base
        if data is not self._data and self._prev is not None \
                and self._prev[0] is data:
            base = self._prev[1]
        try:
            op = OPCODE_BY_BYTE.get(data[pos])
        except IndexError:
            return
        name = op.name if op is not None else f"byte {data[pos]:#04x}"
        exc.add_note(f"when unpickling {name} at byte {base + pos}")

    # ------------------------------------------------------------- input

    def _release(self, pos):
        """Give back what was read past STOP (seekable files), take what
        peek() showed up to STOP (unseekable ones)."""
        if self._file is not None:
            unread = self._end - pos
            if unread > 0 and self._seekable:
                self._file.seek(-unread, io.SEEK_CUR)
            elif self._shown > unread:
                self._take_shown(self._shown - unread)
            self._shown = 0
            self._data = b""
            self._end = 0

    def _settle(self):
        """Take all that peek() showed (it is all needed by now)."""
        if self._shown:
            self._take_shown(self._shown)
            self._shown = 0

    def _take_shown(self, n):
        """read() n bytes that peek() showed, which are in the buffer."""
        got = self._file_read(n)
        if got is None or len(got) != n:
            raise ValueError(
                f"read() returned {'no' if got is None else 'fewer or more'} "
                f"bytes where peek() had shown {n}")

    def _read_shown(self, want, newline=False):
        """At least want more bytes (or up to a newline) from an unseekable
        file with peek(), fewer only at its end: what peek() shows, after
        taking what it showed before (all of that is needed by now)."""
        parts = []
        got = 0
        while got < want or newline:
            self._settle()
            shown = b""
            if self._file_peek is not None:
                try:
                    shown = self._file_peek(_CHUNK)
                except NotImplementedError:     # not asked again
                    self._file_peek = None
            if shown:
                self._shown = len(shown)
            else:
                # Nothing shown: ask the usual way, which also tells a
                # real end of file from a peek() that shows nothing.
                shown = self._file_read(want - got)
                if not shown:
                    break
            shown = bytes(shown) if type(shown) is not bytes else shown
            parts.append(shown)
            got += len(shown)
            if newline and b"\n" in shown:
                break
        return b"".join(parts)

    def _fill_opcode(self, pos):
        """Make data[pos] available: the next opcode byte."""
        if self._exact_reads and pos == self._end:
            more = self._read_ahead()
            self._prev = (self._data, self._base)
            self._base += pos
            self._data = more
            self._end = len(more)
            return 0
        try:
            return self._fill(pos, 1, 0)
        except UnpicklingError:
            raise EOFError("Ran out of input") from None

    def _fill(self, pos, n, after=1):
        """Make data[pos:pos+n] available; return its new position.

        `after` is how many bytes a valid pickle surely has after these
        (1 after an opcode's argument, 0 for an opcode or a FRAME's
        contents, which may end the pickle): an unseekable file without
        peek() is asked for them too, which saves a read() per opcode.
        Raises the truncation error when the input ends first.
        """
        if self._base + pos > _SSIZE_MAX - n:
            raise UnpicklingError("read would overflow (invalid bytecode)")
        if self._file is None:
            raise _truncated()
        data = self._data
        rest = data[pos:self._end]
        want = n - len(rest)
        if want >= _LARGE_READ and self._seekable and rest:
            # Re-read the part we hold together with the large payload, so
            # the payload arrives as one object, not a concatenation.
            self._file.seek(-len(rest), io.SEEK_CUR)
            want = n
            rest = b""
        if want >= _PEEK_MAX or self._file_peek is None:
            self._settle()
        if want >= _LARGE_READ:
            more = self._read_file(want)
        elif self._seekable:
            more = self._file_read(max(want, _CHUNK))
        elif self._file_peek is not None and want < _PEEK_MAX:
            more = self._read_shown(want)
        else:
            more = self._complete_read(self._file_read(want + after), want,
                                       after)
        if more is None:
            more = b""
        more = bytes(more) if type(more) is not bytes else more
        self._prev = (data, self._base)
        self._base += pos
        new = rest + more if rest else more
        self._data = new
        self._end = len(new)
        if len(new) < n:
            raise _truncated()
        return 0

    def _complete_read(self, more, want, after):
        """What read(want + after) gave, as bytes, completed up to want
        bytes: a raw stream (a pipe, a socket) may give less than asked, so
        ask again until there is enough or nothing more (the end)."""
        if not more:
            return b""
        more = bytes(more) if type(more) is not bytes else more
        if len(more) >= want:
            return more
        parts = [more]
        got = len(more)
        while got < want:
            more = self._file_read(want - got + after)
            if not more:
                break
            parts.append(bytes(more))
            got += len(more)
        return b"".join(parts)

    def _read_ahead(self):
        """Whole opcodes from a file that can neither seek nor peek, up to
        about _READ_AHEAD bytes, never past STOP.

        Such a file must be asked for each opcode on its own: a read past
        STOP would take bytes that belong to what follows the pickle. But
        each opcode says how long its argument is, and a valid pickle has
        another opcode after every argument, so the reads can be done here,
        in a row, one per opcode (its argument with the next opcode byte),
        and the loop then runs the opcodes from memory, on its fast paths.
        Stops after STOP, after a FRAME's size (its contents are then read
        in one), at a byte that is no opcode, and early, leaving the rest
        to _fill: past _READ_AHEAD bytes, at a length of _LARGE_READ or
        more (a negative one reads as such), and at a read that gives less
        (completed, as a raw pipe needs) or more than asked.
        """
        read = self._file_read
        readline = self._file_readline
        more = read(1)
        if not more:
            raise EOFError("Ran out of input")
        if type(more) is not bytes or len(more) != 1:
            return self._complete_read(more, 1, 0)
        parts = [more]
        append = parts.append
        total = 1
        kinds = _AHEAD_KIND
        op = more[0]
        # Past _READ_AHEAD, the last opcode's argument is left to _fill.
        while total < _READ_AHEAD:
            kind = kinds[op]
            if kind >= 0:
                want = kind + 1
            elif kind == _AHEAD_LINE or kind == _AHEAD_TWO_LINES:
                line = readline()
                if kind == _AHEAD_TWO_LINES and line[-1:] == b"\n":
                    line = bytes(line) + bytes(readline())
                if type(line) is not bytes:
                    line = bytes(line)
                append(line)
                total += len(line)
                if line[-1:] != b"\n":
                    break
                want = 1
            elif kind == _AHEAD_FRAME:
                append(self._complete_read(read(8), 8, 0))
                break
            elif kind == _AHEAD_END:
                break
            else:                                       # counted
                size_bytes = 1 if kind == TAKEN_FROM_ARGUMENT1 else \
                    8 if kind == TAKEN_FROM_ARGUMENT8U else 4
                more = read(size_bytes)
                if type(more) is not bytes or len(more) != size_bytes:
                    more = self._complete_read(more, size_bytes, 0)
                append(more)
                total += len(more)
                if len(more) != size_bytes:
                    break
                # (A negative 4-byte length reads as a large one.)
                want = int.from_bytes(more, "little") + 1
                if want > _LARGE_READ:
                    break
            # The argument (or its rest) and the next opcode byte.
            more = read(want)
            if type(more) is not bytes or len(more) != want:
                append(self._complete_read(more, want, 0))
                break
            append(more)
            total += want
            op = more[-1]
        return b"".join(parts)

    def _bytes_left_in_file(self):
        """How many bytes a seekable file holds past its position."""
        here = self._file.tell()
        size = self._file.seek(0, io.SEEK_END)
        self._file.seek(here)
        return max(size - here, 0)

    def _read_file(self, n):
        """Read n bytes without allocating n before they exist."""
        if self._seekable:
            data = self._file_read(min(n, self._bytes_left_in_file()))
            return b"" if data is None else data
        chunks = []
        got = 0
        while got < n:
            # Ask for as much as has come so far: a raw file allocates what
            # it is asked for, so memory follows the data, not the claim.
            chunk = self._file_read(min(max(got, _LARGE_READ), n - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _numeric_line(self, pos):
        """The text argument of INT, LONG, FLOAT, GET or PUT (brinery.safe
        bounds its length before it is parsed)."""
        return self._readline(pos)

    def _readline(self, pos):
        """The line starting at pos, newline included, and the position
        after it. A line with no newline is truncated data."""
        end = self._data.find(b"\n", pos, self._end)
        if end >= 0:
            return self._data[pos:end + 1], end + 1
        if self._file is None:
            raise _truncated()
        rest = self._data[pos:self._end]
        if self._seekable:
            parts = [rest]
            while True:
                more = self._file_read(_CHUNK)
                if not more:
                    break
                more = bytes(more)
                parts.append(more)
                if b"\n" in more:
                    break
            new = b"".join(parts)
        elif self._file_peek is not None:
            new = rest + self._read_shown(1, newline=True)
        else:
            line = self._file_readline()
            new = rest + bytes(line)
        self._prev = (self._data, self._base)
        self._base += pos
        self._data = new
        self._end = len(new)
        end = new.find(b"\n")
        if end < 0:
            raise _truncated()
        return new[:end + 1], end + 1

    # ---------------------------------------------------- stack helpers

    def _stack_error(self):
        if self.metastack:
            return UnpicklingError("unexpected MARK found")
        return UnpicklingError("unpickling stack underflow")

    def _pop(self):
        try:
            return self.stack.pop()
        except IndexError:
            raise self._stack_error() from None

    def _pop_mark(self):
        """Pop the topmost mark; return the items that were above it."""
        items = self.stack
        try:
            self.stack = self.metastack.pop()
        except IndexError:
            raise UnpicklingError("could not find MARK") from None
        return items

    def _top(self):
        try:
            return self.stack[-1]
        except IndexError:
            raise self._stack_error() from None

    def _push_global(self, module, name):
        self.stack.append(self.find_class(module, name))

    def _decode_py2_str(self, data):
        if self.encoding == "bytes":
            return data
        return data.decode(self.encoding, self.errors)

    # ---------------------------------------------------------- handlers
    # Each takes the position after its opcode byte and returns the
    # position after its argument.

    def load_proto(self, pos):
        if pos + 1 > self._end:
            pos = self._fill(pos, 1)
        proto = self._data[pos]
        if proto > HIGHEST_PROTOCOL:
            raise ValueError(f"unsupported pickle protocol: {proto}")
        self.proto = proto
        return pos + 1

    def load_frame(self, pos):
        if pos + 8 > self._end:
            pos = self._fill(pos, 8)
        length = _unpack_uint8(self._data, pos)[0]
        pos += 8
        if length > _SSIZE_MAX:
            raise OverflowError(
                f"FRAME length exceeds system's maximum of {_SSIZE_MAX} "
                f"bytes")
        # A frame is a read-ahead hint: make sure it is all there (the
        # last one ends the pickle: nothing after it).
        if pos + length > self._end:
            pos = self._fill(pos, length, 0)
        return pos

    def load_stop(self, pos):
        try:
            self._result = self.stack.pop()
        except IndexError:
            raise self._stack_error() from None
        raise _Stop(pos)

    # Integers, floats, singletons.

    def load_none(self, pos):
        self.stack.append(None)
        return pos

    def load_newtrue(self, pos):
        self.stack.append(True)
        return pos

    def load_newfalse(self, pos):
        self.stack.append(False)
        return pos

    def load_int(self, pos):
        line, pos = self._numeric_line(pos)
        self.stack.append(parse_int_line(line))
        return pos

    def load_binint(self, pos):
        if pos + 4 > self._end:
            pos = self._fill(pos, 4)
        self.stack.append(_unpack_int4(self._data, pos)[0])
        return pos + 4

    def load_binint1(self, pos):
        if pos >= self._end:
            pos = self._fill(pos, 1)
        self.stack.append(self._data[pos])
        return pos + 1

    def load_binint2(self, pos):
        if pos + 2 > self._end:
            pos = self._fill(pos, 2)
        self.stack.append(_unpack_uint2(self._data, pos)[0])
        return pos + 2

    def load_long(self, pos):
        line, pos = self._numeric_line(pos)
        self.stack.append(parse_long_line(line))
        return pos

    def _load_counted_long(self, pos, size):
        if pos + size > self._end:
            pos = self._fill(pos, size)
        if size == 1:
            n = self._data[pos]
        else:
            n = _unpack_int4(self._data, pos)[0]
            if n < 0:
                raise UnpicklingError("LONG pickle has negative byte count")
        pos += size
        if pos + n > self._end:
            pos = self._fill(pos, n)
        self.stack.append(
            int.from_bytes(self._data[pos:pos + n], "little", signed=True))
        return pos + n

    def load_long1(self, pos):
        return self._load_counted_long(pos, 1)

    def load_long4(self, pos):
        return self._load_counted_long(pos, 4)

    def load_float(self, pos):
        line, pos = self._numeric_line(pos)
        self.stack.append(parse_float_line(line))
        return pos

    def load_binfloat(self, pos):
        if pos + 8 > self._end:
            pos = self._fill(pos, 8)
        self.stack.append(_unpack_double(self._data, pos)[0])
        return pos + 8

    # Text and bytes.

    def _counted(self, pos, size_bytes, label):
        """Read a length of size_bytes bytes, then that many bytes.

        Returns (data, start, end): data[start:end] is the payload.
        """
        if pos + size_bytes > self._end:
            pos = self._fill(pos, size_bytes)
        data = self._data
        if size_bytes == 1:
            n = data[pos]
        elif size_bytes == 4:
            n = _unpack_uint4(data, pos)[0]
        else:
            n = _unpack_uint8(data, pos)[0]
            if n > _SSIZE_MAX:
                raise OverflowError(
                    f"{label} exceeds system's maximum size of {_SSIZE_MAX} "
                    f"bytes")
        pos += size_bytes
        end = pos + n
        if end > self._end:
            pos = self._fill(pos, n)
            end = pos + n
        return self._data, pos, end

    def load_short_binunicode(self, pos):
        if pos >= self._end:
            pos = self._fill(pos, 1)
        end = pos + 1 + self._data[pos]
        if end > self._end:
            data, pos, end = self._counted(pos, 1, "SHORT_BINUNICODE")
            self.stack.append(data[pos:end].decode("utf-8", "surrogatepass"))
            return end
        self.stack.append(
            self._data[pos + 1:end].decode("utf-8", "surrogatepass"))
        return end

    def load_binunicode(self, pos):
        data, pos, end = self._counted(pos, 4, "BINUNICODE")
        self.stack.append(data[pos:end].decode("utf-8", "surrogatepass"))
        return end

    def load_binunicode8(self, pos):
        data, pos, end = self._counted(pos, 8, "BINUNICODE")
        self.stack.append(data[pos:end].decode("utf-8", "surrogatepass"))
        return end

    def load_unicode(self, pos):
        line, pos = self._readline(pos)
        self.stack.append(decode_unicode_line(line))
        return pos

    def _counted_bytes(self, pos, size_bytes, label):
        """_counted for bytes and bytearray payloads, which CPython reads
        differently: from memory, even an empty payload must not start at
        the very end of the input ('pickle data was truncated')."""
        data, start, end = self._counted(pos, size_bytes, label)
        if start == self._end and self._file is None:
            raise _truncated()
        return data, start, end

    def load_short_binbytes(self, pos):
        data, pos, end = self._counted_bytes(pos, 1, "SHORT_BINBYTES")
        self.stack.append(data[pos:end])
        return end

    def load_binbytes(self, pos):
        data, pos, end = self._counted_bytes(pos, 4, "BINBYTES")
        self.stack.append(data[pos:end])
        return end

    def load_binbytes8(self, pos):
        data, pos, end = self._counted_bytes(pos, 8, "BINBYTES")
        self.stack.append(data[pos:end])
        return end

    def load_bytearray8(self, pos):
        if self._seekable and pos + 8 <= self._end:
            n = _unpack_uint8(self._data, pos)[0]
            if _LARGE_READ <= n <= _SSIZE_MAX and pos + 8 + n > self._end:
                return self._read_bytearray(pos + 8, n)
        data, pos, end = self._counted_bytes(pos, 8, "BYTEARRAY8")
        if end - pos >= _LARGE_READ:
            self.stack.append(bytearray(memoryview(data)[pos:end]))
        else:
            self.stack.append(bytearray(data[pos:end]))
        return end

    def _read_bytearray(self, pos, n):
        """A large BYTEARRAY8 payload from a seekable file, read straight
        into the bytearray (one copy of the payload, not two). Never more
        is allocated than the file still holds."""
        readinto = getattr(self._file, "readinto", None)
        data = self._data
        held = self._end - pos
        result = bytearray(min(n, held + self._bytes_left_in_file()))
        view = memoryview(result)
        view[:held] = memoryview(data)[pos:self._end]
        got = held
        while got < len(result):
            if readinto is not None:
                count = readinto(view[got:])
            else:
                chunk = self._file_read(len(result) - got)
                count = 0 if chunk is None else len(chunk)
                view[got:got + count] = chunk
            if not count:
                break
            got += count
        view.release()
        self._prev = (data, self._base)
        self._base += pos + got
        self._data = b""
        self._end = 0
        if got < n:
            raise _truncated()
        self.stack.append(result)
        return 0

    def load_string(self, pos):
        line, pos = self._readline(pos)
        self.stack.append(self._decode_py2_str(decode_string_line(line)))
        return pos

    def load_binstring(self, pos):
        data, pos, end = self._counted(pos, 4, "BINSTRING")
        self.stack.append(self._decode_py2_str(data[pos:end]))
        return end

    def load_short_binstring(self, pos):
        data, pos, end = self._counted(pos, 1, "SHORT_BINSTRING")
        self.stack.append(self._decode_py2_str(data[pos:end]))
        return end

    # Out-of-band buffers.

    def load_next_buffer(self, pos):
        if self._buffers is None:
            raise UnpicklingError(
                "pickle stream refers to out-of-band data but no *buffers* "
                "argument was given")
        try:
            buf = next(self._buffers)
        except StopIteration:
            raise UnpicklingError("not enough out-of-band buffers") from None
        self.stack.append(buf)
        return pos

    def load_readonly_buffer(self, pos):
        obj = self._top()
        view = memoryview(obj)
        if not view.readonly:
            self.stack[-1] = view.toreadonly()
        return pos

    # Containers.

    def load_empty_list(self, pos):
        self.stack.append([])
        return pos

    def load_empty_tuple(self, pos):
        self.stack.append(())
        return pos

    def load_empty_dict(self, pos):
        self.stack.append({})
        return pos

    def load_empty_set(self, pos):
        self.stack.append(set())
        return pos

    def load_list(self, pos):
        items = self._pop_mark()
        self.stack.append(items)
        return pos

    def load_tuple(self, pos):
        items = self._pop_mark()
        self.stack.append(tuple(items))
        return pos

    def load_tuple1(self, pos):
        stack = self.stack
        if not stack:
            raise self._stack_error()
        stack[-1] = (stack[-1],)
        return pos

    def load_tuple2(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        stack[-2:] = [(stack[-2], stack[-1])]
        return pos

    def load_tuple3(self, pos):
        stack = self.stack
        if len(stack) < 3:
            raise self._stack_error()
        stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
        return pos

    def load_frozenset(self, pos):
        items = self._pop_mark()
        self.stack.append(frozenset(items))
        return pos

    def load_dict(self, pos):
        items = self._pop_mark()
        if len(items) % 2:
            raise UnpicklingError("odd number of items for DICT")
        self.stack.append(dict(zip(items[::2], items[1::2])))
        return pos

    # The item opcodes check their operands here and fill the target in
    # _add_items (which brinery.safe overrides).

    def load_append(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        value = stack.pop()
        self._add_items(stack[-1], "APPEND", [value])
        return pos

    def load_appends(self, pos):
        items = self._pop_mark()
        target = self._top()
        if items:
            self._add_items(target, "APPENDS", items)
        return pos

    def load_setitem(self, pos):
        stack = self.stack
        if len(stack) < 3:
            raise self._stack_error()
        value = stack.pop()
        key = stack.pop()
        self._add_items(stack[-1], "SETITEM", [key, value])
        return pos

    def load_setitems(self, pos):
        items = self._pop_mark()
        target = self._top()
        if items:
            if len(items) % 2:
                raise UnpicklingError("odd number of items for SETITEMS")
            self._add_items(target, "SETITEMS", items)
        return pos

    def load_additems(self, pos):
        items = self._pop_mark()
        target = self._top()
        if items:
            self._add_items(target, "ADDITEMS", items)
        return pos

    def _add_items(self, target, opname, items):
        add_items(target, opname, items)

    # Stack and memo.

    def load_mark(self, pos):
        self.metastack.append(self.stack)
        self.stack = []
        return pos

    def load_pop(self, pos):
        if self.stack:
            self.stack.pop()
        elif self.metastack:
            self.stack = self.metastack.pop()     # POP of a bare mark
        else:
            raise self._stack_error()
        return pos

    def load_pop_mark(self, pos):
        self._pop_mark()
        return pos

    def load_dup(self, pos):
        self.stack.append(self._top())
        return pos

    def _memo_get(self, idx):
        try:
            return self.memo[idx]
        except KeyError:
            raise UnpicklingError(
                f"Memo value not found at index {idx}") from None

    def load_get(self, pos):
        line, pos = self._numeric_line(pos)
        idx = parse_memo_index(line)
        if not -_SSIZE_MAX - 1 <= idx <= _SSIZE_MAX:
            raise OverflowError("Python int too large to convert to C "
                                "ssize_t")
        self.stack.append(self._memo_get(idx))
        return pos

    def load_binget(self, pos):
        if pos >= self._end:
            pos = self._fill(pos, 1)
        self.stack.append(self._memo_get(self._data[pos]))
        return pos + 1

    def load_long_binget(self, pos):
        if pos + 4 > self._end:
            pos = self._fill(pos, 4)
        self.stack.append(self._memo_get(_unpack_uint4(self._data, pos)[0]))
        return pos + 4

    def _memo_put(self, idx):
        """Store the top of the stack in the memo at idx (brinery.safe
        bounds and charges it)."""
        self.memo[idx] = self._top()

    def load_put(self, pos):
        line, pos = self._numeric_line(pos)
        if len(line) < 2:
            raise _truncated()
        self._top()
        idx = parse_memo_index(line)
        if idx > _SSIZE_MAX:
            raise OverflowError(
                "Python int too large to convert to C ssize_t")
        if idx < 0:
            raise ValueError("negative PUT argument")
        self._memo_put(idx)
        return pos

    def load_binput(self, pos):
        if pos >= self._end:
            pos = self._fill(pos, 1)
        self._memo_put(self._data[pos])
        return pos + 1

    def load_long_binput(self, pos):
        if pos + 4 > self._end:
            pos = self._fill(pos, 4)
        self._memo_put(_unpack_uint4(self._data, pos)[0])
        return pos + 4

    def load_memoize(self, pos):
        self._memo_put(len(self.memo))
        return pos

    # Globals, extension codes, persistent IDs.

    def load_global(self, pos):
        data = self._data
        end = self._end
        # Both lines in the buffer (the common case): slice them directly.
        first = data.find(b"\n", pos, end)
        second = data.find(b"\n", first + 1, end) if first > pos else -1
        if second > first + 1:
            module = data[pos:first].decode("utf-8")
            name = data[first + 1:second].decode("utf-8")
            self.stack.append(self.find_class(module, name))
            return second + 1
        line, pos = self._readline(pos)
        module = decode_name_line(line)
        line, pos = self._readline(pos)
        name = decode_name_line(line)
        self._push_global(module, name)
        return pos

    def load_stack_global(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        name = stack.pop()
        module = stack.pop()
        if type(module) is not str or type(name) is not str:
            raise UnpicklingError("STACK_GLOBAL requires str")
        self._push_global(module, name)
        return pos

    def _read_ext_code(self, pos, size):
        """EXT1/2/4's argument: (code, position after it)."""
        if pos + size > self._end:
            pos = self._fill(pos, size)
        data = self._data
        if size == 1:
            code = data[pos]
        elif size == 2:
            code = _unpack_uint2(data, pos)[0]
        else:
            code = _unpack_int4(data, pos)[0]
        if code <= 0:
            raise UnpicklingError("EXT specifies code <= 0")
        return code, pos + size

    def _load_ext(self, pos, size):
        code, pos = self._read_ext_code(pos, size)
        obj = _extension_cache.get(code, _MISSING)
        if obj is not _MISSING:
            self.stack.append(obj)
            return pos
        obj = self.find_class(*extension_key(code))
        _extension_cache[code] = obj
        self.stack.append(obj)
        return pos

    def load_ext1(self, pos):
        return self._load_ext(pos, 1)

    def load_ext2(self, pos):
        return self._load_ext(pos, 2)

    def load_ext4(self, pos):
        return self._load_ext(pos, 4)

    # Before 3.13 a missing persistent_load is reported before the opcode's
    # argument is read; since, after (see _versions).
    def load_persid(self, pos):
        if self._pers is None and not _versions.PERSISTENT_HOOKS_ARE_METHODS:
            raise UnpicklingError(_versions.NO_PERSISTENT_LOAD_MESSAGE)
        line, pos = self._readline(pos)
        try:
            pid = line[:-1].decode("ascii")
        except UnicodeDecodeError:
            raise UnpicklingError(
                "persistent IDs in protocol 0 must be ASCII strings") \
                from None
        if self._pers is None:
            raise UnpicklingError(_versions.NO_PERSISTENT_LOAD_MESSAGE)
        self.stack.append(self._pers(pid))
        return pos

    def load_binpersid(self, pos):
        if self._pers is None and not _versions.PERSISTENT_HOOKS_ARE_METHODS:
            raise UnpicklingError(_versions.NO_PERSISTENT_LOAD_MESSAGE)
        pid = self._pop()
        if self._pers is None:
            raise UnpicklingError(_versions.NO_PERSISTENT_LOAD_MESSAGE)
        self.stack.append(self._pers(pid))
        return pos

    # Building objects. The handlers check their operands; the calls go
    # through _call, _new, _instantiate and _build, which brinery.safe
    # overrides.

    def _call(self, func, args):
        return func(*args)

    def _new(self, cls, args, kwargs):
        return cls.__new__(cls, *args, **kwargs)

    def _instantiate(self, cls, args, opname):
        return _instantiate(cls, args)

    def _build(self, inst, state):
        build(inst, state)

    def _is_type(self, obj):
        return isinstance(obj, type)

    def load_reduce(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        args = stack.pop()
        func = stack.pop()
        if not isinstance(args, tuple):
            raise TypeError("argument list must be a tuple")
        stack.append(self._call(func, args))
        return pos

    def load_newobj(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        args = stack.pop()
        cls = stack.pop()
        _check_newobj("NEWOBJ", cls, args, {}, self._is_type)
        stack.append(self._new(cls, args, {}))
        return pos

    def load_newobj_ex(self, pos):
        stack = self.stack
        if len(stack) < 3:
            raise self._stack_error()
        kwargs = stack.pop()
        args = stack.pop()
        cls = stack.pop()
        _check_newobj("NEWOBJ_EX", cls, args, kwargs, self._is_type)
        stack.append(self._new(cls, args, kwargs))
        return pos

    def load_inst(self, pos):
        items = self._pop_mark()
        line, pos = self._readline(pos)
        module = decode_name_line(line, "ascii")
        line, pos = self._readline(pos)
        name = decode_name_line(line, "ascii")
        cls = self.find_class(module, name)
        self.stack.append(self._instantiate(cls, tuple(items), "INST"))
        return pos

    def load_obj(self, pos):
        items = self._pop_mark()
        if not items:
            raise self._stack_error()
        self.stack.append(self._instantiate(items[0], tuple(items[1:]),
                                            "OBJ"))
        return pos

    def load_build(self, pos):
        stack = self.stack
        if len(stack) < 2:
            raise self._stack_error()
        state = stack.pop()
        self._build(stack[-1], state)
        return pos


# Py_TPFLAGS_DISALLOW_INSTANTIATION: a type without tp_new.
_NO_NEW = 1 << 7


def _check_newobj(op, cls, args, kwargs, is_type):
    """NEWOBJ(_EX)'s checks, in C's order and words. is_type: the
    unpickler's test (brinery.scan's placeholders stand for types)."""
    if not is_type(cls):
        raise UnpicklingError(
            f"{op} class argument must be a type, not {_tp_name(type(cls))}")
    if isinstance(cls, type) and cls.__flags__ & _NO_NEW:
        # (C names the metaclass here, not the class.)
        raise UnpicklingError(
            f"{op} class argument '{_tp_name(type(cls))}' doesn't have "
            f"__new__")
    if not isinstance(args, tuple):
        raise UnpicklingError(
            f"{op} args argument must be a tuple, not "
            f"{_tp_name(type(args))}")
    if not isinstance(kwargs, dict):
        raise UnpicklingError(
            f"{op} kwargs argument must be a dict, not "
            f"{_tp_name(type(kwargs))}")


def extension_key(code):
    """The (module, name) copyreg's registry gives extension code."""
    key = _inverted_registry.get(code)
    if key is None:
        raise ValueError(f"unregistered extension code {code}")
    if (type(key) is not tuple or len(key) != 2
            or not isinstance(key[0], str) or not isinstance(key[1], str)):
        raise ValueError(
            f"_inverted_registry[{code}] isn't a 2-tuple of strings")
    return key


def add_items(target, opname, items):
    """What an item opcode does. APPEND(S): extend a list, else extend()
    or append() each; SETITEM(S): key/value pairs; ADDITEMS: set.update,
    else add() each."""
    if opname in ("APPEND", "APPENDS"):
        if type(target) is list:
            target.extend(items)
        else:
            _extend(target, items)
    elif opname in ("SETITEM", "SETITEMS"):
        if type(target) is dict:
            target.update(zip(items[::2], items[1::2]))
        else:
            for i in range(0, len(items), 2):
                target[items[i]] = items[i + 1]
    elif isinstance(target, set):
        set.update(target, items)
    else:
        add = target.add
        for item in items:
            add(item)


_ABSENT = object()


def build(inst, state):
    """What BUILD does: __setstate__(state), or the default."""
    # As CPython's C unpickler: a __setstate__ of None is called (and fails).
    setstate = getattr(inst, "__setstate__", _ABSENT)
    if setstate is not _ABSENT:
        setstate(state)
    else:
        _default_setstate(inst, state)


def _default_setstate(inst, state):
    """BUILD without __setstate__: update __dict__, then set slots."""
    slotstate = None
    if type(state) is tuple and len(state) == 2:
        state, slotstate = state
    if state is not None:
        if not isinstance(state, dict):
            raise UnpicklingError("state is not a dictionary")
        inst_dict = inst.__dict__
        for key, value in state.items():
            if type(key) is str:
                key = _intern(key)
            inst_dict[key] = value
    if slotstate is not None:
        if not isinstance(slotstate, dict):
            raise UnpicklingError("slot state is not a dictionary")
        for key, value in slotstate.items():
            setattr(inst, key, value)


def _instantiate(cls, args):
    """INST/OBJ: cls(*args), or cls.__new__(cls) for an old-style class
    without __getinitargs__ (what Python 2 pickles expect)."""
    if not args and isinstance(cls, type) \
            and getattr(cls, "__getinitargs__", None) is None:
        return cls.__new__(cls)
    return cls(*args)


def _extend(target, items):
    """APPEND(S) on a non-list: extend() if it has one, else append()."""
    extend = getattr(target, "extend", None)
    if extend is not None:
        extend(items)
    else:
        append = target.append
        for item in items:
            append(item)


def _is_seekable(file):
    try:
        return bool(file.seekable())
    except Exception:
        return False


_MISSING = object()


def _load_invalid(self, pos):
    code = self._data[pos - 1]
    if 0x20 <= code <= 0x7E and code not in (0x27, 0x5C):
        raise UnpicklingError(f"invalid load key, '{chr(code)}'.")
    raise UnpicklingError(f"invalid load key, '\\x{code:02x}'.")


def _build_dispatch():
    table = [_load_invalid] * 256
    for op in OPCODES:
        table[op.byte] = getattr(Unpickler, "load_" + op.name.lower())
    return table


_DISPATCH = _build_dispatch()


def load(file, *, fix_imports=True, encoding="ASCII", errors="strict",
         buffers=_NO_BUFFERS):
    """Read and return one object from the pickle in the open file."""
    return Unpickler(file, fix_imports=fix_imports, encoding=encoding,
                     errors=errors, buffers=buffers).load()


def loads(data, /, *, fix_imports=True, encoding="ASCII", errors="strict",
          buffers=_NO_BUFFERS):
    """Read and return one object from the pickle data (bytes-like)."""
    if isinstance(data, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    # A fresh base-class unpickler over memory: no hooks to look for and
    # nothing to give back afterwards.
    unpickler = Unpickler._for_bytes(data, fix_imports, encoding, errors,
                                     buffers)
    unpickler._run(0)
    return unpickler._result
