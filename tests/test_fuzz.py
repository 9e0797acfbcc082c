"""Fuzzing brinery.safe and brinery.scan with hypothesis.

Inputs are mutations of valid pickles (bit flips, byte changes, inserted,
deleted and duplicated chunks) and random opcode streams (every opcode of
protocols 0-5 with arguments that are sometimes right, sometimes lying
lengths, sometimes text from an alphabet of digits, quotes and module
names). For each input:

- the safe loader (from bytes, and from a file) either returns or raises
  an UnpicklingError: never another exception, never a crash;
- it stays within the memory bound (16 * input + 64 MiB, tracemalloc) and
  returns within a generous alarm (no hang);
- the scanner returns a verdict that agrees with the loader's outcome
  (see ``agree``).

The normal suite runs a short fuzz (BRINERY_FUZZ_EXAMPLES, default 120 per
test). A long run:

    BRINERY_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/test_fuzz.py -p no:cacheprovider

fuzz/fuzz_safe.py is the same check for atheris (coverage-guided).
"""

import collections
import datetime
import decimal
import io
import os
import pickle
import signal
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from brinery import UnpicklingError, safe
from brinery._opcodes import (OPCODES, TAKEN_FROM_ARGUMENT1,
                              TAKEN_FROM_ARGUMENT4, TAKEN_FROM_ARGUMENT4U,
                              TAKEN_FROM_ARGUMENT8U, UP_TO_NEWLINE)
from brinery.safe import PickleLimitError, UnsafePickleError
from brinery.scan import scan
from safe_impls import SAFE_IMPLS, use_safe_impl

EXAMPLES = int(os.environ.get("BRINERY_FUZZ_EXAMPLES", "120"))
MiB = 1 << 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large,
                                       # (safe_impl only picks the loader)
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True, params=SAFE_IMPLS)
def safe_impl(request, monkeypatch):
    """Every test runs on each implementation of the safe loader."""
    use_safe_impl(monkeypatch, request.param, sys.modules[__name__])
    return request.param

SEED_VALUES = [
    None, True, 1, -300, 2 ** 70, 1.5, "text", "\u20ac", b"\x00\xff",
    bytearray(b"ab"), (1, 2), (1, (2, 3), [4]), [1, [2, [3]]],
    {"a": 1, (2, 3): [4]}, {1, 2}, frozenset({3}), 1 + 2j, range(3),
    collections.OrderedDict(a=1), collections.deque([1], maxlen=3),
    collections.Counter("ab"), collections.defaultdict(list, a=[1]),
    datetime.datetime(2020, 1, 2, 3, 4, 5,
                      tzinfo=datetime.timezone.utc),
    decimal.Decimal("1.5"), type(None), ...,
]
SEEDS = [pickle.dumps(v, p) for v in SEED_VALUES for p in range(6)] + \
    [pickle.dumps(SEED_VALUES, p) for p in range(6)]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from("flip set insert delete dup".split()))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            size = draw(st.integers(1, 16))
            data[at:at] = data[at:at + size] * draw(st.integers(1, 20))
    return bytes(data)


_TEXT = st.sampled_from([
    b"0", b"1", b"-7", b"0x1f", b"00", b"1.5", b"inf", b"nan", b"'a'",
    b'"b"', b"builtins", b"os", b"system", b"set", b"collections",
    b"OrderedDict", b"__builtin__", b"copy_reg", b"_reconstructor",
    b"\x00", b"  3", b"99999999999999999999", b"x", b"", b"uuid", b"UUID",
])


@st.composite
def opcode_stream(draw):
    out = bytearray()
    if draw(st.booleans()):
        out += b"\x80" + bytes([draw(st.integers(0, 5))])
    for _ in range(draw(st.integers(1, 40))):
        op = draw(st.sampled_from(OPCODES))
        out += op.code_bytes
        n = op.arg.n if op.arg is not None else 0
        if n > 0:
            out += draw(st.binary(min_size=n, max_size=n))
        elif n == UP_TO_NEWLINE:
            lines = 2 if op.name in ("GLOBAL", "INST") else 1
            for _ in range(lines):
                out += draw(_TEXT) + b"\n"
        elif n in (TAKEN_FROM_ARGUMENT1, TAKEN_FROM_ARGUMENT4,
                   TAKEN_FROM_ARGUMENT4U, TAKEN_FROM_ARGUMENT8U):
            size = {TAKEN_FROM_ARGUMENT1: 1, TAKEN_FROM_ARGUMENT4: 4,
                    TAKEN_FROM_ARGUMENT4U: 4, TAKEN_FROM_ARGUMENT8U: 8}[n]
            payload = draw(_TEXT)
            if draw(st.integers(0, 9)) == 0:      # a lying length
                length = draw(st.integers(0, 2 ** (8 * size - 1) - 1))
            else:
                length = len(payload)
            out += length.to_bytes(size, "little") + payload
    if draw(st.booleans()):
        out += b"."
    return bytes(out)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _outcome(load):
    try:
        load()
        return "safe"
    except UnsafePickleError:
        return "unsafe"
    except PickleLimitError:
        return "resource"
    except UnpicklingError:
        return "malformed"


def check(data):
    """The fuzz property for one input (also used by fuzz/fuzz_safe.py)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    tracemalloc.start()
    try:
        loaded = _outcome(lambda: safe.loads(data))
        from_file = _outcome(lambda: safe.load(io.BytesIO(data)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert peak <= 16 * len(data) + 64 * MiB
    assert from_file == loaded
    report = scan(data)
    buffers = sum(p.buffers for p in report.parts)
    if buffers and loaded == "malformed":
        loaded = _outcome(lambda: safe.loads(data, buffers=[b""] * buffers))
    # The loader reads the raw stream: compare with the scanner's part for
    # it (a zip or compressed input also has parts for what it holds).
    raw = [p for p in report.parts if p.name == report.source]
    if not raw:
        return
    assert agree(loaded, raw[0].verdict), (loaded, raw[0].verdict,
                                           report.reasons)


def agree(loaded, verdict):
    """Whether the scanner's verdict fits the loader's outcome.

    The same machine reads the same bytes, so they agree, except that the
    scanner is stricter after an error (it reports what a load would
    have run before failing) and that it does not run allowed
    constructors: when one rejects its data (datetime(b'garbage')), the
    loader fails where the scanner saw a safe call.
    """
    if loaded == verdict:
        return True
    if verdict == "unsafe":
        return loaded in ("malformed", "resource")
    return loaded == "malformed" and verdict == "safe"


@FUZZ
@given(mutated())
def test_mutated_pickles(data):
    check(data)


@FUZZ
@given(opcode_stream())
def test_random_opcode_streams(data):
    check(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check(data)


def test_check_catches_a_crash(monkeypatch):
    """The property fails when the loader leaks a non-UnpicklingError."""
    def broken(data, **kwargs):
        raise KeyError("leak")
    monkeypatch.setattr(safe, "loads", broken)
    with pytest.raises(KeyError):
        check(b"N.")
