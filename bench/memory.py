"""Memory probes for the 100 MB workloads: how many payload copies each side
needs in dumps, loads, dump (to a file) and load (from a file).

Each measurement runs in a fresh subprocess, so one side's freed memory or
allocator state cannot hide another's peak. The child builds its input
(the payload for dumps/dump; for loads the reference pickle and buffers,
read from files the parent wrote with ``pickle.dumps``), then runs the
operation once and reports two numbers:

- the tracemalloc peak during the operation: every byte Python objects,
  numpy arrays and bytes buffers allocate, with the input excluded (it was
  allocated before tracing started);
- the growth of the peak resident set (VmHWM, reset just before the
  operation) across the operation, a cross-check that also sees
  allocations tracemalloc cannot, and misses pages never touched.

Both are reported in units of the payload size ("copies"). The result an
operation returns counts: an in-band ``dumps`` returns a pickle as large as
the payload, so 1.0 is its floor; ``dump`` to a file and out-of-band
``dumps`` can reach 0; ``loads`` must build the payload again, so its floor
is 1.0 in-band and 0 out-of-band (the object wraps the given buffer).
"""

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tracemalloc

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROTOCOL = 5
IN_BAND_OPS = ("dumps", "loads", "dump", "load")
OUT_OF_BAND_OPS = ("dumps", "loads")


def ops_for(workload):
    return OUT_OF_BAND_OPS if workload.out_of_band else IN_BAND_OPS


def _reference_paths(directory, workload):
    base = os.path.join(directory, workload.name)
    return base + ".pkl", base + ".buf"


def write_reference(directory, workload, scale):
    """Write the stdlib's pickle of the workload (and its out-of-band
    buffer) for the loads/load children; return the payload size."""
    data = workload.build(scale)
    size = memoryview(data).nbytes
    pickle_path, buffer_path = _reference_paths(directory, workload)
    buffers = []
    callback = buffers.append if workload.out_of_band else None
    with open(pickle_path, "wb") as file:
        pickle.dump(data, file, PROTOCOL, buffer_callback=callback)
    if workload.out_of_band:
        assert len(buffers) == 1, "one out-of-band buffer expected"
        with open(buffer_path, "wb") as file:
            file.write(buffers[0].raw())
    return size


def _read_exactly(path, into_bytearray=False):
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        if into_bytearray:
            buffer = bytearray(size)
            assert file.readinto(buffer) == size
            return buffer
        return file.read()


def _status_bytes(field_name):
    """A "VmRSS"/"VmHWM"-style field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field_name)


def _reset_peak_rss():
    """Reset the peak-RSS mark to the current RSS; return the baseline.

    A child's ru_maxrss can carry the parent's peak over from fork, so
    where Linux allows it ("5" into clear_refs) the mark is reset; else
    the baseline is the peak so far, which underestimates growth.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss():
    try:
        return _status_bytes("VmHWM")
    except (OSError, LookupError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(workload_name, side_name, op, scale, directory):
    """Measure one (workload, side, op) in this process; return the numbers."""
    from .sides import all_sides
    from .workloads import BY_NAME
    workload = BY_NAME[workload_name]
    side = {s.name: s for s in all_sides()}[side_name]
    if not side.available:
        raise SystemExit(f"side {side_name} unavailable: {side.why_unavailable}")
    pickle_path, buffer_path = _reference_paths(directory, workload)
    output_path = os.path.join(directory, f"{workload.name}-{side_name}.out")
    data = reference = buffers = None
    if op in ("dumps", "dump"):
        data = workload.build(scale)
    elif op == "loads":
        reference = _read_exactly(pickle_path)
        if workload.out_of_band:
            buffers = [_read_exactly(buffer_path, into_bytearray=True)]

    # Warm up on a tiny instance of the same workload, so that imports
    # find_class triggers (numpy's reconstructors) are not counted.
    small = workload.build(0)
    warm_buffers = []
    callback = warm_buffers.append if workload.out_of_band else None
    side.loads(side.dumps(small, PROTOCOL, buffer_callback=callback),
               buffers=warm_buffers)
    del small, warm_buffers

    def operation():
        if op == "dumps":
            if workload.out_of_band:
                return side.dumps(data, PROTOCOL, buffer_callback=lambda b: None)
            return side.dumps(data, PROTOCOL)
        if op == "dump":
            with open(output_path, "wb") as file:
                side.dump(data, file, PROTOCOL)
            return None
        if op == "loads":
            return side.loads(reference, buffers=buffers)
        with open(pickle_path, "rb") as file:
            return side.load(file)

    rss_before = _reset_peak_rss()
    tracemalloc.start()
    result = operation()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_growth = _peak_rss() - rss_before
    del result
    return {"traced_peak": traced_peak, "rss_growth": max(0, rss_growth)}


def measure_all(workloads, sides, scale, directory, log):
    """Run every (workload, side, op) probe in its own subprocess."""
    rows = []
    for workload in workloads:
        size = write_reference(directory, workload, scale)
        for op in ops_for(workload):
            for side in sides:
                row = {"workload": workload.name, "side": side.name, "op": op,
                       "payload_bytes": size}
                if not side.available:
                    row["status"] = "n/a"
                    rows.append(row)
                    continue
                command = [sys.executable, "-m", "bench.memory", "--child",
                           workload.name, side.name, op, repr(scale), directory]
                completed = subprocess.run(command, cwd=REPO_ROOT,
                                           capture_output=True, text=True)
                if completed.returncode != 0:
                    row["status"] = "fails"
                    row["detail"] = (completed.stderr.strip().splitlines()
                                     or ["no output"])[-1][:120]
                else:
                    numbers = json.loads(completed.stdout)
                    row.update(status="ok", **numbers)
                    row["traced_copies"] = numbers["traced_peak"] / size
                    row["rss_copies"] = numbers["rss_growth"] / size
                rows.append(row)
                log(f"memory {workload.name:<16} {op:<5} {side.name:<10} "
                    f"{_short(row)}")
        for path in _reference_paths(directory, workload):
            if os.path.exists(path):
                os.remove(path)
    return rows


def _short(row):
    if row.get("status") != "ok":
        return row.get("status", "?") + " " + row.get("detail", "")
    return f"{row['traced_copies']:.2f} copies (rss {row['rss_copies']:.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, required=True,
                        metavar=("WORKLOAD", "SIDE", "OP", "SCALE", "DIR"))
    args = parser.parse_args(argv)
    workload, side, op, scale, directory = args.child
    print(json.dumps(child(workload, side, op, float(scale), directory)))


if __name__ == "__main__":
    main()
