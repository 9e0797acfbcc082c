"""Tests of the C accelerator's UTF-8 decoding of str opcodes (utf8.c).

A str in a pickle is UTF-8 written with "surrogatepass". Whatever the
bytes, brinery._accel.loads of a SHORT_BINUNICODE, BINUNICODE or
BINUNICODE8 pickle must give what bytes.decode("utf-8", "surrogatepass")
gives: the same str with the same kind (sys.getsizeof), and for invalid
bytes the exception the standard library's C unpickler raises. The
decoder has several paths (ASCII runs 8 or 32 bytes at a time, runs of
2-, 3- and 4-byte characters several at a time, one character at a time,
the last bytes from a padded copy, the short-text decoder of unpickler.c
for texts up to 128 bytes), so the texts here mix ASCII runs and
multi-byte characters at every alignment and length, and put every kind
of invalid sequence at every position.

The portable (non-SSE2) code is tested by building with
CFLAGS=-DBRINERY_UTF8_PORTABLE and running this module (docs/sanitizer.md).
The module is skipped when the accelerator is not built.
"""

import pathlib
import pickle
import runpy
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    from brinery import _accel
    C_LOADS = _accel.loads
except (ImportError, AttributeError):  # pragma: no cover - build without C
    pytest.skip("brinery._accel has no loads", allow_module_level=True)

pytestmark = pytest.mark.c_extension

ACCEL_DIR = pathlib.Path(__file__).parent.parent / "src" / "brinery" / "_accel"


def short_binunicode(data):
    return b"\x80\x04\x8c" + bytes([len(data)]) + data + b"."


def binunicode(data):
    return b"\x80\x02X" + struct.pack("<I", len(data)) + data + b"."


def binunicode8(data):
    return b"\x80\x04\x8d" + struct.pack("<Q", len(data)) + data + b"."


def pickles_of(data):
    yield binunicode(data)
    yield binunicode8(data)
    if len(data) < 256:
        yield short_binunicode(data)


def outcome(load, data):
    """('ok', str, size) or ('error', type, args) of loading a pickle."""
    try:
        result = load(data)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return ("error", type(exc), exc.args)
    return ("ok", result, sys.getsizeof(result))


def check(data):
    """brinery._accel.loads of every str opcode holding `data` against
    bytes.decode (valid input) and _pickle.loads (invalid input)."""
    try:
        text = data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = None
    for pickled in pickles_of(data):
        got = outcome(C_LOADS, pickled)
        if text is not None:
            assert got[0] == "ok", (data, got)
            assert got[1] == text, data
            assert type(got[1]) is str
            assert got[2] == sys.getsizeof(text), data
        else:
            assert got == outcome(pickle.loads, pickled), data


# Characters at the edges of each UTF-8 length and str kind.
EDGE_CHARS = ["\x00", "\x7f", "\x80", "\xff", "\u0100", "\u07ff", "\u0800",
              "\ud7ff", "\ud800", "\udbff", "\udc00", "\udfff", "\ue000",
              "\uffff", "\U00010000", "\U0010ffff", "é", "ж", "日", "😀"]

# One sample character per UTF-8 length.
WIDTH_CHARS = ["a", "é", "ж", "日", "😀"]


def characters(surrogates=True):
    return st.characters(blacklist_categories=() if surrogates else ("Cs",))


def encode(text):
    return text.encode("utf-8", "surrogatepass")


# ------------------------------------------------------- valid input


@settings(max_examples=500, deadline=None)
@given(st.text(characters(), max_size=300))
def test_arbitrary_text(text):
    check(encode(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(st.sampled_from("ab z"), min_size=1,
                                  max_size=40),
                          st.text(st.sampled_from(WIDTH_CHARS + EDGE_CHARS),
                                  min_size=1, max_size=12),
                          st.text(characters(), max_size=5)),
                max_size=40),
       st.integers(0, 15))
