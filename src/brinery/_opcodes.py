"""The pickle opcode table: the one source of truth about the wire format.

Every other part of brinery takes its knowledge of opcodes from here: the
pure-Python pickler and unpickler import the opcode byte constants, the
unpickler builds its dispatch list from `OPCODES`, `brinery.tools` prints
and checks streams from the argument and stack descriptions, and the C
accelerator's ``opcodes.h`` is generated from this file
(``python -m brinery._opcodes --header``; a test checks it is current).

For each opcode the table records its byte, its name, the argument that
follows it in the stream, what it pops from and pushes onto the unpickling
stack, the protocol that introduced it, a one-line summary (the exact text
`pickletools.dis(annotate=...)` prints, kept identical for output
compatibility) and a longer description written for brinery.
"""

__all__ = [
    "ArgumentDescriptor", "StackObject", "OpcodeInfo", "OPCODES",
    "OPCODE_BY_BYTE", "OPCODE_BY_NAME", "ARGUMENTS", "STACK_OBJECTS",
    "UP_TO_NEWLINE", "TAKEN_FROM_ARGUMENT1", "TAKEN_FROM_ARGUMENT4",
    "TAKEN_FROM_ARGUMENT4U", "TAKEN_FROM_ARGUMENT8U",
    "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "FRAME_SIZE_MIN",
    "FRAME_SIZE_TARGET",
    "FRAME_HEADER_SIZE", "BATCHSIZE",
]

import sys as _sys

HIGHEST_PROTOCOL = 5
# The running CPython's default: 4 up to 3.13, 5 from 3.14 on.
DEFAULT_PROTOCOL = 5 if _sys.version_info >= (3, 14) else 4

# Framing (protocol 4+): the pickler closes a frame at the first opcode
# boundary past FRAME_SIZE_TARGET bytes, and drops the FRAME header of a
# frame shorter than FRAME_SIZE_MIN. Payloads of FRAME_SIZE_TARGET bytes or
# more are written outside any frame.
FRAME_SIZE_MIN = 4
FRAME_SIZE_TARGET = 64 * 1024
FRAME_HEADER_SIZE = 9

# Containers are written in batches of this many items (APPENDS, SETITEMS,
# ADDITEMS), so that the unpickler's stack stays small.
BATCHSIZE = 1000

# Argument sizes that are not a fixed number of bytes.
UP_TO_NEWLINE = -1           # the argument ends with b"\n"
TAKEN_FROM_ARGUMENT1 = -2    # a 1-byte unsigned length, then that many bytes
TAKEN_FROM_ARGUMENT4 = -3    # a 4-byte signed length, then that many bytes
TAKEN_FROM_ARGUMENT4U = -4   # a 4-byte unsigned length, then that many bytes
TAKEN_FROM_ARGUMENT8U = -5   # an 8-byte unsigned length, then that many bytes


class ArgumentDescriptor:
    """The argument an opcode carries in the stream (not on the stack).

    ``n`` is a fixed byte count (> 0) or one of the negative size kinds above.
    """

    __slots__ = ("name", "n", "doc")

    def __init__(self, name, n, doc):
        self.name = name
        self.n = n
        self.doc = doc

    def __repr__(self):
        return f"<argument {self.name}>"


class StackObject:
    """A kind of object an opcode pops from or pushes onto the stack.

    ``name`` is what `pickletools` prints for it (e.g. in "stack not empty
    after STOP: [int]"), so ``repr`` returns the name.
    """

    __slots__ = ("name", "obtype", "doc")

    def __init__(self, name, obtype, doc):
        self.name = name
        self.obtype = obtype
        self.doc = doc

    def __repr__(self):
        return self.name


class OpcodeInfo:
    """Everything known about one opcode."""

    __slots__ = ("name", "code", "byte", "arg", "stack_before",
                 "stack_after", "proto", "summary", "doc")

    def __init__(self, name, code, arg, stack_before, stack_after, proto,
                 summary, doc):
        self.name = name
        self.code = code                  # a 1-character str, as pickletools
        self.byte = ord(code)             # the opcode's byte value
        self.arg = arg
        self.stack_before = stack_before
        self.stack_after = stack_after
        self.proto = proto
        self.summary = summary
        self.doc = summary + "\n\n" + doc

    @property
    def code_bytes(self):
        return bytes((self.byte,))

    def __repr__(self):
        return f"<opcode {self.name} {self.code!r} proto {self.proto}>"


