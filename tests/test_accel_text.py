"""Tests of protocol 0's text arguments, around the C unpickler's shortcuts.

The C unpickler reads the lines of protocol 0 without the general
machinery where it can: a line of up to 8 bytes is found as one word
(unpickler.c, read_line), INT and FLOAT arguments as Python writes them
are parsed without C's strtol and strtod (unpickler_text.c,
plain_decimal_int and plain_decimal_float: Clinger's fast path, one IEEE
operation on exact doubles), and UNICODE text that is plain ASCII skips
the raw-unicode-escape decoder (op_unicode). Everything else takes the
general path. Each test compares every implementation with the standard
library on inputs on both sides of each shortcut's edges: the value (its
type, and a float's bits), or the error (type name and message).
"""

import io
import math
import pickle
import random
import struct

import pytest


def outcome(loads, data):
    try:
        value = loads(data)
    except Exception as exc:   # the error is part of the behaviour
        return ("error", type(exc).__name__, str(exc))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


def check_all(impl, payloads):
    mismatches = [(p, outcome(pickle.loads, p), outcome(impl.loads, p))
                  for p in payloads]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert mismatches[:5] == []


def random_doubles(count, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if not math.isnan(x):
            out.append(x)
    return out


def float_texts():
    rng = random.Random(5)
    texts = []
    for x in random_doubles(3000, 1) + [rng.uniform(-1e6, 1e6)
                                        for _ in range(3000)]:
        texts += [repr(x), "%.15g" % x, "%.16g" % x, "%.17g" % x]
        texts.append(repr(round(x, rng.randrange(12))) if abs(x) < 1e300
                     else repr(x))
    # Significands on both sides of 2**53, powers of ten on both sides of
    # the exact ones (10**22), in every spelling float() takes.
    for m in (1, 7, 2**53 - 1, 2**53, 2**53 + 1, 9999999999999999,
              1234567890123456789, 12345678901234567890):
        for k in range(-30, 31):
            texts += [f"{m}e{k}", f"-{m}e{k}", f"{m}E+{k}", f"0.{m}e{k}",
                      f"{m}.e{k}", f".{m}e{k}"]
    for k in range(-25, 26):
        texts += [f"3e{k}", f"0.3e{k}", f"123456789012345.6e{k}"]
    return texts


@pytest.mark.parametrize("chunk", range(6))
def test_float_values(impl, chunk):
    texts = float_texts()[chunk::6]
    check_all(impl, [b"F" + t.encode() + b"\n." for t in texts])


ODD_FLOATS = [
    b"", b"-", b".", b"-.", b"e5", b"1e", b"1e+", b"1e-", b"1.5x", b"1.5 ",
    b" 1.5", b"+1.5", b"1.5\x00junk", b"1\x00", b"inf", b"-inf", b"nan",
    b"-nan", b"Infinity", b"1_0", b"00001.5", b"1e99999", b"1e-99999",
    b"1e0000001", b"0e0", b"-0.0", b"0.0", b"-0", b"1." + b"0" * 30,
    b"0." + b"0" * 30 + b"1", b"1" * 19, b"1" * 20, b"1" * 400, b"1.5e308",
    b"1.8e308", b"4.9e-324", b"2.5e-324", b"1..5", b"1.5.", b"1e5.5",
    b"\xff1.5", b"1.5\xff",
]


def test_float_odd_texts(impl):
    check_all(impl, [b"F" + t + b"\n." for t in ODD_FLOATS])


def test_float_signed_zeros(impl):
    for text in (b"-0.0", b"-0", b"-0e10", b"-0.000e-5"):
        value = impl.loads(b"F" + text + b"\n.")
        assert value == 0.0 and math.copysign(1, value) == -1


def int_texts():
    rng = random.Random(7)
    texts = ["0", "1", "00", "01", "-0", "+1", " 1", "-1", "010", "0x10",
             "08", "02", "-00", "-01", "1 ", "--1", "", "-", "1a", "a1",
             "1\x00", "\x001", "0\x00", "9" * 18, "9" * 19, "9" * 25,
             "-" + "9" * 18, "-" + "9" * 19, str(2**63 - 1), str(2**63),
             str(-2**63), str(-2**63 - 1), "1" + "0" * 17, "1" + "0" * 18]
    for _ in range(4000):
        digits = rng.randrange(1, 25)
        texts.append(str(rng.randint(-10**digits, 10**digits)))
    return texts


def test_int_values_and_types(impl):
    # Also the Python 2.2 booleans: I00 and I01 are False and True, and so
    # is any other 2-character line that strtol reads as 0 or 1 ("-0").
    check_all(impl, [b"I" + t.encode("latin-1") + b"\n." for t in int_texts()])


def test_int_booleans(impl):
    assert impl.loads(b"I01\n.") is True
    assert impl.loads(b"I00\n.") is False
    assert impl.loads(b"I-0\n.") is False
    assert impl.loads(b"I1\n.") == 1 and type(impl.loads(b"I1\n.")) is int


def test_int_leading_zero_is_octal(impl):
    assert impl.loads(b"I010\n.") == 8
    assert impl.loads(b"I-017\n.") == -15


def unicode_lines():
    rng = random.Random(11)
    lines = []
    # A backslash or a Latin-1 byte at every position of texts that cross
    # the 8-byte words the plain-ASCII test reads.
    for size in range(0, 26):
        base = bytes(rng.choice(b"abcdefghij0123456789 _.") for _ in range(size))
        lines.append(base)
        for i in range(size):
            for odd in (b"\\", b"\x80", b"\xe9", b"\xff", b"\x7f"):
                lines.append(base[:i] + odd + base[i + 1:])
            lines.append(base[:i] + b"\\u20ac" + base[i + 1:])
            lines.append(base[:i] + b"\\U0001f600" + base[i + 1:])
    for _ in range(2000):
        size = rng.randrange(0, 40)
        text = "".join(chr(rng.choice([rng.randrange(32, 127),
                                       rng.randrange(0x80, 0x100),
                                       rng.randrange(0x100, 0x3000), 0x5C]))
                       for _ in range(size))
        lines.append(text.encode("raw-unicode-escape").replace(b"\n", b"\\u000a"))
        lines.append(bytes(rng.choice(b"ab\\uU0x\x80\xff12") for _ in range(size)))
    return lines


def test_unicode_text(impl):
    check_all(impl, [b"V" + line + b"\n." for line in unicode_lines()])


def test_unicode_singletons(impl):
    # CPython's decoder returns its cached strs for "" and one Latin-1
    # character; so must the shortcut for plain ASCII.
    for line, text in ((b"", ""), (b"a", "a"), (b"~", "~")):
        got = impl.loads(b"V" + line + b"\n.")
        assert got == text and got is pickle.loads(b"V" + line + b"\n.")


def memo_list_pickle(lengths):
    """A protocol-0 list of strs of the given lengths, with PUTs and GETs
    whose lines have every length the memo indices give."""
    items = ["x" * n for n in lengths]
    items += items[::3]                 # GETs of earlier items
    return items, pickle.dumps(items, 0)


@pytest.mark.parametrize("cut", range(0, 12))
def test_lines_at_the_end_of_the_input(impl, cut):
    # The last lines of the input, shorter than the word read_line looks
    # at: a final opcode and STOP after the line, then the same payload cut
    # short so that the last line has no newline.
    items, data = memo_list_pickle(range(cut + 1))
    assert impl.loads(data) == items
    for size in range(1, 12):
        line_op = b"V" + b"y" * size + b"\n."
        assert impl.loads(line_op) == "y" * size
        truncated = b"V" + b"y" * size
        assert outcome(impl.loads, truncated) == outcome(pickle.loads, truncated)


def test_lines_through_file_objects(impl, tmp_path):
    # Lines that straddle the buffer ends of file reads: a real file, a
    # file without peek, and one that returns a few bytes per read.
    items, data = memo_list_pickle(list(range(40)) * 30)
    path = tmp_path / "p0.pickle"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert impl.load(f) == items

    class Dribble(io.RawIOBase):
        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, buf):
            n = min(len(buf), 3, len(self.data) - self.pos)
            buf[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    assert impl.load(io.BytesIO(data)) == items
    assert impl.load(Dribble(data)) == items
    assert impl.load(io.BufferedReader(Dribble(data), 16)) == items
