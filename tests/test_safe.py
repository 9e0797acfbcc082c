"""brinery.safe: the allow-list loader, its limits and its errors.

Benign pickles of every builtin and standard-library value type, written
by the standard library at every protocol, must load; every case of the
malicious corpus (tests/malicious) must be refused with the documented
error, without running its payload or leaving its side effect, and the
resource cases must stay within the memory bound.
"""

import collections
import copyreg
import datetime
import decimal
import fractions
import io
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
import tracemalloc
import uuid

import pytest

from brinery import safe
from brinery.safe import (EndOfInputError, Limits, PickleLimitError, Policy,
                          SafeUnpickler, UnsafePickleError)
from brinery import UnpicklingError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "malicious"))
import cases as corpus  # noqa: E402
from safe_impls import SAFE_IMPLS, use_safe_impl  # noqa: E402
from safe_impls import Unseekable as _Unseekable  # noqa: E402

MiB = 1 << 20


@pytest.fixture(autouse=True, params=SAFE_IMPLS)
def safe_impl(request, monkeypatch):
    """Every test runs on each implementation of the safe loader."""
    use_safe_impl(monkeypatch, request.param, sys.modules[__name__])
    return request.param


# ------------------------------------------------------------ benign data

class Point:
    """A user class, loadable once its name is allowed."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and vars(self) == vars(other)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __eq__(self, other):
        return type(other) is Slotted and (self.a, self.b) == \
            (other.a, other.b)


class IntList(list):
    pass


def benign_values():
    tz = datetime.timezone(datetime.timedelta(hours=-3, minutes=30), "X")
    values = [
        None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -2 ** 31,
        2 ** 31, 2 ** 64, -(2 ** 200), 0.0, -1.5, float("inf"), 1e300,
        complex(1, -2), "", "text", "\u20ac\U0001f600\ud800", b"",
        b"bytes\x00\xff", bytearray(), bytearray(b"\x00ab"), (), (1,),
        (1, 2), (1, 2, 3), (1, 2, 3, 4), [], [1, [2, [3]]], {},
        {"a": 1, 2: "b", (3, 4): [5], None: 1.5, 2 ** 70: "big"},
        set(), {1, "a", (2, 3)}, frozenset(), frozenset({1, frozenset({2})}),
        range(0), range(1, 10, 3), ..., NotImplemented, type(None),
        type(...), type(NotImplemented), list(range(3000)),
        {str(i): i for i in range(2500)}, set(range(2500)),
        [(i, str(i)) for i in range(1500)], {(i, -i): i for i in range(100)},
        collections.OrderedDict([("b", 1), ("a", [2])]),
        collections.deque(), collections.deque([1, "x", (2,)]),
        collections.deque(range(5), maxlen=3), collections.Counter("abcabc"),
        collections.Counter(), collections.defaultdict(list, {"k": [1, 2]}),
        collections.defaultdict(None), collections.defaultdict(int),
        collections.defaultdict(collections.OrderedDict),
        datetime.date(2024, 2, 29), datetime.time(23, 59, 59, 999999),
        datetime.time(1, 2, tzinfo=tz, fold=1),
        datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
        datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc),
        datetime.datetime(1, 1, 1, tzinfo=tz), datetime.timedelta(-1, 5, 7),
        datetime.timedelta.max, tz, datetime.timezone.utc,
        decimal.Decimal("1.5"), decimal.Decimal("-0E+7"),
        decimal.Decimal("NaN"), decimal.Decimal("-Infinity"),
        decimal.Decimal("3.14159265358979323846264338327950288"),
        fractions.Fraction(1, 3), fractions.Fraction(-7, 2 ** 70),
        uuid.UUID(int=0), uuid.UUID(int=2 ** 128 - 1),
        uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.uuid1(),
        uuid.uuid4(),
    ]
    shared = [1, 2]
    values.append([shared, shared, {"again": shared}])
    recursive = []
    recursive.append(recursive)
    values.append(recursive)
    return values


BENIGN = benign_values()


def _same(a, b):
    if a is NotImplemented or a is Ellipsis or isinstance(a, type):
        return a is b
    if isinstance(a, list) and a and a[0] is a:
        return isinstance(b, list) and b[0] is b
    if isinstance(a, collections.defaultdict):
        return a == b and a.default_factory is b.default_factory
    if isinstance(a, collections.deque):
        return a == b and a.maxlen == b.maxlen
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, decimal.Decimal) and a.is_nan():
        return b.is_nan()
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_benign_values_load(protocol):
    for value in BENIGN:
        data = pickle.dumps(value, protocol)
        loaded = safe.loads(data)
        assert _same(value, loaded), (protocol, value, loaded)
        from_file = safe.load(io.BytesIO(data))
        assert _same(value, from_file)


def test_benign_python_implementations():
    """What the pure-Python pickler (pickle._Pickler) writes loads too."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for value in BENIGN[:60]:
            f = io.BytesIO()
            pickle._Pickler(f, protocol).dump(value)
            assert _same(value, safe.loads(f.getvalue()))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_allowed_user_classes(protocol):
    allow = [Point, "test_safe.Slotted", "test_safe:IntList"]
    value = [Point(1, [2]), IntList([5, 6])]
    if protocol >= 2:      # __slots__ without __getstate__ needs 2+
        value.append(Slotted(3, {"x": 4}))
    loaded = safe.loads(pickle.dumps(value, protocol), allow=allow)
    assert loaded[0] == value[0] and loaded[2:] == value[2:]
    assert type(loaded[1]) is IntList and loaded[1] == [5, 6]
    with pytest.raises(UnsafePickleError) as info:
        safe.loads(pickle.dumps(value, protocol))
    assert "test_safe" in info.value.what