# ---------------------------------------------------------------- arguments

def _arg(name, n, doc):
    return ArgumentDescriptor(name, n, doc)


uint1 = _arg("uint1", 1, "One byte, an unsigned integer 0..255.")
uint2 = _arg("uint2", 2, "Two bytes, little-endian unsigned integer.")
int4 = _arg("int4", 4, "Four bytes, little-endian two's-complement integer.")
uint4 = _arg("uint4", 4, "Four bytes, little-endian unsigned integer.")
uint8 = _arg("uint8", 8, "Eight bytes, little-endian unsigned integer.")
float8 = _arg("float8", 8, "Eight bytes, a big-endian IEEE-754 double.")
long1 = _arg("long1", TAKEN_FROM_ARGUMENT1,
             "A length byte, then that many bytes of little-endian "
             "two's-complement integer; a zero length means 0.")
long4 = _arg("long4", TAKEN_FROM_ARGUMENT4,
             "A 4-byte signed length, then that many bytes of little-endian "
             "two's-complement integer.")
decimalnl_short = _arg(
    "decimalnl_short", UP_TO_NEWLINE,
    "An integer written in decimal, ending with a newline. Python 2.2 wrote "
    "the booleans as 00 and 01.")
decimalnl_long = _arg(
    "decimalnl_long", UP_TO_NEWLINE,
    "An integer written in decimal with an optional trailing L, ending with "
    "a newline.")
floatnl = _arg("floatnl", UP_TO_NEWLINE,
               "A float written in decimal (repr), ending with a newline.")
stringnl = _arg("stringnl", UP_TO_NEWLINE,
                "A quoted Python 2 string literal with backslash escapes, "
                "ending with a newline.")
stringnl_noescape = _arg("stringnl_noescape", UP_TO_NEWLINE,
                         "Text up to a newline, taken as it is.")
stringnl_noescape_pair = _arg(
    "stringnl_noescape_pair", UP_TO_NEWLINE,
    "Two newline-terminated lines, a module name and a qualified name.")
string1 = _arg("string1", TAKEN_FROM_ARGUMENT1,
               "A length byte, then that many bytes of a Python 2 str.")
string4 = _arg("string4", TAKEN_FROM_ARGUMENT4,
               "A 4-byte signed length, then that many bytes of a Python 2 "
               "str.")
bytes1 = _arg("bytes1", TAKEN_FROM_ARGUMENT1,
              "A length byte, then that many bytes.")
bytes4 = _arg("bytes4", TAKEN_FROM_ARGUMENT4U,
              "A 4-byte unsigned length, then that many bytes.")
bytes8 = _arg("bytes8", TAKEN_FROM_ARGUMENT8U,
              "An 8-byte unsigned length, then that many bytes.")
bytearray8 = _arg("bytearray8", TAKEN_FROM_ARGUMENT8U,
                  "An 8-byte unsigned length, then that many bytes, loaded "
                  "as a bytearray.")
unicodestringnl = _arg(
    "unicodestringnl", UP_TO_NEWLINE,
    "Text in the raw-unicode-escape encoding, ending with a newline.")
unicodestring1 = _arg("unicodestring1", TAKEN_FROM_ARGUMENT1,
                      "A length byte, then that many bytes of UTF-8.")
unicodestring4 = _arg("unicodestring4", TAKEN_FROM_ARGUMENT4U,
                      "A 4-byte unsigned length, then that many bytes of "
                      "UTF-8.")
unicodestring8 = _arg("unicodestring8", TAKEN_FROM_ARGUMENT8U,
                      "An 8-byte unsigned length, then that many bytes of "
                      "UTF-8.")

ARGUMENTS = {a.name: a for a in (
    uint1, uint2, int4, uint4, uint8, float8, long1, long4, decimalnl_short,
    decimalnl_long, floatnl, stringnl, stringnl_noescape,
    stringnl_noescape_pair, string1, string4, bytes1, bytes4, bytes8,
    bytearray8, unicodestringnl, unicodestring1, unicodestring4,
    unicodestring8)}

