"""A corpus of malformed pickles, for tests/test_malformed.py.

`opcode_cases()` puts every opcode (and every unassigned byte) in many
contexts: after 0 to 3 objects, after a MARK, with arguments that are
missing, empty, out of range, invalid UTF-8, negative or absurdly large
lengths. `named_cases()` lists the classic faults by name (stack
underflow, MARK misuse, bad memo keys, bad PROTO and FRAME, ...). The
expected outcome of each is whatever the standard library's C unpickler
does with it: the tests run both.

`valid_pickles()` gives well-formed pickles (protocols 0-5) to truncate at
every offset.
"""

import pickle
import struct

import catalogue
from brinery._opcodes import OPCODES

PROTO5 = b"\x80\x05"
BIG_LENGTHS = [2**31 - 1, 2**31, 2**32 - 1, 2**40, 2**63 - 1, 2**63,
               2**64 - 1]

# Arguments to try after an opcode, by argument kind.
_ARGUMENTS = {
    "uint1": [b"", b"\x00", b"\x05", b"\xff"],
    "uint2": [b"\x00", b"\x00\x00", b"\xff\xff", b"\x05\x00"],
    "int4": [b"\x00\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
             b"\x00\x00\x00\x80", b"\x05\x00\x00\x00"],
    "uint4": [b"\x00\x00\x00\x00", b"\xff\xff\xff\x0f",
              b"\xff\xff\xff\xff", b"\x05\x00\x00\x00"],
    "uint8": [struct.pack("<Q", n) for n in [0, 1, 2**40, 2**64 - 1]]
    + [b"\x00" * 4],
    "float8": [b"\x00" * 8, b"\x7f\xf8" + b"\x00" * 6, b"\x00" * 3],
    "long1": [b"\x00", b"\x01\xff", b"\x05\x01", b"\xff"],
    "long4": [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00",
              b"\x00\x00\x00\x80", b"\x02\x00\x00\x00\x01"],
    "decimalnl_short": [b"\n", b"0\n", b"00\n", b"01\n", b"-1\n", b"x\n",
                        b"0x1f\n", b"1 \n", b" 1\n", b"1\x00junk\n",
                        b"99999999999999999999\n", b"1L\n", b"+5\n",
                        b"12"],
    "decimalnl_long": [b"\n", b"L\n", b"5L\n", b"-5\n", b"x\n", b"5LL\n",
                       b"9" * 30 + b"L\n", b"0x10L\n", b"1_0\n", b"5"],
    "floatnl": [b"\n", b"1.5\n", b"nan\n", b"-inf\n", b"1e999\n", b"x\n",
                b"1.5x\n", b" 1.5\n", b"1.5\x00x\n", b"1_0.5\n", b"1.5"],
    "stringnl": [b"\n", b"'a'\n", b'"a"\n', b"'a\n", b"a'\n", b"'\n",
                 b"'\\x'\n", b"'\\xff\\x00'\n", b"'\xc3\xa9'\n", b"'a'"],
    "stringnl_noescape": [b"\n", b"abc\n", b"\xff\n", b"a b\n", b"abc"],
    "stringnl_noescape_pair": [
        b"\n\n", b"builtins\nlen\n", b"builtins\n", b"no_such_module\nx\n",
        b"builtins\nno_such_name\n", b"\xff\nx\n", b"builtins\n\xff\n",
        b"os\npath.join\n", b"builtins\nlen", b"__builtin__\nunicode\n",
        b"copy_reg\n_reconstructor\n"],
    "string1": [b"\x00", b"\x03abc", b"\x05ab", b"\x02\xc3\xa9", b""],
    "string4": [b"\x00\x00\x00\x00", b"\x03\x00\x00\x00abc",
                b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
                b"\x10\x00\x00\x00ab", b"\x01\x00\x00\x00\xff"],
    "bytes1": [b"\x00", b"\x03abc", b"\x05ab", b""],
    "bytes4": [b"\x00\x00\x00\x00", b"\x03\x00\x00\x00abc",
               b"\xff\xff\xff\xff", b"\x10\x00\x00\x00ab"],
    "bytes8": [struct.pack("<Q", n) for n in [0, 3] + BIG_LENGTHS]
    + [b"\x03\x00"],
    "bytearray8": [struct.pack("<Q", n) for n in [0, 3] + BIG_LENGTHS]
    + [b"\x03\x00"],
    "unicodestringnl": [b"\n", b"abc\n", b"\\u00e9\n", b"\\u12\n",
                        b"\\U00110000\n", b"\xff\n", b"\\\n", b"abc"],
    "unicodestring1": [b"\x00", b"\x03abc", b"\x01\xff", b"\x02\xc3\x28",
                       b"\x03\xed\xa0\x80", b"\x05ab", b""],
    "unicodestring4": [b"\x00\x00\x00\x00", b"\x01\x00\x00\x00\xff",
                       b"\x03\x00\x00\x00\xed\xa0\x80",
                       b"\xff\xff\xff\xff", b"\x10\x00\x00\x00ab"],
    "unicodestring8": [struct.pack("<Q", n) for n in [0, 1] + BIG_LENGTHS]
    + [b"\x01\x00"],
}

