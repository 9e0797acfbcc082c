"""Generate the golden pickle files of tests/golden/ (tests/test_golden.py).

    python tests/gen_golden.py            # everything it can
    python tests/gen_golden.py --py3      # only this CPython's pickles

Two sets of files, each with a MANIFEST.json (file name -> what it holds):

- ``golden/cpython-3.X/``: the pickles this CPython's ``pickle.dumps``
  writes, protocols 0-5, for the objects of `golden_objects()`. The tests
  check that every brinery implementation writes exactly these bytes (when
  run on the same CPython version) and loads them back.
- ``golden/python2/``: pickles written by Python 2.7 (``pickle`` and
  ``cPickle``, protocols 0-2) of str, unicode, long, datetime, classic and
  new-style instances, exceptions, sets... (`PY2_SOURCE` below), and NumPy
  arrays when Python 2 has NumPy. The tests load them with the encodings
  and ``fix_imports`` settings users use and compare with what the
  standard library loads. The tests never run Python 2: CI has none.

Python 2 is taken from $BRINERY_PY2 (default
/root/.pyenv/versions/2.7.18/bin/python). NumPy for it is looked for on
$BRINERY_PY2_PATH (a PYTHONPATH entry), which can be made with
``python2 -m pip install --target DIR numpy==1.16.6``. When Python 2 or
NumPy is missing, those files are left as they are.

The output is deterministic: running the generator again rewrites the
same bytes (hash randomization is switched off for both Pythons).
"""

import argparse
import collections
import datetime
import decimal
import fractions
import hashlib
import json
import os
import pickle
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
PY3_DIR = os.path.join(
    GOLDEN, "cpython-%d.%d" % sys.version_info[:2])
PY2_DIR = os.path.join(GOLDEN, "python2")
LARGE = 8192
PY2 = os.environ.get("BRINERY_PY2", "/root/.pyenv/versions/2.7.18/bin/python")

sys.path.insert(0, HERE)


def golden_objects():
    """name -> object, for the CPython 3 golden files (deterministic:
    no sets of strings, whose order depends on the hash seed)."""
    import catalogue
    from catalogue import FACTORIES

    names = [
        "None", "True", "bools-in-list", "complex", "Ellipsis",
        "NotImplementedType", "recursive-list", "recursive-dict",
        "recursive-tuple", "recursive-instance", "mutual-recursion",
        "shared", "many-refs", "Plain", "Empty", "Slotted", "PartlySlotted",
        "WithState", "FalsyState", "ReduceToString", "Reduce2", "Reduce3",
        "Reduce4", "Reduce5", "Reduce6", "ReduceExByProtocol",
        "NewArgs", "NewArgsEx", "NewArgsExNoKwargs", "MyList-attr",
        "MyDict-attr", "MyTuple", "MyStr", "MyInt", "MyFloat", "MySet",
        "class", "class-nested", "class-nested-deeper", "function",
        "function-nested", "bound-methods", "builtin-types",
        "builtin-exceptions", "exception-instance", "method-descriptor",
        "classmethod-descriptor", "fix-imports-names", "range", "slice",
        "partial", "enum", "namedtuple", "deque", "OrderedDict",
        "defaultdict", "SimpleNamespace", "date", "time", "datetime",
        "datetime-tz", "datetime-utc", "timedelta", "decimal", "fraction",
        "uuid", "frame-crossing-strings",
        "sets-of-sizes", "frozensets-of-sizes", "Registered",
        "extension-codes",
    ]
    objects = {name: FACTORIES[name]() for name in names}
    for i, value in enumerate(catalogue.INT_EDGES):
        objects["int-%02d" % i] = value
    for i, value in enumerate(catalogue.FLOAT_EDGES):
        objects["float-%02d" % i] = value
    for i, value in enumerate(catalogue.STR_EDGES):
        objects["str-%02d" % i] = value
    for i, value in enumerate(catalogue.BYTES_EDGES):
        objects["bytes-%02d" % i] = value
        objects["bytearray-%02d" % i] = bytearray(value)
    for n in catalogue.CONTAINER_SIZES:
        objects["list-%04d" % n] = list(range(n))
        objects["dict-%04d" % n] = {"k%d" % i: i for i in range(n)}
        objects["set-%04d" % n] = set(range(n))
        objects["tuple-%04d" % n] = tuple(range(n))
    objects["mixed"] = {
        "date": datetime.date(2001, 2, 3), "dec": decimal.Decimal("-1.5"),
        "frac": fractions.Fraction(2, 7),
        "uuid": uuid.UUID(int=0x1234),
        "counter": collections.Counter([3, 1, 3]),
        "nested": [(1, [2, {"x": (3,)}])],
    }
    return objects


