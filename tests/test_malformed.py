"""Bad input: every malformed pickle fails as the standard library's fails.

The oracle is CPython's C unpickler (``pickle.loads``/``pickle.load``):
for each malformed pickle of malformed.py (every opcode in many contexts,
classic faults by name, valid pickles truncated at every offset), brinery
raises the same exception type (``_pickle.UnpicklingError`` standing for
``brinery.UnpicklingError``) with the same message, from memory, from a
seekable file and from an unseekable one. Where the standard library
happens to load the bytes, brinery loads the same object.

Declared lengths are never trusted: a BINBYTES8 claiming 2**40 bytes, a
FRAME of 2**64-1 bytes or a LONG_BINPUT to index 0x0FFFFFFF allocate
nothing large (measured with tracemalloc).
"""

import io
import pickle
import tracemalloc

import pytest

import brinery
import malformed
from compare import Outcome, assert_same, error_kind, outcome

OPCODE_CASES = malformed.opcode_cases()
NAMED_CASES = dict(malformed.named_cases())
VALID = dict(malformed.valid_pickles())


class Unseekable:
    """A file with read() and readline() only, like a pipe or socket."""

    def __init__(self, data):
        self._data = data
        self._pos = 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = len(self._data) - self._pos
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk

    def readline(self):
        end = self._data.find(b"\n", self._pos)
        end = len(self._data) if end < 0 else end + 1
        line = self._data[self._pos:end]
        self._pos = end
        return line


def _load_bytesio(module, data):
    return module.load(io.BytesIO(data))


def _load_unseekable(module, data):
    return module.load(Unseekable(data))


LOADERS = {
    "loads": lambda module, data: module.loads(data),
    "bytesio": _load_bytesio,
    "unseekable": _load_unseekable,
}


def mismatch(expected, actual):
    """None when the outcomes agree, else a description of the difference."""
    if expected.error is None:
        if actual.error is not None:
            return (f"expected a value, got {type(actual.error).__name__}: "
                    f"{actual.error}")
        try:
            assert_same(expected.value, actual.value)
        except AssertionError as exc:
            return f"values differ: {exc}"
        return None
    if actual.error is None:
        return (f"expected {type(expected.error).__name__}: "
                f"{expected.error}, got the value {actual.value!r:.80}")
    if error_kind(actual.error) is not error_kind(expected.error):
        return (f"expected {type(expected.error).__name__}: "
                f"{expected.error}, got {type(actual.error).__name__}: "
                f"{actual.error}")
    if str(actual.error) != str(expected.error):
        return (f"{type(expected.error).__name__} message: expected "
                f"{str(expected.error)!r}, got {str(actual.error)!r}")
    return None


def stdlib_allocates(expected):
    """The standard library allocates a declared length before it reads
    the data (MemoryError, or OverflowError from the bytes constructor, for
    huge ones). brinery differs on purpose: it first checks that the data
    is there, and reports that it is not."""
    error = expected.error
    return isinstance(error, MemoryError) or (
        type(error) is OverflowError
        and str(error) == "byte string is too large")


_NOT_THERE = ("pickle data was truncated",
              "read would overflow (invalid bytecode)")


def _compare(impl, load, data):
    expected = outcome(load, pickle, data)
    actual = outcome(load, impl, data)
    if stdlib_allocates(expected):
        if isinstance(actual.error, brinery.UnpicklingError) and \
                str(actual.error) in _NOT_THERE:
            return None
        return (f"expected UnpicklingError: pickle data was truncated, "
                f"got {actual}")
    return mismatch(expected, actual)


def _report(problems):
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(
        f"  {name} {data[:40]!r}: {problem}"
        for name, data, problem in problems[:40])


@pytest.mark.parametrize("source", LOADERS)
def test_every_opcode_in_bad_contexts(impl, source):
    load = LOADERS[source]
    problems = []
    for name, data in OPCODE_CASES:
        problem = _compare(impl, load, data)
        if problem:
            problems.append((name, data, problem))
    _report(problems)


@pytest.mark.parametrize("source", LOADERS)
@pytest.mark.parametrize("name", NAMED_CASES)
def test_named_fault(impl, name, source):
    data = NAMED_CASES[name]
    problem = _compare(impl, LOADERS[source], data)
    assert problem is None, problem


def _cut_points(n):
    """Every offset of a pickle; past 1000 bytes, every offset in the
    first and last 300 and every 7th in between (the cost is quadratic)."""
    if n <= 1000:
        return range(n)
    return sorted(set(range(300)) | set(range(300, n - 300, 7))
                  | set(range(n - 300, n)))


@pytest.mark.parametrize("source", LOADERS)
@pytest.mark.parametrize("name", VALID)
def test_truncated_at_every_offset(impl, name, source):
    data = VALID[name]
    load = LOADERS[source]
    problems = []
    for end in _cut_points(len(data)):
        problem = _compare(impl, load, data[:end])
        if problem:
            problems.append((f"{name}[:{end}]", data[:end], problem))
    _report(problems)


def test_truncation_errors_are_the_documented_ones(impl):
    """Cut anywhere, a pickle raises what the docs promise: EOFError when
    nothing is left for the next opcode, UnpicklingError for data cut
    short (other types only where the cut leaves a valid-looking but
    wrong argument, as in the standard library)."""
    data = VALID["shared-4"]
    kinds = set()
    for end in range(len(data)):
        with pytest.raises(Exception) as info:
            impl.loads(data[:end])
        kinds.add(error_kind(info.value))
    import brinery
    assert kinds == {EOFError, brinery.UnpicklingError}


# ------------------------------------------------------------ memory

HUGE_CLAIMS = [
    "frame-huge", "frame-max", "frame-signed-max", "binbytes8-2**40",
    "binbytes8-2**63", "binunicode8-huge", "bytearray8-huge",
    "binbytes-4gib", "binunicode-4gib", "binstring-2gib", "long4-huge",
    "long-binget-huge",
    "get-huge",
]


@pytest.mark.parametrize("source", LOADERS)
@pytest.mark.parametrize("name", HUGE_CLAIMS)
def test_huge_declared_sizes_allocate_nothing(impl, name, source):
    data = NAMED_CASES[name]
    load = LOADERS[source]
    tracemalloc.start()
    try:
        result = outcome(load, impl, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated"
    assert result.error is not None


def test_no_opcode_case_allocates_much(impl):
    problems = []
    for name, data in OPCODE_CASES:
        tracemalloc.start()
        try:
            outcome(impl.loads, data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        if peak > 1 << 20:
            problems.append((name, data, f"{peak} bytes allocated"))
    _report(problems)


@pytest.mark.parametrize("source", LOADERS)
@pytest.mark.parametrize(
    "name,data,value", malformed.SPARSE_MEMO_CASES,
    ids=[case[0] for case in malformed.SPARSE_MEMO_CASES])
def test_sparse_memo_index_is_not_a_dense_array(impl, name, data, value,
                                                source):
    """Memo indices far apart cost nothing (the standard library, whose
    memo is an array, allocates gigabytes or fails with MemoryError)."""
    tracemalloc.start()
    try:
        result = LOADERS[source](impl, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_same(value, result)
    assert peak < 1 << 20


def test_outcome_helper_sees_errors():
    """The harness itself: a differing message is reported."""
    a = Outcome(error=pickle.UnpicklingError("one"))
    b = Outcome(error=brinery.UnpicklingError("two"))
    assert "message" in mismatch(a, b)
    assert mismatch(a, Outcome(error=brinery.UnpicklingError("one"))) is None
    assert "expected" in mismatch(a, Outcome(value=1))
