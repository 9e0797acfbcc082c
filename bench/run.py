"""Command line of brinery's benchmark: ``python bench/run.py [options]``.

Times dumps and loads of every workload on every side (stdlib C, stdlib
pure Python, brinery pure Python, brinery C when built), interleaved, and
prints markdown tables of median times and speed-ups; then measures the
memory the 100 MB workloads need. ``--help`` lists the options;
bench/README.md explains the workloads and how to read the tables.
"""

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import time

if __package__ in (None, ""):
    # Run as a script: import the package `bench` from the repository root,
    # not this directory's modules as top-level ones.
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    sys.path.insert(0, os.path.dirname(_HERE))

from bench import callgrind, harness, memory, report  # noqa: E402
from bench.sides import SIDE_NAMES, all_sides  # noqa: E402
from bench.workloads import WORKLOADS, available  # noqa: E402

DEFAULT_PROTOCOLS = (5, 2)


def parse_protocols(text):
    if text == "all":
        return [5, 4, 3, 2, 1, 0]
    protocols = []
    for part in text.split(","):
        if "-" in part:
            low, high = (int(x) for x in part.split("-"))
            protocols += range(high, low - 1, -1)
        else:
            protocols.append(int(part))
    if not all(0 <= p <= 5 for p in protocols):
        raise argparse.ArgumentTypeError("protocols are 0 to 5")
    return list(dict.fromkeys(protocols))


def select_workloads(patterns):
    """Workloads whose name matches any comma-separated glob pattern."""
    if not patterns:
        return [w for w in WORKLOADS if available(w)]
    chosen = []
    for pattern in patterns.split(","):
        matched = [w for w in WORKLOADS if fnmatch.fnmatchcase(w.name, pattern)]
        if not matched:
            raise SystemExit(f"no workload matches {pattern!r} (see --list)")
        chosen += [w for w in matched if w not in chosen]
    return chosen


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="brinery vs the standard library's pickle: dumps and "
                    "loads, interleaved, medians and speed-ups.")
    parser.add_argument("-p", "--protocols", type=parse_protocols,
                        help="comma-separated protocols or ranges, or 'all' "
                             "(default: 5,2, plus 0,1,3 for the file-load "
                             "workloads)")
    parser.add_argument("-w", "--workloads", metavar="PATTERNS",
                        help="comma-separated workload names or globs, "
                             "e.g. 'ints_1m,*strs*' (default: all)")
    parser.add_argument("--list", action="store_true",
                        help="list the workloads and exit")
    parser.add_argument("-q", "--quick", action="store_true",
                        help="a quick run (scale 0.1, few rounds): under a "
                             "minute")
    parser.add_argument("--scale", type=float,
                        help="size factor for the data (full run: 1.0)")
    parser.add_argument("--rounds", type=int,
                        help="exact number of rounds (default: as many as "
                             "the time budget allows, 3 to 15)")
    parser.add_argument("--budget", type=float,
                        help="seconds of timed rounds per workload and "
                             "protocol")
    parser.add_argument("--sample-time", type=float,
                        help="target duration of one sample, in seconds")
    parser.add_argument("--clock", choices=sorted(harness.CLOCKS),
                        help="cpu: process CPU time, robust to other "
                             "processes on the machine (default); wall: "
                             "time.perf_counter")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the memory probes of the 100 MB workloads")
    parser.add_argument("--memory-only", action="store_true",
                        help="only run the memory probes")
    parser.add_argument("--json", metavar="PATH",
                        help="write every sample and the metadata as JSON")
    parser.add_argument("--markdown", metavar="PATH",
                        help="write the markdown report to PATH too")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr")
    group = parser.add_argument_group("instruction counts (valgrind)")
    group.add_argument("--callgrind", metavar="WORKLOAD",
                       help="count instructions per operation for one "
                            "workload instead of timing")
    group.add_argument("--side", action="append", choices=SIDE_NAMES,
                       help="side(s) for --callgrind (default: all)")
    group.add_argument("--op", choices=harness.OPS, default="dumps",
                       help="operation for --callgrind (default: dumps)")
    group.add_argument("--calls", type=int, default=3,
                       help="operations counted by --callgrind (default: 3)")
    return parser


