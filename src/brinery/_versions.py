"""What differs between the CPython versions brinery follows (3.11 - 3.13).

brinery writes what the running CPython's pickle writes and raises what it
raises, so the few places where CPython changed its pickle between releases
are decided here, once, from ``sys.version_info``; the pure implementation
reads these names and the C accelerator has the same table as macros in
``_accel/accel.h`` (selected by ``PY_VERSION_HEX`` at compile time).

Each entry says which release changed and what changed; the changelogs
(What's New / NEWS for 3.12 and 3.13) are the source.
"""

import sys

_RUNNING = sys.version_info[:2]

# 3.12 (the message lost its line break): UnpicklingError raised by a
# persistent id opcode when the unpickler has no persistent_load.
NO_PERSISTENT_LOAD_MESSAGE = (
    "A load persistent id instruction was encountered,\n"
    "but no persistent_load function was specified."
    if _RUNNING < (3, 12) else
    "A load persistent id instruction was encountered, "
    "but no persistent_load function was specified.")

# 3.13: Pickler.persistent_id and Unpickler.persistent_load are methods of
# the base classes; the default persistent_load raises the message above
# (before, the pure unpickler's default said "unsupported persistent id
# encountered") and the opcode's argument is read (PERSID) or popped
# (BINPERSID) before it is called, so a truncated or underflowing pickle
# reports that first.
PERSISTENT_HOOKS_ARE_METHODS = _RUNNING >= (3, 13)

# 3.13: the grammar fix in the PickleBuffer message ("can only pickled").
PICKLEBUFFER_PROTOCOL_MESSAGE = (
    "PickleBuffer can only pickled with protocol >= 5"
    if _RUNNING < (3, 13) else
    "PickleBuffer can only be pickled with protocol >= 5")

# 3.13: the AttributeError for a qualified name through "<locals>".
LOCAL_OBJECT_MESSAGE = (
    "Can't pickle local object {!r}" if _RUNNING < (3, 13) else
    "Can't get local object {!r}")

# 3.13 (nested names below protocol 4): an object whose __qualname__
# has dots is written as getattr(getattr(TOP, 'a'), 'b') where TOP is a
# plain GLOBAL of the first name (not memoized, no own objects saved), the
# whole chain memoized once at the end. Before, it was
# save_reduce(getattr, (parent, lastname)): the parent saved (and memoized)
# like any object.
NESTED_NAMES_AS_GETATTR_CHAIN = _RUNNING >= (3, 13)

# 3.13: an extension code from copyreg's registry is read as a C long
# through __index__ (TypeError "... cannot be interpreted as an integer"
# when it has none) and one out of 1..2**31-1 raises RuntimeError
# ("extension code N is out of range"). Before, a code that is not an int
# raised PicklingError ("Can't pickle X: extension code C isn't an
# integer"), as did one out of range ("... is out of range"). On every
# version a code beyond a C long raises OverflowError.
EXTENSION_CODE_THROUGH_INDEX = _RUNNING >= (3, 13)
