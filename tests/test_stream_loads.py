"""Loads from files that can neither seek nor peek, for every implementation.

Such a file (a raw pipe, a user's object with only read() and readline())
cannot be read past the pickle's STOP: what follows belongs to someone
else. The C unpickler reads it one opcode at a time; the pure one reads
whole opcodes ahead, up to 64 kB (`_Unpickler._read_ahead`), then runs
them from memory. Both must leave the file right after STOP, fail on a cut
stream exactly as on the same bytes in memory, and never hold much more
than 64 kB of what they have not run yet. tests/test_accel_io.py has the
rest of the C reader's file tests; tests/test_golden.py loads every golden
pickle from such a stream too.
"""

import io
import pickle
import pickletools
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compare import assert_same_outcome, outcome
from strategies import SETTINGS

TAIL = b"what follows the pickle"
READ_AHEAD = 64 * 1024


class ReadOnly:
    """Only read() and readline()."""

    def __init__(self, data, kind=bytes):
        self.bio = io.BytesIO(data)
        self.kind = kind

    def read(self, n=-1):
        return self.kind(self.bio.read(n))

    def readline(self):
        return self.kind(self.bio.readline())


class Trickle(io.RawIOBase):
    """A raw pipe that gives at most `step` bytes per call."""

    def __init__(self, data, step):
        self.data, self.pos, self.step = data, 0, step

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), len(self.data) - self.pos, self.step)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def rest(self):
        return self.data[self.pos:]


def streams(data, tail=TAIL):
    """(name, file, what is left in it) for each kind of stream."""
    for kind in (bytes, bytearray, memoryview):
        file = ReadOnly(data + tail, kind)
        yield kind.__name__, file, file.bio.read
    for step in (1, 3, 4096):
        file = Trickle(data + tail, step)
        yield f"trickle{step}", file, file.rest


