"""Generate the corpus of malicious, malformed and resource-exhaustion
pickles that tests/test_safe.py and tests/test_scan.py run against.

    python tests/malicious/gen_corpus.py            # rewrite corpus/
    python tests/malicious/gen_corpus.py --check    # exit 1 if out of date

Every pickle is assembled here byte by byte (the standard library's
pickler cannot write most of them). Payloads are harmless: they append a
line to the file named by the environment variable BRINERY_PAYLOAD_MARKER
(and do nothing at all when it is unset), so a test can prove a loader
never ran them, and, by loading them with the standard library's unsafe
pickle, that they are real.

corpus/manifest.json lists every case:

- ``name``, ``file``, ``technique``: what it is and which attack it models;
- ``expect``: what brinery.safe.load does: "unsafe" (UnsafePickleError),
  "resource" (PickleLimitError), "malformed" (another UnpicklingError),
  "ok" (loads, within the memory bound);
- ``what`` / ``limit``: a substring of the error's ``what``, or its limit;
- ``scan``: the verdict brinery.scan gives the file;
- ``stdlib_runs``: the standard library's pickle.loads runs the payload
  (the test checks it does: the corpus is real);
- ``setup``: what the test must arrange first (extension codes, a
  persistent_load, buffers, extra allowed names);
- ``gzip``: the file is gzip-compressed (large, repetitive inputs);
- ``effect``: an attribute or item that the attack would create.

Files that need optional tools (PyTorch, Python 2.7) are written only when
the tool is there; --check skips them.
"""

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
MARKER = "BRINERY_PAYLOAD_MARKER"
PY27 = "/root/.pyenv/versions/2.7.18/bin/python"


# --------------------------------------------------------------- assembler

def proto(n):
    return b"\x80" + bytes([n])


def frame(n):
    return b"\x95" + struct.pack("<Q", n)


def sbu(text):                       # SHORT_BINUNICODE
    raw = text.encode("utf-8")
    return b"\x8c" + bytes([len(raw)]) + raw


def bu(text):                        # BINUNICODE
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def string(text):                    # STRING (protocol 0), repr-quoted
    return b"S" + repr(text).encode("ascii") + b"\n"


def glob(module, name):              # GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binput(i):
    return b"q" + bytes([i])


def binget(i):
    return b"h" + bytes([i])


def binint1(i):
    return b"K" + bytes([i])


def long1(value):
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little",
                         signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


MARK, STOP, POP, POP_MARK, DUP = b"(", b".", b"0", b"1", b"2"
TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"t", b"\x85", b"\x86", b"\x87"
EMPTY_TUPLE, EMPTY_LIST, EMPTY_DICT = b")", b"]", b"}"
EMPTY_SET, FROZENSET, ADDITEMS = b"\x8f", b"\x91", b"\x90"
REDUCE, BUILD, NEWOBJ, NEWOBJ_EX = b"R", b"b", b"\x81", b"\x92"
STACK_GLOBAL, MEMOIZE, NONE = b"\x93", b"\x94", b"N"
APPEND, APPENDS, SETITEM, SETITEMS = b"a", b"e", b"s", b"u"
LIST, DICT, INST, OBJ = b"l", b"d", b"i", b"o"
BINPERSID, NEXT_BUFFER = b"Q", b"\x97"


def code(tag):
    """Python source that records it ran (when the marker is set)."""
    return (f"import os\n"
            f"if os.environ.get({MARKER!r}):\n"
            f"    open(os.environ[{MARKER!r}], 'a').write({tag!r} + '\\n')\n")


def shell(tag):
    """A shell command that records it ran (when the marker is set)."""
    return f'[ -n "${MARKER}" ] && echo {tag} >> "${MARKER}"; true'


def exec_call_p4(tag, module="builtins", name="exec"):
    return (proto(4) + sbu(module) + sbu(name) + STACK_GLOBAL +
            bu(code(tag)) + TUPLE1 + REDUCE + STOP)


# -------------------------------------------------------------------- cases

CASES = []


