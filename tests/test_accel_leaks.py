"""The C accelerator leaks nothing over the whole catalogue.

Every object of catalogue.py is dumped and loaded again, at every protocol,
with the C classes (module functions and Pickler/Unpickler objects, from
memory and from files, successes and the errors some objects raise at low
protocols), many times over. After warming up, further rounds must leave
flat: the memory tracemalloc sees, the number of objects the collector
tracks, and the reference counts of the catalogue's objects and of their
types. A leak of one reference or one small object per dump or load shows
in each of these as thousands.
"""

import gc
import io
import pickle
import sys
import tracemalloc

import pytest

from catalogue import CATALOGUE
from registry import registry  # noqa: F401  (fixture)

_accel = pytest.importorskip("brinery._accel")
if not hasattr(_accel, "Unpickler"):  # pragma: no cover - partial build
    pytest.skip("brinery._accel has no Unpickler", allow_module_level=True)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
pytestmark = pytest.mark.usefixtures("registry")


def _attempt(func, *args):
    """func(*args), whose error (the catalogue has objects that fail to
    load, as with the standard library) is part of the exercise."""
    try:
        return func(*args)
    except Exception:
        return None


def _load_from_file(data):
    unpickler = _accel.Unpickler(io.BytesIO(data))
    try:
        return unpickler.load()
    finally:
        unpickler.memo          # the memo copies out


def _round_trips(objects):
    """One round: every object, every protocol, every C entry point."""
    for obj in objects:
        for proto in PROTOCOLS:
            data = _attempt(_accel.dumps, obj, proto)
            if data is None:        # the catalogue's unpicklable cases
                continue
            pickler = _accel.Pickler(io.BytesIO(), proto)
            pickler.dump(obj)
            pickler.memo
            _attempt(_accel.loads, data)
            _attempt(_accel.load, io.BytesIO(data))
            _attempt(_load_from_file, data)


def _counts(objects):
    gc.collect()
    refs = [sys.getrefcount(obj) for obj in objects]
    # Objects shared by the whole interpreter (None, small ints, one-letter
    # strings) have counts that move with unrelated activity.
    refs = [count if count < 1000 else None for count in refs]
    type_refs = {id(type(obj)): sys.getrefcount(type(obj))
                 for obj in objects}
    return refs, type_refs, len(gc.get_objects())


# 3.13 warns at every load of an array of typecode "u"; pytest keeps each
# warning (a tracked object), which is not the code under test growing.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_catalogue_round_trips_leave_memory_and_refcounts_flat():
    objects = [factory() for _, factory in CATALOGUE]
    for _ in range(5):                  # fill caches and free lists
        _round_trips(objects)
    refs, type_refs, tracked = _counts(objects)
    tracemalloc.start()
    try:
        _round_trips(objects)
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        rounds = 2          # (tracemalloc makes each round ~10x slower)
        for _ in range(rounds):
            _round_trips(objects)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    after_refs, after_type_refs, after_tracked = _counts(objects)
    changed = [(name, before, after) for (name, _), before, after
               in zip(CATALOGUE, refs, after_refs) if before != after]
    assert not changed, f"reference counts changed: {changed[:10]}"
    assert after_type_refs == type_refs
    # (a few objects of slack: caches such as the copyreg extension cache
    # and interned strings may settle late)
    assert after_tracked - tracked < 50
    # About 3400 dumps and 5100 loads per round: one leaked 56-byte block
    # per load would be 280 KiB. What remains is the interpreter settling
    # (the standard library's loads shows the same few bytes).
    assert grown / rounds < 64 * 1024, f"{grown / rounds:.0f} bytes/round"
