"""brinery: Python object serialization, wire-compatible with `pickle`.

``import brinery as pickle`` works wherever `pickle` is used: the same
functions, classes, constants and exceptions, and byte-for-byte the same
pickles. This module is the one place that decides which implementation
backs the public names:

- the C accelerator, ``brinery._accel``, when it is built and importable;
- the pure-Python one (``brinery._pickler`` and ``brinery._unpickler``)
  otherwise, or when the environment variable ``BRINERY_PURE_PYTHON`` is
  set to a non-empty value other than ``0``.

``brinery.IMPLEMENTATION`` says which one is active ("c" or "python"). The
pure classes are always available as ``brinery._Pickler`` and
``brinery._Unpickler`` (and ``_dump``, ``_dumps``, ``_load``, ``_loads``),
as in the standard library.
"""

import os as _os
from copyreg import dispatch_table  # noqa: F401  (pickle exports it too)

from pickle import PickleBuffer

from . import _opcodes
from ._errors import (PickleError, PicklingError, UnpicklingError,
                      UnsafePickleError, PickleLimitError)
from ._opcodes import DEFAULT_PROTOCOL, HIGHEST_PROTOCOL
from ._pickler import (Pickler as _Pickler, dump as _dump, dumps as _dumps,
                       encode_long, whichmodule)
from ._unpickler import (Unpickler as _Unpickler, load as _load,
                         loads as _loads, decode_long)

__version__ = "0.1.0"

# The opcode constants, as `pickle` exports them (MARK, STOP, ...).
globals().update({op.name: op.code_bytes for op in _opcodes.OPCODES})
TRUE = _opcodes.TRUE
FALSE = _opcodes.FALSE

format_version = "4.0"
compatible_formats = ["1.0", "1.1", "1.2", "1.3", "2.0", "3.0", "4.0",
                      "5.0"]
bytes_types = (bytes, bytearray)


def _pure_python_requested():
    value = _os.environ.get("BRINERY_PURE_PYTHON", "")
    return value not in ("", "0")


def _select_implementation():
    """Return (name, Pickler, Unpickler, dump, dumps, load, loads)."""
    pure = ("python", _Pickler, _Unpickler, _dump, _dumps, _load, _loads)
    if _pure_python_requested():
        return pure
    try:
        from . import _accel
    except ImportError:
        return pure
    if not (hasattr(_accel, "Pickler") and hasattr(_accel, "Unpickler")):
        # src/brinery/_accel/ holds the C sources; without the built
        # extension it imports as an empty namespace package. A build with
        # only one half of the accelerator is not used either.
        return pure
    return ("c", _accel.Pickler, _accel.Unpickler, _accel.dump,
            _accel.dumps, _accel.load, _accel.loads)


(IMPLEMENTATION, Pickler, Unpickler, dump, dumps, load,
 loads) = _select_implementation()

__all__ = [
    "PickleError", "PicklingError", "UnpicklingError", "Pickler",
    "Unpickler", "dump", "dumps", "load", "loads", "PickleBuffer",
    "DEFAULT_PROTOCOL", "HIGHEST_PROTOCOL", "UnsafePickleError",
    "PickleLimitError", "IMPLEMENTATION", "TRUE", "FALSE",
] + [op.name for op in _opcodes.OPCODES]