def case(name, data, technique, expect, scan=None, **extra):
    entry = {"name": name, "technique": technique, "expect": expect,
             "scan": scan or {"ok": "safe", "unsafe": "unsafe",
                              "resource": "resource",
                              "malformed": "malformed"}[expect]}
    entry.update(extra)
    CASES.append((entry, data))


def unsafe_cases():
    case("global_reduce_p0",
         glob("os", "system") + MARK + string(shell("global_reduce_p0")) +
         TUPLE + REDUCE + STOP,
         "GLOBAL os.system + REDUCE, protocol 0", "unsafe", what="os.system",
         stdlib_runs=True)
    case("stack_global_memo",
         proto(4) + sbu("builtins") + MEMOIZE + sbu("exec") + MEMOIZE +
         POP + POP + sbu("collections") + POP + b"h\x00h\x01" +
         STACK_GLOBAL + bu(code("stack_global_memo")) + TUPLE1 + REDUCE +
         STOP,
         "STACK_GLOBAL whose names come from memoized strings",
         "unsafe", what="builtins.exec", stdlib_runs=True)
    case("stack_global_mark_games",
         proto(4) + sbu("builtins") + sbu("eval") + MARK +
         sbu("collections") + sbu("OrderedDict") + POP_MARK + DUP + POP +
         STACK_GLOBAL + bu(f"exec({code('stack_global_mark_games')!r})") +
         TUPLE1 + REDUCE + STOP,
         "STACK_GLOBAL after MARK/POP_MARK/DUP/POP: the last two strings in "
         "the stream are not its operands", "unsafe",
         what="builtins.eval", stdlib_runs=True)
    case("inst",
         MARK + string(code("inst")) + INST + b"builtins\nexec\n" + STOP,
         "INST names a class (any callable) and calls it", "unsafe",
         what="builtins.exec", stdlib_runs=True)
    case("obj",
         MARK + glob("builtins", "exec") + string(code("obj")) + OBJ + STOP,
         "OBJ calls the first item of its frame", "unsafe",
         what="builtins.exec", stdlib_runs=True)
    case("newobj_partial",
         proto(2) + glob("functools", "partial") + glob("builtins", "exec") +
         bu(code("newobj_partial")) + TUPLE2 + NEWOBJ + EMPTY_TUPLE +
         REDUCE + STOP,
         "NEWOBJ builds a callable object, REDUCE calls it", "unsafe",
         what="functools.partial", stdlib_runs=True)
    case("newobj_ex_partial",
         proto(4) + sbu("functools") + sbu("partial") + STACK_GLOBAL +
         glob("builtins", "exec") + bu(code("newobj_ex_partial")) + TUPLE2 +
         EMPTY_DICT + NEWOBJ_EX + EMPTY_TUPLE + REDUCE + STOP,
         "NEWOBJ_EX builds a callable object, REDUCE calls it", "unsafe",
         what="functools.partial", stdlib_runs=True)
    case("ext2",
         proto(2) + b"\x83" + struct.pack("<H", 0x7ff1) +
         bu(code("ext2")) + TUPLE1 + REDUCE + STOP,
         "EXT2 code registered (copyreg.add_extension) to builtins.exec",
         "unsafe", what="builtins.exec", stdlib_runs=True,
         setup={"ext": [[0x7ff1, "builtins", "exec"]]})
    case("ext4_cache_poison",
         proto(2) + b"\x84" + struct.pack("<i", 0x7ff2) +
         bu(code("ext4_cache_poison")) + TUPLE1 + REDUCE + STOP,
         "EXT4 code whose registry entry is allowed (builtins.set) but whose "
         "copyreg._extension_cache entry was poisoned with exec", "unsafe",
         what="builtins.set", stdlib_runs=True,
         setup={"ext": [[0x7ff2, "builtins", "set"]],
                "ext_cache": [[0x7ff2, "builtins", "exec"]]})
    case("ext1_unregistered",
         proto(2) + b"\x82\xee" + STOP,
         "EXT1 code not registered in the scanning process: whatever the "
         "loading process registered would be loaded", "malformed",
         scan="unsafe")
    case("build_on_class",
         proto(2) + glob("fractions", "Fraction") + NONE + EMPTY_DICT +
         sbu("bri_marker") + binint1(1) + SETITEM + TUPLE2 + BUILD + STOP,
         "BUILD with slot state on an allowed class sets class attributes",
         "unsafe", what="BUILD fractions.Fraction",
         effect="fractions.Fraction.bri_marker")
    case("build_on_function",
         proto(2) + glob("copyreg", "_reconstructor") + EMPTY_DICT +
         sbu("bri_marker") + binint1(1) + SETITEM + BUILD + STOP,
         "BUILD on an allowed function writes its __dict__", "unsafe",
         what="BUILD copyreg._reconstructor",
         effect="copyreg._reconstructor.bri_marker")
    case("build_on_module",
         proto(2) + glob("os", "path") + EMPTY_DICT + sbu("bri_marker") +
         binint1(1) + SETITEM + BUILD + STOP,
         "BUILD on a module (allowed by name) writes module globals",
         "unsafe", what="BUILD", effect="os.path.bri_marker",
         setup={"allow": ["os.path"]})
    case("setitem_on_global_dict",
         proto(2) + glob("copyreg", "dispatch_table") + sbu("bri_marker") +
         binint1(1) + SETITEM + STOP,
         "SETITEM on a module-level dict (allowed by name) changes "
         "process state", "unsafe", what="SETITEM",
         effect="copyreg.dispatch_table['bri_marker']",
         setup={"allow": ["copyreg.dispatch_table"]})
    case("append_on_persistent",
         proto(2) + bu("shared") + BINPERSID + bu("bri_marker") + APPEND +
         STOP,
         "APPEND on an object persistent_load handed in", "unsafe",
         what="APPEND", setup={"persistent": "shared_list"})
    case("appends_on_buffer",
         proto(5) + NEXT_BUFFER + MARK + binint1(1) + APPENDS + STOP,
         "APPENDS on the caller's out-of-band buffer", "unsafe",
         what="APPENDS", setup={"buffers": "bytearray"})
    case("build_on_existing_object",
         proto(2) + glob("builtins", "type") + NONE + TUPLE1 + REDUCE +
         EMPTY_DICT + sbu("bri_marker") + binint1(1) + SETITEM + BUILD +
         STOP,
         "BUILD on an existing object an allowed call returned (NoneType)",
         "unsafe", what="BUILD")
    case("build_on_plain_list",
         proto(2) + EMPTY_LIST + EMPTY_DICT + sbu("x") + binint1(1) +
         SETITEM + BUILD + STOP,
         "BUILD on a list the pickle built (no allowed constructor)",
         "unsafe", what="BUILD")
    case("persistent_id_refused",
         b"Pbri_marker\n" + STOP,
         "persistent ID without a persistent_load", "unsafe",
         what="persistent id")
    case("bytearray_size",
         proto(2) + glob("__builtin__", "bytearray") + b"J\x00\x00\x00\x7f" +
         TUPLE1 + REDUCE + STOP,
         "bytearray(2**31 - 2**24): an allowed callable asked to allocate",
         "unsafe", what="builtins.bytearray")
    case("bytearray_huge_long",
         proto(2) + glob("builtins", "bytearray") + long1(2 ** 33) +
         TUPLE1 + REDUCE + STOP,
         "bytearray(2**33)", "unsafe", what="builtins.bytearray")
    case("codecs_encode_other",
         proto(2) + glob("_codecs", "encode") + bu("x" * 16) + bu("rot13") +
         TUPLE2 + REDUCE + STOP,
         "_codecs.encode with an encoding other than latin1", "unsafe",
         what="_codecs.encode")
    case("defaultdict_bad_factory",
         proto(2) + glob("collections", "defaultdict") +
         glob("copyreg", "_reconstructor") + TUPLE1 + REDUCE + STOP,
         "defaultdict whose factory is an allowed function, not a type",
         "unsafe", what="collections.defaultdict")
    case("reconstructor_bad_base",
         proto(2) + glob("copyreg", "_reconstructor") +
         glob("uuid", "UUID") + glob("builtins", "bytes") +
         binint1(100) + TUPLE3 + REDUCE + STOP,
         "copyreg._reconstructor with a base other than object",
         "unsafe", what="copyreg._reconstructor")
    case("enum_functional_api",
         proto(2) + glob("uuid", "SafeUUID") + bu("Evil") + bu("A B") +
         TUPLE2 + REDUCE + STOP,
         "an allowed Enum called with the functional API (creates a class)",
         "unsafe", what="enum lookup")
    case("deque_in_deque",
         proto(2) + glob("collections", "deque") + EMPTY_TUPLE + TUPLE1 +
         REDUCE + binput(0) + glob("collections", "deque") + binget(0) +
         TUPLE1 + TUPLE1 + REDUCE + STOP,
         "deque directly inside a deque: a long chain overflows the C "
         "stack when freed", "unsafe", what="nesting")
    case("qualname_traversal",
         proto(4) + sbu("collections") + sbu("OrderedDict.__init__") +
         STACK_GLOBAL + STOP,
         "a dotted qualname walking from an allowed class to its "
         "attributes", "unsafe", what="collections.OrderedDict.__init__")
    case("py2_name_mapping",
         proto(2) + glob("__builtin__", "eval") +
         bu(f"exec({code('py2_name_mapping')!r})") + TUPLE1 + REDUCE +
         STOP,
         "__builtin__.eval, mapped to builtins.eval by fix_imports: the "
         "policy sees the mapped name", "unsafe", what="builtins.eval",
         stdlib_runs=True)
    case("nested_pickle_loads",
         proto(2) + glob("pickle", "loads") +
         b"C" + bytes([0]) + TUPLE1 + REDUCE + STOP,
         "pickle.loads as a gadget: an innocent outer pickle runs an inner "
         "one unrestricted", "unsafe", what="pickle.loads")
    gadgets = [
        ("builtins", "eval", f"exec({code('gadget_eval')!r})"),
        ("posix", "system", shell("gadget_posix_system")),
        ("runpy", "_run_code", None),
        ("subprocess", "getoutput", shell("gadget_subprocess")),
        ("timeit", "timeit", code("gadget_timeit")),
        ("importlib", "import_module", "os"),
        ("pydoc", "locate", "os.system"),
        ("operator", "attrgetter", "system"),
        ("code", "InteractiveInterpreter", None),
        ("ctypes", "CDLL", "libc.so.6"),
    ]
    for module, name, arg in gadgets:
        tag = f"gadget_{module}_{name}".replace(".", "_")
        if module == "runpy":
            args = bu(code(tag)) + EMPTY_DICT + TUPLE2
        elif module == "timeit":       # timeit(stmt, setup, timer, number=1)
            args = MARK + bu(arg) + bu("pass") + \
                glob("time", "perf_counter") + binint1(1) + TUPLE
        elif arg is None:
            args = EMPTY_TUPLE
        else:
            args = bu(arg) + TUPLE1
        runs = module in ("builtins", "posix", "runpy", "subprocess",
                          "timeit")
        case(tag, proto(2) + glob(module, name) + args + REDUCE + STOP,
             f"gadget {module}.{name}, absent from deny-lists", "unsafe",
             what=f"{module}.{name}", stdlib_runs=runs)


