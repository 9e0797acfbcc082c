"""Large payloads in the C implementation ask Linux for huge pages (bigmem.h).

Before copying a payload of 4 MiB or more into fresh memory, the C pickler
(its output buffer) and unpickler (bytes and bytearray payloads, from
memory or from a file) advise the whole 2 MiB pages inside the new buffer
with MADV_HUGEPAGE. The kernel records that advice on the memory mapping
as the "hg" flag in /proc/self/smaps, whether or not huge pages are then
available, so these tests read the flag at an address inside the payload.
Small payloads are never advised, and the advice changes no byte: every
payload is compared with the standard library's result.
"""

import io
import os
import pickle
import subprocess
import sys

import pytest

try:
    from brinery import _accel
    _accel.Unpickler
except (ImportError, AttributeError):  # pragma: no cover - build without C
    pytest.skip("brinery._accel has no Unpickler", allow_module_level=True)

pytestmark = [
    pytest.mark.c_extension,
    pytest.mark.skipif(
        not sys.platform.startswith("linux")
        or not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"),
        reason="transparent huge pages are a Linux feature, absent here"),
]

SIZE = 12 << 20
BYTES_HEADER = sys.getsizeof(b"") - 1           # offset of a bytes' data


def advised(address):
    """Whether the mapping holding address has the huge-page advice."""
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            first = line.split(None, 1)[0]
            if "-" in first and ":" not in first:
                start, stop = (int(x, 16) for x in first.split("-"))
                inside = start <= address < stop
            elif inside and first == "VmFlags:":
                return "hg" in line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def data_address(obj):
    if isinstance(obj, bytes):
        return id(obj) + BYTES_HEADER
    # A bytearray's buffer is its own allocation; memoryview does not tell
    # its address, but ctypes can.
    import ctypes
    return ctypes.addressof((ctypes.c_char * len(obj)).from_buffer(obj))


def middle_of(obj):
    return data_address(obj) + len(obj) // 2


def payload(kind, size=SIZE):
    return kind(bytes(range(256)) * (size // 256))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_loads_advises_a_large_bytes(protocol):
    data = pickle.dumps(payload(bytes), protocol)   # BINBYTES / BINBYTES8
    got = _accel.loads(data)
    assert got == pickle.loads(data)
    assert advised(middle_of(got))


def test_loads_advises_a_large_bytearray():
    data = pickle.dumps(payload(bytearray), 5)      # BYTEARRAY8
    got = _accel.loads(data)
    assert type(got) is bytearray and got == pickle.loads(data)
    assert advised(middle_of(got))


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_load_from_a_file_advises_the_payload(kind, tmp_path):
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(payload(kind), 5))
    with open(path, "rb") as f:
        got = _accel.load(f)
    assert type(got) is kind and got == payload(kind)
    assert advised(middle_of(got))


def test_load_from_a_file_without_peek_advises_the_payload():
    data = pickle.dumps(payload(bytes), 5)
    got = _accel.load(io.BytesIO(data))
    assert got == payload(bytes)
    assert advised(middle_of(got))


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_dumps_advises_its_output(kind):
    obj = payload(kind)
    data = _accel.dumps(obj, 5)
    assert data == pickle.dumps(obj, 5)
    assert advised(middle_of(data))


def test_small_payloads_are_not_advised():
    # 1 MiB, below the threshold, in a fresh process: nothing else there
    # was advised whose memory the allocator could hand out again.
    code = (
        "import pickle, sys; sys.path.insert(0, %r)\n"
        "from test_accel_bigmem import _accel, advised, middle_of, payload\n"
        "obj = payload(bytes, 1 << 20)\n"
        "got = _accel.loads(pickle.dumps(obj, 5))\n"
        "assert got == obj\n"
        "print(advised(middle_of(got)))\n" % os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["False"]