def test_out_of_band_buffers_and_readonly():
    buf = pickle.PickleBuffer(b"abc")
    data = pickle.dumps(buf, protocol=5, buffer_callback=lambda b: False)
    seen = []
    data = pickle.dumps(buf, protocol=5, buffer_callback=seen.append)
    loaded = safe.loads(data, buffers=seen)
    assert bytes(loaded) == b"abc"


def test_persistent_load_given():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("ref", "ext") if obj == "external" else None
    f = io.BytesIO()
    P(f, 2).dump(["external", 1])
    got = safe.loads(f.getvalue(), persistent_load=lambda pid: pid[1] * 2)
    assert got == ["extext", 1]
    with pytest.raises(UnsafePickleError) as info:
        safe.loads(f.getvalue())
    assert info.value.what == "persistent id"

    class Sub(SafeUnpickler):
        def persistent_load(self, pid):
            return pid[1].upper()
    assert Sub(io.BytesIO(f.getvalue())).load() == ["EXT", 1]


def test_several_pickles_from_one_file():
    f = io.BytesIO(pickle.dumps([1]) + pickle.dumps({2}, 0) + b"rest")
    unpickler = SafeUnpickler(f)
    assert unpickler.load() == [1]
    assert unpickler.load() == {2}
    assert f.read() == b"rest"
    with pytest.raises(EOFError):
        safe.load(io.BytesIO(b""))


def test_unseekable_file():
    # (Protocol 4's MEMOIZE numbers entries after the memo of earlier
    # loads, so only one pickle per Unpickler may use it.)
    data = pickle.dumps(BENIGN[:40], 0) + pickle.dumps(BENIGN[:40], 2) + \
        pickle.dumps(BENIGN[:40], 4)
    stream = io.BufferedReader(_Unseekable(data))
    unpickler = SafeUnpickler(stream)
    assert unpickler.load() == BENIGN[:40]
    assert unpickler.load() == BENIGN[:40]
    assert SafeUnpickler(stream).load() == BENIGN[:40]


# ----------------------------------------------------------------- policy