def differential_cases():
    # FRAME whose length ends inside SHORT_BINUNICODE 'builtins': the C
    # unpickler (and brinery) treat frames as read-ahead, pickle.py
    # refuses, and a scanner built on it stops there.
    body = sbu("builtins") + sbu("exec") + STACK_GLOBAL + \
        bu(code("frame_splits_opcode")) + TUPLE1 + REDUCE + STOP
    case("frame_splits_opcode", proto(4) + frame(5) + body,
         "a FRAME that ends in the middle of an opcode", "unsafe",
         what="builtins.exec", stdlib_runs=True)
    case("int_hex_prefix",
         b"I0x10\n0" + glob("os", "system") + MARK +
         string(shell("int_hex_prefix")) + TUPLE + REDUCE + STOP,
         "INT 0x10 (C strtol base 0 accepts it, int() does not) before the "
         "payload", "unsafe", what="os.system", stdlib_runs=True)
    case("int_nul_terminated",
         b"I7\x00junk\n0" + glob("os", "system") + MARK +
         string(shell("int_nul_terminated")) + TUPLE + REDUCE + STOP,
         "INT argument that C reads up to a NUL byte", "unsafe",
         what="os.system", stdlib_runs=True)
    case("second_pickle",
         proto(2) + NONE + STOP + exec_call_p4("second_pickle"),
         "a benign pickle followed by a malicious one (data after STOP)",
         "ok", scan="unsafe", second="unsafe")


