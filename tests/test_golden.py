"""Golden pickle files (made by tests/gen_golden.py, never by the tests).

``golden/cpython-3.X/``: what CPython 3.X's ``pickle.dumps`` wrote for the
objects of `gen_golden.golden_objects()`, protocols 0-5. On that CPython,
every brinery implementation writes exactly those bytes; on any CPython it
loads them back as the standard library does.

``golden/python2/``: pickles written by Python 2.7's ``pickle`` and
``cPickle`` (protocols 0-2): str, unicode, long, datetime, classic and
new-style instances, exceptions, sets, NumPy arrays... brinery loads them
as the standard library does with each of the settings users need
(``encoding="latin1"``, ``"bytes"``, the default ASCII, ``fix_imports``
off), from memory, from files and from streams that can neither seek
nor peek.
"""

import hashlib
import io
import json
import os
import pickle
import sys
import warnings

import pytest

import gen_golden
from compare import assert_same, assert_same_outcome, outcome
from registry import registry  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("registry")


def _manifest(directory):
    path = os.path.join(directory, "MANIFEST.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read(directory, name, info):
    with open(os.path.join(directory, name), "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == info["sha256"], (
        f"{name} does not match its manifest: regenerate with "
        f"tests/gen_golden.py")
    return data


class _ReadOnly:
    """A stream with only read() and readline(): loaded from without
    reading past STOP (tests/test_stream_loads.py)."""

    def __init__(self, data):
        self._bio = io.BytesIO(data + b"tail")
        self.read = self._bio.read
        self.readline = self._bio.readline

    def rest(self):
        return self._bio.read()


def _assert_loads_from_a_stream(expected, load, data, **kwargs):
    stream = _ReadOnly(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        got = outcome(load, stream, **kwargs)
    assert_same_outcome(expected, got)
    if expected.error is None:
        assert stream.rest() == b"tail"


def _py3_directories():
    if not os.path.isdir(gen_golden.GOLDEN):
        return []
    return sorted(os.path.join(gen_golden.GOLDEN, d)
                  for d in os.listdir(gen_golden.GOLDEN)
                  if d.startswith("cpython-"))


PY3_FILES = [(d, name, info) for d in _py3_directories()
             for name, info in _manifest(d)["files"].items()]
PY2_MANIFEST = _manifest(gen_golden.PY2_DIR) or {"files": {}}
PY2_FILES = sorted(PY2_MANIFEST["files"].items())
OBJECTS = gen_golden.golden_objects()
RUNNING = "%d.%d" % sys.version_info[:2]


def test_golden_files_exist():
    """The generator has been run for this CPython and for Python 2."""
    assert os.path.isdir(gen_golden.PY3_DIR), (
        f"no golden files for CPython {RUNNING}: run tests/gen_golden.py")
    assert PY2_FILES, "no Python 2 golden files"


# ------------------------------------------------------------ CPython 3

def _py3_params(only_running=False):
    """Every CPython directory's files, or only the running CPython's
    (the bytes another version writes are not this version's oracle)."""
    return [pytest.param(d, name, info,
                         id=f"{os.path.basename(d)}/{name}")
            for d, name, info in PY3_FILES
            if not only_running or os.path.abspath(d) == gen_golden.PY3_DIR]


@pytest.mark.parametrize("directory,name,info", _py3_params(True))
def test_dumps_writes_the_golden_bytes(impl, directory, name, info):
    data = _read(directory, name, info)
    obj = OBJECTS[info["object"]]
    proto = info["protocol"]
    # The file must still be what this CPython writes, or it is stale.
    assert pickle.dumps(obj, proto) == data, "stale: rerun gen_golden.py"
    assert impl.dumps(obj, proto) == data
    f = io.BytesIO()
    impl.Pickler(f, proto).dump(obj)
    assert f.getvalue() == data


@pytest.mark.parametrize("directory,name,info", _py3_params())
def test_loads_the_golden_bytes(impl, directory, name, info):
    data = _read(directory, name, info)
    expected = outcome(pickle.loads, data)
    assert_same_outcome(expected, outcome(impl.loads, data))
    assert_same_outcome(expected, outcome(impl.load, io.BytesIO(data)))
    _assert_loads_from_a_stream(expected, impl.load, data)
    if info["object"] in OBJECTS and expected.error is None:
        try:
            assert_same(OBJECTS[info["object"]], expected.value)
        except AssertionError:
            return          # not an object that round-trips to itself
        assert_same(OBJECTS[info["object"]], impl.loads(data))


# ------------------------------------------------------------ Python 2

# The settings users load Python 2 pickles with.
PY2_SETTINGS = {
    "latin1": {"encoding": "latin1"},
    "bytes": {"encoding": "bytes"},
    "ascii": {},
    "latin1-no-fix-imports": {"encoding": "latin1", "fix_imports": False},
    "bytes-no-fix-imports": {"encoding": "bytes", "fix_imports": False},
    "utf8-replace": {"encoding": "utf-8", "errors": "replace"},
}


def _py2_params():
    return [pytest.param(name, info, id=name) for name, info in PY2_FILES]


def _quietly(function, *args, **kwargs):
    # NumPy 2 warns about numpy.core, which NumPy 1 pickles name.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return outcome(function, *args, **kwargs)


@pytest.mark.parametrize("setting", PY2_SETTINGS)
@pytest.mark.parametrize("name,info", _py2_params())
def test_loads_python2_pickles(impl, name, info, setting):
    if info["object"].startswith("numpy-"):
        pytest.importorskip("numpy")
    data = _read(gen_golden.PY2_DIR, name, info)
    kwargs = PY2_SETTINGS[setting]
    expected = _quietly(pickle.loads, data, **kwargs)
    assert_same_outcome(expected, _quietly(impl.loads, data, **kwargs))
    assert_same_outcome(
        expected, _quietly(impl.load, io.BytesIO(data), **kwargs))
    _assert_loads_from_a_stream(expected, impl.load, data, **kwargs)


def test_python2_pickles_are_what_they_claim():
    """A few Python 2 files checked against known objects, so that the
    corpus itself is meaningful (latin1 is what Python 2 str needs)."""
    import datetime

    import brinery
    import golden_py2_classes as g

    def load(obj, module="cPickle", proto=2, **kwargs):
        name = f"{obj}.{module}.p{proto}.pickle"
        data = _read(gen_golden.PY2_DIR, name, PY2_MANIFEST["files"][name])
        return brinery.loads(data, **kwargs)

    assert load("str-latin1", encoding="latin1") == "caf\xe9 \xff\x00"
    assert load("str-latin1", encoding="bytes") == b"caf\xe9 \xff\x00"
    with pytest.raises(UnicodeDecodeError):
        load("str-latin1")
    assert load("unicode-nonascii", "pickle", 0) == \
        "caf\xe9 \u20ac \U0001f600 \\ \n"
    assert load("longs", "pickle", 0) == [0, 1, 2**64, -2**100, 2**31,
                                          -2**63]
    assert load("datetime", encoding="latin1") == datetime.datetime(
        1999, 12, 31, 23, 59, 59, 999999)
    assert load("classic", "pickle", 0) == g.Classic(1, "two")
    assert load("classic-initargs", "cPickle", 1) == \
        g.ClassicInitArgs([1, 2])
    assert load("xrange", "pickle", 2) == range(1, 10, 2)
    assert load("set", "pickle", 0) == {1, 2, 3}
    exc = load("exception", "cPickle", 0)
    assert type(exc) is ValueError and exc.args == ("bad value", 42)
    shared = load("shared", "pickle", 2)
    assert shared[0] is shared[1] is shared[2][0]


def test_python2_numpy_pickles():
    numpy = pytest.importorskip("numpy")
    import brinery
    names = [n for n, info in PY2_FILES
             if info["object"].startswith("numpy-")]
    if not names:
        pytest.skip("no NumPy pickles from Python 2 were generated")
    name = "numpy-float-2d.cPickle.p2.pickle"
    data = _read(gen_golden.PY2_DIR, name, PY2_MANIFEST["files"][name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        array = brinery.loads(data, encoding="latin1")
    assert numpy.array_equal(array, [[1.5, -2.0], [0.25, 1e10]])