def test_policy_names_and_presets():
    policy = Policy()
    assert policy.allows("builtins", "set")
    assert policy.allows("collections", "OrderedDict")
    assert not policy.allows("os", "system")
    assert not policy.allows("builtins", "eval")
    assert not policy.allows("numpy", "dtype")
    assert Policy(presets=["numpy"]).allows("numpy", "dtype")
    custom = Policy(allow=["a.b.C", "pkg.mod:Outer.Inner", ("x", "y.z")])
    assert custom.allows("a.b", "C")
    assert custom.allows("pkg.mod", "Outer.Inner")
    assert not custom.allows("pkg", "mod.Outer.Inner")
    assert custom.allows("x", "y.z")
    assert "builtins.set" in custom.names()
    assert not Policy(data=False).allows("builtins", "set")
    with pytest.raises(ValueError):
        Policy(presets=["tensorflow"])
    with pytest.raises(ValueError):
        Policy(allow=["nodot"])
    with pytest.raises(TypeError):
        Policy(allow=[42])
    with pytest.raises(TypeError):
        safe.loads(pickle.dumps(1), policy=policy, allow=["a.b"])


def test_refused_global_is_never_imported(tmp_path, monkeypatch):
    """The policy is checked before the import: a refused module's code
    never runs."""
    probe = tmp_path / "bri_import_probe.py"
    probe.write_text("import os\nopen(os.environ['BRI_PROBE'], 'w')\n"
                     "def f(): pass\n")
    flag = tmp_path / "imported"
    monkeypatch.setenv("BRI_PROBE", str(flag))
    monkeypatch.syspath_prepend(str(tmp_path))
    data = b"cbri_import_probe\nf\n)R."
    with pytest.raises(UnsafePickleError):
        safe.loads(data)
    assert not flag.exists() and "bri_import_probe" not in sys.modules
    # Allowed, the same pickle imports it: the probe works.
    safe.loads(data, allow=["bri_import_probe.f"])
    assert flag.exists()
    sys.modules.pop("bri_import_probe", None)


def test_subclass_find_class_cannot_widen():
    """An override of find_class that skips the policy returns objects
    the session never resolved: they cannot be called."""
    class Loose(SafeUnpickler):
        def find_class(self, module, name):
            return getattr(__import__(module), name)
    data = pickle.dumps(collections.OrderedDict(a=1), 2)
    with pytest.raises(UnsafePickleError) as info:
        Loose(io.BytesIO(data)).load()
    assert "only allowed globals may be called" in str(info.value)


def test_extension_codes_use_registry_not_cache():
    copyreg.add_extension("collections", "OrderedDict", 0x5eed)
    try:
        copyreg._extension_cache[0x5eed] = eval
        data = b"\x80\x02\x83\xed\x5e)R."
        assert safe.loads(data) == collections.OrderedDict()
        assert copyreg._extension_cache[0x5eed] is eval
    finally:
        copyreg.remove_extension("collections", "OrderedDict", 0x5eed)
        copyreg._extension_cache.pop(0x5eed, None)


# -------------------------------------------------------------- the corpus

def _load_case(case, kwargs):
    kwargs = dict(kwargs)
    shared = kwargs.pop("_shared", None)
    kwargs.update(case.get("load_kwargs", {}))
    try:
        return safe.loads(corpus.data(case), **kwargs), None
    finally:
        if shared is not None:
            assert shared == [], "the persistent object was modified"


@pytest.mark.parametrize("case", corpus.cases(
    lambda c: not c.get("scan_only") and "measure" not in c and
    c["expect"] != "ok"))
def test_corpus_refused(case, tmp_path):
    with corpus.payload_marker(tmp_path) as ran, corpus.setup(case) as kw:
        expected = {"unsafe": UnsafePickleError,
                    "resource": PickleLimitError,
                    "malformed": UnpicklingError}[case["expect"]]
        with pytest.raises(UnpicklingError) as info:
            _load_case(case, kw)
        exc = info.value
        assert isinstance(exc, expected), (type(exc), exc)
        if case["expect"] == "malformed":
            assert not isinstance(exc, (UnsafePickleError,
                                        PickleLimitError)), exc
        if "what" in case:
            assert case["what"] in exc.what
        if "limit" in case:
            assert exc.limit == case["limit"]
        assert isinstance(exc.offset, int)
        assert f"at byte {exc.offset}" in str(exc)
        assert ran() == []
        assert not corpus.effect_present(case)
        if kw.get("buffers"):
            assert kw["buffers"][0] == bytearray(b"ab")