def test_runs_of_ascii_and_wide_characters(pieces, shift):
    check(encode("x" * shift + "".join(pieces)))


@pytest.mark.parametrize("char", WIDTH_CHARS + EDGE_CHARS)
@pytest.mark.parametrize("prefix", range(0, 17))
def test_every_alignment_and_length(char, prefix):
    """A run of one character after `prefix` ASCII bytes, for every length
    up to 160 characters (past the 128-byte short decoder)."""
    for count in range(0, 161, 1 if len(encode(char)) > 1 else 7):
        check(encode("a" * prefix + char * count))
        check(encode("a" * prefix + char * count + "bc"))


@pytest.mark.parametrize("length", [129, 1000, 4096, 70_000])
def test_long_texts(length):
    for chars in (["a"], ["a", "é"], ["é", "ÿ"], ["ж", " "], ["日", "本"],
                  ["😀", "a"], WIDTH_CHARS, EDGE_CHARS):
        text = "".join(chars[i % len(chars)] for i in range(length))
        check(encode(text))
        # The widest character only at the very end or the very start.
        check(encode("a" * length + chars[-1]))
        check(encode(chars[-1] + "a" * length))


@pytest.mark.parametrize("char", WIDTH_CHARS + EDGE_CHARS)
def test_single_characters_are_the_same_object_kind(char):
    data = encode(char)
    check(data)
    if ord(char) < 256:
        # CPython returns its cached one-character strs for Latin-1.
        assert C_LOADS(binunicode(data)) is data.decode("utf-8")


# ----------------------------------------------------- invalid input

# Every kind of sequence strict UTF-8 rejects (surrogates are accepted,
# and above with EDGE_CHARS).
INVALID_SEQUENCES = [
    b"\x80", b"\xbf", b"\x80\x80",                       # stray continuation
    b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",            # overlong
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf",
    b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",  # beyond U+10FFFF
    b"\xfe", b"\xff",
    b"\xc2", b"\xe6", b"\xe6\x97", b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98",
    b"\xc2a", b"\xe6\x97a", b"\xf0\x9f\x98a", b"\xe6a\x97",  # cut short
    b"\xc2\xc3\xa9", b"\xe6\xc3\xa9\x97",
    b"\xed\xa0", b"\xed\xa0a",                           # cut surrogates
]

BODIES = {
    "ascii": b"abcdefghij" * 20,
    "latin1": encode("aé" * 70),
    "cyrillic": encode("жз" * 50),
    "cjk": encode("日本" * 30),
    "emoji": encode("😀🐍" * 25),
    "mixed": encode("ab日本éжz😀 " * 10),
}


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("bad", INVALID_SEQUENCES, ids=repr)
def test_invalid_sequence_at_every_position(body, bad):
    data = BODIES[body]
    for at in range(len(data) + 1):
        check(data[:at] + bad + data[at:])
    # Short texts too (the 128-byte decoder of unpickler.c).
    for at in range(0, 20):
        check(data[:at] + bad + data[at:20])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(characters(), min_size=1, max_size=200), st.data())
def test_one_byte_changed(text, draw):
    data = bytearray(encode(text))
    at = draw.draw(st.integers(0, len(data) - 1))
    data[at] = draw.draw(st.integers(0, 255))
    check(bytes(data))


# ------------------------------------------ the vector stage's tables


def test_simd_tables_header_is_generated():
    generator = runpy.run_path(str(ACCEL_DIR / "utf8_tables.py"))
    assert (ACCEL_DIR / "utf8_tables.h").read_text() == \
        generator["c_header"](), (
        "src/brinery/_accel/utf8_tables.h is stale: regenerate it with "
        "python src/brinery/_accel/utf8_tables.py > "
        "src/brinery/_accel/utf8_tables.h")