def _write(directory, files, meta):
    """Write files (name -> bytes) and a manifest; drop stale files."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".pickle") and name not in files:
            os.remove(os.path.join(directory, name))
    manifest = dict(meta)
    manifest["files"] = {}
    for name, (data, info) in sorted(files.items()):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        entry = dict(info)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        manifest["files"][name] = entry
    with open(os.path.join(directory, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def generate_py3():
    from registry import registered

    files = {}
    with registered():
        for name, obj in golden_objects().items():
            for proto in range(pickle.HIGHEST_PROTOCOL + 1):
                try:
                    data = pickle.dumps(obj, proto)
                except Exception:
                    continue        # refused at this protocol
                if len(data) > LARGE and proto < 4:
                    # Large pickles only where framing makes them
                    # interesting (the differential tests cover the rest).
                    continue
                files["%s.p%d.pickle" % (name, proto)] = (
                    data, {"object": name, "protocol": proto})
    _write(PY3_DIR, files, {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "note": "written by tests/gen_golden.py with pickle.dumps"})
    print("wrote %d files to %s" % (len(files), PY3_DIR))


# Runs under Python 2.7 (stdin), with tests/ on sys.path. Prints one JSON
# object: {file name: [hex of the pickle, object name, module, protocol]}.
PY2_SOURCE = r'''
import binascii, collections, datetime, decimal, json, pickle, sys
import cPickle
import golden_py2_classes as g

def objects():
    o = collections.OrderedDict()
    o["str-ascii"] = "abc"
    o["str-empty"] = ""
    o["str-latin1"] = "caf\xe9 \xff\x00"
    o["str-utf8-bytes"] = u"\u20ac".encode("utf-8")
    o["str-300"] = "s" * 300
    o["unicode"] = u"abc"
    o["unicode-nonascii"] = u"caf\xe9 \u20ac \U0001f600 \\ \n"
    o["unicode-empty"] = u""
    o["ints"] = [0, 1, 255, 256, 65535, 65536, 2 ** 31 - 1, -1, -2 ** 31]
    o["longs"] = [0L, 1L, 2L ** 64, -2L ** 100, 2L ** 31, -(2L ** 63)]
    o["floats"] = [0.0, -0.0, 1.5, 1e300, float("inf"), -float("inf")]
    o["singletons"] = [None, True, False]
    o["containers"] = {"list": [1, [2, 3]], "tuple": (1, (2,)),
                       "empty": ((), [], {})}
    o["dict-str-keys"] = {"a": 1, "b": "two", u"c": u"three"}
    o["set"] = set([1, 2, 3])
    o["frozenset"] = frozenset([4, 5])
    o["date"] = datetime.date(2010, 3, 14)
    o["time"] = datetime.time(12, 30, 15, 123456)
    o["datetime"] = datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)
    o["timedelta"] = datetime.timedelta(days=-3, seconds=7, microseconds=1)
    o["datetimes-in-list"] = [datetime.date(2000, 1, 1),
                              datetime.datetime(2000, 1, 1, 0, 0)]
    o["decimal"] = decimal.Decimal("3.14")
    o["classic"] = g.Classic(1, "two")
    o["classic-initargs"] = g.ClassicInitArgs([1, 2])
    o["new-style"] = g.NewStyle(u"x", {"k": "v"})
    o["slots"] = g.WithSlots(1, "y")
    o["getstate"] = g.WithState("stored value")
    o["exception"] = ValueError("bad value", 42)
    o["key-error"] = KeyError("missing")
    o["custom-exception"] = g.GoldenError("golden")
    o["xrange"] = xrange(1, 10, 2)
    o["builtin-function"] = len
    o["ordered-dict"] = collections.OrderedDict([("z", 1), ("a", 2)])
    o["defaultdict"] = collections.defaultdict(list, {"k": [1]})
    o["bytearray"] = bytearray("ba\xffx")
    shared = [1, 2]
    o["shared"] = [shared, shared, (shared,)]
    loop = [u"self"]
    loop.append(loop)
    o["recursive"] = loop
    return o

def numpy_objects():
    o = collections.OrderedDict()
    try:
        import numpy
    except ImportError:
        return o
    o["numpy-arange"] = numpy.arange(10)
    o["numpy-float-2d"] = numpy.array([[1.5, -2.0], [0.25, 1e10]])
    o["numpy-structured"] = numpy.array(
        [(1, 2.5, "ab"), (3, -1.0, "cd")],
        dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")])
    o["numpy-scalar"] = numpy.float64(3.5)
    o["numpy-int-scalar"] = numpy.int32(-7)
    o["numpy-unicode"] = numpy.array([u"x", u"\xe9t\xe9"])
    o["numpy-object"] = numpy.array([1, "a", None], dtype=object)
    return o

out = {}
for group in (objects(), numpy_objects()):
    for name, obj in group.items():
        for module in (pickle, cPickle):
            for proto in (0, 1, 2):
                data = module.dumps(obj, proto)
                key = "%s.%s.p%d.pickle" % (name, module.__name__, proto)
                out[key] = [binascii.hexlify(data), name, module.__name__,
                            proto]
json.dump({"version": sys.version.split()[0],
           "numpy": sys.modules["numpy"].__version__
           if "numpy" in sys.modules else None,
           "files": out}, sys.stdout)
'''


def generate_py2():
    if not os.path.exists(PY2):
        print("Python 2 not found at %s: python2 files left as they are"
              % PY2)
        return
    env = dict(os.environ, PYTHONHASHSEED="0")
    paths = [HERE] + [p for p in [os.environ.get("BRINERY_PY2_PATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    result = subprocess.run([PY2, "-"], input=PY2_SOURCE.encode(),
                            stdout=subprocess.PIPE, env=env, check=True)
    report = json.loads(result.stdout)
    if report["numpy"] is None:
        print("NumPy is not importable by Python 2 (see BRINERY_PY2_PATH): "
              "no NumPy pickles")
        # Keep NumPy files made earlier, with their manifest entries.
        kept = _existing_numpy_files()
    else:
        kept = {}
    files = dict(kept)
    for name, (hexdata, obj, module, proto) in report["files"].items():
        files[name] = (bytes.fromhex(hexdata),
                       {"object": obj, "module": module, "protocol": proto})
    numpy_version = report["numpy"] or _existing_meta().get("numpy")
    _write(PY2_DIR, files, {
        "python": report["version"], "numpy": numpy_version,
        "note": "written by tests/gen_golden.py under Python 2.7"})
    print("wrote %d files to %s" % (len(files), PY2_DIR))


def _existing_meta():
    try:
        with open(os.path.join(PY2_DIR, "MANIFEST.json")) as f:
            return json.load(f)
    except OSError:
        return {"files": {}}


def _existing_numpy_files():
    kept = {}
    for name, info in _existing_meta()["files"].items():
        if info["object"].startswith("numpy-"):
            with open(os.path.join(PY2_DIR, name), "rb") as f:
                data = f.read()
            info = {k: v for k, v in info.items() if k != "sha256"}
            kept[name] = (data, info)
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py3", action="store_true",
                        help="only this CPython's pickles")
    parser.add_argument("--py2", action="store_true",
                        help="only the Python 2 pickles")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Same objects, same bytes: fix the hash seed (set iteration order).
        env = dict(os.environ, PYTHONHASHSEED="0")
        sys.exit(subprocess.call([sys.executable] + sys.argv, env=env))
    if not args.py2:
        generate_py3()
    if not args.py3:
        generate_py2()


if __name__ == "__main__":
    main()