@pytest.mark.parametrize("case", corpus.cases(
    lambda c: c.get("stdlib_runs") or c.get("effect")))
def test_corpus_payloads_are_real(case, tmp_path):
    """The standard library's pickle does run each payload (or leaves
    each side effect): the corpus tests something."""
    with corpus.payload_marker(tmp_path) as ran, corpus.setup(case) as kw:
        try:
            pickle.loads(corpus.data(case), buffers=kw.get("buffers"))
        except Exception:
            pass
        if case.get("stdlib_runs"):
            assert case["name"] in " ".join(ran()) or ran(), case["name"]
        if case.get("effect"):
            assert corpus.effect_present(case)


def test_second_pickle_refused_on_second_load(tmp_path):
    case = corpus.BY_NAME["second_pickle"]
    with corpus.payload_marker(tmp_path) as ran:
        unpickler = SafeUnpickler(io.BytesIO(corpus.data(case)))
        assert unpickler.load() is None
        with pytest.raises(UnsafePickleError):
            unpickler.load()
        assert ran() == []


@pytest.mark.parametrize("case", corpus.cases(
    lambda c: c["expect"] == "ok" and not c.get("scan_only") and
    "measure" not in c and "second" not in c and corpus.available(c)))
def test_corpus_benign_files(case):
    value, _ = _load_case(case, {})
    assert value == pickle.loads(corpus.data(case),
                                 **case.get("load_kwargs", {}))


# ---------------------------------------------------------- memory and CPU

_MEASURE = textwrap.dedent("""
    import gzip, sys, time
    from brinery import safe, UnpicklingError
    raw = open(sys.argv[1], 'rb').read()
    data = gzip.decompress(raw) if sys.argv[1].endswith('.gz') else raw
    del raw
    def status(field):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    # Reset the peak (VmHWM) to the current size; the load's peak is
    # then VmHWM - VmRSS before it.
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before = status('VmRSS')
    start = time.process_time()
    try:
        safe.loads(data)
        outcome = 'ok'
    except UnpicklingError as exc:
        outcome = type(exc).__name__
    cpu = time.process_time() - start
    print(len(data), status('VmHWM') - before, cpu, outcome)
""")


@pytest.mark.parametrize("case", corpus.cases(lambda c: c.get("measure")))
def test_corpus_memory_and_cpu_bounds(case):
    """Peak memory of a fresh process loading the case stays within
    16 * input + 64 MiB; CPU within a generous multiple of a second per
    MB. (Measured from outside: tracemalloc would slow these floods down
    by an order of magnitude.)"""
    out = subprocess.run([sys.executable, "-c", _MEASURE, corpus.path(case)],
                         capture_output=True, text=True, check=True,
                         timeout=600).stdout.split()
    size, grew, cpu, outcome = int(out[0]), int(out[1]), float(out[2]), \
        out[3]
    assert grew <= 16 * size + 64 * MiB, (grew, size)
    assert cpu <= 10 * size / MiB + 5, (cpu, size)
    expected = {"ok": "ok", "resource": "PickleLimitError",
                "malformed": "UnpicklingError"}[case["expect"]]
    assert outcome == expected


@pytest.mark.parametrize("case", corpus.cases(
    lambda c: c.get("measure") and not c.get("gzip")))
def test_huge_declared_lengths_allocate_nothing(case):
    data = corpus.data(case)
    tracemalloc.start()
    try:
        with pytest.raises(UnpicklingError):
            safe.loads(data)
        with pytest.raises(UnpicklingError):
            safe.load(io.BytesIO(data))
        with pytest.raises(UnpicklingError):
            SafeUnpickler(io.BufferedReader(_Unseekable(data))).load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB


