"""brinery.tools: look inside a pickle without loading it.

The counterpart of the standard library's `pickletools`, built on the one
opcode table, `brinery._opcodes`:

- `genops` walks a stream opcode by opcode and decodes each argument;
- `dis` prints a symbolic disassembly and checks the stream's stack, MARK
  and memo discipline on the way; its text, and the exceptions it raises
  for malformed streams, are those of the running CPython's
  ``pickletools.dis``, so scripts that parse one can read the other;
- `optimize` drops the memo stores nobody reads and frames the result
  again; it is never larger than ``pickletools.optimize``'s result, and
  smaller when a better choice of memo indices saves bytes;
- `opcode_docs` returns the opcode documentation as plain data (for people
  and for ``brinery opcodes``).

Nothing here imports or calls anything named in the pickle.

Argument decoding follows pickletools (not the unpickler, whose parsers
follow the C unpickler): for example ``I 12 \\n`` decodes to 12 here, as in
pickletools. Declared lengths are never trusted to size a read: a BINBYTES8
claiming 2**62 bytes reads what the stream holds, in bounded chunks, and
reports how much was missing.
"""

import codecs
import io
import struct
import sys

from . import _opcodes
from ._opcodes import OPCODES

__all__ = ["genops", "dis", "optimize", "opcode_docs", "OPCODES"]

_MARK = _opcodes.STACK_OBJECTS["mark"]

# Large counted arguments are read in pieces of this size, so that a length
# field claiming far more than the stream holds allocates nothing.
_READ_CHUNK = 1 << 20


# ------------------------------------------------------- argument readers
#
# One reader per argument kind of the table (keyed by the kind's name).
# Each takes a binary file and returns the decoded argument, raising
# ValueError (or the UnicodeDecodeError of a bad encoding) with the same
# message pickletools gives for the same bytes.

def _read_exactly(f, size, kind):
    data = f.read(size)
    if len(data) != size:
        raise ValueError(f"not enough data in stream to read {kind}")
    return data


def _read_up_to(f, size):
    """At most `size` bytes from `f`; fewer only at the end of the stream."""
    if size <= _READ_CHUNK:
        return f.read(size)
    pieces = []
    remaining = size
    while remaining:
        piece = f.read(min(remaining, _READ_CHUNK))
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def _read_uint1(f):
    data = f.read(1)
    if data:
        return data[0]
    raise ValueError("not enough data in stream to read uint1")


def _read_uint2(f):
    return int.from_bytes(_read_exactly(f, 2, "uint2"), "little")


def _read_int4(f):
    return int.from_bytes(_read_exactly(f, 4, "int4"), "little", signed=True)


def _read_uint4(f):
    return int.from_bytes(_read_exactly(f, 4, "uint4"), "little")


def _read_uint8(f):
    return int.from_bytes(_read_exactly(f, 8, "uint8"), "little")


def _read_float8(f):
    return struct.unpack(">d", _read_exactly(f, 8, "float8"))[0]


def _counted(kind, read_count, *, signed=False, decode=None):
    """A reader for `kind`: a count read by `read_count`, then the data."""
    def read(f):
        size = read_count(f)
        if signed and size < 0:
            raise ValueError(f"{kind} byte count < 0: {size}")
        if size > sys.maxsize:
            raise ValueError(f"{kind} byte count > sys.maxsize: {size}")
        data = f.read(size) if size <= _READ_CHUNK else _read_up_to(f, size)
        if len(data) != size:
            raise ValueError(f"expected {size} bytes in a {kind}, but only "
                             f"{len(data)} remain")
        return data if decode is None else decode(data)
    return read


def _utf8(data):
    return str(data, "utf-8", "surrogatepass")


def _latin1(data):
    return data.decode("latin-1")


