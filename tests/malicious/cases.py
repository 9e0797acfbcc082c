"""The malicious corpus (tests/malicious/corpus), for test_safe and
test_scan: its manifest, each case's bytes and the setup it needs.

A case's payload appends its name to the file named by the environment
variable BRINERY_PAYLOAD_MARKER; ``payload_marker`` points it at a fresh
file for the duration of a test, and ``ran`` reads what ran.
"""

import contextlib
import copyreg
import gzip
import json
import os

import pytest

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MARKER = "BRINERY_PAYLOAD_MARKER"

with open(os.path.join(CORPUS, "manifest.json")) as _f:
    MANIFEST = json.load(_f)

BY_NAME = {case["name"]: case for case in MANIFEST}


def cases(predicate=lambda case: True):
    """pytest params for the cases that satisfy predicate."""
    return [pytest.param(case, id=case["name"]) for case in MANIFEST
            if predicate(case)]


def path(case):
    return os.path.join(CORPUS, case["file"])


def data(case):
    """The case's pickle bytes (decompressed for gzip cases)."""
    with open(path(case), "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if case.get("gzip") else raw


def available(case):
    return "optional" not in case or os.path.exists(path(case))


@contextlib.contextmanager
def payload_marker(tmp_path):
    """Point BRINERY_PAYLOAD_MARKER at a new file; yield a function that
    returns the payloads that ran."""
    marker = tmp_path / "payload-marker"
    old = os.environ.get(MARKER)
    os.environ[MARKER] = str(marker)
    try:
        yield lambda: marker.read_text().split() if marker.exists() else []
    finally:
        if old is None:
            del os.environ[MARKER]
        else:
            os.environ[MARKER] = old


@contextlib.contextmanager
def setup(case):
    """Arrange what a case needs; yield keyword arguments for the loader
    (``allow``, ``persistent_load``, ``buffers``) and undo it after."""
    spec = case.get("setup", {})
    kwargs = {}
    added = []
    cached = []
    for code, module, name in spec.get("ext", []):
        copyreg.add_extension(module, name, code)
        added.append((module, name, code))
    for code, module, name in spec.get("ext_cache", []):
        copyreg._extension_cache[code] = getattr(
            __import__(module), name)
        cached.append(code)
    if "allow" in spec:
        kwargs["allow"] = spec["allow"]
    if spec.get("persistent") == "shared_list":
        shared = []
        kwargs["persistent_load"] = lambda pid: shared
        kwargs["_shared"] = shared
    if spec.get("buffers") == "bytearray":
        kwargs["buffers"] = [bytearray(b"ab")]
    try:
        yield kwargs
    finally:
        for module, name, code in added:
            copyreg.remove_extension(module, name, code)
        for code in cached:
            copyreg._extension_cache.pop(code, None)


def effect_present(case):
    """Whether the case's side effect (an attribute or dict item it would
    create) exists; removes it so the next test starts clean."""
    effect = case.get("effect")
    if effect is None:
        return False
    if effect.endswith("['bri_marker']"):
        target = _resolve(effect[:-len("['bri_marker']")])
        return target.pop("bri_marker", None) is not None
    owner = _resolve(effect.rsplit(".", 1)[0])
    if "bri_marker" in vars(owner):
        delattr(owner, "bri_marker")
        return True
    return False


def _resolve(dotted):
    parts = dotted.split(".")
    obj = __import__(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = __import__(".".join(parts[:i + 1]), fromlist=["x"])
    return obj
