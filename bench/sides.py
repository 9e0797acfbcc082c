"""The implementations the benchmark compares ("sides"), behind one interface.

- stdlib-c: ``pickle.dumps/loads`` (CPython's ``_pickle``);
- stdlib-py: ``pickle._Pickler``/``pickle._Unpickler`` over ``io.BytesIO``
  (``pickle._dumps``/``_loads``), the standard library's own pure path;
- brinery-py: ``brinery._dumps``/``brinery._loads``, the pure implementation;
- brinery-c: ``brinery._accel.dumps/loads`` once ``brinery._accel`` has
  Pickler and Unpickler; until then the side is reported as unavailable
  ("n/a"), found again automatically when the accelerator is built.

The benchmark imports ``brinery._accel`` itself rather than trusting
``brinery.IMPLEMENTATION``, so BRINERY_PURE_PYTHON in the environment does not
hide the C side.
"""

import pickle
from dataclasses import dataclass
from typing import Callable, Optional

import brinery


@dataclass(frozen=True)
class Side:
    name: str
    label: str
    dumps: Optional[Callable]
    loads: Optional[Callable]
    dump: Optional[Callable]
    load: Optional[Callable]
    why_unavailable: str = ""

    @property
    def available(self):
        return self.dumps is not None


def _accelerator():
    """brinery._accel if it provides Pickler and Unpickler, else the reason."""
    try:
        from brinery import _accel
    except ImportError as exc:
        return None, f"brinery._accel does not import: {exc}"
    missing = [name for name in ("Pickler", "Unpickler", "dumps", "loads",
                                 "dump", "load") if not hasattr(_accel, name)]
    if missing:
        return None, "brinery._accel has no " + ", ".join(missing)
    return _accel, ""


def all_sides():
    """The four sides in report order; brinery-c may be unavailable."""
    accel, why = _accelerator()
    sides = [
        Side("stdlib-c", "stdlib C", pickle.dumps, pickle.loads, pickle.dump,
             pickle.load),
        Side("stdlib-py", "stdlib py", pickle._dumps, pickle._loads,
             pickle._dump, pickle._load),
        Side("brinery-py", "brinery py", brinery._dumps, brinery._loads,
             brinery._dump, brinery._load),
    ]
    if accel is None:
        sides.append(Side("brinery-c", "brinery C", None, None, None, None,
                          why_unavailable=why))
    else:
        sides.append(Side("brinery-c", "brinery C", accel.dumps, accel.loads,
                          accel.dump, accel.load))
    return sides


SIDE_NAMES = ("stdlib-c", "stdlib-py", "brinery-py", "brinery-c")

# Speed-ups reported by the table: (label, baseline side, measured side).
# A ratio is baseline time / measured time, so above 1 means "faster".
RATIOS = (
    ("py/py", "stdlib-py", "brinery-py"),
    ("C/C", "stdlib-c", "brinery-c"),
    ("C/py", "brinery-py", "brinery-c"),
)