def _long(kind, read_count):
    """LONG1/LONG4: a count, then a little-endian two's-complement int."""
    def read(f):
        size = read_count(f)
        if size < 0:
            raise ValueError(f"{kind} byte count < 0: {size}")
        data = _read_up_to(f, size)
        if len(data) != size:
            raise ValueError(f"not enough data in stream to read {kind}")
        return int.from_bytes(data, "little", signed=True)
    return read


def _read_line(f, kind="stringnl"):
    line = f.readline()
    if not line.endswith(b"\n"):
        raise ValueError(f"no newline found when trying to read {kind}")
    return line[:-1]


def _read_stringnl(f):
    """A quoted, backslash-escaped Python 2 string literal (STRING)."""
    data = _read_line(f)
    for quote in (b'"', b"'"):
        if data.startswith(quote):
            if not data.endswith(quote):
                # "strinq" [sic]: pickletools' wording, kept for scripts
                # that match on it.
                raise ValueError("strinq quote %r not found at both ends "
                                 "of %r" % (quote, data))
            data = data[1:-1]
            break
    else:
        raise ValueError("no string quotes around %r" % (data,))
    return codecs.escape_decode(data)[0].decode("ascii")


def _read_stringnl_noescape(f):
    # pickletools undoes backslash escapes here too (and insists on ASCII).
    return codecs.escape_decode(_read_line(f))[0].decode("ascii")


def _read_stringnl_noescape_pair(f):
    module = _read_stringnl_noescape(f)
    name = _read_stringnl_noescape(f)
    return f"{module} {name}"


def _read_unicodestringnl(f):
    return str(_read_line(f, "unicodestringnl"), "raw-unicode-escape")


def _read_decimalnl_short(f):
    digits = _read_line(f)
    # Python 2.2 wrote the booleans as INT 00 and INT 01.
    if digits == b"00":
        return False
    if digits == b"01":
        return True
    return int(digits)


def _read_decimalnl_long(f):
    digits = _read_line(f)
    if digits.endswith(b"L"):
        digits = digits[:-1]
    return int(digits)


def _read_floatnl(f):
    return float(_read_line(f))


_READERS = {
    "uint1": _read_uint1,
    "uint2": _read_uint2,
    "int4": _read_int4,
    "uint4": _read_uint4,
    "uint8": _read_uint8,
    "float8": _read_float8,
    "long1": _long("long1", _read_uint1),
    "long4": _long("long4", _read_int4),
    "decimalnl_short": _read_decimalnl_short,
    "decimalnl_long": _read_decimalnl_long,
    "floatnl": _read_floatnl,
    "stringnl": _read_stringnl,
    "stringnl_noescape": _read_stringnl_noescape,
    "stringnl_noescape_pair": _read_stringnl_noescape_pair,
    "string1": _counted("string1", _read_uint1, decode=_latin1),
    "string4": _counted("string4", _read_int4, signed=True, decode=_latin1),
    "bytes1": _counted("bytes1", _read_uint1),
    "bytes4": _counted("bytes4", _read_uint4),
    "bytes8": _counted("bytes8", _read_uint8),
    "bytearray8": _counted("bytearray8", _read_uint8, decode=bytearray),
    "unicodestringnl": _read_unicodestringnl,
    "unicodestring1": _counted("unicodestring1", _read_uint1, decode=_utf8),
    "unicodestring4": _counted("unicodestring4", _read_uint4, decode=_utf8),
    "unicodestring8": _counted("unicodestring8", _read_uint8, decode=_utf8),
}
assert _READERS.keys() == _opcodes.ARGUMENTS.keys(), \
    "every argument kind of the table needs a reader"

# Readers indexed by opcode byte (None for opcodes without an argument).
_READER_BY_BYTE = {op.byte: op.arg and _READERS[op.arg.name]
                   for op in OPCODES}


# ------------------------------------------------------------------ genops