# ------------------------------------------------------------ stack objects

anyobject = StackObject("any", object, "Any kind of object.")
markobject = StackObject(
    "mark", StackObject,
    "The mark: MARK pushes it, and opcodes that take a variable number of "
    "items consume everything above the topmost mark, and the mark itself.")
stackslice = StackObject(
    "stackslice", StackObject,
    "All the objects above the topmost mark (possibly none).")
pyint = StackObject("int", int, "An int.")
pyinteger_or_bool = StackObject("int_or_bool", (int, bool),
                                "An int, or a bool from Python 2.2's 00/01.")
pybool = StackObject("bool", bool, "True or False.")
pynone = StackObject("None", type(None), "None.")
pyfloat = StackObject("float", float, "A float.")
pybytes_or_str = StackObject(
    "bytes_or_str", (bytes, str),
    "A Python 2 str: bytes or str depending on the unpickler's encoding.")
pyunicode = StackObject("str", str, "A str.")
pybytes = StackObject("bytes", bytes, "A bytes object.")
pybytearray = StackObject("bytearray", bytearray, "A bytearray.")
pybuffer = StackObject("buffer", object,
                       "An object supporting the buffer protocol.")
pytuple = StackObject("tuple", tuple, "A tuple.")
pylist = StackObject("list", list, "A list.")
pydict = StackObject("dict", dict, "A dict.")
pyset = StackObject("set", set, "A set.")
pyfrozenset = StackObject("frozenset", set, "A frozenset.")

STACK_OBJECTS = {s.name: s for s in (
    anyobject, markobject, stackslice, pyint, pyinteger_or_bool, pybool,
    pynone, pyfloat, pybytes_or_str, pyunicode, pybytes, pybytearray,
    pybuffer, pytuple, pylist, pydict, pyset, pyfrozenset)}

# ------------------------------------------------------------------ opcodes

_A, _M, _S = anyobject, markobject, stackslice

# pickletools printed "found-byte" for LONG4 until CPython 3.13 corrected
# the typo; dis output follows the running interpreter's pickletools.
_LONG4_SUMMARY = ("Long integer using four-byte length."
                  if _sys.version_info >= (3, 13)
                  else "Long integer using found-byte length.")

