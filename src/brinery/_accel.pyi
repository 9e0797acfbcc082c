"""Type stubs for brinery._accel, the C accelerator.

Same API as the pure-Python classes in brinery._pickler and
brinery._unpickler, and as the standard library's _pickle.
"""

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pickle import PickleBuffer

HIGHEST_PROTOCOL: int

class _WritableFile(Protocol):
    def write(self, data: bytes, /) -> Any: ...

class _ReadableFile(Protocol):
    def read(self, n: int, /) -> bytes: ...
    def readline(self) -> bytes: ...

_BufferCallback = Callable[[PickleBuffer], Any] | None
_ReducedValue = str | tuple[Any, ...]

class Pickler:
    fast: bool
    bin: bool
    memo: dict[int, tuple[int, Any]]
    def __init__(
        self,
        file: _WritableFile,
        protocol: int | None = None,
        fix_imports: bool = True,
        buffer_callback: _BufferCallback = None,
    ) -> None: ...
    def dump(self, obj: Any, /) -> None: ...
    def clear_memo(self) -> None: ...
    def persistent_id(self, obj: Any, /) -> Any: ...
    # Optional hooks a subclass (or an instance) may define:
    # dispatch_table: Mapping[type, Callable[[Any], _ReducedValue]]
    # def reducer_override(self, obj: Any) -> _ReducedValue: ...

class Unpickler:
    memo: dict[int, Any]
    def __init__(
        self,
        file: _ReadableFile,
        *,
        fix_imports: bool = True,
        encoding: str = "ASCII",
        errors: str = "strict",
        buffers: Iterable[Any] | None = (),
    ) -> None: ...
    def load(self) -> Any: ...
    def find_class(self, module_name: str, global_name: str, /) -> Any: ...
    def persistent_load(self, pid: Any, /) -> Any: ...

def dump(
    obj: Any,
    file: _WritableFile,
    protocol: int | None = None,
    *,
    fix_imports: bool = True,
    buffer_callback: _BufferCallback = None,
) -> None: ...
def dumps(
    obj: Any,
    protocol: int | None = None,
    *,
    fix_imports: bool = True,
    buffer_callback: _BufferCallback = None,
) -> bytes: ...
def load(
    file: _ReadableFile,
    *,
    fix_imports: bool = True,
    encoding: str = "ASCII",
    errors: str = "strict",
    buffers: Iterable[Any] | None = (),
) -> Any: ...
def loads(
    data: bytes | bytearray | memoryview,
    /,
    *,
    fix_imports: bool = True,
    encoding: str = "ASCII",
    errors: str = "strict",
    buffers: Iterable[Any] | None = (),
) -> Any: ...