def resource_cases():
    case("memo_long_binput_huge", proto(4) + NONE + b"r\xff\xff\xff\x0f" +
         STOP,
         "LONG_BINPUT 0x0FFFFFFF: 6 bytes asking for a 2 GiB memo table",
         "resource", limit="max_memo_entries", measure=True)
    case("memo_sparse", proto(4) + NONE + b"r\xfe\xff\xff\x00" + STOP,
         "LONG_BINPUT 2**24-2: within max_memo_entries, beyond the memory "
         "budget", "resource", limit="memory_per_input_byte", measure=True)
    for name, op in (("binbytes8", b"\x8e"), ("binunicode8", b"\x8d"),
                     ("bytearray8", b"\x96")):
        case(f"{name}_huge_claim",
             proto(5) + op + struct.pack("<Q", 1 << 40) + b"abc",
             f"{name.upper()} declaring 2**40 bytes", "malformed",
             measure=True)
    case("long4_huge_claim", proto(2) + b"\x8b" + struct.pack("<i", 2 ** 31
                                                                - 1) + b"x",
         "LONG4 declaring 2 GiB", "malformed", measure=True)
    case("frame_huge_claim", proto(4) + frame(1 << 62) + NONE + STOP,
         "FRAME declaring 2**62 bytes", "malformed", measure=True)
    case("binstring_huge_claim", b"T" + struct.pack("<i", 2 ** 31 - 1) +
         b"x", "BINSTRING declaring 2 GiB", "malformed", measure=True)
    case("tuple1_chain", proto(4) + NONE + TUPLE1 * 4_000_000 + STOP,
         "4M TUPLE1: 48 bytes of tuple per input byte", "resource",
         limit="memory_per_input_byte", gzip=True, measure=True)
    case("empty_set_flood", proto(4) + EMPTY_SET * 2_000_000 + STOP,
         "2M EMPTY_SET: 216 bytes per input byte", "resource",
         limit="memory_per_input_byte", gzip=True, measure=True)
    case("mark_flood", proto(4) + MARK * 2_000_000 + STOP,
         "2M nested MARKs", "resource", gzip=True, measure=True)
    case("dup_flood", proto(4) + NONE + DUP * 6_000_000 + STOP,
         "6M DUP: a huge stack of references", "ok", gzip=True,
         measure=True)
    case("memoize_flood", proto(4) + NONE + MEMOIZE * 6_000_000 + STOP,
         "6M MEMOIZE: a huge memo of one object", "ok", gzip=True,
         measure=True)
    case("deep_list_nesting",
         proto(2) + EMPTY_LIST * 600_000 + APPEND * 599_999 + STOP,
         "600k nested lists (no recursion limit, freed by the trashcan)",
         "ok", gzip=True, measure=True)
    case("deep_tuple_nesting",
         proto(2) + NONE + TUPLE1 * 300_000 + STOP,
         "300k nested tuples as data (never hashed)", "ok", gzip=True,
         measure=True)
    keys = b"".join(long1(k * (2 ** 61 - 1)) + NONE for k in range(1, 4001))
    case("hash_collisions", proto(2) + EMPTY_DICT + MARK + keys + SETITEMS +
         STOP,
         "4000 distinct int keys with the same hash: quadratic dict",
         "resource", limit="max_hash_collisions", stdlib="slow")
    dag = NONE + b"".join(DUP + TUPLE2 for _ in range(90))
    case("tuple_dag_key", proto(2) + EMPTY_DICT + dag + NONE + SETITEM +
         STOP,
         "a key of 90 levels of (t, t): hash() visits 2**90 tuples",
         "resource", limit="work_per_input_byte", stdlib="hangs")
    case("deep_tuple_key",
         proto(2) + EMPTY_DICT + NONE + TUPLE1 * 200_000 + NONE + SETITEM +
         STOP,
         "a dict key nested 200k tuples deep: hash() overflows the C stack",
         "resource", limit="max_key_depth", gzip=True, stdlib="crashes")
    case("long_text_int",
         b"L" + b"9" * 200_000 + b"L\n" + STOP,
         "LONG with 200k decimal digits: quadratic int()", "resource",
         limit="max_int_digits", gzip=True)
    case("int_hex_huge",
         b"I0x" + b"f" * 200_000 + b"\n" + STOP,
         "INT with 200k hex digits", "resource", limit="max_int_digits",
         gzip=True)
    items = b"".join(b"M" + struct.pack("<H", 300 + i % 8192) for i in
                     range(1_500_000))
    case("set_call_amplification",
         proto(2) + glob("builtins", "set") + EMPTY_LIST + MARK + items +
         APPENDS + TUPLE1 + REDUCE + STOP,
         "set() of a 1.5M-item list: 120 bytes of set per 3 input bytes",
         "resource", limit="memory_per_input_byte", gzip=True, measure=True)


