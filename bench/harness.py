"""The timing harness: prepare a workload, check every side, time interleaved.

Discipline (the machine is shared and noisy, so no absolute time is quoted
alone):

- every side first runs each operation once, as a warm-up and a check
  that its output is right (brinery's pickle must equal ``pickle.dumps``'s
  bytes; every side's ``loads`` of the reference pickle must give back data
  equal to the original); a side that raises is reported as failing; that
  run is not a sample, its duration only calibrates the loops;
- time is the process's CPU time by default (``Settings.clock``): on a
  shared machine, wall-clock samples mostly measure who else was running;
- the number of loops per sample is calibrated per side and operation so
  that one sample lasts about ``target_sample_s``;
- a round takes one sample of every (side, operation); the side order is
  rotated every round, so drift and bursts of load from other processes
  are spread over all sides; rounds repeat while the next one fits in the
  wall-clock budget, between ``min_rounds`` and ``max_rounds``;
- the result per (side, operation) is the median over rounds; ratios are
  computed from medians of the same run;
- the inputs are moved to the GC's permanent generation (``gc.freeze``) so
  that collections triggered during a timed operation do not traverse the
  benchmark's own data; the objects an operation creates stay tracked, as
  in real use.
"""

import gc
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

from .sides import all_sides
from .workloads import WORKLOADS

OPS = ("dumps", "loads")


class UnseekableRaw(io.RawIOBase):
    """The raw end of a pipe or socket over a bytes object: readinto, or
    write for dumps, never seekable. The "pipe" workloads wrap it in
    io.BufferedReader / io.BufferedWriter, as os.fdopen() and
    socket.makefile() do: a buffered file with peek() that cannot seek."""

    def __init__(self, data=b""):
        self.view, self.pos, self.written = memoryview(data), 0, []

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), len(self.view) - self.pos)
        buffer[:n] = self.view[self.pos:self.pos + n]
        self.pos += n
        return n

    def write(self, data):
        self.written.append(bytes(data))
        return len(data)


class ReadOnlyStream:
    """Only read() and readline(), not seekable, no peek(): a response body
    as HTTP clients give it (urllib3's raw stream), or a user's file-like
    object. `_pickle` and an exact reader call read() per opcode here."""

    def __init__(self, data):
        stream = io.BytesIO(data)
        self.read, self.readline = stream.read, stream.readline


class WriteOnlyStream:
    """Only write(): the other end of ReadOnlyStream."""

    def __init__(self):
        self.stream = io.BytesIO()
        self.write = self.stream.write


@dataclass
class Settings:
    scale: float = 1.0
    target_sample_s: float = 0.05
    min_rounds: int = 3
    max_rounds: int = 15
    # Time budget for the timed rounds of one (workload, protocol).
    budget_s: float = 6.0
    # "cpu": the process's CPU time (user + system), which leaves out the
    # time spent waiting for a core while other processes run on this
    # shared machine; "wall": time.perf_counter.
    clock: str = "cpu"
    # Run the file workloads at protocols 0, 1 and 3 too, unless protocols
    # were chosen explicitly.
    extra_protocols: bool = True
    verbose: bool = True


FULL = Settings()
QUICK = Settings(scale=0.1, target_sample_s=0.01, min_rounds=3,
                 max_rounds=5, budget_s=0.3, extra_protocols=False)


@dataclass
class Cell:
    """The measurement of one (workload, protocol, side, operation)."""
    workload: str
    protocol: int
    side: str
    op: str
    status: str = "ok"          # ok | n/a | fails | wrong
    detail: str = ""
    loops: int = 0
    samples_s: list = field(default_factory=list)

    @property
    def median_s(self):
        return statistics.median(self.samples_s) if self.samples_s else None

    def as_dict(self):
        return {"workload": self.workload, "protocol": self.protocol,
                "side": self.side, "op": self.op, "status": self.status,
                "detail": self.detail, "loops": self.loops,
                "median_s": self.median_s, "samples_s": self.samples_s}