def test_memory_model_tracks_real_memory():
    """For ordinary data the charged model is an upper bound of what
    tracemalloc sees, within a small factor, so the budget means what it
    says."""
    value = [{"k": i, "v": [str(i), (i, i * 0.5)], "s": {i}} for i in
             range(150)]
    for protocol in (0, 2, 4):
        data = pickle.dumps(value, protocol)
        unpickler = SafeUnpickler._for_bytes(data)
        tracemalloc.start()
        try:
            unpickler.load()
            real = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        charged = unpickler.session.memory
        assert real <= 1.5 * charged + 256 * 1024, (protocol, real, charged)
        assert charged <= 4 * real, (protocol, real, charged)


# ----------------------------------------------------------------- limits

def _limit(data, **limits):
    with pytest.raises(PickleLimitError) as info:
        safe.loads(data, limits=Limits(**limits))
    return info.value


@pytest.mark.parametrize("field,value,data", [
    ("max_opcodes", 5, pickle.dumps(list(range(10)), 0)),
    ("max_stack_depth", 5, pickle.dumps(tuple(range(10)), 2)),
    ("max_mark_depth", 3, b"((((((N." ),
    ("max_memo_entries", 3, pickle.dumps([[1], [2], [3], [4]], 2)),
    ("max_container_len", 5, pickle.dumps(list(range(10)), 2)),
    ("max_container_len", 5, pickle.dumps(tuple(range(10)), 2)),
    ("max_container_len", 5, pickle.dumps(set(range(10)), 4)),
    ("max_container_len", 5, pickle.dumps(dict.fromkeys(range(10)), 2)),
    ("max_container_len", 5, pickle.dumps(set(range(10)), 2)),
    ("max_str_bytes", 10, pickle.dumps(["abcdef", "ghijkl"], 4)),
    ("max_str_bytes", 10, pickle.dumps([b"abcdef", b"ghijkl"], 2)),
    ("max_int_digits", 10, b"I12345678901234\n."),
    ("max_int_digits", 10, b"L12345678901234L\n."),
    ("max_int_digits", 10, b"F1.23456789012345\n."),
    ("max_int_bytes", 4, pickle.dumps(2 ** 100, 2)),
    ("max_key_depth", 3, pickle.dumps({((((1,),),),): 1}, 2)),
    ("max_hash_collisions", 3,
     pickle.dumps({k * (2 ** 61 - 1): 0 for k in range(1, 40)}, 2)),
    ("memory_allowance", 1000, pickle.dumps([[]] * 3 + [[] for _ in
                                                         range(50)], 4)),
    ("work_allowance", 2, pickle.dumps({((1, 2), (3, 4)): 1}, 2)),
    ("max_input_bytes", 10, pickle.dumps(list(range(100)), 2)),
])
def test_each_limit(field, value, data):
    kwargs = {field: value}
    if field == "memory_allowance":
        kwargs["memory_per_input_byte"] = 1
    if field == "work_allowance":
        kwargs["work_per_input_byte"] = 0
    exc = _limit(data, **kwargs)
    expected = {"memory_allowance": "memory_per_input_byte",
                "work_allowance": "work_per_input_byte"}.get(field, field)
    assert exc.limit == expected
    assert f"Limits.{expected}" in str(exc) and isinstance(exc.offset, int)
    safe.loads(data)            # the default limits accept it


def test_input_limit_on_files():
    data = pickle.dumps(list(range(1000)), 2)
    limits = Limits(max_input_bytes=100)
    for make in (io.BytesIO, lambda d: io.BufferedReader(_Unseekable(d))):
        with pytest.raises(PickleLimitError) as info:
            safe.load(make(data), limits=limits)
        assert info.value.limit == "max_input_bytes"
    # A pickle within the limit, followed by more data, is fine.
    small = pickle.dumps([1, 2], 2)
    f = io.BytesIO(small + b"x" * 1000)
    assert safe.load(f, limits=limits) == [1, 2]
    assert f.read() == b"x" * 1000


class _Endless(io.RawIOBase):
    """An unseekable stream of one byte, forever (no newline)."""

    def __init__(self, byte):
        self._byte = byte

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = self._byte * len(buffer)
        return len(buffer)

    def readline(self, size=-1):
        if size < 0:
            raise MemoryError("an unbounded readline() was attempted")
        return self._byte * size


