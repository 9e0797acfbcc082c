"""Memory taken by `load` of a large in-band payload from a real file.

The result itself is one copy of the payload; reading it must not need a
second one (the standard library's C unpickler needs none either). A
BYTEARRAY8 payload (a bytearray, or a NumPy array pickled in-band at
protocol 5) is read straight into the bytearray; BINBYTES8 into one bytes
object. A length claimed by a short file allocates nothing close to it.
"""

import pickle
import tracemalloc

import pytest

from brinery import UnpicklingError

SIZE = 24 << 20


def peak_of(func):
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_load_from_a_file_holds_one_copy(impl, kind, tmp_path):
    payload = kind(b"\x5a" * SIZE)
    path = tmp_path / "big.pkl"
    with open(path, "wb") as f:
        pickle.dump([payload], f, 5)
        pickle.dump("next", f, 5)
    with open(path, "rb") as f:
        result, peak = peak_of(lambda: impl.load(f))
        assert type(result[0]) is kind and result[0] == payload
        assert impl.load(f) == "next"          # the file was left after STOP
    assert peak < SIZE * 1.1 + (1 << 20)


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96"])    # BINBYTES8, BYTEARRAY8
def test_a_claimed_length_past_the_file_allocates_nothing(impl, opcode,
                                                          tmp_path):
    path = tmp_path / "short.pkl"
    path.write_bytes(b"\x80\x05" + opcode + (1 << 40).to_bytes(8, "little")
                     + b"x" * (2 << 20))
    with open(path, "rb") as f:
        with pytest.raises(UnpicklingError, match="truncated"):
            peak_of(lambda: impl.load(f))
    with open(path, "rb") as f:
        tracemalloc.start()
        try:
            impl.load(f)
        except UnpicklingError:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < (8 << 20)