def genops(pickle):
    """Yield ``(opcode, argument, position)`` for each opcode of a pickle.

    `pickle` is a bytes-like object or a binary file; reading starts at its
    current position and stops after the first STOP. `opcode` is the
    table's `OpcodeInfo`, `argument` the decoded argument (None when the
    opcode has none) and `position` the offset of the opcode: from 0 for
    bytes, the file's ``tell()`` for a file that has one, else None.

    A malformed stream raises ValueError (or UnicodeDecodeError for an
    argument that is not valid in its encoding) when the generator reaches
    the bad opcode, with pickletools' message.
    """
    return _genops(pickle)


def _as_file(pickle):
    if isinstance(pickle, (bytes, bytearray, memoryview)):
        return io.BytesIO(pickle)
    return pickle


def _genops(pickle, with_end=False):
    """genops; with `with_end`, also yield the offset after each opcode."""
    f = _as_file(pickle)
    tell = f.tell if hasattr(f, "tell") else None
    read = f.read
    while True:
        pos = tell() if tell else None
        code = read(1)
        op = _opcodes.OPCODE_BY_BYTE.get(code[0]) if code else None
        if op is None:
            if not code:
                raise ValueError("pickle exhausted before seeing STOP")
            raise ValueError("at position %s, opcode %r unknown"
                             % ("<unknown>" if pos is None else pos,
                                code))
        reader = _READER_BY_BYTE[op.byte]
        arg = reader(f) if reader else None
        if with_end:
            yield op, arg, pos, tell() if tell else None
        else:
            yield op, arg, pos
        if op.name == "STOP":
            return


# --------------------------------------------------------------------- dis