def _ignore_buffer(buffer):
    """buffer_callback that keeps every buffer out-of-band."""
    return None


class Prepared:
    """A workload's data at one protocol, plus what every timer needs."""

    def __init__(self, workload, protocol, data, tmpdir):
        self.workload = workload
        self.protocol = protocol
        self.data = data
        self.tmpdir = tmpdir
        self.reference = None      # the pickle every side's loads reads
        self.reference_from = None
        self.buffers = None        # out-of-band buffers of the reference
        self.paths = {}

    def set_reference(self, output, buffers, side_name):
        self.reference, self.buffers = output, buffers
        self.reference_from = side_name
        if self.workload.kind == "file":
            with open(self.path_for("reference"), "wb") as file:
                file.write(output)

    def path_for(self, side_name):
        if side_name not in self.paths:
            self.paths[side_name] = os.path.join(
                self.tmpdir, f"{self.workload.name}-{self.protocol}-{side_name}.pkl")
        return self.paths[side_name]


def dump_once(side, prepared):
    """Run the side's dump operation once; return its pickle bytes (or list
    of pickles for "calls") and out-of-band buffers."""
    workload, protocol, data = prepared.workload, prepared.protocol, prepared.data
    if workload.kind == "calls":
        return [side.dumps(item, protocol) for item in data], None
    if workload.kind == "bytesio":
        stream = io.BytesIO()
        side.dump(data, stream, protocol)
        return stream.getvalue(), None
    if workload.kind == "file":
        path = prepared.path_for(side.name)
        with open(path, "wb") as file:
            side.dump(data, file, protocol)
        with open(path, "rb") as file:
            return file.read(), None
    if workload.kind == "pipe":
        raw = UnseekableRaw()
        file = io.BufferedWriter(raw)
        side.dump(data, file, protocol)
        file.flush()
        return b"".join(raw.written), None
    if workload.kind == "stream":
        file = WriteOnlyStream()
        side.dump(data, file, protocol)
        return file.stream.getvalue(), None
    if workload.out_of_band:
        buffers = []
        return side.dumps(data, protocol, buffer_callback=buffers.append), buffers
    return side.dumps(data, protocol), None