def malformed_cases():
    m = [
        ("empty", b"", "no bytes at all"),
        ("proto_only", proto(4), "PROTO and nothing else"),
        ("invalid_opcode", b"\xff", "a byte that is no opcode"),
        ("stop_empty_stack", STOP, "STOP with an empty stack"),
        ("appends_without_mark", proto(2) + EMPTY_LIST + APPENDS + STOP,
         "APPENDS without a MARK"),
        ("setitems_odd", proto(2) + EMPTY_DICT + MARK + NONE + SETITEMS +
         STOP, "SETITEMS with an odd number of items"),
        ("stack_global_not_str", proto(4) + binint1(1) + binint1(2) +
         STACK_GLOBAL + STOP, "STACK_GLOBAL on ints"),
        ("proto_6", proto(6) + NONE + STOP, "unknown protocol"),
        ("bad_utf8", proto(4) + b"\x8c\x02\xff\xfe" + STOP,
         "invalid UTF-8 in SHORT_BINUNICODE"),
        ("string_unquoted", b"Sabc\n" + STOP, "STRING without quotes"),
        ("long4_negative", proto(2) + b"\x8b\xff\xff\xff\xff" + STOP,
         "LONG4 with a negative length"),
        ("ext_code_zero", proto(2) + b"\x82\x00" + STOP, "EXT1 code 0"),
        ("binget_missing", proto(2) + binget(7) + STOP,
         "BINGET of an index never PUT"),
        ("reduce_args_not_tuple", proto(2) + glob("builtins", "set") +
         EMPTY_LIST + REDUCE + STOP, "REDUCE whose arguments are a list"),
        ("newobj_not_type", proto(2) + NONE + EMPTY_TUPLE + NEWOBJ + STOP,
         "NEWOBJ on None"),
        ("truncated_payload", proto(4) + bu("abcdef")[:-3],
         "BINUNICODE cut in its payload"),
        ("frame_truncated", proto(4) + frame(100) + NONE + STOP,
         "FRAME longer than the input"),
        ("int_garbage", b"Ixyz\n" + STOP, "INT argument that is no number"),
        ("float_garbage", b"Fxyz\n" + STOP,
         "FLOAT argument that is no number"),
        ("get_garbage", NONE + b"p0\n" + b"gx\n" + STOP,
         "GET argument that is no number"),
        ("pop_mark_without_mark", NONE + POP_MARK + STOP,
         "POP_MARK without a MARK"),
        ("dict_odd", MARK + NONE + DICT + STOP, "DICT with one item"),
        ("build_underflow", proto(2) + EMPTY_DICT + BUILD + STOP,
         "BUILD with one item on the stack"),
        ("no_stop", proto(2) + NONE, "a pickle without STOP"),
        ("global_bad_utf8", b"c\xff\xfe\nx\n" + STOP,
         "GLOBAL module name that is not UTF-8"),
        ("unhashable_key", proto(2) + EMPTY_DICT + EMPTY_LIST + NONE +
         SETITEM + STOP, "a list as a dict key"),
        ("next_buffer_without_buffers", proto(5) + NEXT_BUFFER + STOP,
         "NEXT_BUFFER without buffers"),
        ("readonly_buffer_on_int", proto(5) + binint1(3) + b"\x98" + STOP,
         "READONLY_BUFFER on an int"),
        ("put_negative", NONE + b"p-1\n" + STOP, "PUT -1"),
        ("dup_empty", DUP + STOP, "DUP on an empty stack"),
        ("setitem_on_tuple", proto(2) + EMPTY_TUPLE + NONE + NONE +
         SETITEM + STOP, "SETITEM on a tuple"),
    ]
    for name, data, technique in m:
        expect = "unsafe" if name == "setitem_on_tuple" else "malformed"
        # Out-of-band buffers are data the caller supplies: the scanner
        # counts them, the loader needs them.
        scan = "safe" if name == "next_buffer_without_buffers" else None
        case(name, data, technique, expect, scan=scan)


