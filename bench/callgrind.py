"""Instruction counts under valgrind's callgrind, for when timings are noisy.

For one workload, protocol and operation, each requested side runs twice
under callgrind in a child process: once doing only the set-up (build the
data, make the reference pickle, one warm-up operation) and once doing the
same set-up plus N more operations. The difference of the two totals,
divided by N, is the instruction count of one operation, independent of the
machine's load. Python runs about 50 times slower under valgrind, so the
default scale is small.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTALS_LINE = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def child(workload_name, side_name, op, protocol, scale, calls, tmpdir):
    """Set up, warm up, then run `calls` operations (run under valgrind)."""
    from .harness import Prepared, dump_once, make_timer
    from .sides import all_sides
    from .workloads import BY_NAME
    workload = BY_NAME[workload_name]
    sides = {s.name: s for s in all_sides()}
    prepared = Prepared(workload, protocol, workload.build(scale), tmpdir)
    for name in ("stdlib-c", side_name):
        try:
            output, buffers = dump_once(sides[name], prepared)
        except RecursionError:
            continue
        prepared.set_reference(output, buffers, name)
        break
    timer = make_timer(sides[side_name], op, prepared)
    timer(1)
    if calls:
        timer(calls)


def instructions(command, tmpdir, tag):
    """Total instructions callgrind counts for `command`."""
    out_file = os.path.join(tmpdir, f"callgrind.{tag}.out")
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
        + command, cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"valgrind failed ({completed.returncode}): "
                           + completed.stderr.strip()[-2000:])
    with open(out_file) as file:
        match = TOTALS_LINE.search(file.read())
    if match is None:
        raise RuntimeError(f"no totals line in {out_file}")
    return int(match.group(1))


def measure(workload, sides, op, protocol, scale, calls, log):
    """Instructions per operation for each side: {side name: count}."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    counts = {}
    with tempfile.TemporaryDirectory(prefix="brinery-callgrind-") as tmpdir:
        for side in sides:
            if not side.available:
                log(f"callgrind {side.name}: n/a ({side.why_unavailable})")
                continue
            base = [sys.executable, "-m", "bench.callgrind", "--child",
                    workload.name, side.name, op, str(protocol), repr(scale)]
            setup_only = instructions(base + ["0", tmpdir], tmpdir, "setup")
            with_calls = instructions(base + [str(calls), tmpdir], tmpdir,
                                      "calls")
            counts[side.name] = (with_calls - setup_only) / calls
            log(f"callgrind {side.name}: {counts[side.name]:,.0f} "
                "instructions per operation")
    return counts


def markdown(workload, op, protocol, scale, calls, counts):
    lines = [f"Instructions per `{op}` of {workload.name} (protocol "
             f"{protocol}, scale {scale}, mean of {calls}), callgrind:", "",
             "| side | instructions | fewer than stdlib py | fewer than stdlib C |",
             "|---|---:|---:|---:|"]
    for side, count in counts.items():
        relative = []
        for baseline in ("stdlib-py", "stdlib-c"):
            base = counts.get(baseline)
            relative.append(f"{base / count:.2f}x" if base and count > 0 else "-")
        lines.append(f"| {side} | {count:,.0f} | " + " | ".join(relative) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=7, required=True,
                        metavar=("WORKLOAD", "SIDE", "OP", "PROTOCOL",
                                 "SCALE", "CALLS", "DIR"))
    workload, side, op, protocol, scale, calls, tmpdir = parser.parse_args(
        argv).child
    child(workload, side, op, int(protocol), float(scale), int(calls), tmpdir)


if __name__ == "__main__":
    main()
