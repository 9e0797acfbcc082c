"""Exception classes of brinery, shared by every implementation.

The three classes of the `pickle` module live here so that the pure-Python
and the C implementation raise the very same types: code that catches
``brinery.UnpicklingError`` catches it whichever implementation is active.
The safe loader's errors (refused globals, exceeded limits) are subclasses
of ``UnpicklingError`` so that callers who only know `pickle` still catch them.
"""

__all__ = ["PickleError", "PicklingError", "UnpicklingError",
           "UnsafePickleError", "PickleLimitError"]


class PickleError(Exception):
    """Common base class for the other pickling exceptions."""


class PicklingError(PickleError):
    """An object cannot be pickled (raised by `Pickler`)."""


class UnpicklingError(PickleError):
    """A pickle cannot be loaded: corrupt data, or a security violation.

    Other exceptions (AttributeError, ImportError, EOFError...) can still be
    raised while unpickling, exactly as with the standard library.
    """


class UnsafePickleError(UnpicklingError):
    """The pickle asks for something the safe loader's policy refuses.

    ``offset`` is the byte offset of the opcode that was refused (or None),
    ``what`` names the global or operation.
    """

    def __init__(self, message, *, offset=None, what=None):
        super().__init__(message)
        self.offset = offset
        self.what = what


class PickleLimitError(UnpicklingError):
    """Loading the pickle would exceed one of the safe loader's limits.

    ``limit`` is the name of the limit, ``offset`` the byte offset where it
    was exceeded (or None).
    """

    def __init__(self, message, *, offset=None, limit=None):
        super().__init__(message)
        self.offset = offset
        self.limit = limit