def container_cases():
    malicious = exec_call_p4("in_container")
    benign_zip = _zip([("archive/data.pkl", b"\x80\x02}q\x00.")])
    case("zip_polyglot", malicious + benign_zip,
         "a pickle followed by a zip archive: zipfile (and torch.load) see "
         "a benign archive, pickle.load runs the prefix", "unsafe",
         what="builtins.exec", stdlib_runs=True, ext="zip")
    case("zip_bad_crc", _zip([("archive/data.pkl", malicious)],
                             bad_crc=True),
         "a zip member with a wrong CRC: zipfile refuses to read it, a "
         "loader that ignores CRCs runs it", "unsafe", scan_only=True,
         ext="zip")
    case("zip_innocent_name", _zip([("archive/data.pkl",
                                     b"\x80\x02}q\x00."),
                                    ("archive/data/0", malicious)]),
         "a pickle in a member named like tensor data", "unsafe",
         scan_only=True, ext="zip")
    case("zip_header_name_mismatch",
         _zip([("archive/data.pkl", malicious)], local_name="x/evil.pkl"),
         "the local header names the member differently from the central "
         "directory", "unsafe", scan_only=True, ext="zip")
    npy = io.BytesIO()
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header.ljust(118) + "\n"
    npy.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) +
              header.encode("latin-1") + malicious)
    case("npy_object_array", npy.getvalue(),
         "a .npy object array whose data is a malicious pickle", "unsafe",
         scan_only=True, ext="npy")
    case("npz_object_array", _zip([("a.npy", npy.getvalue())]),
         "a .npz holding such a .npy", "unsafe", scan_only=True, ext="npz")
    case("gzip_pickle", gzip.compress(malicious, mtime=0),
         "a gzip-compressed pickle (joblib)", "unsafe", scan_only=True,
         ext="gz")
    import bz2
    import lzma
    case("bz2_pickle", bz2.compress(malicious),
         "a bz2-compressed pickle", "unsafe", scan_only=True, ext="bz2")
    case("xz_pickle", lzma.compress(malicious),
         "an xz-compressed pickle", "unsafe", scan_only=True, ext="xz")


