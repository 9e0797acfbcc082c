"""The safe loader's implementations, for tests that run on each.

`SAFE_IMPLS` holds brinery.safe's pure `_PySafeUnpickler` always and
`_CSafeUnpickler` when the C accelerator is active. `use_safe_impl`
makes one of them the module's SafeUnpickler for a test (so
``safe.loads``/``safe.load`` and subclasses of the test module's
``SafeUnpickler`` use it).
"""

import io
import re

import pytest

import brinery
from brinery import UnpicklingError, safe

SAFE_IMPLS = [pytest.param(safe._PySafeUnpickler, id="safe-python")]
if safe._CSafeUnpickler is not None:
    SAFE_IMPLS.append(pytest.param(safe._CSafeUnpickler, id="safe-c"))


def use_safe_impl(monkeypatch, impl, *modules):
    monkeypatch.setattr(safe, "SafeUnpickler", impl)
    for module in modules:
        if hasattr(module, "SafeUnpickler"):
            monkeypatch.setattr(module, "SafeUnpickler", impl)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def fingerprint(value):
    """The value as comparable data: its pickle (brinery's, which has no
    recursion limit), else its repr without addresses."""
    try:
        return brinery.dumps(value, 4)
    except Exception:
        try:
            return _ADDRESS.sub("", repr(value))
        except RecursionError:
            return "<too deep to repr>"


def _outcome(make):
    try:
        unpickler = make()
        value = unpickler.load()
    except UnpicklingError as exc:
        return (type(exc).__name__, getattr(exc, "limit", None),
                getattr(exc, "what", None), exc.offset)
    session = unpickler.session
    return ("ok", type(value).__name__, fingerprint(value),
            session.memory, session.str_bytes, session.work)


def outcome(impl, data, **kwargs):
    """What loading data from memory with impl gives: the value's type and
    fingerprint with the memory model's totals, or the error's type,
    limit, what and offset."""
    return _outcome(lambda: impl._for_bytes(data, **kwargs))


def file_outcome(impl, stream, **kwargs):
    """outcome() for a load from a file object."""
    return _outcome(lambda: impl(stream, **kwargs))


class Unseekable(io.RawIOBase):
    """A pipe-like stream delivering at most 7 bytes per read: the
    unpicklers read it exactly as needed."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(min(len(buffer), 7))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def readline(self, size=-1):
        return self._data.readline(size)


class ReadOnly:
    """Only read() and readline(): no peek(), no seek() (the pure loader
    reads it ahead in whole opcodes)."""

    def __init__(self, data):
        stream = io.BytesIO(data)
        self.read, self.readline = stream.read, stream.readline