OPCODES = [
    # Integers.
    OpcodeInfo(
        "INT", "I", decimalnl_short, [], [pyinteger_or_bool], 0,
        "Push an integer or bool.",
        "Text form of protocol 0. I00 and I01 are False and True (how "
        "Python 2.2 wrote booleans); an int too large for a C long is "
        "accepted too. Picklers write ints that fit in 4 bytes this way at "
        "protocol 0."),
    OpcodeInfo(
        "BININT", "J", int4, [], [pyint], 1,
        "Push a four-byte signed integer.",
        "For ints in -2**31..2**31-1 that do not fit BININT1 or BININT2."),
    OpcodeInfo(
        "BININT1", "K", uint1, [], [pyint], 1,
        "Push a one-byte unsigned integer.",
        "For ints 0..255: the most compact integer form."),
    OpcodeInfo(
        "BININT2", "M", uint2, [], [pyint], 1,
        "Push a two-byte unsigned integer.",
        "For ints 256..65535."),
    OpcodeInfo(
        "LONG", "L", decimalnl_long, [], [pyint], 0,
        "Push a long integer.",
        "Text form used at protocols 0 and 1 for ints outside the 4-byte "
        "range; the decimal digits are followed by L and a newline."),
    OpcodeInfo(
        "LONG1", "\x8a", long1, [], [pyint], 2,
        "Long integer using one-byte length.",
        "Protocol 2's binary form for ints outside the 4-byte range, when "
        "their two's-complement bytes fit in 255 bytes."),
    OpcodeInfo(
        "LONG4", "\x8b", long4, [], [pyint], 2,
        _LONG4_SUMMARY,
        "Like LONG1 for ints whose bytes need a 4-byte length."),

    # Python 2 strings.
    OpcodeInfo(
        "STRING", "S", stringnl, [], [pybytes_or_str], 0,
        "Push a Python string object.",
        "A Python 2 str as a quoted, escaped literal. It is loaded as bytes "
        "when the unpickler's encoding is 'bytes', else decoded with the "
        "unpickler's encoding and errors."),
    OpcodeInfo(
        "BINSTRING", "T", string4, [], [pybytes_or_str], 1,
        "Push a Python string object.",
        "A Python 2 str with a 4-byte signed length; loaded as STRING is."),
    OpcodeInfo(
        "SHORT_BINSTRING", "U", string1, [], [pybytes_or_str], 1,
        "Push a Python string object.",
        "A Python 2 str of at most 255 bytes; loaded as STRING is."),

    # Bytes and buffers.
    OpcodeInfo(
        "BINBYTES", "B", bytes4, [], [pybytes], 3,
        "Push a Python bytes object.",
        "A bytes object with a 4-byte unsigned length."),
    OpcodeInfo(
        "SHORT_BINBYTES", "C", bytes1, [], [pybytes], 3,
        "Push a Python bytes object.",
        "A bytes object of at most 255 bytes."),
    OpcodeInfo(
        "BINBYTES8", "\x8e", bytes8, [], [pybytes], 4,
        "Push a Python bytes object.",
        "A bytes object with an 8-byte length, for 4 GiB and more."),
    OpcodeInfo(
        "BYTEARRAY8", "\x96", bytearray8, [], [pybytearray], 5,
        "Push a Python bytearray object.",
        "A bytearray written in-band, with an 8-byte length."),
    OpcodeInfo(
        "NEXT_BUFFER", "\x97", None, [], [pybuffer], 5,
        "Push an out-of-band buffer object.",
        "Takes the next object of the iterable given as the unpickler's "
        "buffers argument; the pickler handed it to buffer_callback."),
    OpcodeInfo(
        "READONLY_BUFFER", "\x98", None, [pybuffer], [pybuffer], 5,
        "Make an out-of-band buffer object read-only.",
        "Replaces the buffer on top of the stack with a read-only "
        "memoryview of it, when it is not read-only already."),

    # Singletons.
    OpcodeInfo(
        "NONE", "N", None, [], [pynone], 0,
        "Push None on the stack.", "None has no other form."),
    OpcodeInfo(
        "NEWTRUE", "\x88", None, [], [pybool], 2,
        "Push True onto the stack.", "Protocol 2's form of True."),
    OpcodeInfo(
        "NEWFALSE", "\x89", None, [], [pybool], 2,
        "Push False onto the stack.", "Protocol 2's form of False."),

    # Text.
    OpcodeInfo(
        "UNICODE", "V", unicodestringnl, [], [pyunicode], 0,
        "Push a Python Unicode string object.",
        "Protocol 0's str: raw-unicode-escape text up to a newline. The "
        "pickler escapes backslash, NUL, newline, carriage return and "
        "\\x1a as \\uXXXX so that the line stays one line."),
    OpcodeInfo(
        "SHORT_BINUNICODE", "\x8c", unicodestring1, [], [pyunicode], 4,
        "Push a Python Unicode string object.",
        "A str whose UTF-8 form (surrogates passed through) is at most 255 "
        "bytes."),
    OpcodeInfo(
        "BINUNICODE", "X", unicodestring4, [], [pyunicode], 1,
        "Push a Python Unicode string object.",
        "A str as UTF-8 (surrogates passed through) with a 4-byte length."),
    OpcodeInfo(
        "BINUNICODE8", "\x8d", unicodestring8, [], [pyunicode], 4,
        "Push a Python Unicode string object.",
        "A str of 4 GiB of UTF-8 or more, with an 8-byte length."),

    # Floats.
    OpcodeInfo(
        "FLOAT", "F", floatnl, [], [pyfloat], 0,
        "Newline-terminated decimal float literal.",
        "Protocol 0's float: the shortest repr that reads back exactly, "
        "then a newline."),
    OpcodeInfo(
        "BINFLOAT", "G", float8, [], [pyfloat], 1,
        "Float stored in binary form, with 8 bytes of data.",
        "An IEEE-754 double, big-endian; exact, NaN payloads and -0.0 "
        "included."),

    # Lists.
    OpcodeInfo(
        "EMPTY_LIST", "]", None, [], [pylist], 1,
        "Push an empty list.",
        "Items are added afterwards with APPEND or APPENDS, so that the "
        "list can be memoized before its items, which may refer to it."),
    OpcodeInfo(
        "APPEND", "a", None, [pylist, _A], [pylist], 0,
        "Append an object to a list.",
        "Pops an item and appends it to the list below it (by its append "
        "method when it is not a list)."),
    OpcodeInfo(
        "APPENDS", "e", None, [pylist, _M, _S], [pylist], 1,
        "Extend a list by a slice of stack objects.",
        "Pops the items above the topmost mark, and the mark, and adds them "
        "to the list below (by extend, or append for each, when it is not a "
        "list)."),
    OpcodeInfo(
        "LIST", "l", None, [_M, _S], [pylist], 0,
        "Build a list out of the topmost stack slice, after markobject.",
        "Protocol 0's list: MARK, the items, LIST."),

    # Tuples.
    OpcodeInfo(
        "EMPTY_TUPLE", ")", None, [], [pytuple], 1,
        "Push an empty tuple.", "The empty tuple is never memoized."),
    OpcodeInfo(
        "TUPLE", "t", None, [_M, _S], [pytuple], 0,
        "Build a tuple out of the topmost stack slice, after markobject.",
        "For tuples of any length; protocol 2 uses TUPLE1..3 for short "
        "ones."),
    OpcodeInfo(
        "TUPLE1", "\x85", None, [_A], [pytuple], 2,
        "Build a one-tuple out of the topmost item on the stack.",
        "Replaces the top item with a 1-tuple of it."),
    OpcodeInfo(
        "TUPLE2", "\x86", None, [_A, _A], [pytuple], 2,
        "Build a two-tuple out of the top two items on the stack.",
        "Replaces the top two items with a 2-tuple of them."),
    OpcodeInfo(
        "TUPLE3", "\x87", None, [_A, _A, _A], [pytuple], 2,
        "Build a three-tuple out of the top three items on the stack.",
        "Replaces the top three items with a 3-tuple of them."),

    # Dicts.
    OpcodeInfo(
        "EMPTY_DICT", "}", None, [], [pydict], 1,
        "Push an empty dict.",
        "Items follow with SETITEM or SETITEMS."),
    OpcodeInfo(
        "DICT", "d", None, [_M, _S], [pydict], 0,
        "Build a dict out of the topmost stack slice, after markobject.",
        "The slice alternates keys and values."),
    OpcodeInfo(
        "SETITEM", "s", None, [pydict, _A, _A], [pydict], 0,
        "Add a key+value pair to an existing dict.",
        "Pops a value and a key and stores them in the mapping below."),
    OpcodeInfo(
        "SETITEMS", "u", None, [pydict, _M, _S], [pydict], 1,
        "Add an arbitrary number of key+value pairs to an existing dict.",
        "The slice above the mark alternates keys and values; they are "
        "stored in the mapping below the mark."),

    # Sets.
    OpcodeInfo(
        "EMPTY_SET", "\x8f", None, [], [pyset], 4,
        "Push an empty set.", "Items follow with ADDITEMS."),
    OpcodeInfo(
        "ADDITEMS", "\x90", None, [pyset, _M, _S], [pyset], 4,
        "Add an arbitrary number of items to an existing set.",
        "The items above the mark are added to the set below it (by its add "
        "method when it is not a set)."),
    OpcodeInfo(
        "FROZENSET", "\x91", None, [_M, _S], [pyfrozenset], 4,
        "Build a frozenset out of the topmost slice, after markobject.",
        "Protocol 4's frozenset."),

    # Stack manipulation.
    OpcodeInfo(
        "POP", "0", None, [_A], [], 0,
        "Discard the top stack item, shrinking the stack by one item.",
        "When the top of the stack is a mark, the mark is discarded."),
    OpcodeInfo(
        "DUP", "2", None, [_A], [_A, _A], 0,
        "Push the top stack item onto the stack again, duplicating it.",
        "No pickler writes it."),
    OpcodeInfo(
        "MARK", "(", None, [], [_M], 0,
        "Push markobject onto the stack.",
        "Opens a variable-length group for LIST, TUPLE, DICT, APPENDS, "
        "SETITEMS, ADDITEMS, FROZENSET, INST, OBJ and POP_MARK."),
    OpcodeInfo(
        "POP_MARK", "1", None, [_M, _S], [], 1,
        "Pop all the stack objects at and above the topmost markobject.",
        "Used when a tuple turned out to be recursive: its items are thrown "
        "away and the memoized tuple is fetched instead."),

    # Memo.
    OpcodeInfo(
        "GET", "g", decimalnl_short, [], [_A], 0,
        "Read an object from the memo and push it on the stack.",
        "The memo index is written in decimal."),
    OpcodeInfo(
        "BINGET", "h", uint1, [], [_A], 1,
        "Read an object from the memo and push it on the stack.",
        "For memo indices 0..255."),
    OpcodeInfo(
        "LONG_BINGET", "j", uint4, [], [_A], 1,
        "Read an object from the memo and push it on the stack.",
        "For memo indices of 256 and more."),
    OpcodeInfo(
        "PUT", "p", decimalnl_short, [], [], 0,
        "Store the stack top into the memo.  The stack is not popped.",
        "The memo index is written in decimal."),
    OpcodeInfo(
        "BINPUT", "q", uint1, [], [], 1,
        "Store the stack top into the memo.  The stack is not popped.",
        "For memo indices 0..255."),
    OpcodeInfo(
        "LONG_BINPUT", "r", uint4, [], [], 1,
        "Store the stack top into the memo.  The stack is not popped.",
        "For memo indices of 256 and more."),
    OpcodeInfo(
        "MEMOIZE", "\x94", None, [_A], [_A], 4,
        "Store the stack top into the memo.  The stack is not popped.",
        "The index is implicit: the number of entries already in the memo."),

    # Extension registry (copyreg.add_extension).
    OpcodeInfo(
        "EXT1", "\x82", uint1, [], [_A], 2,
        "Extension code.",
        "Pushes the global registered under this code (1..255) with "
        "copyreg.add_extension."),
    OpcodeInfo(
        "EXT2", "\x83", uint2, [], [_A], 2,
        "Extension code.",
        "Like EXT1, for codes up to 65535."),
    OpcodeInfo(
        "EXT4", "\x84", int4, [], [_A], 2,
        "Extension code.",
        "Like EXT1, for codes up to 2**31-1."),

    # Globals and object construction.
    OpcodeInfo(
        "GLOBAL", "c", stringnl_noescape_pair, [], [_A], 0,
        "Push a global object (module.attr) on the stack.",
        "The two lines are passed to the unpickler's find_class. Protocols "
        "below 3 may use Python 2 module names, which fix_imports maps."),
    OpcodeInfo(
        "STACK_GLOBAL", "\x93", None, [pyunicode, pyunicode], [_A], 4,
        "Push a global object (module.attr) on the stack.",
        "Like GLOBAL with the module and qualified name taken from the "
        "stack; both must be str."),
    OpcodeInfo(
        "REDUCE", "R", None, [_A, _A], [_A], 0,
        "Push an object built from a callable and an argument tuple.",
        "Pops the argument tuple and the callable, calls it, pushes the "
        "result: this is the opcode that runs code."),
    OpcodeInfo(
        "BUILD", "b", None, [_A, _A], [_A], 0,
        "Finish building an object, via __setstate__ or dict update.",
        "Pops the state and applies it to the object below: by its "
        "__setstate__, or else by updating its __dict__ (and setting slot "
        "attributes when the state is a (dict, slots) pair)."),
    OpcodeInfo(
        "INST", "i", stringnl_noescape_pair, [_M, _S], [_A], 0,
        "Build a class instance.",
        "Looks up module.name as GLOBAL does and calls it with the items "
        "above the mark (protocol 0's old-style instances)."),
    OpcodeInfo(
        "OBJ", "o", None, [_M, _A, _S], [_A], 1,
        "Build a class instance.",
        "The first item above the mark is the class, the rest are the "
        "arguments of the call."),
    OpcodeInfo(
        "NEWOBJ", "\x81", None, [_A, _A], [_A], 2,
        "Build an object instance.",
        "Pops an argument tuple and a class and pushes cls.__new__(cls, "
        "*args)."),
    OpcodeInfo(
        "NEWOBJ_EX", "\x92", None, [_A, _A, _A], [_A], 4,
        "Build an object instance.",
        "Pops keyword arguments, an argument tuple and a class and pushes "
        "cls.__new__(cls, *args, **kwargs)."),

    # Machine control.
    OpcodeInfo(
        "PROTO", "\x80", uint1, [], [], 2,
        "Protocol version indicator.",
        "The first opcode of a pickle of protocol 2 or higher."),
    OpcodeInfo(
        "STOP", ".", None, [_A], [], 0,
        "Stop the unpickling machine.",
        "The object on top of the stack is the result; bytes after STOP "
        "are not read."),
    OpcodeInfo(
        "FRAME", "\x95", uint8, [], [], 4,
        "Indicate the beginning of a new frame.",
        "The argument is the frame's length: a reader may fetch that many "
        "bytes at once. Frames are a buffering hint; they carry no "
        "objects."),

    # Persistent IDs.
    OpcodeInfo(
        "PERSID", "P", stringnl_noescape, [], [_A], 0,
        "Push an object identified by a persistent ID.",
        "The ID is an ASCII line; the unpickler's persistent_load turns it "
        "into an object."),
    OpcodeInfo(
        "BINPERSID", "Q", None, [_A], [_A], 1,
        "Push an object identified by a persistent ID.",
        "The ID is the object on top of the stack, passed to "
        "persistent_load."),
]

