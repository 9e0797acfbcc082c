"""Turn measured cells and memory rows into markdown tables and JSON.

Ratios are speed-ups: the baseline side's median time divided by the
measured side's, both from the same run, so "1.50x" means 1.5 times faster
and anything below 1 (printed in bold) is slower. Geometric means exclude
the brinery-only workloads and any workload where either side failed.
"""

import math
import os
import platform
import subprocess
import sys
import time

from .sides import RATIOS, SIDE_NAMES
from .workloads import BRINERY_ONLY, BY_NAME

SIDE_LABELS = {"stdlib-c": "stdlib C", "stdlib-py": "stdlib py",
               "brinery-py": "brinery py", "brinery-c": "brinery C"}
OPS = ("dumps", "loads")


def format_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio):
    if ratio is None:
        return "-"
    text = f"{ratio:.2f}x"
    return f"**{text}**" if ratio < 1.0 else text


def geometric_mean(values):
    values = [v for v in values if v]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


class Results:
    """Index over the cells of one run: lookups, ratios and geometric means."""

    def __init__(self, cells):
        self.cells = {(c["workload"], c["protocol"], c["side"], c["op"]): c
                      for c in cells}
        self.protocols = sorted({c["protocol"] for c in cells}, reverse=True)
        self.workloads = []
        for c in cells:
            if c["workload"] not in self.workloads:
                self.workloads.append(c["workload"])

    def cell(self, workload, protocol, side, op):
        return self.cells.get((workload, protocol, side, op))

    def has(self, workload, protocol):
        return self.cell(workload, protocol, "stdlib-c", "dumps") is not None

    def median(self, workload, protocol, side, op):
        cell = self.cell(workload, protocol, side, op)
        if cell is None or cell["status"] not in ("ok", "wrong"):
            return None
        return cell["median_s"]

    def ratio(self, workload, protocol, op, baseline, measured):
        base = self.median(workload, protocol, baseline, op)
        new = self.median(workload, protocol, measured, op)
        if not base or not new:
            return None
        return base / new

    def geomean(self, protocol, op, baseline, measured, workloads=None):
        ratios = [self.ratio(w, protocol, op, baseline, measured)
                  for w in (workloads or self.workloads)
                  if BY_NAME[w].group != BRINERY_ONLY and self.has(w, protocol)]
        ratios = [r for r in ratios if r is not None]
        return geometric_mean(ratios), len(ratios)

    def available(self, side):
        return any(c["side"] == side and c["status"] != "n/a"
                   for c in self.cells.values())


def _cell_text(results, workload, protocol, side, op):
    cell = results.cell(workload, protocol, side, op)
    if cell is None:
        return "-"
    if cell["status"] == "n/a":
        return "n/a"
    if cell["status"] == "fails":
        return "fails"
    text = format_time(cell["median_s"])
    return text + " (!)" if cell["status"] == "wrong" else text


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(results, baseline, measured, protocols):
    """Speed-ups of `measured` over `baseline`, one column per (protocol, op)."""
    header = ["workload"] + [f"p{p} {op}" for p in protocols for op in OPS]
    rows = []
    for workload in results.workloads:
        if BY_NAME[workload].group == BRINERY_ONLY:
            continue
        if not any(results.has(workload, p) for p in protocols):
            continue
        rows.append([workload] + [
            format_ratio(results.ratio(workload, p, op, baseline, measured))
            if results.has(workload, p) else ""
            for p in protocols for op in OPS])
    means = []
    for p in protocols:
        for op in OPS:
            mean, count = results.geomean(p, op, baseline, measured)
            means.append(f"{format_ratio(mean)} ({count})" if mean else "-")
    rows.append(["geometric mean (n)"] + means)
    return _table(header, rows)