def load_once(side, prepared):
    workload, reference = prepared.workload, prepared.reference
    if workload.kind == "calls":
        return [side.loads(item) for item in reference]
    if workload.kind == "bytesio":
        return side.load(io.BytesIO(reference))
    if workload.kind == "file":
        with open(prepared.path_for("reference"), "rb") as file:
            return side.load(file)
    if workload.kind == "pipe":
        return side.load(io.BufferedReader(UnseekableRaw(reference)))
    if workload.kind == "stream":
        return side.load(ReadOnlyStream(reference))
    if workload.out_of_band:
        return side.loads(reference, buffers=prepared.buffers)
    return side.loads(reference)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def make_timer(side, op, prepared, clock_name="cpu"):
    """Return run(loops) -> elapsed seconds for `loops` operations.

    Each timer is a small dedicated loop with everything bound to locals,
    so the harness adds the same tiny overhead to every side.
    """
    workload, protocol, data = prepared.workload, prepared.protocol, prepared.data
    clock = CLOCKS[clock_name]
    kind = workload.kind
    if op == "dumps":
        dumps, dump = side.dumps, side.dump
        if kind == "calls":
            def run(loops):
                start = clock()
                for _ in range(loops):
                    for item in data:
                        dumps(item, protocol)
                return clock() - start
        elif kind == "bytesio":
            def run(loops, BytesIO=io.BytesIO):
                start = clock()
                for _ in range(loops):
                    dump(data, BytesIO(), protocol)
                return clock() - start
        elif kind == "file":
            path = prepared.path_for(side.name)

            def run(loops):
                start = clock()
                for _ in range(loops):
                    with open(path, "wb") as file:
                        dump(data, file, protocol)
                return clock() - start
        elif kind == "pipe":
            def run(loops, Writer=io.BufferedWriter, Raw=UnseekableRaw):
                start = clock()
                for _ in range(loops):
                    file = Writer(Raw())
                    dump(data, file, protocol)
                    file.flush()
                return clock() - start
        elif kind == "stream":
            def run(loops, Stream=WriteOnlyStream):
                start = clock()
                for _ in range(loops):
                    dump(data, Stream(), protocol)
                return clock() - start
        elif workload.out_of_band:
            def run(loops):
                start = clock()
                for _ in range(loops):
                    dumps(data, protocol, buffer_callback=_ignore_buffer)
                return clock() - start
        else:
            def run(loops):
                start = clock()
                for _ in range(loops):
                    dumps(data, protocol)
                return clock() - start
        return run
    loads, load = side.loads, side.load
    reference = prepared.reference
    if kind == "calls":
        def run(loops):
            start = clock()
            for _ in range(loops):
                for item in reference:
                    loads(item)
            return clock() - start
    elif kind == "bytesio":
        def run(loops, BytesIO=io.BytesIO):
            start = clock()
            for _ in range(loops):
                load(BytesIO(reference))
            return clock() - start
    elif kind == "file":
        path = prepared.path_for("reference")

        def run(loops):
            start = clock()
            for _ in range(loops):
                with open(path, "rb") as file:
                    load(file)
            return clock() - start
    elif kind == "pipe":
        def run(loops, Reader=io.BufferedReader, Raw=UnseekableRaw):
            start = clock()
            for _ in range(loops):
                load(Reader(Raw(reference)))
            return clock() - start
    elif kind == "stream":
        def run(loops, Stream=ReadOnlyStream):
            start = clock()
            for _ in range(loops):
                load(Stream(reference))
            return clock() - start
    elif workload.out_of_band:
        buffers = prepared.buffers

        def run(loops):
            start = clock()
            for _ in range(loops):
                loads(reference, buffers=buffers)
            return clock() - start
    else:
        def run(loops):
            start = clock()
            for _ in range(loops):
                loads(reference)
            return clock() - start
    return run


def _describe(exc):
    text = f"{type(exc).__name__}"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{text}: {message[:80]}" if message else text


def _equal(workload, original, loaded):
    if workload.kind == "calls":
        return len(original) == len(loaded) and all(
            workload.equal(a, b) for a, b in zip(original, loaded))
    return workload.equal(original, loaded)


def check_and_calibrate(sides, prepared, cells, settings, log):
    """Run each operation once per side (warm-up and correctness check) and
    pick the reference pickle; that run's duration calibrates the loops.

    Returns {(side name, op): (timer, seconds per operation)} for the cells
    that can be timed.
    """
    workload = prepared.workload
    clock = CLOCKS[settings.clock]
    once = {}
    for side in sides:
        cell = cells[side.name, "dumps"]
        if not side.available:
            continue
        try:
            start = clock()
            output, buffers = dump_once(side, prepared)
            once[side.name, "dumps"] = clock() - start
        except Exception as exc:
            cell.status, cell.detail = "fails", _describe(exc)
            continue
        if prepared.reference is None:
            # The first side that can dump (the stdlib's C pickler unless it
            # fails) makes the pickle every side's loads reads.
            prepared.set_reference(output, buffers, side.name)
        elif (prepared.reference_from == "stdlib-c"
              and side.name.startswith("brinery")
              and output != prepared.reference):
            cell.status, cell.detail = "wrong", "bytes differ from pickle.dumps"
            log(f"  ! {workload.name} p{prepared.protocol} {side.name}: "
                "dumps output differs from pickle.dumps")
        del output, buffers
    if prepared.reference is None:
        for side in sides:
            cells[side.name, "loads"].status = "fails"
            cells[side.name, "loads"].detail = "no side could dump"
        return {}
    for side in sides:
        cell = cells[side.name, "loads"]
        if not side.available:
            continue
        try:
            start = clock()
            loaded = load_once(side, prepared)
            once[side.name, "loads"] = clock() - start
        except Exception as exc:
            cell.status, cell.detail = "fails", _describe(exc)
            continue
        if workload.equal is not None and not _equal(workload, prepared.data, loaded):
            cell.status, cell.detail = "wrong", "loaded data differs"
            log(f"  ! {workload.name} p{prepared.protocol} {side.name}: "
                "loads gave different data")
        del loaded
    timers = {}
    for side in sides:
        for op in OPS:
            cell = cells[side.name, op]
            if cell.status not in ("ok", "wrong"):
                continue
            timer = make_timer(side, op, prepared, settings.clock)
            timers[side.name, op] = (timer, once[side.name, op])
    return timers


