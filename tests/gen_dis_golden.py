"""Generate the exact-text goldens for `brinery.tools.dis` (tests/dis_golden/).

The oracle is the standard library's ``pickletools.dis``: for every case
below this script runs it on the case's input with several (indentlevel,
annotate) settings and records the text it prints and the exception it
raises, one file per case. tests/test_tools.py runs brinery.tools.dis on the
same inputs and compares the text and the exception exactly.

The cases cover every opcode of the table in a well-formed stream, real
pickles of every protocol, and every way pickletools reports a malformed
stream: unknown opcode, end of data, each argument reader's errors, stack
underflow, MARK misuse, memo misuse, a non-empty stack after STOP.

    python tests/gen_dis_golden.py           # rewrite the goldens
    python tests/gen_dis_golden.py --check   # exit 1 if any is stale

A golden file is a header of "# key: json" lines, then for each setting a
"=== dis(indentlevel=I, annotate=A)" line, a "# raises: json" line and the
exact text, up to the next "=== " line or the end of the file; a last line
"\\ no newline at the end of the output" (as in diff) says the text does
not end with the newline before it.
"""

import argparse
import collections
import datetime
import io
import json
import pathlib
import pickle
import pickletools
import struct
import sys

GOLDEN_DIR = pathlib.Path(__file__).with_name("dis_golden")
SETTINGS = [(4, 0), (2, 30), (0, 1)]   # (indentlevel, annotate)
SECTION = "=== dis(indentlevel={}, annotate={})"
NO_NEWLINE = "\\ no newline at the end of the output\n"


def q(n):
    """An 8-byte little-endian length."""
    return struct.pack("<Q", n)


def i4(n):
    return struct.pack("<i", n)


def u4(n):
    return struct.pack("<I", n)


# ------------------------------------------------------------------ cases
#
# (name, pickles, source). `pickles` is one input, or a list of inputs
# disassembled one after another with one shared memo. `source` is how the
# input is handed to dis: "bytes"; "file" (a BytesIO positioned after a
# 5-byte prefix, so positions come from tell()); "notell" (a reader with
# read and readline only, so positions are unknown).

