"""Tests of how the C accelerator's load() reads files (src/brinery/_accel/inbuf.c).

A seekable file is read ahead (first with peek() when the file has it,
then in chunks) and left right after STOP; an unseekable one is read
exactly. Large bytes and bytearray payloads are read straight into the
object returned, with memory growing with the data received, never with a
claimed length. The standard library's pickle is the oracle for what a
load returns and where it leaves the file.
"""

import gc
import io
import os
import pickle
import pickletools
import threading
import tracemalloc

import pytest

try:
    from brinery import _accel
    _accel.Unpickler
except (ImportError, AttributeError):  # pragma: no cover - build without C
    pytest.skip("brinery._accel has no Unpickler", allow_module_level=True)

import brinery

pytestmark = pytest.mark.c_extension

C_LOAD = _accel.load
MEGABYTE = 1 << 20


class Unseekable(io.BytesIO):
    """A pipe-like stream without a buffer: no seek, no peek."""

    def seekable(self):
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")


class UnseekablePeek(Unseekable):
    """A pipe behind a buffered reader: no seek, but peek() shows up to
    8 kB ahead (as io.BufferedReader shows its buffer)."""

    def peek(self, n=0):
        here = self.tell()
        return self.getvalue()[here:here + 8192]


class ReadOnly:
    """Only read() and readline()."""

    def __init__(self, data):
        self._bio = io.BytesIO(data)
        self.read = self._bio.read
        self.readline = self._bio.readline


class Recording(io.BufferedReader):
    """A real buffered reader recording the calls load() makes."""

    def __init__(self, raw, size=io.DEFAULT_BUFFER_SIZE):
        super().__init__(raw, size)
        self.calls = []

    def peek(self, *args):
        self.calls.append("peek")
        return super().peek(*args)

    def readinto(self, buffer):
        self.calls.append("readinto")
        return super().readinto(buffer)

    def read(self, *args):
        self.calls.append("read")
        return super().read(*args)

    def seek(self, *args):
        self.calls.append("seek")
        return super().seek(*args)


def pickles(protocol):
    """A few pickles of different sizes and shapes."""
    objects = [None, {"a": [1, 2.5, "x" * 40]}, list(range(3000)),
               ["ab" * i for i in range(400)], b"\x00" * 70000,
               [(i, str(i)) for i in range(20000)]]
    return [pickle.dumps(obj, protocol) for obj in objects]