# What may sit on the stack before the opcode.
_PREFIXES = [b"", b"N", b"NN", b"NNN", b"(", b"N(", b"(N", b"((",
             b"]", b"}", b"]N", b"}NN", b")", b"\x8c\x01a\x8c\x01b",
             b"K\x01K\x02"]


def opcode_cases():
    """(name, data): each opcode and unassigned byte in many contexts."""
    cases = []
    known = {op.byte: op for op in OPCODES}
    for byte in range(256):
        op = known.get(byte)
        if op is None:
            cases.append((f"unknown-{byte:#04x}", bytes([byte]) + b"."))
            cases.append((f"unknown-{byte:#04x}-after-proto",
                          PROTO5 + bytes([byte])))
            continue
        if op.name == "STOP":
            arguments = [b""]
        elif op.arg is None:
            arguments = [b""]
        else:
            arguments = _ARGUMENTS[op.arg.name]
        if op.name == "LONG_BINPUT":
            # The standard library's memo is an array: a large index
            # makes it allocate (and clear) gigabytes. See named_cases.
            arguments = [b"\x00\x00\x00\x00", b"\x05\x00\x00\x00",
                         b"\x00\x01"]
        for p, prefix in enumerate(_PREFIXES):
            for a, argument in enumerate(arguments):
                data = PROTO5 + prefix + bytes([byte]) + argument + b"."
                cases.append((f"{op.name}-p{p}-a{a}", data))
                if p == 1:
                    # Protocol 0 (no PROTO).
                    cases.append((f"{op.name}-p{p}-a{a}-proto0",
                                  prefix + bytes([byte]) + argument + b"."))
                if p in (0, 1, 4):
                    # Input that ends in or right after the argument.
                    cases.append((f"{op.name}-p{p}-a{a}-cut",
                                  PROTO5 + prefix + bytes([byte]) + argument))
                    if argument:
                        cases.append((f"{op.name}-p{p}-a{a}-cut1",
                                      PROTO5 + prefix + bytes([byte])
                                      + argument[:-1]))
    return cases


def _frame(payload, length=None):
    if length is None:
        length = len(payload)
    return b"\x95" + struct.pack("<Q", length) + payload


# Not for the standard library: its memo is an array as long as the
# largest index, so these make it allocate gigabytes. brinery loads them.
SPARSE_MEMO_CASES = [
    ("long-binput-huge-index", b"Nr\xff\xff\xff\x0f.", None),
    ("long-binput-max-index", b"Nr\xff\xff\xff\xff.", None),
    ("put-huge-index", b"Np1099511627776\n.", None),
    ("long-binput-then-get", b"\x80\x02]r\xff\xff\xff\x0fj\xff\xff\xff\x0f"
     b"\x86.", (lambda shared: (shared, shared))([])),
]