@pytest.mark.parametrize("head", [b"S'", b"I", b"\x80\x05\x95\xff\xff"
                                  b"\xff\xff\xff\xff\xff\x7f", b"c"])
def test_endless_stream_is_cut(head):
    class Stream(_Endless):
        def __init__(self):
            super().__init__(b"a")
            self._head = head

        def readinto(self, buffer):
            if self._head:
                n = min(len(buffer), len(self._head))
                buffer[:n], self._head = self._head[:n], self._head[n:]
                return n
            return super().readinto(buffer)

        def readline(self, size=-1):
            if self._head:
                head, self._head = self._head, b""
                return head + super().readline(size - len(head))
            return super().readline(size)
    limits = Limits(max_input_bytes=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(UnpicklingError):
            safe.load(Stream(), limits=limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB


def test_limits_validation():
    with pytest.raises(TypeError):
        Limits(max_opcodes=-1)
    with pytest.raises(TypeError):
        Limits(max_opcodes=1.5)
    assert Limits().replace(max_opcodes=7).max_opcodes == 7


# ----------------------------------------------------------------- errors

def test_every_truncation_is_an_unpickling_error():
    """Each prefix of valid pickles fails with UnpicklingError (the empty
    one with EndOfInputError, also an EOFError), never anything else."""
    small = [v for v in BENIGN if len(pickle.dumps(v)) < 300]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(small[protocol::3], protocol)
        for cut in range(len(data)):
            with pytest.raises(UnpicklingError) as info:
                safe.loads(data[:cut])
            assert isinstance(info.value.offset, int)
            if cut == 0:
                assert isinstance(info.value, EndOfInputError)
                assert isinstance(info.value, EOFError)


def test_errors_carry_cause_and_note():
    with pytest.raises(UnpicklingError) as info:
        safe.loads(b"Ixyz\n.")
    exc = info.value
    assert type(exc) is UnpicklingError
    assert isinstance(exc.__cause__, ValueError)
    assert exc.offset == 0 and "at byte 0" in str(exc)
    assert any("INT at byte 0" in note for note in exc.__notes__)


def test_deep_data_loads_without_recursion():
    data = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    value = safe.loads(data)
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert depth == 99_999


# ------------------------------------------------------------------ numpy

np = pytest.importorskip("numpy")


def numpy_values():
    return [
        np.arange(6.0).reshape(2, 3), np.zeros((2, 3), order="F",
                                             dtype="<i4"),
        np.array([1, "a", None, [2]], dtype=object), np.array([]),
        np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        np.array(["ab", "c"]), np.array([b"x"]), np.array([1], "M8[s]"),
        np.arange(10)[::3], np.array(3.5), np.dtype("f8"),
        np.dtype([("x", ">u2"), ("y", "O")]), np.dtype(("i4", (2, 2))),
        np.dtype("f8", metadata={"unit": "m"}), np.float64(1.5),
        np.int8(-3), np.bool_(True), np.str_("ab"), np.complex128(1j),
        np.zeros(1, dtype="V4")[0], np.array([True, False]),
    ]


def _np_same(a, b):
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and \
            a.shape == b.shape and (a.dtype.hasobject and
                                    list(a.flat) == list(b.flat) or
                                    a.tobytes() == b.tobytes())
    return type(a) is type(b) and (a == b or a.tobytes() == b.tobytes()
                                   if isinstance(a, np.generic) else a == b)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_preset(protocol):
    for value in numpy_values():
        data = pickle.dumps(value, protocol)
        assert _np_same(value, safe.loads(data, preset="numpy")), value
        with pytest.raises(UnsafePickleError):
            safe.loads(data)
    buffers = []
    array = np.arange(5.0)
    data = pickle.dumps(array, 5, buffer_callback=buffers.append)
    assert _np_same(array, safe.loads(data, preset="numpy",
                                      buffers=buffers))


def _np_pickle(tail):
    """Protocol 2 stream building a numpy object from tail's opcodes."""
    return b"\x80\x02" + tail + b"."


def _dtype(spec, copy=b"\x88"):
    return (b"cnumpy\ndtype\n" + b"X" + len(spec).to_bytes(4, "little") +
            spec + b"\x89" + copy + b"\x87R")


_DTYPE_STATE = b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff" \
    b"\xff\xffK\x00tb"


@pytest.mark.parametrize("name,data", [
    ("dtype without copy", _np_pickle(_dtype(b"f8", copy=b"\x89"))),
    ("dtype from a field list", _np_pickle(_dtype(b"i4,f8"))),
    ("reconstruct with a shape", _np_pickle(
        b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x00\x00\x40\x85C\x01b\x87R")),
    ("reconstruct a subclass", _np_pickle(
        b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\ndtype\n"
        b"K\x00\x85C\x01b\x87R")),
    ("array data of the wrong size", _np_pickle(
        b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"K\x00\x85C\x01b\x87R(K\x01J\x00\x00\x01\x00\x85" +
        _dtype(b"f8") + _DTYPE_STATE + b"\x89C\x08\x00\x00\x00\x00"
        b"\x00\x00\x00\x00tb")),
    ("object data for a numeric array", _np_pickle(
        b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"K\x00\x85C\x01b\x87R(K\x01K\x01\x85" + _dtype(b"f8") +
        _DTYPE_STATE + b"\x89]N\x85tb")),
    ("dtype field outside the item", _np_pickle(
        _dtype(b"V4") + b"(K\x03X\x01\x00\x00\x00|NX\x01\x00\x00\x00a\x85"
        b"}X\x01\x00\x00\x00a" + _dtype(b"f8") + _DTYPE_STATE +
        b"K\x10\x86sK\x04K\x01K\x10tb")),
    ("BUILD on a dtype twice over", _np_pickle(
        _dtype(b"f8") + _DTYPE_STATE + b"(K\x03X\x01\x00\x00\x00<Nc"
        b"builtins\nlist\nNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")),
    ("scalar of the wrong size", _np_pickle(
        b"cnumpy._core.multiarray\nscalar\n" + _dtype(b"f8") +
        _DTYPE_STATE + b"C\x03abc\x86R")),
])
def test_numpy_preset_refuses(name, data):
    with pytest.raises(UnsafePickleError):
        safe.loads(data, preset="numpy")


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="the checked-in corpus is written by CPython 3.11 (the CI "
    "Python); later versions pickle some of its payloads differently (3.13 "
    "writes nested names as getattr chains). It is input data: every other "
    "test loads the same files on every version")
def test_corpus_is_current():
    """The checked-in corpus is what gen_corpus.py writes (apart from the
    optional files that need PyTorch or Python 2.7)."""
    import gen_corpus
    assert gen_corpus.check() == []


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_inline_and_method_paths_charge_the_same(protocol):
    """The loop's inlined opcodes charge what their methods charge: from
    memory most opcodes take the inline path, from a raw stream giving a
    byte per read (no peek(), and short reads stop the pure loader's
    read-ahead) many arguments are missing and taken by the methods."""
    data = pickle.dumps(BENIGN, protocol)
    fast = SafeUnpickler._for_bytes(data)
    fast.load()
    slow = SafeUnpickler(_OneByteAtATime(data))
    fills = []
    if hasattr(slow, "_fill"):                  # the pure loader
        fill = slow._fill

        def counted_fill(pos, n, after=1):
            fills.append(n)
            return fill(pos, n, after)
        slow._fill = counted_fill
    slow.load()
    assert fast.session.memory == slow.session.memory
    assert fast.session.str_bytes == slow.session.str_bytes
    if hasattr(slow, "_fill") and 0 < protocol < 4:
        # (At protocol 4+ a frame is read whole: the inline paths run.)
        with_argument = sum(op.arg is not None
                            for op, _, _ in pickletools.genops(data))
        assert len(fills) > with_argument // 4


class _OneByteAtATime(io.RawIOBase):
    def __init__(self, data):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self.data[self.pos:self.pos + min(len(buffer), 1)]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)