def every_argument_kind(protocol):
    """An object whose pickle has every kind of argument the protocol has:
    fixed sizes, lines (protocol 0), counted lengths of 1, 4 and 8 bytes,
    globals, and at protocol 4+ several frames."""
    obj = [None, True, 7, 300, 70000, -5, 2 ** 70, -(2 ** 900), 1.5,
           "", "short", "long " * 100, "\u20ac\n\\", b"", b"b" * 300,
           bytearray(b"ba"), (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
           {}, {"k": [1, {2, 3}]}, frozenset({4}), pickle.dumps, range(3),
           [[i, str(i)] for i in range(200)]]
    obj.append(obj[-1])     # memo references
    if protocol >= 4:
        obj.append(["frame filler %d" % i for i in range(8000)])
    return obj


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_stream_is_left_right_after_stop(impl, protocol):
    obj = every_argument_kind(protocol)
    data = pickle.dumps(obj, protocol)
    expected = pickle.loads(data)
    for name, file, rest in streams(data * 2):
        assert_same_outcome(outcome(pickle.loads, data),
                            outcome(impl.load, file))
        assert impl.load(file) == expected, name
        assert rest() == TAIL, name


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_cut_stream_fails_as_the_cut_bytes_do(impl, protocol):
    # Every cut of a small pickle with every argument kind: the stream load
    # raises what loads() of the same bytes raises, message included.
    data = pickle.dumps([0, 300, 2 ** 70, 1.5, "ab\n", b"cd", (1, 2),
                         {"k": None}, pickle.dumps, [7] * 3], protocol)
    for cut in range(len(data)):
        expected = outcome(impl.loads, data[:cut])
        assert expected.error is not None
        for name, file, _ in streams(data[:cut], b""):
            if name == "trickle1" and cut % 7:
                continue                    # byte by byte: some cuts only
            assert_same_outcome(expected, outcome(impl.load, file))


def recording_unpickler(impl, file, seen):
    class Recorder(impl.Unpickler):
        def persistent_load(self, pid):
            seen.append(file.bio.tell())
            return pid
    return Recorder(file)


class WithPersistentIds(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, str) and obj.startswith("pid"):
            return obj
        return None


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_stream_is_never_read_far_ahead(impl, protocol):
    # Half a megabyte of small opcodes, with a persistent ID every 500
    # items: when each persistent ID is loaded, the file is at most 64 kB
    # (plus the opcode that crossed it) past that ID's opcode.
    items = []
    for i in range(20000):
        items.append(f"pid{i}" if i % 500 == 0 else [i, f"v{i}", i * 0.5])
    out = io.BytesIO()
    WithPersistentIds(out, protocol).dump(items)
    data = out.getvalue()
    positions = [pos for op, _, pos in pickletools.genops(data)
                 if op.name in ("PERSID", "BINPERSID")]
    seen = []
    file = ReadOnly(data + TAIL)
    assert recording_unpickler(impl, file, seen).load() == items
    assert file.bio.read() == TAIL
    assert len(seen) == len(positions) == 40
    # A frame (protocol 4+) is read whole, as by every unpickler.
    bound = max(READ_AHEAD + 64, 64 * 1024 + 9 if protocol >= 4 else 0)
    for tell, pos in zip(seen, positions):
        assert pos < tell <= pos + bound, (pos, tell - pos)


@pytest.mark.parametrize("length", [-1, -(2 ** 31)])
def test_a_negative_length_on_a_stream_fails_as_in_memory(impl, length):
    data = (b"\x80\x02]q\x00(K\x01T" + length.to_bytes(4, "little",
                                                      signed=True)
            + b"abc" + b"e.")
    expected = outcome(impl.loads, data)
    assert expected.error is not None
    assert_same_outcome(expected, outcome(impl.load, ReadOnly(data)))
    assert_same_outcome(outcome(pickle.loads, data), expected,
                        messages=False)


def test_a_payload_over_a_megabyte_on_a_stream(impl):
    # Large counted arguments are read by themselves (the read-ahead stops
    # at them), then reading ahead goes on after them.
    obj = [[1, 2], b"\x07" * (3 << 20), "after", [3] * 100,
           "x" * (2 << 20), 4.5]
    for protocol in (1, 3, 5):
        data = pickle.dumps(obj, protocol)
        for name, file, rest in streams(data):
            if name == "trickle1":
                continue
            assert impl.load(file) == obj, (protocol, name)
            assert rest() == TAIL, (protocol, name)


@pytest.mark.parametrize("opcode", [b"c", b"i"])
def test_the_second_line_of_a_global_is_read_as_a_line(impl, opcode):
    # GLOBAL and INST have two lines. Read as one line and an opcode, the
    # second line would be taken for opcodes: "J" (BININT) and four bytes
    # would run one byte past STOP here.
    class Names(impl.Unpickler):
        def find_class(self, module, name):
            return lambda *args: (module, name, args)

    for name in (b"Jxy", b"Jx", b"J", b"Kx", b"X\x01\x00\x00", b"."):
        data = (b"(" if opcode == b"i" else b"") + opcode + b"mod\n" + \
            name + b"\n."
        for kind, file, rest in streams(data):
            got = Names(file).load()
            if opcode == b"c":
                got = got()
            assert got == ("mod", name.decode(), ()), (name, kind)
            assert rest() == TAIL, (name, kind)


class CountingReadOnly(ReadOnly):
    def __init__(self, data):
        super().__init__(data)
        self.calls = 0

    def read(self, n=-1):
        self.calls += 1
        return super().read(n)

    def readline(self):
        self.calls += 1
        return super().readline()


@pytest.mark.parametrize("protocol", [4, 5])
def test_frames_on_a_stream_are_read_whole(impl, protocol):
    obj = [[i, str(i), i / 3] for i in range(30000)]
    data = pickle.dumps(obj, protocol)
    frames = sum(op.name == "FRAME" for op, _, _ in pickletools.genops(data))
    assert frames > 10
    file = CountingReadOnly(data)
    assert impl.load(file) == obj
    # The FRAME opcode and its size, then its contents: a few calls each.
    assert file.calls <= 3 * frames + 4


@pytest.mark.parametrize("header", [
    b"\x8e" + (1 << 40).to_bytes(8, "little"),        # BINBYTES8
    b"\x96" + (1 << 40).to_bytes(8, "little"),        # BYTEARRAY8
    b"\x8d" + (1 << 40).to_bytes(8, "little"),        # BINUNICODE8
    b"B" + (0xFFFFFFF0).to_bytes(4, "little"),        # BINBYTES
    b"T" + (0x7FFFFFF0).to_bytes(4, "little"),        # BINSTRING
])
def test_a_huge_claimed_length_on_a_stream_allocates_nothing(impl, header):
    data = b"\x80\x05" + header + b"\x00" * 5000
    for kind, file, _ in streams(data, b""):
        if kind == "trickle1":
            continue
        tracemalloc.start()
        try:
            error = outcome(impl.load, file).error
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert isinstance(error, pickle.UnpicklingError) or \
            type(error).__name__ == "UnpicklingError", (kind, error)
        assert "truncated" in str(error), (kind, error)
        # (A raw file's read(n) allocates n: the first large read asks for
        # 1 MB, the next ones for what has come so far.)
        assert peak < 2 << 20, (kind, peak)


SEEDS = [pickle.dumps(every_argument_kind(protocol)[:27], protocol)
         for protocol in range(pickle.HIGHEST_PROTOCOL + 1)]


@st.composite
def damaged_pickles(draw):
    """A seed pickle with a few bytes replaced, inserted or removed."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if edit == "replace":
            data[at] = byte
        elif edit == "insert":
            data.insert(at, byte)
        else:
            del data[at]
    return bytes(data)


@SETTINGS
@given(data=damaged_pickles())
def test_a_damaged_pickle_loads_from_a_stream_as_from_memory(impl, data):
    # Reading ahead follows the opcodes' argument sizes: on any bytes, it
    # must give what loads() of the same bytes gives, value or error.
    expected = outcome(impl.loads, data)
    for name, file, _ in streams(data, b""):
        if name == "trickle1":
            continue
        got = outcome(impl.load, file)
        assert_same_outcome(expected, got)