def named_cases():
    """(name, data): classic faults, by name."""
    q = struct.Struct("<Q").pack
    i4 = struct.Struct("<I").pack
    return [
        ("empty", b""),
        ("only-proto", PROTO5),
        ("stop-empty-stack", b"."),
        ("stop-after-mark", b"(."),
        ("stop-after-mark-item", b"(N."),
        ("append-no-list", b"NNa."),
        ("append-underflow", b"Na."),
        ("appends-no-mark", b"]Ne."),
        ("appends-to-none", b"N(Ne."),
        ("appends-to-tuple", b")(Ne."),
        ("setitem-underflow", b"}Ns."),
        ("setitem-on-list", b"]NNs."),
        ("setitems-odd", b"}(Nu."),
        ("setitems-unhashable", b"}(]Nu."),
        ("dict-odd", b"(Nd."),
        ("dict-unhashable", b"(]Nd."),
        ("frozenset-unhashable", b"\x80\x04(]\x91."),
        ("additems-to-list", b"\x80\x04](N\x90."),
        ("additems-unhashable", b"\x80\x04\x8f(]\x90."),
        ("tuple-no-mark", b"NNt."),
        ("list-no-mark", b"Nl."),
        ("pop-empty", b"0."),
        ("pop-mark-no-mark", b"N1."),
        ("dup-empty", b"2."),
        ("double-mark", b"((."),
        ("mark-then-tuple1", b"\x80\x02(\x85."),
        ("mark-then-tuple2", b"\x80\x02N(N\x86."),
        ("mark-then-tuple3", b"\x80\x02NN(N\x87."),
        ("mark-then-build", b"N(Nb."),
        ("mark-then-reduce", b"cbuiltins\nlen\n()R."),
        ("binget-missing", b"h\x05."),
        ("long-binget-missing", b"j\x00\x00\x00\x10."),
        ("long-binget-huge", b"j\xff\xff\xff\xff."),
        ("get-missing", b"g5\n."),
        ("get-text", b"gabc\n."),
        ("get-negative", b"g-1\n."),
        ("get-huge", b"g99999999999999999999\n."),
        # GET's one- and two-digit fast path, hit and missed.
        ("get-leading-zero", b"Np1\ng01\n."),
        ("get-two-digits", b"Np12\ng12\n."),
        ("get-two-digits-missing", b"Np1\ng12\n."),
        ("get-digit-then-text", b"Np1\ng1x\n."),
        ("get-digit-then-nul", b"Np1\ng1\x00\n."),
        ("get-at-end", b"Np1\ng1"),
        ("get-newline-only", b"Np1\ng\n."),
        ("put-negative", b"Np-1\n."),
        ("put-text", b"Npx\n."),
        ("put-empty-stack", b"p0\n."),
        ("binput-empty-stack", b"q\x00."),
        ("memoize-empty-stack", b"\x80\x04\x94."),
        ("memoize-after-mark", b"\x80\x04N(\x94."),
        ("proto-6", b"\x80\x06N."),
        ("proto-255", b"\x80\xffN."),
        ("proto-truncated", b"\x80"),
        ("proto-twice", b"\x80\x02\x80\x04N."),
        ("frame-too-long", b"\x80\x04" + _frame(b"N.", 100)),
        ("frame-huge", b"\x80\x04" + _frame(b"N.", 2**40)),
        ("frame-max", b"\x80\x04" + _frame(b"N.", 2**64 - 1)),
        ("frame-signed-max", b"\x80\x04" + _frame(b"N.", 2**63)),
        ("frame-zero", b"\x80\x04" + _frame(b"", 0) + b"N."),
        ("frame-short", b"\x80\x04" + _frame(b"N", 1) + b"."),
        ("frame-in-frame", b"\x80\x04" + _frame(_frame(b"N.") + b"")),
        ("frame-truncated-header", b"\x80\x04\x95\x02\x00"),
        ("binbytes8-2**40", b"\x80\x04\x8e" + q(2**40) + b"abc."),
        ("binbytes8-2**63", b"\x80\x04\x8e" + q(2**63) + b"abc."),
        ("binunicode8-huge", b"\x80\x04\x8d" + q(2**62) + b"abc."),
        ("bytearray8-huge", b"\x80\x05\x96" + q(2**50) + b"abc."),
        ("binbytes-4gib", b"\x80\x03B" + i4(2**32 - 1) + b"abc."),
        ("binunicode-4gib", b"X" + i4(2**32 - 1) + b"abc."),
        ("binstring-negative", b"T\xff\xff\xff\xffabc."),
        ("binstring-2gib", b"T\xff\xff\xff\x7fabc."),
        ("long4-negative", b"\x80\x02\x8b\xff\xff\xff\xff."),
        ("long4-huge", b"\x80\x02\x8b\xff\xff\xff\x7f\x01."),
        ("binunicode-invalid-utf8", b"X\x02\x00\x00\x00\xc3\x28."),
        ("short-binunicode-invalid-utf8", b"\x80\x04\x8c\x01\xff."),
        ("binunicode-surrogate", b"X\x03\x00\x00\x00\xed\xa0\x80."),
        ("unicode-bad-escape", b"V\\u12\n."),
        ("string-not-quoted", b"Sabc\n."),
        ("string-one-quote", b"S'\n."),
        ("string-mismatched-quotes", b"S'abc\"\n."),
        ("string-non-ascii-strict", b"S'\xc3\xa9'\n."),
        ("binstring-non-ascii-strict", b"U\x02\xc3\xa9."),
        ("int-text", b"Iabc\n."),
        ("int-empty", b"I\n."),
        ("int-huge", b"I" + b"9" * 40 + b"\n."),
        ("int-nul", b"I12\x0034\n."),
        ("long-text", b"Labc\n."),
        ("long-empty", b"L\n."),
        ("long-hex-junk", b"L0x1fz\n."),
        ("long-binary-junk", b"L-0b2\n."),
        ("long-octal-junk", b"L 0o9L\n."),
        ("long-old-octal", b"L012\n."),
        ("long-not-utf8", b"L\xff\n."),
        ("long-long-junk", b"L" + b"9" * 250 + b"x\n."),
        ("long-nul", b"L12\x00x\n."),
        ("get-not-utf8", b"g\xff\n."),
        ("get-hex", b"N\x94g0x0\n."),
        ("put-huge", b"Np99999999999999999999\n."),
        ("put-truncated-empty-stack", b"p\n."),
        ("float-text", b"Fabc\n."),
        ("float-empty", b"F\n."),
        ("float-overflow", b"F1e400\n."),
        ("global-no-module", b"cno_such_module_xyz\nname\n."),
        ("global-no-attribute", b"cbuiltins\nno_such_name\n."),
        ("global-dotted-proto0", b"cos\npath.join\n."),
        ("global-dotted-proto4", b"\x80\x04cos\npath.join\n."),
        ("global-dotted-missing", b"\x80\x04cos\npath.no_such_name\n."),
        ("global-dotted-missing-first", b"\x80\x04cos\nno_such.join\n."),
        ("global-locals", b"\x80\x04cbuiltins\nlen.<locals>.x\n."),
        ("global-empty-module", b"c\nlen\n."),
        ("global-non-utf8", b"c\xff\nlen\n."),
        ("global-missing-newline", b"cbuiltins\nlen"),
        ("stack-global-not-str", b"\x80\x04K\x01K\x02\x93."),
        ("stack-global-bytes", b"\x80\x04C\x08builtinsC\x03len\x93."),
        ("stack-global-underflow", b"\x80\x04\x8c\x03len\x93."),
        ("inst-no-mark", b"ibuiltins\nlist\n."),
        ("inst-no-module", b"(ino_such_module_xyz\nx\n."),
        ("obj-empty-mark", b"(o."),
        ("obj-not-callable", b"(K\x01o."),
        ("reduce-not-callable", b"K\x01)R."),
        ("reduce-args-not-tuple", b"cbuiltins\nlen\nNR."),
        ("reduce-raises", b"cbuiltins\nint\n(Vx\ntR."),
        ("newobj-not-type", b"\x80\x02K\x01)\x81."),
        ("newobj-args-not-tuple", b"\x80\x02cbuiltins\nobject\nN\x81."),
        ("newobj-ex-not-type", b"\x80\x04K\x01)}\x92."),
        ("newobj-no-new", b"\x80\x02ctypes\nFrameType\n)\x81."),
        ("newobj-ex-no-new", b"\x80\x04ctypes\nFrameType\n)}\x92."),
        ("newobj-ex-no-new-bad-args", b"\x80\x04ctypes\nFrameType\nNN\x92."),
        ("newobj-static-type-name",
         b"\x80\x02ccollections\nOrderedDict\nccollections\nOrderedDict\n"
         b"\x81."),
        ("newobj-both-wrong", b"\x80\x02NN\x81."),
        ("newobj-ex-args-not-tuple",
         b"\x80\x04cbuiltins\nobject\nN}\x92."),
        ("newobj-ex-kwargs-not-dict",
         b"\x80\x04cbuiltins\nobject\n)N\x92."),
        ("build-state-not-dict", b"\x80\x02ccatalogue\nEmpty\n)\x81K\x01b."),
        ("build-slotstate-not-dict",
         b"\x80\x02ccatalogue\nEmpty\n)\x81N\x85K\x01\x86b."),
        ("build-on-int", b"K\x01}b."),
        ("ext1-unregistered", b"\x80\x02\x82\xfe."),
        ("ext2-unregistered", b"\x80\x02\x83\xfe\xff."),
        ("ext4-unregistered", b"\x80\x02\x84\xfe\xff\xff\x7f."),
        ("ext1-zero", b"\x80\x02\x82\x00."),
        ("ext4-negative", b"\x80\x02\x84\xff\xff\xff\xff."),
        ("persid-no-loader", b"Pabc\n."),
        ("binpersid-no-loader", b"N\x51."),
        ("binpersid-underflow", b"\x51."),
        ("next-buffer-no-buffers", b"\x80\x05\x97."),
        ("readonly-buffer-on-int", b"\x80\x05K\x01\x98."),
        ("readonly-buffer-empty", b"\x80\x05\x98."),
        ("empty-bytes-at-end", b"\x80\x03C\x00"),
        ("empty-bytes-then-stop", b"\x80\x03C\x00."),
        ("empty-bytearray-at-end", b"\x80\x05\x96" + q(0)),
        ("empty-str-at-end", b"\x80\x04\x8c\x00"),
        ("no-stop", b"N"),
        ("no-stop-proto", b"\x80\x04N"),
        ("junk-after-proto", b"\x80\x04\xff"),
    ]


def valid_pickles():
    """(name, data): well-formed pickles of assorted objects."""
    names = ["shared", "Plain", "recursive-tuple", "dict-str-keys:2",
             "str:10:len1", "str:13:len1", "float:3:-1.5", "bytes:4:len256",
             "int:30:huge", "Reduce5", "Reduce6", "NewArgsEx",
             "frozenset:2", "set:2", "MyList-attr", "class-nested-deeper",
             "datetime-tz", "bools-in-list", "complex", "many-refs",
             "bytearray:3:len3"]
    result = []
    for name in names:
        obj = catalogue.FACTORIES[name]()
        if name == "int:30:huge":
            obj = 2**700 + 12345        # LONG1/LONG4 without 12 KiB pickles
        if name == "many-refs":
            # Just past 256 memo entries (LONG_BINPUT, LONG_BINGET).
            obj = obj[:258] + obj[250:258]
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            result.append((f"{name}-{proto}", pickle.dumps(obj, proto)))
    return result
