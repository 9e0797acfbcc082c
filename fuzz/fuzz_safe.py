"""Coverage-guided fuzzing of brinery.safe and brinery.scan with atheris.

Each input goes through tests/test_fuzz.py's ``check``: the safe loader
(from bytes and from a file) returns or raises an UnpicklingError, never
anything else; it stays within 16 * input + 64 MiB and returns in time; the
scanner's verdict agrees with the loader. With the C accelerator, the pure
and the C safe loaders must also give the same outcome (value and charges,
or error, limit/what and offset). A failure aborts with the input
saved by libFuzzer (crash-<sha1>), to be added to tests/malicious.

    pip install atheris
    python fuzz/fuzz_safe.py --seeds fuzz/seeds          # write seed inputs
    python fuzz/fuzz_safe.py fuzz/seeds -max_total_time=3600 -rss_limit_mb=4096

(-rss_limit_mb must exceed 64 MiB plus the interpreter; the property
itself checks the tighter bound with tracemalloc.)
"""

import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

with atheris.instrument_imports(include=["brinery"]):
    import brinery.safe   # noqa: F401
    import brinery.scan   # noqa: F401

from test_fuzz import SEEDS, check  # noqa: E402
from safe_impls import outcome  # noqa: E402

PURE = brinery.safe._PySafeUnpickler
C = brinery.safe._CSafeUnpickler


def write_seeds(directory):
    """The seed inputs: valid pickles of every protocol and the malicious
    corpus."""
    os.makedirs(directory, exist_ok=True)
    for i, data in enumerate(SEEDS):
        with open(os.path.join(directory, f"seed-{i:04d}"), "wb") as f:
            f.write(data)
    corpus = os.path.join(HERE, "..", "tests", "malicious", "corpus")
    for name in sorted(os.listdir(corpus)):
        if name.endswith((".pkl", ".zip", ".npy")):
            with open(os.path.join(corpus, name), "rb") as src, \
                    open(os.path.join(directory, name), "wb") as dst:
                dst.write(src.read())


def test_one_input(data):
    data = bytes(data)
    check(data)
    if C is not None:
        assert outcome(C, data) == outcome(PURE, data)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
