"""The implementations every test runs against, and the standard library.

`IMPLEMENTATIONS` lists brinery's implementations present in this build:
the pure-Python one always, the C accelerator when it is built. With
BRINERY_REQUIRE_C=1 (set by CI) a missing accelerator is an error, not a
silent skip. `STDLIB` is the standard library's pickle, the oracle.
"""

import os
import pickle
from types import SimpleNamespace

import brinery


def _namespace(name, module_or_ns):
    m = module_or_ns
    return SimpleNamespace(
        name=name, Pickler=m.Pickler, Unpickler=m.Unpickler, dump=m.dump,
        dumps=m.dumps, load=m.load, loads=m.loads)


PURE = SimpleNamespace(
    name="python", Pickler=brinery._Pickler, Unpickler=brinery._Unpickler,
    dump=brinery._dump, dumps=brinery._dumps, load=brinery._load,
    loads=brinery._loads)


def _load_accel():
    try:
        from brinery import _accel
        _accel.Pickler   # the sources directory alone imports, empty
        _accel.Unpickler
    except (ImportError, AttributeError) as exc:
        if os.environ.get("BRINERY_REQUIRE_C", "") not in ("", "0"):
            raise RuntimeError(
                "BRINERY_REQUIRE_C is set but brinery._accel does not "
                f"import: {exc}") from exc
        return None
    return _namespace("c", _accel)


C = _load_accel()
IMPLEMENTATIONS = [PURE] + ([C] if C is not None else [])
STDLIB = SimpleNamespace(
    name="stdlib", Pickler=pickle.Pickler, Unpickler=pickle.Unpickler,
    dump=pickle.dump, dumps=pickle.dumps, load=pickle.load,
    loads=pickle.loads)

# (dumper, loader) pairs: each implementation with itself, with each other
# and with the standard library on either side.
_SIDES = IMPLEMENTATIONS + [STDLIB]
PAIRS = [(d, l) for d in _SIDES for l in _SIDES
         if not (d is STDLIB and l is STDLIB)]