# ------------------------------------------------ the vector stage
#
# utf8_simd.c decodes texts over 128 bytes (shorter ones never reach
# utf8.c) in 16-byte windows of 3 or 4 characters (or 16 ASCII bytes)
# until fewer than 16 bytes are left; it decodes encoded surrogates
# itself, where the scalar decoders leave them to CPython's decoder.

# Hangul U+D000..U+D7FF share the lead byte ED with the surrogates.
HANGUL = ["\ud000", "\ud55c", "\ud7a3", "\ud7ff"]


def mixed_text(seed, length, alphabet):
    """A deterministic text of `length` characters from `alphabet`."""
    state = seed
    out = []
    for _ in range(length):
        state = (state * 1103515245 + 12345) % 2**31
        out.append(alphabet[(state >> 8) % len(alphabet)])
    return "".join(out)


MIXED_ALPHABETS = {
    "all_lengths": ["a", " ", "é", "ж", "日", "😀"],
    "two_three": ["ж", "日", "ü"],
    "three_four": ["日", "😀"],
    "one_four": ["a", "😀"],
    "edges": EDGE_CHARS,
    "hangul": HANGUL + ["a", "日", "😀"],
}


@pytest.mark.parametrize("alphabet", sorted(MIXED_ALPHABETS))
@pytest.mark.parametrize("seed", range(4))
def test_mixed_lengths_at_every_window_boundary(alphabet, seed):
    """Texts whose byte lengths cover every tail left after the 16-byte
    windows (0..15 bytes) just above the 128-byte threshold and longer,
    each starting at every offset of an ASCII prefix."""
    text = mixed_text(seed, 400, MIXED_ALPHABETS[alphabet])
    for prefix in range(0, 17):
        for end in range(30, 400, 7):
            check(encode("x" * prefix + text[:end]))


@pytest.mark.parametrize("size", range(120, 150))
def test_sizes_around_the_threshold(size):
    """Texts of 120..149 bytes, around the 128-byte threshold of the
    short decoder and the first windows of the vector stage."""
    for alphabet in MIXED_ALPHABETS.values():
        text = mixed_text(size, size, alphabet)
        data = encode(text)
        while len(data) > size:
            text = text[:-1]
            data = encode(text)
        check(data + b"a" * (size - len(data)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WIDTH_CHARS + EDGE_CHARS + HANGUL + [" "]),
                min_size=40, max_size=200))
def test_arbitrary_mixes_of_lengths(chars):
    check(encode("".join(chars)))


SIMD_BODIES = {
    "all_lengths": encode(mixed_text(7, 60, MIXED_ALPHABETS["all_lengths"])),
    "hangul": encode(mixed_text(7, 60, MIXED_ALPHABETS["hangul"])),
    "ascii_then_wide": b"a" * 40 + encode("日😀é" * 10),
}


@pytest.mark.parametrize("body", sorted(SIMD_BODIES))
@pytest.mark.parametrize("bad", INVALID_SEQUENCES + [
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x8f\xbf\xbf\xbf",
    b"\x80" * 5, b"\xf0\x9f\x98\x80\x80", b"\xe6\x97\xa5\x80\x80\x80"],
    ids=repr)
def test_invalid_sequence_at_every_window_position(body, bad):
    """Each invalid sequence (and each encoded surrogate, which CPython's
    decoder takes) at every byte of texts that mix all lengths, so at
    every position of a 16-byte window and across windows."""
    data = SIMD_BODIES[body]
    for at in range(len(data) + 1):
        check(data[:at] + bad + data[at:])


@pytest.mark.parametrize("at", range(0, 200, 3))
def test_surrogate_beside_hangul(at):
    """Surrogates give what "surrogatepass" gives wherever they are, next
    to Hangul (the same lead byte) or not."""
    body = encode("日a😀ж" * 30)
    for extra in ("", "\ud7ff", "\ud000"):
        for sur in ("\ud800", "\udfff", "\udbff\udc00"):
            data = body[:at] + encode(sur + extra) + body[at:]
            check(data)
            check(encode(extra) + data)