_MEMO_STORES = frozenset(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"))
_MEMO_FETCHES = frozenset(("GET", "BINGET", "LONG_BINGET"))


def dis(pickle, out=None, memo=None, indentlevel=4, annotate=0):
    """Print a symbolic disassembly of the first pickle in `pickle`.

    `pickle` is a bytes-like object or a binary file (read from its current
    position through the first STOP). The text goes to `out` (default
    sys.stdout) and is exactly what ``pickletools.dis`` prints for the same
    arguments.

    `memo` is the dict standing for the unpickler's memo; pass the same
    dict to successive calls to follow pickles written by one pickler.
    `indentlevel` is the indentation of each MARK level; a non-zero
    `annotate` adds each opcode's one-line summary, aligned from that
    column on.

    While printing, the stream is checked as an unpickler would use it:
    enough items on the stack for each opcode, a MARK for each opcode that
    needs one, memo indices stored before they are read and never twice,
    an empty stack after STOP. The first violation raises ValueError, after
    the offending opcode's line is printed.
    """
    stack = []          # StackObjects standing for the unpickler's stack
    if memo is None:
        memo = {}
    highest_proto = -1
    mark_positions = []  # offsets of the MARKs still open
    indent = " " * indentlevel
    annotate_column = annotate
    for op, arg, pos in genops(pickle):
        if pos is not None:
            print("%5d:" % pos, end=" ", file=out)
        line = "%-4s %s%s" % (repr(op.code)[1:-1],
                              indent * len(mark_positions), op.name)
        highest_proto = max(highest_proto, op.proto)
        before = op.stack_before
        after = op.stack_after
        pop_count = len(before)
        error = None
        note = None

        # An opcode that consumes the topmost mark (POP does when the top
        # is the mark itself) closes the innermost MARK level.
        takes_mark = _MARK in before
        if takes_mark or (op.name == "POP" and stack and stack[-1] is _MARK):
            if mark_positions:
                mark_pos = mark_positions.pop()
                note = ("(MARK at unknown opcode offset)" if mark_pos is None
                        else "(MARK at %d)" % mark_pos)
                _pop_through_mark(stack)
                # What lies below the mark is still to be popped.
                pop_count = before.index(_MARK) if takes_mark else 0
            else:
                error = note = "no MARK exists on stack"

        if op.name in _MEMO_STORES:
            if op.name == "MEMOIZE":
                index = len(memo)
                note = "(as %d)" % index
            else:
                index = arg
            if index in memo:
                # pickletools names the argument here: None for MEMOIZE.
                error = "memo key %r already defined" % (arg,)
            elif not stack:
                error = "stack is empty -- can't store into memo"
            elif stack[-1] is _MARK:
                error = "can't store markobject in the memo"
            else:
                memo[index] = stack[-1]
        elif op.name in _MEMO_FETCHES:
            if arg in memo:
                after = [memo[arg]]
            else:
                error = "memo key %r has never been stored into" % (arg,)

        if arg is not None or note:
            line += " " * (10 - len(op.name))
            if arg is not None:
                line += " " + repr(arg)
            if note:
                line += " " + note
        if annotate:
            line += " " * (annotate_column - len(line))
            # Keep annotations of consecutive lines in one column, unless
            # that column drifts too far right.
            annotate_column = len(line)
            if annotate_column > 50:
                annotate_column = annotate
            line += " " + op.summary
        print(line, file=out)

        if error:
            raise ValueError(error)
        if len(stack) < pop_count:
            raise ValueError("tries to pop %d items from stack with only %d "
                             "items" % (pop_count, len(stack)))
        if pop_count:
            del stack[-pop_count:]
        if _MARK in after:
            mark_positions.append(pos)
        stack.extend(after)

    print("highest protocol among opcodes =", highest_proto, file=out)
    if stack:
        raise ValueError("stack not empty after STOP: %r" % (stack,))


def _pop_through_mark(stack):
    """Pop the items above the topmost mark, and the mark.

    A MARK level can be open with its mark no longer on the stack (DUP or
    APPEND took it as an ordinary item); pickletools then runs off the
    bottom of the stack with IndexError, and so does this.
    """
    while True:
        if not stack:
            raise IndexError("list index out of range")
        if stack.pop() is _MARK:
            return


# ---------------------------------------------------------------- optimize

def optimize(pickle):
    """Return a smaller pickle that loads to the same object.

    Memo stores (PUT, BINPUT, LONG_BINPUT, MEMOIZE) whose value is never
    fetched are dropped, the memo indices that remain are renumbered, and
    at protocol 4 and up the result is framed again. The result is never
    larger than ``pickletools.optimize(pickle)``, and smaller where the
    choice of memo indices matters: pickletools numbers the memo in order of
    appearance, this gives the indices with the short encodings (below 256
    for BINGET, fewer digits for GET) to the entries fetched most often
    (at protocol 4 and up, where MEMOIZE stores for one byte, only when the
    fetches saved outweigh the longer stores).

    `pickle` is a bytes-like object holding one pickle; bytes after its
    STOP are dropped. Malformed input raises ValueError, as `genops` does,
    and so does a fetch of a memo index that was never stored.
    """
    return _optimize(bytes(pickle), 0)[0]


def _optimize_all(data):
    """Optimize each of the pickles that follow one another in `data`."""
    start = 0
    while start < len(data):
        result, start = _optimize(data, start)
        yield result


def _optimize(data, start):
    """Optimize the pickle at data[start:]; return it and where it ended."""
    items, fetch_counts, header, proto, end = _plan(data, start)
    kept = [store for store, count in enumerate(fetch_counts) if count]
    kept_counts = [fetch_counts[store] for store in kept]
    if proto >= 4:
        indices = _memoize_indices(kept_counts)
        store_op, fetch_op = _memoize_or_binput, _binget
    elif proto >= 1:
        indices = _assign_memo_indices(kept_counts, _binary_index_size)
        store_op, fetch_op = _binput, _binget
    else:
        indices = _assign_memo_indices(kept_counts, _text_index_size)
        store_op, fetch_op = _text_put, _text_get
    # The bytes that replace each memo store (None: dropped) and fetch.
    store_bytes = [None] * len(fetch_counts)
    fetch_bytes = [None] * len(fetch_counts)
    for position, (store, index) in enumerate(zip(kept, indices)):
        store_bytes[store] = store_op(index, position)
        fetch_bytes[store] = fetch_op(index)

    out = _FramedWriter(header, framed=proto >= 4)
    write = out.write
    target = _opcodes.FRAME_SIZE_TARGET
    for kind, value in items:
        if kind == "op":
            opcode = data[value[0]:value[1]]
            # Like pickletools: an opcode too big for a frame stands alone.
            write(opcode, len(opcode) > target)
        elif kind == "get":
            write(fetch_bytes[value])
        elif store_bytes[value] is not None:
            write(store_bytes[value])
    return out.getvalue(), end


def _plan(data, start):
    """Split the pickle at data[start:] into what optimize writes back.

    Returns (items, fetch_counts, header, proto, end). The items are
    ("op", (start, end)) for an opcode copied as it is, ("put", n) for the
    n-th memo store and ("get", n) for a fetch of what store n saved;
    fetch_counts[n] is how many fetches read store n. `header` is a PROTO
    opcode at the very start, if any; `proto` the protocol the memo
    opcodes are written for: the highest of the PROTO arguments and of the
    protocols of the memo fetches, as pickletools decides it. `end` is the
    offset after STOP.
    """
    stream = io.BytesIO(data)
    stream.seek(start)
    items = []
    header = b""
    proto = 0
    fetch_counts = []    # per memo store in the input
    store_holding = {}   # memo index -> the store that last wrote it
    for op, arg, pos, end in _genops(stream, with_end=True):
        name = op.name
        if name in _MEMO_STORES:
            index = len(store_holding) if name == "MEMOIZE" else arg
            store = len(fetch_counts)
            store_holding[index] = store
            items.append(("put", store))
            fetch_counts.append(0)
        elif name in _MEMO_FETCHES:
            if op.proto > proto:
                proto = op.proto
            store = store_holding.get(arg)
            if store is None:
                raise ValueError("at position %d, memo key %r has never "
                                 "been stored into" % (pos, arg))
            fetch_counts[store] += 1
            items.append(("get", store))
        elif name == "FRAME":
            continue
        else:
            if name == "PROTO":
                proto = max(proto, arg)
                if pos == start:
                    header = data[pos:end]
                    continue
            items.append(("op", (pos, end)))
    return items, fetch_counts, header, proto, end


def _assign_memo_indices(fetch_counts, index_size):
    """The memo index of each kept store, given the size of an index.

    Each store and each fetch of it spend index_size(index) bytes on the
    index. Numbering in order of appearance, as pickletools does, is kept
    unless handing the cheapest indices to the most fetched entries is
    strictly smaller (which it is only when some indices cost more).
    """
    in_order = list(range(len(fetch_counts)))
    by_use = sorted(in_order, key=lambda store: -fetch_counts[store])
    ranked = [0] * len(fetch_counts)
    for index, store in enumerate(by_use):
        ranked[store] = index

    def encoded_size(index_of):
        return sum((1 + count) * index_size(index_of[store])
                   for store, count in enumerate(fetch_counts))

    if encoded_size(ranked) < encoded_size(in_order):
        return ranked
    return in_order


def _memoize_indices(fetch_counts):
    """The memo index of each kept store at protocol 4 and up.

    MEMOIZE (1 byte) stores at the next index, so numbering in order of
    appearance makes every store one byte; but then an entry stored after
    the 256th is fetched with 5-byte LONG_BINGETs. Swapping indices with an
    early, rarely fetched entry makes the hot entry's fetches 2 bytes, for
    an explicit BINPUT (2 bytes) here and a LONG_BINPUT (5) there, and the
    early entry's fetches 5 bytes: worth it when 3 * (fetches of the late
    entry - fetches of the early one) > 5. Stores between keep MEMOIZE: the
    memo still holds as many distinct indices as stores before them.
    """
    indices = list(range(len(fetch_counts)))
    late = sorted(indices[256:], key=lambda store: -fetch_counts[store])
    early = sorted(indices[:256], key=lambda store: fetch_counts[store])
    for hot, cold in zip(late, early):
        if 3 * (fetch_counts[hot] - fetch_counts[cold]) <= 5:
            break
        indices[hot], indices[cold] = cold, hot
    return indices


def _binary_index_size(index):
    return 1 if index < 256 else 4


def _text_index_size(index):
    return len(str(index))


def _memoize_or_binput(index, position):
    """Store the `position`-th kept entry at `index` (MEMOIZE if it can)."""
    return _opcodes.MEMOIZE if index == position else _binput(index)


def _binput(index, position=None):
    if index < 256:
        return _opcodes.BINPUT + bytes((index,))
    return _opcodes.LONG_BINPUT + index.to_bytes(4, "little")


def _binget(index):
    if index < 256:
        return _opcodes.BINGET + bytes((index,))
    return _opcodes.LONG_BINGET + index.to_bytes(4, "little")


def _text_put(index, position=None):
    return b"%s%d\n" % (_opcodes.PUT, index)


def _text_get(index):
    return b"%s%d\n" % (_opcodes.GET, index)


class _FramedWriter:
    """Collects optimize's output, in frames when `framed` (protocol 4+).

    Frames are cut as the pickler cuts them: at the first opcode boundary
    past FRAME_SIZE_TARGET bytes, without a FRAME header when shorter than
    FRAME_SIZE_MIN; an opcode written `alone` goes between frames.
    """

    def __init__(self, header, framed):
        self._out = bytearray(header)
        self._frame = bytearray() if framed else None

    def write(self, data, alone=False):
        frame = self._frame
        if frame is None:
            self._out += data
            return
        if frame and (alone or len(frame) >= _opcodes.FRAME_SIZE_TARGET):
            self._end_frame()
        if alone:
            self._out += data
        else:
            frame += data

    def _end_frame(self):
        frame = self._frame
        if len(frame) >= _opcodes.FRAME_SIZE_MIN:
            self._out += _opcodes.FRAME + len(frame).to_bytes(8, "little")
        self._out += frame
        frame.clear()

    def getvalue(self):
        if self._frame:
            self._end_frame()
        return bytes(self._out)


# -------------------------------------------------------------- opcode docs

def opcode_docs():
    """The opcode table as plain data: a list of dicts, one per opcode.

    Each dict has "name", "code" (the opcode's byte, an int), "argument"
    (None, or a dict with "name", "size" - a byte count, or a phrase such
    as "up to a newline" or "4-byte length, then data" - and
    "description"),
    "stack_before" and "stack_after" (lists of stack object names, as dis
    prints them), "protocol", "summary" (the line dis prints with
    annotate) and "description". Everything is JSON-serializable.
    """
    return [{
        "name": op.name,
        "code": op.byte,
        "argument": None if op.arg is None else {
            "name": op.arg.name,
            "size": _ARGUMENT_SIZES.get(op.arg.n, op.arg.n),
            "description": op.arg.doc,
        },
        "stack_before": [item.name for item in op.stack_before],
        "stack_after": [item.name for item in op.stack_after],
        "protocol": op.proto,
        "summary": op.summary,
        "description": op.doc.split("\n\n", 1)[1],
    } for op in OPCODES]


_ARGUMENT_SIZES = {
    _opcodes.UP_TO_NEWLINE: "up to a newline",
    _opcodes.TAKEN_FROM_ARGUMENT1: "1-byte length, then data",
    _opcodes.TAKEN_FROM_ARGUMENT4: "signed 4-byte length, then data",
    _opcodes.TAKEN_FROM_ARGUMENT4U: "4-byte length, then data",
    _opcodes.TAKEN_FROM_ARGUMENT8U: "8-byte length, then data",
}