def detail_tables(results, protocol):
    """Median times and all ratios at one protocol, a table per operation."""
    parts = []
    for op in OPS:
        header = (["workload"] + [SIDE_LABELS[s] for s in SIDE_NAMES]
                  + [label for label, _, _ in RATIOS])
        rows = []
        for workload in results.workloads:
            if not results.has(workload, protocol):
                continue
            name = workload
            if BY_NAME[workload].group == BRINERY_ONLY:
                name += " (brinery only)"
            rows.append([name] + [
                _cell_text(results, workload, protocol, side, op)
                for side in SIDE_NAMES] + [
                format_ratio(results.ratio(workload, protocol, op, base, new))
                for _, base, new in RATIOS])
        if not rows:
            continue
        means = []
        for _, base, new in RATIOS:
            mean, count = results.geomean(protocol, op, base, new)
            means.append(format_ratio(mean))
        rows.append(["geometric mean"] + [""] * len(SIDE_NAMES) + means)
        parts.append(f"**{op}**, protocol {protocol}\n\n" + _table(header, rows))
    return "\n\n".join(parts)


def memory_table(rows):
    """Peak extra memory in payload copies: tracemalloc (RSS growth)."""
    if not rows:
        return ""
    header = ["workload", "op"] + [SIDE_LABELS[s] for s in SIDE_NAMES]
    keys = []
    for row in rows:
        key = (row["workload"], row["op"])
        if key not in keys:
            keys.append(key)
    by_key = {(r["workload"], r["op"], r["side"]): r for r in rows}
    table_rows = []
    for workload, op in keys:
        cells = []
        for side in SIDE_NAMES:
            row = by_key.get((workload, op, side))
            if row is None:
                cells.append("-")
            elif row["status"] != "ok":
                cells.append(row["status"])
            else:
                cells.append(f"{row['traced_copies']:.2f} "
                             f"({row['rss_copies']:.2f})")
        table_rows.append([workload, op] + cells)
    return _table(header, table_rows)


def slowest(results, baseline, measured, count=5):
    """The (ratio, workload, protocol, op) where `measured` trails most."""
    found = []
    for (workload, protocol, side, op) in results.cells:
        if side != measured or BY_NAME[workload].group == BRINERY_ONLY:
            continue
        ratio = results.ratio(workload, protocol, op, baseline, measured)
        if ratio is not None:
            found.append((ratio, workload, protocol, op))
    return sorted(found)[:count]


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation()}


def git_revision(directory):
    try:
        completed = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=directory,
            capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def markdown(results, meta, memory_rows, main_protocols):
    """The whole report: header, summaries, details, memory."""
    machine = meta["machine"]
    out = [f"Measured {meta['date']} on {machine['cpu']} "
           f"({machine['cpus']} CPUs), {machine['implementation']} "
           f"{machine['python']}, {machine['platform']}; brinery "
           f"{meta['revision']}; scale {meta['scale']}, "
           f"{meta.get('clock', 'cpu')} clock, {meta['elapsed_s']:.0f} s."]
    for side, state in meta["sides"].items():
        if state != "available":
            out.append(f"{SIDE_LABELS[side]}: n/a ({state}).")
    main = [p for p in main_protocols if p in results.protocols]
    out.append("### Speed-up of brinery py over stdlib py (pickle._Pickler / "
               "_Unpickler)\n\n" + summary_table(results, "stdlib-py",
                                                  "brinery-py", main))
    if results.available("brinery-c"):
        out.append("### Speed-up of brinery C over stdlib C (_pickle)\n\n"
                   + summary_table(results, "stdlib-c", "brinery-c", main))
    for protocol in results.protocols:
        out.append(f"### Protocol {protocol}: median time per operation\n\n"
                   + detail_tables(results, protocol))
    if memory_rows:
        out.append("### Memory: peak extra memory in payload copies, "
                   "tracemalloc (RSS growth in parentheses), protocol 5\n\n"
                   + memory_table(memory_rows))
    return "\n\n".join(out) + "\n"


def now():
    return time.strftime("%Y-%m-%d %H:%M %Z")