OPCODE_BY_BYTE = {op.byte: op for op in OPCODES}
OPCODE_BY_NAME = {op.name: op for op in OPCODES}

# Opcode byte constants (MARK = b"(", STOP = b".", ...), one per entry of
# the table, for the picklers.
globals().update({op.name: op.code_bytes for op in OPCODES})
__all__ += [op.name for op in OPCODES]

# Boolean forms used at protocols 0 and 1 (INT with a two-digit argument).
TRUE = b"I01\n"
FALSE = b"I00\n"
__all__ += ["TRUE", "FALSE"]


def _check_table():
    assert len(OPCODE_BY_BYTE) == len(OPCODES), "duplicate opcode byte"
    assert len(OPCODE_BY_NAME) == len(OPCODES), "duplicate opcode name"
    for op in OPCODES:
        assert 0 <= op.proto <= HIGHEST_PROTOCOL, op
        if _M in op.stack_before:
            assert op.stack_before[-1] is _S, op
        assert _M not in op.stack_after or not op.stack_before, op


_check_table()


def c_header():
    """The text of ``_accel/opcodes.h``: the table as C macros."""
    lines = [
        "/* Generated from src/brinery/_opcodes.py by",
        " *     python -m brinery._opcodes --header > "
        "src/brinery/_accel/opcodes.h",
        " * Do not edit: tests/test_opcodes.py checks that it is current. */",
        "#ifndef BRINERY_OPCODES_H",
        "#define BRINERY_OPCODES_H",
        "",
        f"#define HIGHEST_PROTOCOL {HIGHEST_PROTOCOL}",
        f"#define FRAME_SIZE_MIN {FRAME_SIZE_MIN}",
        f"#define FRAME_SIZE_TARGET {FRAME_SIZE_TARGET}",
        f"#define FRAME_HEADER_SIZE {FRAME_HEADER_SIZE}",
        f"#define BATCHSIZE {BATCHSIZE}",
        "",
        "enum opcode {",
    ]
    for op in OPCODES:
        lines.append(f"    OP_{op.name} = 0x{op.byte:02x},")
    lines += ["};", "", "#endif /* BRINERY_OPCODES_H */", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - developer tool
    import sys
    if sys.argv[1:] == ["--header"]:
        sys.stdout.write(c_header())
    else:
        for op in OPCODES:
            print(f"{op.code!r:8} {op.name:16} proto {op.proto}  {op.summary}")