def peak_bytes(func):
    """(func's result, peak traced memory while it ran)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def std_positions(stream_factory, data, count):
    """What the standard library returns and where it leaves the file."""
    file = stream_factory(data)
    out = []
    for _ in range(count):
        out.append((pickle.load(file), file.tell()))
    return out


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("buffer_size", [1, 7, 64, 8192, 1 << 17])
def test_several_pickles_per_buffered_file_land_where_stdlib_does(
        protocol, buffer_size):
    parts = pickles(protocol)
    data = b"".join(parts) + b"trailing bytes"

    def opener(raw):
        return io.BufferedReader(io.BytesIO(raw), buffer_size)

    expected = std_positions(opener, data, len(parts))
    file = opener(data)
    got = [(C_LOAD(file), file.tell()) for _ in parts]
    assert got == expected
    assert file.read() == b"trailing bytes"


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_several_pickles_per_real_file(tmp_path, protocol):
    parts = pickles(protocol)
    path = tmp_path / "many.pkl"
    path.write_bytes(b"".join(parts) + b"end")
    with open(path, "rb") as file:
        expected = std_positions(lambda _: file, None, len(parts))
    with open(path, "rb") as file:
        got = [(C_LOAD(file), file.tell()) for _ in parts]
        assert file.read() == b"end"
    assert got == expected


# The tests of unseekable streams run for both implementations: they read
# them the same way.
LOADERS = [pytest.param(lambda file: C_LOAD(file), id="c"),
           pytest.param(brinery._load, id="python")]


class UnseekableRaw(io.RawIOBase):
    """The raw end of a pipe: readinto only, never seekable."""

    def __init__(self, data, step=None):
        self.data, self.pos, self.step = data, 0, step

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), len(self.data) - self.pos,
                self.step or len(buffer))
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("buffer_size", [1, 7, 64, 8192, 1 << 17])
@pytest.mark.parametrize("load", LOADERS)
def test_several_pickles_per_buffered_pipe(load, protocol, buffer_size):
    # An unseekable buffered stream (a pipe, a socket's makefile()) is read
    # through peek(), and each load must still stop right after its STOP:
    # nothing of the next pickle may be consumed.
    # (Byte by byte, only the smaller pickles: the big ones take seconds.)
    parts = pickles(protocol)[:4 if buffer_size < 64 else None]
    data = b"".join(parts) + b"trailing bytes"
    expected = [pickle.loads(part) for part in parts]
    for step in (None, 5):
        file = Recording(UnseekableRaw(data, step), buffer_size)
        assert not file.seekable()
        assert [load(file) for _ in parts] == expected
        assert file.read() == b"trailing bytes"
        assert "seek" not in file.calls


@pytest.mark.parametrize("protocol", range(4))
@pytest.mark.parametrize("load", LOADERS)
def test_a_buffered_pipe_is_read_by_buffers_not_by_opcodes(load, protocol):
    obj = [{"id": i, "name": f"user{i}", "score": i / 7} for i in range(2000)]
    data = pickle.dumps(obj, protocol)
    file = Recording(UnseekableRaw(data + b"next"))
    assert load(file) == obj
    assert file.read() == b"next"
    # A read() and a peek() per 8 kB buffer (_pickle's calls too), where
    # reading exactly would take more than one call per opcode.
    buffers = len(data) // io.DEFAULT_BUFFER_SIZE + 1
    assert file.calls.count("peek") <= buffers + 2
    assert file.calls.count("read") <= buffers + 3


class CountingReadOnly(ReadOnly):
    def __init__(self, data):
        super().__init__(data)
        self.reads = []
        read = self.read

        def counted(n=-1):
            self.reads.append(n)
            return read(n)
        self.read = counted


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("load", LOADERS)
def test_several_pickles_per_stream_without_peek(load, protocol):
    # Unseekable and no peek(): read exactly, but each argument with the
    # next opcode's byte (a valid pickle always has one after an argument),
    # never a byte past STOP.
    parts = pickles(protocol)
    data = b"".join(parts) + b"trailing bytes"
    expected = [pickle.loads(part) for part in parts]
    for file in (UnseekableRaw(data), ReadOnly(data), CountingReadOnly(data)):
        assert [load(file) for _ in parts] == expected
        assert file.read() == b"trailing bytes"
    # Short reads, and a buffer of one byte: the smaller pickles only.
    small = b"".join(parts[:4]) + b"trailing bytes"
    for file in (UnseekableRaw(small, 3),
                 io.BufferedReader(UnseekableRaw(small), 1)):
        assert [load(file) for _ in parts[:4]] == expected[:4]
        assert file.read() == b"trailing bytes"


@pytest.mark.parametrize("protocol", [1, 2, 3])
@pytest.mark.parametrize("load", LOADERS)
def test_a_stream_without_peek_is_read_once_per_opcode(load, protocol):
    obj = [[i, -i, str(i), (i, None)] for i in range(300)]
    data = pickle.dumps(obj, protocol)
    ops = [op for op, _, _ in pickletools.genops(data)]
    with_argument = sum(op.arg is not None for op in ops)
    counted = sum(op.arg is not None and op.arg.n < -1 for op in ops)
    file = CountingReadOnly(data + b"x")
    assert load(file) == obj
    # A read() per opcode, one more for a counted argument (its length,
    # then its bytes with the next opcode). _pickle reads each opcode and
    # each argument apart: len(ops) + with_argument + counted calls.
    assert len(file.reads) <= len(ops) + counted
    assert len(ops) + counted < 0.75 * (len(ops) + with_argument + counted)
    assert file.read() == b"x"


@pytest.mark.parametrize("load", LOADERS)
def test_a_real_pipe_several_pickles(load, tmp_path):
    objs = [list(range(1000)), {"a": "b" * 5000}, "end", None]
    data = b"".join(pickle.dumps(o, p) for o, p in zip(objs, (0, 2, 4, 5)))
    read_fd, write_fd = os.pipe()

    def writer():
        with os.fdopen(write_fd, "wb") as out:
            for i in range(0, len(data), 1000):    # in pieces, with pauses
                out.write(data[i:i + 1000])
                out.flush()
            out.write(b"tail")

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe:
        assert not pipe.seekable()
        assert [load(pipe) for _ in objs] == objs
        assert pipe.read() == b"tail"
    thread.join()


def test_a_pipe_read_stops_where_a_seekable_file_does_after_an_error():
    good = pickle.dumps([1, 2, 3], 2)
    bad = good[:-2] + b"\xff" + b"after the error"
    seekable = io.BytesIO(bad)
    pipe = UnseekablePeek(bad)
    for file in (seekable, pipe):
        with pytest.raises(brinery.UnpicklingError):
            C_LOAD(file)
    assert pipe.tell() == seekable.tell()
    assert pipe.read() == seekable.read()


@pytest.mark.parametrize("load", LOADERS)
def test_a_peek_that_read_does_not_honour_is_an_error(load):
    class Liar(UnseekablePeek):
        def read(self, n=-1):
            return super().read(n)[:1]      # less than peek() showed

    with pytest.raises(ValueError, match="peek"):
        load(Liar(pickle.dumps(list(range(5000)), 2)))


def test_a_small_pickle_costs_one_peek_and_one_seek_inside_the_buffer():
    data = pickle.dumps({"a": 1, "b": [1, 2, 3]}, 2)
    file = Recording(io.BytesIO(data + b"next"))
    assert C_LOAD(file) == {"a": 1, "b": [1, 2, 3]}
    # peek() shows the buffer; the one seek moves inside it.
    assert file.calls == ["peek", "seek"]
    assert file.tell() == len(data)
    assert file.read() == b"next"


def test_a_big_pickle_peeks_once_then_reads_chunks():
    data = pickle.dumps([str(i) for i in range(50000)], 2)
    file = Recording(io.BytesIO(data))
    assert C_LOAD(file) == [str(i) for i in range(50000)]
    assert file.calls.count("peek") == 1
    assert 1 <= file.calls.count("readinto") <= len(data) // 65536 + 3
    assert file.tell() == len(data)


@pytest.mark.parametrize("shown", [0, 1, 3])
def test_peek_showing_little_or_nothing_still_loads(shown):
    class Stingy(io.BytesIO):
        def peek(self, n=0):
            here = self.tell()
            return self.getvalue()[here:here + shown]

    for protocol in (0, 2, 5):
        data = pickle.dumps([1, "two", 3.0, b"4"], protocol)
        file = Stingy(data + b"rest")
        assert C_LOAD(file) == [1, "two", 3.0, b"4"]
        assert file.read() == b"rest"


def test_peek_not_implemented_falls_back_to_reading():
    class NoPeek(io.BytesIO):
        peeks = 0

        def peek(self, n=0):
            NoPeek.peeks += 1
            raise NotImplementedError

    data = pickle.dumps(list(range(100)), 2)
    file = NoPeek(data * 2)
    unpickler = _accel.Unpickler(file)
    assert unpickler.load() == list(range(100))
    assert unpickler.load() == list(range(100))
    assert file.tell() == 2 * len(data)
    assert NoPeek.peeks == 1          # not asked again


def test_peek_errors_propagate():
    class Broken(io.BytesIO):
        def peek(self, n=0):
            raise OSError("bad disk")

    with pytest.raises(OSError, match="bad disk"):
        C_LOAD(Broken(pickle.dumps(1, 2)))


def test_short_reads_are_completed():
    class Dribbling(io.BytesIO):
        def readinto(self, buffer):
            return super().readinto(memoryview(buffer)[:1000])

    for obj in ([str(i) for i in range(30000)], b"\x01" * (3 * MEGABYTE)):
        for protocol in (2, 3, 5):
            data = pickle.dumps(obj, protocol)
            file = Dribbling(data + b"x")
            assert C_LOAD(file) == obj
            assert file.read() == b"x"


# ---------------------------------------------------------- big payloads

def payload_pickles(size):
    payload = bytes(range(256)) * (size // 256)
    yield "binbytes8", payload, pickle.dumps(payload, 5)
    yield "bytearray8", bytearray(payload), pickle.dumps(bytearray(payload), 5)
    yield "binbytes", payload, pickle.dumps(payload, 3)
    # a framed prefix, so part of the payload's header sits in the window
    framed = ["head"] * 10 + [payload]
    yield "framed", framed, pickle.dumps(framed, 4)


@pytest.mark.parametrize("source", ["real", "bytesio", "unseekable",
                                    "unseekable_peek", "readonly"])
def test_large_payloads_are_read_straight_into_the_result(tmp_path, source):
    size = 24 * MEGABYTE
    for name, obj, data in payload_pickles(size):
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data + b"after")
        opener = {"real": lambda: open(path, "rb"),
                  "bytesio": lambda: io.BytesIO(data + b"after"),
                  "unseekable": lambda: Unseekable(data + b"after"),
                  "unseekable_peek": lambda: UnseekablePeek(data + b"after"),
                  "readonly": lambda: ReadOnly(data + b"after")}[source]
        file = opener()
        if source == "bytesio":
            # BytesIO's own copy of the data is not the loader's
            gc.collect()
        result, peak = peak_bytes(lambda: C_LOAD(file))
        assert result == obj
        assert type(result) is type(obj)
        assert file.read() == b"after"
        if source != "readonly":            # read() returns its own copies
            assert peak < size * 1.05 + MEGABYTE, (name, peak / size)
        if hasattr(file, "close"):
            file.close()


@pytest.mark.parametrize("opcode", ["binbytes8", "bytearray8", "binbytes"])
@pytest.mark.parametrize("source", ["real", "bytesio", "unseekable",
                                    "unseekable_peek", "readonly"])
def test_huge_claims_from_files_raise_truncated_without_allocating(
        tmp_path, opcode, source):
    body = b"\x00" * 5000
    header = {"binbytes8": b"\x8e" + (1 << 40).to_bytes(8, "little"),
              "bytearray8": b"\x96" + (1 << 40).to_bytes(8, "little"),
              "binbytes": b"B" + (0xFFFFFFF0).to_bytes(4, "little")}[opcode]
    data = b"\x80\x05" + header + body
    path = tmp_path / "huge.pkl"
    path.write_bytes(data)
    opener = {"real": lambda: open(path, "rb"),
              "bytesio": lambda: io.BytesIO(data),
              "unseekable": lambda: Unseekable(data),
              "unseekable_peek": lambda: UnseekablePeek(data),
              "readonly": lambda: ReadOnly(data)}[source]
    file = opener()

    def attempt():
        with pytest.raises(brinery.UnpicklingError,
                           match="pickle data was truncated"):
            C_LOAD(file)
    _, peak = peak_bytes(attempt)
    if source == "real":
        file.close()
    # (_pickle allocates the claimed 2**40 bytes and raises MemoryError)
    assert peak < MEGABYTE


def test_a_file_keeping_the_readinto_view_cannot_change_the_result():
    payload = b"\x11" * (3 * MEGABYTE)
    data = pickle.dumps([payload, "small"], 5)
    kept = []

    class Keeper(io.BytesIO):
        def readinto(self, buffer):
            got = super().readinto(buffer)
            kept.append(memoryview(buffer)[:16])   # a derived view survives
            return got

    result = C_LOAD(Keeper(data))
    assert result == [payload, "small"]
    for view in kept:
        view[:] = b"\xff" * len(view)
    assert result == [payload, "small"]
    # and loads after that are unaffected too
    assert C_LOAD(Keeper(data)) == [payload, "small"]


def test_a_file_keeping_the_view_object_gets_it_released():
    kept = []

    class Keeper(io.BytesIO):
        def readinto(self, buffer):
            kept.append(buffer)
            return super().readinto(buffer)

    data = pickle.dumps([b"\x22" * (2 * MEGABYTE), list(range(10))], 5)
    assert C_LOAD(Keeper(data)) == [b"\x22" * (2 * MEGABYTE),
                                    list(range(10))]
    for view in kept:
        with pytest.raises(ValueError):
            view[0] = 1


def test_payload_then_more_pickles_in_one_file(tmp_path):
    first = pickle.dumps(bytearray(b"\x33" * (5 * MEGABYTE)), 5)
    second = pickle.dumps({"k": b"\x44" * (2 * MEGABYTE)}, 3)
    path = tmp_path / "two.pkl"
    path.write_bytes(first + second)
    with open(path, "rb") as file:
        assert C_LOAD(file) == bytearray(b"\x33" * (5 * MEGABYTE))
        assert file.tell() == len(first)
        assert C_LOAD(file) == {"k": b"\x44" * (2 * MEGABYTE)}
        assert file.tell() == len(first) + len(second)
        with pytest.raises(EOFError):
            C_LOAD(file)


def test_truncated_payload_error_note_matches_pure():
    data = pickle.dumps(b"\x55" * (2 * MEGABYTE), 5)[:-10]
    errors = []
    for load in (C_LOAD, brinery._load):
        with pytest.raises(brinery.UnpicklingError) as info:
            load(io.BytesIO(data))
        errors.append((str(info.value), getattr(info.value, "__notes__", [])))
    assert errors[0] == errors[1]