def settings_from(args):
    base = harness.QUICK if args.quick else harness.FULL
    settings = harness.Settings(**vars(base))
    if args.scale is not None:
        settings.scale = args.scale
    if args.rounds is not None:
        settings.min_rounds = settings.max_rounds = args.rounds
    if args.budget is not None:
        settings.budget_s = args.budget
    if args.sample_time is not None:
        settings.target_sample_s = args.sample_time
    if args.clock is not None:
        settings.clock = args.clock
    settings.verbose = not args.quiet
    return settings


def emit(args, text, data):
    """Print the markdown report; write it and the JSON data if asked."""
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as file:
            file.write(text)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(data, file, indent=1)


def run_callgrind(args, log):
    workloads = select_workloads(args.callgrind)
    if len(workloads) != 1:
        raise SystemExit("--callgrind takes exactly one workload")
    workload = workloads[0]
    protocol = (args.protocols or [5])[0]
    if protocol not in workload.protocols:
        raise SystemExit(f"{workload.name} does not run at protocol {protocol}")
    scale = args.scale if args.scale is not None else 0.05
    sides = [s for s in all_sides() if not args.side or s.name in args.side]
    counts = callgrind.measure(workload, sides, args.op, protocol, scale,
                               args.calls, log)
    text = callgrind.markdown(workload, args.op, protocol, scale, args.calls,
                              counts)
    emit(args, text, {"workload": workload.name, "op": args.op,
                      "protocol": protocol, "scale": scale,
                      "calls": args.calls, "instructions": counts})


def slowest_text(results):
    lines = []
    for label, baseline, measured in (("brinery py vs stdlib py", "stdlib-py",
                                       "brinery-py"),
                                      ("brinery C vs stdlib C", "stdlib-c",
                                       "brinery-c")):
        worst = report.slowest(results, baseline, measured)
        if worst:
            lines.append(f"Lowest speed-ups, {label}: " + ", ".join(
                f"{name} p{protocol} {op} {ratio:.2f}x"
                for ratio, name, protocol, op in worst) + ".")
    return "\n\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        for workload in WORKLOADS:
            note = "" if available(workload) else "  [unavailable: needs numpy]"
            print(f"{workload.name:<22} [{workload.group}] "
                  f"{workload.summary}{note}")
        return 0

    def log(message):
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if args.callgrind:
        run_callgrind(args, log)
        return 0
    settings = settings_from(args)
    workloads = select_workloads(args.workloads)
    protocols = args.protocols or list(DEFAULT_PROTOCOLS)
    cells, meta = [], {"elapsed_s": 0.0, "scale": settings.scale,
                       "sides": {s.name: s.why_unavailable or "available"
                                 for s in all_sides()}}
    if not args.memory_only:
        measured, meta = harness.run_benchmark(
            workloads, protocols, explicit_protocols=args.protocols is not None,
            settings=settings, log=log)
        cells = [cell.as_dict() for cell in measured]
    memory_rows = []
    large = [w for w in workloads if w.payload_bytes]
    if large and not args.no_memory:
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="brinery-memory-") as tmpdir:
            memory_rows = memory.measure_all(large, all_sides(), settings.scale,
                                             tmpdir, log)
        meta["elapsed_s"] += time.time() - started
    meta.update(date=report.now(), machine=report.machine_description(),
                revision=report.git_revision(os.path.dirname(__file__)),
                protocols=protocols)
    results = report.Results(cells)
    text = report.markdown(results, meta, memory_rows, protocols)
    slow = slowest_text(results)
    if slow:
        text += "\n" + slow + "\n"
    emit(args, text, {"meta": meta, "cells": cells, "memory": memory_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
