"""Smoke test of the benchmark in bench/: it must keep producing a complete
table. Runs ``bench/run.py`` on tiny data (a fresh interpreter, as a user
runs it) and checks that every workload, protocol, side and operation got
a real measurement, and that the memory probes and the callgrind child
still work. Speed itself is never asserted here (see bench/README.md).
"""

import json
import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO_ROOT, "bench", "run.py")
# A speed-up as the tables print it: "1.23x", "**0.87x**", "1.10x (16)".
RATIO = re.compile(r"(\*\*)?\d+\.\d\dx(\*\*)?( \(\d+\))?")
TINY = ["--scale", "0.001", "--rounds", "2", "--sample-time", "0", "--quiet"]


def run_bench(tmp_path, *options):
    json_path = tmp_path / "result.json"
    markdown_path = tmp_path / "result.md"
    completed = subprocess.run(
        [sys.executable, RUN, *TINY, "--json", str(json_path),
         "--markdown", str(markdown_path), *options],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    return json.loads(json_path.read_text()), markdown_path.read_text()


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, REPO_ROOT)
    try:
        from bench import callgrind, harness, sides, workloads
        yield callgrind, harness, sides, workloads
    finally:
        sys.path.remove(REPO_ROOT)


def test_full_table_on_tiny_data(tmp_path, bench_modules):
    _, _, _, workloads = bench_modules
    result, markdown = run_bench(tmp_path, "--no-memory")
    sides = result["meta"]["sides"]
    cells = {(c["workload"], c["protocol"], c["side"], c["op"]): c
             for c in result["cells"]}
    expected_workloads = [w for w in workloads.WORKLOADS
                          if workloads.available(w)]
    for workload in expected_workloads:
        protocols = [p for p in (5, 2) if p in workload.protocols]
        protocols += workload.extra_default_protocols
        assert protocols
        for protocol in protocols:
            for side, state in sides.items():
                for op in ("dumps", "loads"):
                    cell = cells.pop((workload.name, protocol, side, op))
                    where = (workload.name, protocol, side, op)
                    if state != "available":
                        assert cell["status"] == "n/a", where
                        continue
                    stdlib_too_deep = (workload.name == "deep_100k"
                                       and side.startswith("stdlib")
                                       and op == "dumps")
                    if stdlib_too_deep and cell["status"] == "fails":
                        # 3.11 and 3.12 raise; 3.13's C pickler gets through.
                        assert "RecursionError" in cell["detail"], where
                        continue
                    assert cell["status"] == "ok", (where, cell["detail"])
                    assert len(cell["samples_s"]) == 2, where
                    assert cell["median_s"] > 0, where
        assert workload.name in markdown
    assert not cells, f"unexpected cells: {sorted(cells)[:5]}"
    # Every ratio of the headline table is a number, geometric means too.
    summary = markdown.split("### Speed-up of brinery py over stdlib py")[1]
    summary = summary.split("###")[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len([w for w in expected_workloads
                             if w.group != workloads.BRINERY_ONLY]) + 1
    for row in rows:
        values = [v.strip() for v in row.strip("|").split("|")[1:]]
        assert all(v == "" or RATIO.fullmatch(v) for v in values), row
    assert rows[-1].startswith("| geometric mean")
    assert "Lowest speed-ups, brinery py vs stdlib py" in markdown


def test_memory_probes_on_tiny_payloads(tmp_path):
    result, markdown = run_bench(
        tmp_path, "--memory-only", "--workloads", "bytes_100mb")
    sides = result["meta"]["sides"]
    rows = result["memory"]
    assert len(rows) == 4 * len(sides)
    assert {(r["workload"], r["op"]) for r in rows} == {
        ("bytes_100mb", op) for op in ("dumps", "loads", "dump", "load")}
    for row in rows:
        if sides[row["side"]] != "available":
            assert row["status"] == "n/a"
            continue
        assert row["status"] == "ok", row
        assert row["traced_copies"] >= 0 and row["rss_copies"] >= 0
        if row["op"] in ("dumps", "loads"):
            # An in-band pickle, or the bytes rebuilt from one, is a copy.
            assert row["traced_copies"] >= 0.99, row
    assert "### Memory" in markdown


def test_callgrind_child_runs_without_valgrind(tmp_path, bench_modules):
    callgrind, _, sides, workloads = bench_modules
    for side in sides.all_sides():
        if side.available:
            for op in ("dumps", "loads"):
                callgrind.child("file_2k", side.name, op, 0, 0.001, 2,
                                str(tmp_path))
    assert callgrind.TOTALS_LINE.search("events: Ir\nsummary: 12345\n")