OPCODE_CASES = [
    # Integers.
    ("int", b"I42\n.", "bytes"),
    ("int_negative_and_bools", b"(I-7\nI00\nI01\nt.", "bytes"),
    ("int_beyond_c_long", b"I12345678901234567890\n.", "bytes"),
    ("binint", b"J\xff\xff\xff\xff.", "bytes"),
    ("binint1", b"K\x05.", "bytes"),
    ("binint2", b"M\x00\x01.", "bytes"),
    ("long", b"L123456789012345678901234567890L\n.", "bytes"),
    ("long_without_suffix", b"L5\n.", "bytes"),
    ("long1", b"\x80\x02\x8a\x09" + (2**70 - 3).to_bytes(9, "little") + b".",
     "bytes"),
    ("long1_empty", b"\x8a\x00.", "bytes"),
    ("long4", b"\x8b\x02\x00\x00\x00\xff\x7f.", "bytes"),
    # Python 2 strings.
    ("string", b"S'abc'\n.", "bytes"),
    ("string_escapes", b"S\"x\\ny\\'z\\x41\"\n.", "bytes"),
    ("string_one_quote", b"S'\n.", "bytes"),
    ("binstring", b"T\x03\x00\x00\x00abc.", "bytes"),
    ("short_binstring", b"U\x03ab\xff.", "bytes"),
    # Bytes and buffers.
    ("binbytes", b"B\x03\x00\x00\x00abc.", "bytes"),
    ("short_binbytes", b"C\x02\x00\xff.", "bytes"),
    ("binbytes8", b"\x8e" + q(3) + b"xyz.", "bytes"),
    ("bytearray8", b"\x80\x05\x96" + q(2) + b"\x00\x01.", "bytes"),
    ("next_buffer_readonly_buffer", b"\x80\x05\x97\x98.", "bytes"),
    # Singletons.
    ("none", b"N.", "bytes"),
    ("newtrue_newfalse", b"\x88\x89\x86.", "bytes"),
    # Text.
    ("unicode", b"Vab\\u20ac\\\\\n.", "bytes"),
    ("short_binunicode", b"\x8c\x03\xe2\x82\xac.", "bytes"),
    ("short_binunicode_surrogate", b"\x8c\x03\xed\xa0\x80.", "bytes"),
    ("binunicode", b"X\x02\x00\x00\x00hi.", "bytes"),
    ("binunicode8", b"\x8d" + q(2) + b"hi.", "bytes"),
    # Floats.
    ("float", b"(F1.5\nF-inf\nFnan\nF1e300\nt.", "bytes"),
    ("binfloat", b"G" + struct.pack(">d", -0.0) + b".", "bytes"),
    # Lists, tuples, dicts, sets.
    ("append", b"]Na.", "bytes"),
    ("appends", b"](NNe.", "bytes"),
    ("list", b"(NNl.", "bytes"),
    ("empty_tuple", b").", "bytes"),
    ("tuple", b"(NNt.", "bytes"),
    ("tuple1_2_3", b"N\x85NN\x86NNN\x87\x87.", "bytes"),
    ("dict", b"(NNd.", "bytes"),
    ("setitem", b"}NNs.", "bytes"),
    ("setitems", b"}(NNNNu.", "bytes"),
    ("additems", b"\x8f(N\x90.", "bytes"),
    ("frozenset", b"(N\x91.", "bytes"),
    # Stack manipulation.
    ("pop", b"NN0.", "bytes"),
    ("pop_of_a_mark", b"N(0.", "bytes"),
    ("dup", b"N20.", "bytes"),
    ("pop_mark", b"N(NN1.", "bytes"),
    ("nested_marks", b"(((((((ttttttt.", "bytes"),
    ("marks_inside_lists", b"(N(tl.", "bytes"),
    # Memo.
    ("put_get", b"Np0\n0g0\n.", "bytes"),
    ("all_memo_opcodes", b"(Np0\nq\x01r\x02\x00\x00\x00\x94g0\nh\x01"
                         b"j\x02\x00\x00\x00h\x03t.", "bytes"),
    # Extension registry.
    ("ext1_ext2_ext4", b"(\x82\x01\x83\x01\x02\x84\x01\x02\x03\x04"
                       b"\x84\xff\xff\xff\xfft.", "bytes"),
    # Globals and object construction.
    ("global", b"cbuiltins\nlist\n.", "bytes"),
    ("global_with_escapes", b"ca\\x41\nb\\tc\n.", "bytes"),
    ("stack_global", b"\x8c\x08builtins\x8c\x04list\x93.", "bytes"),
    ("reduce", b"cbuiltins\nlist\n)R.", "bytes"),
    ("build", b"cm\nC\n)R}b.", "bytes"),
    ("inst", b"(NNimod\nname\n.", "bytes"),
    ("obj", b"(cm\nC\nNo.", "bytes"),
    ("newobj", b"cm\nC\n)\x81.", "bytes"),
    ("newobj_ex", b"cm\nC\n)}\x92.", "bytes"),
    # Machine control.
    ("proto", b"\x80\x05N.", "bytes"),
    ("proto_unknown_version", b"\x80\xffN.", "bytes"),
    ("frame", b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00N.", "bytes"),
    # Persistent IDs.
    ("persid", b"P123\n.", "bytes"),
    ("binpersid", b"K\x01Q.", "bytes"),
    # Sources and memo sharing.
    ("file_with_tell", b"(N(tl.", "file"),
    ("reader_without_tell", b"(N(tl.", "notell"),
    ("memo_shared_across_pickles", [b"Np1\n.", b"g1\n."], "bytes"),
]


def _real_object():
    shared = ["shared"]
    recursive = []
    recursive.append(recursive)
    return [
        0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**64, -2**600,
        1.5, -0.0, "text", "caf\xe9 \u20ac \U0001f600", "line\nbreak\\",
        b"bytes", bytearray(b"ba"), None, True, False,
        (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
        {}, {"key": "value", 2: [3]}, set(), {1, 2}, frozenset({3}),
        shared, shared, recursive, collections.OrderedDict(a=1),
        datetime.date(2020, 2, 29), complex(1, 2),
        argparse.Namespace(value=42),
        list(range(1005)),
    ]


def real_pickle_cases():
    obj = _real_object()
    return [(f"real_pickle_protocol_{proto}", pickle.dumps(obj, proto),
             "bytes") for proto in range(pickle.HIGHEST_PROTOCOL + 1)]


MALFORMED_CASES = [
    # The stream itself.
    ("empty", b"", "bytes"),
    ("no_stop", b"N", "bytes"),
    ("unknown_opcode", b"N\xff", "bytes"),
    ("unknown_opcode_first", b"\x00.", "bytes"),
    ("unknown_opcode_without_tell", b"N\xff", "notell"),
    ("unknown_opcode_in_file", b"N\xfe", "file"),
    # Fixed-size arguments cut short.
    ("uint1_truncated", b"K", "bytes"),
    ("uint2_truncated", b"M\x01", "bytes"),
    ("int4_truncated", b"NJ\x12\x34", "bytes"),
    ("uint4_truncated", b"j\x01", "bytes"),
    ("uint8_truncated", b"\x95\x01\x02", "bytes"),
    ("float8_truncated", b"G\x00\x01", "bytes"),
    # Counted arguments.
    ("long1_no_count", b"\x8a", "bytes"),
    ("long1_truncated", b"\x8a\x05ab", "bytes"),
    ("long4_count_truncated", b"\x8b\x01", "bytes"),
    ("long4_negative_count", b"\x8b\xff\xff\xff\xff.", "bytes"),
    ("long4_truncated", b"\x8b\x05\x00\x00\x00ab", "bytes"),
    ("string1_no_count", b"U", "bytes"),
    ("string1_truncated", b"U\x05ab", "bytes"),
    ("string4_negative_count", b"T\xff\xff\xff\xff.", "bytes"),
    ("string4_truncated", b"T\x05\x00\x00\x00ab", "bytes"),
    ("bytes1_truncated", b"C\x05ab", "bytes"),
    ("bytes4_truncated", b"B\x05\x00\x00\x00ab", "bytes"),
    ("bytes4_huge_count", b"B\xff\xff\xff\xff.", "bytes"),
    ("bytes8_truncated", b"\x8e" + q(5) + b"ab", "bytes"),
    ("bytes8_huge_count", b"\x8e" + q(2**40) + b".", "bytes"),
    ("bytes8_count_beyond_maxsize", b"\x8e" + b"\xff" * 8 + b".", "bytes"),
    ("bytearray8_truncated", b"\x96" + q(5) + b"ab", "bytes"),
    ("bytearray8_count_beyond_maxsize", b"\x96" + b"\xff" * 8, "bytes"),
    ("unicodestring1_truncated", b"\x8c\x05ab", "bytes"),
    ("unicodestring1_bad_utf8", b"\x8c\x01\xff.", "bytes"),
    ("unicodestring4_truncated", b"X\x05\x00\x00\x00ab", "bytes"),
    ("unicodestring4_bad_utf8", b"X\x02\x00\x00\x00\xc3(.", "bytes"),
    ("unicodestring8_truncated", b"\x8d" + q(5) + b"ab", "bytes"),
    ("unicodestring8_count_beyond_maxsize", b"\x8d" + b"\xff" * 8, "bytes"),
    # Line arguments.
    ("decimalnl_short_no_newline", b"NI123", "bytes"),
    ("decimalnl_short_not_a_number", b"I1x\n.", "bytes"),
    ("decimalnl_short_with_l", b"I12L\n.", "bytes"),
    ("decimalnl_short_empty", b"I\n.", "bytes"),
    ("decimalnl_long_not_a_number", b"Labc\n.", "bytes"),
    ("decimalnl_long_empty", b"L\n.", "bytes"),
    ("floatnl_not_a_number", b"Fx\n.", "bytes"),
    ("floatnl_no_newline", b"F1.5", "bytes"),
    ("stringnl_no_newline", b"S'abc'", "bytes"),
    ("stringnl_no_quotes", b"Sabc\n.", "bytes"),
    ("stringnl_quote_at_one_end", b"S'abc\n.", "bytes"),
    ("stringnl_mixed_quotes", b"S\"abc'\n.", "bytes"),
    ("stringnl_bad_escape", b"S'\\x4'\n.", "bytes"),
    ("stringnl_not_ascii", b"S'\xff'\n.", "bytes"),
    ("stringnl_noescape_no_newline", b"P123", "bytes"),
    ("stringnl_noescape_not_ascii", b"P\xe9\n.", "bytes"),
    ("stringnl_noescape_pair_one_line", b"cmodule\n", "bytes"),
    ("stringnl_noescape_pair_bad_escape", b"cmod\\x\nname\n.", "bytes"),
    ("unicodestringnl_no_newline", b"Vabc", "bytes"),
    ("unicodestringnl_bad_escape", b"V\\u12\n.", "bytes"),
    # Stack discipline.
    ("append_on_empty_stack", b"a", "bytes"),
    ("append_on_short_stack", b"]a", "bytes"),
    ("pop_on_empty_stack", b"0", "bytes"),
    ("stop_on_empty_stack", b".", "bytes"),
    ("build_on_short_stack", b"Nb.", "bytes"),
    ("tuple3_on_short_stack", b"NN\x87.", "bytes"),
    ("appends_below_mark_missing", b"(Ne.", "bytes"),
    ("stack_not_empty_after_stop", b"]N.", "bytes"),
    ("mark_left_open_at_stop", b"(N.", "bytes"),
    # MARK discipline.
    ("tuple_without_mark", b"Nt.", "bytes"),
    ("pop_mark_without_mark", b"1", "bytes"),
    ("appends_without_mark", b"]Ne.", "bytes"),
    ("mark_taken_by_dup", b"(2t.", "bytes"),
    ("mark_taken_by_append", b"(]at.", "bytes"),
    # Memo discipline.
    ("put_redefined", b"Np1\np1\n.", "bytes"),
    ("binput_redefines_put", b"Np1\nq\x01.", "bytes"),
    ("long_binput_redefines_put", b"Np1\nr\x01\x00\x00\x00.", "bytes"),
    ("memoize_redefines_put", b"Np1\n\x94.", "bytes"),
    ("put_on_empty_stack", b"p0\n", "bytes"),
    ("memoize_on_empty_stack", b"\x94", "bytes"),
    ("put_of_a_mark", b"(p0\n", "bytes"),
    ("memoize_of_a_mark", b"(\x94", "bytes"),
    ("get_never_stored", b"g1\n.", "bytes"),
    ("binget_never_stored", b"h\x01.", "bytes"),
    ("long_binget_never_stored", b"j\x01\x00\x00\x00.", "bytes"),
    ("get_without_shared_memo", [b"Np1\n.", b"Ng1\n."], "fresh-memo"),
]


def all_cases():
    return OPCODE_CASES + real_pickle_cases() + MALFORMED_CASES


# --------------------------------------------------------------- running

class ReaderWithoutTell:
    """A binary stream with read and readline only (no tell)."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, n):
        return self._stream.read(n)

    def readline(self):
        return self._stream.readline()


FILE_PREFIX = b"junk!"


def make_source(data, source):
    if source == "file":
        stream = io.BytesIO(FILE_PREFIX + data)
        stream.seek(len(FILE_PREFIX))
        return stream
    if source == "notell":
        return ReaderWithoutTell(data)
    return data


def run_dis(dis, pickles, source, indentlevel, annotate):
    """Run `dis` as a case says; return (text, [exc type, message] or None).

    Several pickles share one memo, unless the source is "fresh-memo".
    """
    if isinstance(pickles, bytes):
        pickles = [pickles]
    out = io.StringIO()
    memo = {}
    try:
        for data in pickles:
            dis(make_source(data, source), out=out,
                memo=None if source == "fresh-memo" else memo,
                indentlevel=indentlevel, annotate=annotate)
    except Exception as exc:
        return out.getvalue(), [type(exc).__name__, str(exc)]
    return out.getvalue(), None


def render(name, pickles, source):
    """The text of the golden file of one case, from pickletools."""
    inputs = [pickles] if isinstance(pickles, bytes) else pickles
    lines = [
        f"# case: {json.dumps(name)}",
        f"# python: {json.dumps('%d.%d' % sys.version_info[:2])}",
        f"# source: {json.dumps(source)}",
        f"# inputs: {json.dumps([data.hex() for data in inputs])}",
        "# generated by tests/gen_dis_golden.py from pickletools.dis; "
        "do not edit",
    ]
    text = "\n".join(lines) + "\n"
    for indentlevel, annotate in SETTINGS:
        output, error = run_dis(pickletools.dis, pickles, source,
                                indentlevel, annotate)
        text += SECTION.format(indentlevel, annotate) + "\n"
        text += f"# raises: {json.dumps(error)}\n"
        text += output
        if output and not output.endswith("\n"):
            # dis can stop mid-line (after an offset, before the opcode).
            text += "\n" + NO_NEWLINE
    return text


def parse(text):
    """Read a golden file back: (header dict, [(indentlevel, annotate,
    error, output)])."""
    header = {}
    sections = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and not lines[i].startswith("=== "):
        key, _, value = lines[i][2:].partition(": ")
        if key in ("case", "python", "source", "inputs"):
            header[key] = json.loads(value)
        i += 1
    while i < len(lines):
        settings = lines[i].strip()
        error = json.loads(lines[i + 1][len("# raises: "):])
        i += 2
        start = i
        while i < len(lines) and not lines[i].startswith("=== dis("):
            i += 1
        for indentlevel, annotate in SETTINGS:
            if settings == SECTION.format(indentlevel, annotate):
                break
        else:
            raise ValueError(f"unknown section {settings!r}")
        output = "".join(lines[start:i])
        if output.endswith("\n" + NO_NEWLINE):
            output = output[:-len(NO_NEWLINE) - 1]
        sections.append((indentlevel, annotate, error, output))
    return header, sections


def main(argv):
    check = "--check" in argv
    expected = {f"{name}.txt": render(name, pickles, source)
                for name, pickles, source in all_cases()}
    assert len(expected) == len(all_cases()), "duplicate case name"
    stale = []
    for filename, text in sorted(expected.items()):
        path = GOLDEN_DIR / filename
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(filename)
            if not check:
                GOLDEN_DIR.mkdir(exist_ok=True)
                path.write_text(text, encoding="utf-8")
    extra = sorted(p.name for p in GOLDEN_DIR.glob("*.txt")
                   if p.name not in expected)
    for filename in extra:
        stale.append(filename)
        if not check:
            (GOLDEN_DIR / filename).unlink()
    if check:
        for filename in stale:
            print(f"stale: {filename}")
        return 1 if stale else 0
    print(f"{len(expected)} goldens, {len(stale)} written or removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