def measure(workload, protocol, sides, settings, log, tmpdir):
    """Time one workload at one protocol on every side; return its cells."""
    cells = {}
    for side in sides:
        for op in OPS:
            cell = Cell(workload.name, protocol, side.name, op)
            if not side.available:
                cell.status, cell.detail = "n/a", side.why_unavailable
            cells[side.name, op] = cell
    data = workload.build(settings.scale)
    prepared = Prepared(workload, protocol, data, tmpdir)
    timers = check_and_calibrate(sides, prepared, cells, settings, log)
    # Loops per sample from the single calibration run (already warm).
    plan = []
    for (side_name, op), (timer, once_s) in timers.items():
        loops = max(1, round(settings.target_sample_s / max(once_s, 1e-7)))
        cells[side_name, op].loops = loops
        plan.append((side_name, op, timer, loops))
    min_rounds = max(1, min(settings.max_rounds,
                            max(settings.min_rounds, workload.min_rounds)))
    side_order = [side.name for side in sides]
    rounds = 0
    gc.collect()
    gc.freeze()
    try:
        # The budget is wall-clock time, so a loaded machine gets fewer
        # rounds rather than a longer run (never fewer than min_rounds).
        started = time.perf_counter()
        while rounds < min_rounds or (
                rounds < settings.max_rounds
                and (time.perf_counter() - started) * (rounds + 1) / rounds
                <= settings.budget_s):
            shift = rounds % len(side_order)
            order = side_order[shift:] + side_order[:shift]
            for side_name in order:
                for entry in plan:
                    if entry[0] != side_name:
                        continue
                    _, op, timer, loops = entry
                    elapsed = timer(loops)
                    cells[side_name, op].samples_s.append(elapsed / loops)
            rounds += 1
    finally:
        gc.unfreeze()
    del prepared, data
    gc.collect()
    return list(cells.values()), rounds


def protocols_for(workload, requested, explicit):
    """The protocols a workload runs at: the requested ones it supports,
    plus its extra defaults when the user did not choose protocols."""
    chosen = [p for p in requested if p in workload.protocols]
    if not explicit:
        chosen += [p for p in workload.extra_default_protocols
                   if p not in chosen]
    return chosen


def run_benchmark(workloads=None, protocols=(5, 2), explicit_protocols=False,
                  settings=FULL, log=None):
    """Time `workloads` (default: all) and return (cells, run metadata)."""
    if log is None:
        def log(message):
            if settings.verbose:
                print(message, file=sys.stderr, flush=True)
    sides = all_sides()
    workloads = WORKLOADS if workloads is None else workloads
    cells = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="brinery-bench-") as tmpdir:
        for workload in workloads:
            for protocol in protocols_for(
                    workload, protocols,
                    explicit_protocols or not settings.extra_protocols):
                t0 = time.time()
                measured, rounds = measure(workload, protocol, sides, settings,
                                           log, tmpdir)
                cells.extend(measured)
                log(f"{workload.name:<22} p{protocol}: {rounds:2d} rounds, "
                    f"{time.time() - t0:5.1f} s")
    meta = {"elapsed_s": time.time() - started,
            "sides": {side.name: (side.why_unavailable or "available")
                      for side in sides},
            "scale": settings.scale, "clock": settings.clock}
    return cells, meta