def _zip(members, bad_crc=False, local_name=None):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
    raw = bytearray(out.getvalue())
    if bad_crc or local_name:
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
            info = zf.infolist()[0]
        at = info.header_offset
        if bad_crc:
            # CRC in the local header and the central directory.
            raw[at + 14:at + 18] = b"\x00\x00\x00\x00"
            cd = raw.rfind(b"PK\x01\x02")
            raw[cd + 16:cd + 20] = b"\x00\x00\x00\x00"
        if local_name:
            old = info.filename.encode()
            new = local_name.encode()[:len(old)].ljust(len(old), b"_")
            raw[at + 30:at + 30 + len(old)] = new
    return bytes(raw)


def optional_cases():
    """Cases that need PyTorch or Python 2.7 to generate."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        buf = io.BytesIO()
        torch.save({"weight": torch.arange(4, dtype=torch.float32)}, buf)
        checkpoint = buf.getvalue()
        allow = ["torch._utils._rebuild_tensor_v2", "torch.FloatStorage",
                 "collections.OrderedDict"]
        case("torch_checkpoint", checkpoint,
             "a PyTorch checkpoint: safe once torch's names and persistent "
             "IDs are allowed", "ok", scan="unsafe", scan_only=True,
             optional="torch", ext="pt",
             scan_allowed={"allow": allow, "allow_persistent": True,
                           "verdict": "safe"})
        with zipfile.ZipFile(io.BytesIO(checkpoint)) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
        evil = [(n, exec_call_p4("torch_injected") if n.endswith("data.pkl")
                 else d) for n, d in members]
        case("torch_injected", _zip(evil),
             "a PyTorch checkpoint whose data.pkl was replaced", "unsafe",
             scan_only=True, optional="torch", ext="pt",
             scan_allowed={"allow": allow, "allow_persistent": True,
                           "verdict": "unsafe"})
    if os.path.exists(PY27):
        script = (
            "import pickle, sys, datetime, collections, decimal\n"
            "v = [set([1, 2]), frozenset([3]), u'text', 'bytes', 10 ** 30,"
            " datetime.datetime(2020, 1, 2, 3, 4, 5),"
            " collections.OrderedDict([(1, 2)]), decimal.Decimal('1.5'),"
            " xrange(3), 1 + 2j, {'a': (1, 2.5)}]\n"
            "sys.stdout.write(pickle.dumps(v, int(sys.argv[1])))\n")
        for p in (0, 1, 2):
            out = subprocess.run([PY27, "-c", script, str(p)],
                                 capture_output=True, check=True).stdout
            case(f"python2_data_p{p}", out,
                 f"Python 2.7 data pickle, protocol {p}", "ok",
                 optional="python2", load_kwargs={"encoding": "latin1"},
                 scan_kwargs={"encoding": "latin1"})


def all_cases():
    CASES.clear()
    unsafe_cases()
    differential_cases()
    resource_cases()
    malformed_cases()
    container_cases()
    optional_cases()
    return CASES


def write(directory, cases):
    os.makedirs(directory, exist_ok=True)
    manifest = []
    for entry, data in cases:
        ext = entry.pop("ext", "pkl")
        name = f"{entry['name']}.{ext}"
        if entry.get("gzip"):
            data = gzip.compress(data, compresslevel=9, mtime=0)
            name += ".gz"
        entry["file"] = name
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        manifest.append(entry)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def check():
    """Compare the generated corpus with the checked-in one."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cases = [c for c in all_cases() if "optional" not in c[0]]
        write(tmp, cases)
        with open(os.path.join(CORPUS, "manifest.json")) as f:
            current = {e["name"]: e for e in json.load(f)}
        with open(os.path.join(tmp, "manifest.json")) as f:
            fresh = json.load(f)
        stale = []
        for entry in fresh:
            old = current.get(entry["name"])
            with open(os.path.join(tmp, entry["file"]), "rb") as f:
                new_bytes = f.read()
            path = os.path.join(CORPUS, entry["file"])
            if old != entry or not os.path.exists(path) or \
                    open(path, "rb").read() != new_bytes:
                stale.append(entry["name"])
        return stale


if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = check()
        if stale:
            print("out of date:", ", ".join(stale))
            sys.exit(1)
        print("corpus is up to date")
    else:
        manifest = write(CORPUS, all_cases())
        print(f"wrote {len(manifest)} cases to {CORPUS}")
