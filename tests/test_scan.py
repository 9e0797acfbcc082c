"""brinery.scan: the static scanner, its containers and its command line.

The scanner runs the loader's own machine, so its verdict must agree with
what brinery.safe does with the same bytes; it must never import or run
anything; every corpus case must get its documented verdict.
"""

import bz2
import collections
import copyreg
import gzip
import io
import json
import lzma
import os
import pickle
import sys
import zipfile
import zlib

import pytest

from brinery import safe
from brinery.safe import Limits
from brinery.scan import Report, main, scan

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "malicious"))
import cases as corpus  # noqa: E402
from test_fuzz import _outcome, agree  # noqa: E402
from test_safe import BENIGN  # noqa: E402


def _loader_outcome(data, **kwargs):
    return _outcome(lambda: safe.loads(data, **kwargs))


# ----------------------------------------------------------------- benign

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_benign_values_scan_safe(protocol):
    for value in BENIGN:
        report = scan(pickle.dumps(value, protocol))
        assert report.verdict == "safe", (value, report.reasons)
        assert report.protocol == (protocol if protocol >= 2 else 0)
        assert all(g["allowed"] for g in report.globals)


def test_report_contents():
    data = pickle.dumps(collections.OrderedDict(a={1}), 2)
    report = scan(data)
    assert report.verdict == "safe" and report.reasons == []
    g = report.globals[0]
    assert (g["module"], g["name"], g["opcode"], g["offset"]) == \
        ("collections", "OrderedDict", "GLOBAL", 2)
    assert report.globals[1]["name"] == "set"
    assert [c["opcode"] for c in report.calls] == ["REDUCE", "REDUCE"]
    assert report.calls[0]["callable"] == "collections.OrderedDict"
    assert report.calls[1]["callable"] == "builtins.set"
    assert report.to_dict()["parts"][0]["globals"] == report.globals
    json.dumps(report.to_dict())


def test_py2_names_are_reported_mapped():
    report = scan(b"c__builtin__\nset\n((lp0\nI1\natp1\nRp2\n.")
    (g,) = report.globals
    assert (g["module"], g["name"], g["written_as"]) == \
        ("builtins", "set", "__builtin__.set")
    assert report.verdict == "safe"


# ---------------------------------------------------------------- corpus

@pytest.mark.parametrize("case", corpus.cases(corpus.available))
def test_corpus_verdicts(case, tmp_path):
    """Every case's file gets its verdict; nothing runs, nothing is
    imported."""
    modules = set(sys.modules)
    with corpus.payload_marker(tmp_path) as ran, corpus.setup(case) as kw:
        kwargs = {"allow": kw["allow"]} if "allow" in kw else {}
        kwargs.update(case.get("scan_kwargs", {}))
        report = scan(corpus.path(case), **kwargs)
        assert report.verdict == case["scan"], report.reasons
        if case["scan"] != "safe":
            assert report.reasons
        assert ran() == []
        assert not corpus.effect_present(case)
    assert set(sys.modules) - modules == set()
    if "scan_allowed" in case:
        allowed = case["scan_allowed"]
        report = scan(corpus.path(case), allow=allowed["allow"],
                      allow_persistent=allowed["allow_persistent"])
        assert report.verdict == allowed["verdict"], report.reasons


@pytest.mark.parametrize("case", corpus.cases(
    lambda c: not c.get("scan_only") and not c.get("gzip") and
    "second" not in c and corpus.available(c)))
def test_scanner_agrees_with_loader(case):
    """Same bytes, same machine, same policy: the loader's outcome is the
    scanner's verdict (the scanner may only be stricter: it flags what a
    failed load would have run before failing)."""
    with corpus.setup(case) as kw:
        kw.pop("_shared", None)
        data = corpus.data(case)
        load_kw = dict(kw, **case.get("load_kwargs", {}))
        scan_kw = {"allow": kw["allow"]} if "allow" in kw else {}
        scan_kw.update(case.get("scan_kwargs", {}))
        if "persistent_load" in kw:
            scan_kw["allow_persistent"] = True
        report = scan(data, **scan_kw)
        verdict = report.verdict
        buffers = sum(p.buffers for p in report.parts)
        if buffers:                 # the caller's out-of-band data
            load_kw.setdefault("buffers", [b""] * buffers)
        loaded = _loader_outcome(data, **load_kw)
    assert agree(loaded, verdict), (loaded, verdict)


def test_stack_global_names_are_exact():
    case = corpus.BY_NAME["stack_global_mark_games"]
    report = scan(corpus.data(case))
    (g,) = report.globals
    assert (g["module"], g["name"], g["opcode"]) == \
        ("builtins", "eval", "STACK_GLOBAL")
    memo_case = corpus.BY_NAME["stack_global_memo"]
    (g,) = scan(corpus.data(memo_case)).globals
    assert (g["module"], g["name"]) == ("builtins", "exec")


def test_extension_codes_are_resolved():
    copyreg.add_extension("collections", "OrderedDict", 0x5eed)
    try:
        report = scan(b"\x80\x02\x83\xed\x5e)R.")
        assert report.verdict == "safe"
        assert report.ext_codes == [{"code": 0x5eed, "offset": 2,
                                     "module": "collections",
                                     "name": "OrderedDict"}]
        assert report.globals[0]["opcode"] == "EXT2"
    finally:
        copyreg.remove_extension("collections", "OrderedDict", 0x5eed)
    report = scan(b"\x80\x02\x83\xed\x5e)R.")
    assert report.verdict == "unsafe"
    assert report.ext_codes[0]["module"] is None


def test_persistent_ids_are_listed():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "k1") if obj == "tensor" else None
    f = io.BytesIO()
    P(f, 2).dump({"w": "tensor"})
    report = scan(f.getvalue())
    assert report.verdict == "unsafe"
    assert len(report.persistent_ids) == 1
    assert "storage" in report.persistent_ids[0]["pid"]
    assert scan(f.getvalue(), allow_persistent=True).verdict == "safe"


def test_limits_give_resource_verdict():
    data = pickle.dumps(list(range(100)), 2)
    report = scan(data, limits=Limits(max_opcodes=10))
    assert report.verdict == "resource"
    assert "max_opcodes" in report.reasons[0]


def test_malformed_is_never_safe():
    for data in (b"", b"\x80\x04", b"\xff", b"N", b"(.", b"Ix\n."):
        assert scan(data).verdict == "malformed", data


def test_findings_before_an_error_count():
    """A stream that runs a payload and then breaks is unsafe, not
    malformed: a loader acts before it fails."""
    data = b"cos\nsystem\n(S'x'\ntR\xff"
    report = scan(data)
    assert report.verdict == "unsafe"
    assert report.parts[0].error is not None


def test_deep_and_long_inputs():
    """No recursion, and the work grows with the input: a million nested
    lists scan (the machine is a loop)."""
    data = b"\x80\x02" + b"]" * 500_000 + b"a" * 499_999 + b"."
    assert scan(data).verdict == "safe"


# ------------------------------------------------------------ containers

def test_several_pickles_and_trailing_data():
    data = pickle.dumps([1]) + pickle.dumps({"a": [2]}, 4) + \
        pickle.dumps(3, 0) + b"\x00\x01 not a pickle"
    report = scan(data)
    assert report.verdict == "safe"
    assert [p.name for p in report.parts] == ["<bytes>", "<bytes>#2",
                                              "<bytes>#3"]
    assert any("not a pickle" in n for n in report.notes)
    evil = data[:-16] + corpus.data(corpus.BY_NAME["global_reduce_p0"])
    assert scan(evil).verdict == "unsafe"


def test_memo_shared_between_pickles():
    """A second pickle may refer to the memo of the first (one Unpickler
    reading both); the scanner follows it."""
    first = b"\x80\x02cos\nsystem\nq\x07N."
    second = b"\x80\x02h\x07X\x01\x00\x00\x00x\x85R."
    report = scan(first + second)
    assert report.verdict == "unsafe"
    assert any("REDUCE" in r and "os.system" in r for r in report.reasons)


def _zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


def test_zip_members_by_content():
    benign = pickle.dumps({"a": 1}, 2)
    evil = corpus.data(corpus.BY_NAME["stack_global_memo"])
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                        zipfile.ZIP_BZIP2):
        report = scan(_zip([("m/data.pkl", benign), ("m/x", b"\x00" * 9)],
                           compression))
        assert report.verdict == "safe" and report.container == "zip"
        assert [p.name for p in report.parts] == ["<bytes>:m/data.pkl"]
        report = scan(_zip([("m/data.pkl", benign), ("m/data/3", evil)],
                           compression))
        assert report.verdict == "unsafe"
    nested = _zip([("inner.zip", _zip([("a.bin", evil)]))])
    assert scan(nested).verdict == "unsafe"
    broken = _zip([("m/data.pkl", b"\x80\x02(")])
    assert scan(broken).verdict == "malformed"
    assert scan(b"PK\x03\x04 truncated").verdict == "malformed"


def test_compressed_pickles():
    evil = corpus.data(corpus.BY_NAME["global_reduce_p0"])
    benign = pickle.dumps(BENIGN[:30], 4)
    for compress, kind in ((gzip.compress, "gzip"), (bz2.compress, "bz2"),
                           (lzma.compress, "xz"), (zlib.compress, "zlib")):
        report = scan(compress(benign))
        assert report.verdict == "safe" and report.container == kind
        assert scan(compress(evil)).verdict == "unsafe"
    assert scan(gzip.compress(benign)[:-10]).verdict == "malformed"
    bomb = gzip.compress(b"N" + b"0" * 10_000_000)
    report = scan(bomb, limits=Limits(max_input_bytes=1 << 20))
    assert report.verdict == "resource"


def test_numpy_files(tmp_path):
    np = pytest.importorskip("numpy")
    numeric = tmp_path / "a.npy"
    np.save(numeric, np.arange(10))
    assert scan(numeric).verdict == "safe"
    objects = tmp_path / "o.npy"
    np.save(objects, np.array([1, "a", None], dtype=object))
    assert scan(objects).verdict == "unsafe"         # numpy not allowed
    assert scan(objects, preset="numpy").verdict == "safe"
    archive = tmp_path / "z.npz"
    np.savez(archive, a=np.arange(3), b=np.array([{}], dtype=object))
    report = scan(archive, preset="numpy")
    assert report.verdict == "safe" and report.container == "zip"
    assert any("b.npy" in p.name for p in report.parts)


def test_sources_path_file_bytes(tmp_path):
    data = pickle.dumps([1, 2], 2)
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    assert scan(str(path)).verdict == "safe"
    assert scan(path).source == str(path)
    assert scan(io.BytesIO(data)).verdict == "safe"
    assert scan(bytearray(data)).verdict == "safe"
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    assert scan(empty).verdict == "malformed"
    with pytest.raises(TypeError):
        scan(42)


# ------------------------------------------------------------------- CLI

def _run(capsys, *argv):
    status = main(list(argv))
    return status, capsys.readouterr().out


def test_cli_exit_status(capsys, tmp_path):
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"a": 1}))
    bad = corpus.path(corpus.BY_NAME["global_reduce_p0"])
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04(")
    status, out = _run(capsys, str(good))
    assert status == 0 and "SAFE" in out
    status, out = _run(capsys, str(good), bad)
    assert status == 1 and "UNSAFE" in out and "os.system" in out
    status, out = _run(capsys, str(broken))
    assert status == 2 and "MALFORMED" in out
    status, out = _run(capsys, str(tmp_path / "missing.pkl"))
    assert status == 2 and "cannot read" in out
    status, out = _run(capsys, str(broken), bad)
    assert status == 1


def test_cli_json_allow_preset(capsys, tmp_path):
    data = corpus.path(corpus.BY_NAME["gadget_importlib_import_module"])
    status, out = _run(capsys, "--json", data)
    assert status == 1
    (report,) = json.loads(out)
    assert report["verdict"] == "unsafe"
    assert report["parts"][0]["globals"][0]["name"] == "import_module"
    status, out = _run(capsys, "--allow", "importlib.import_module",
                       "--json", data)
    assert status == 0 and json.loads(out)[0]["verdict"] == "safe"
    np = pytest.importorskip("numpy")
    path = tmp_path / "arr.pkl"
    path.write_bytes(pickle.dumps(np.arange(3)))
    assert _run(capsys, str(path))[0] == 1
    assert _run(capsys, "--preset", "numpy", str(path))[0] == 0
    with pytest.raises(SystemExit):
        main(["--allow", "nodot", str(path)])


def test_report_type():
    assert isinstance(scan(pickle.dumps(1)), Report)


def test_overlapping_zip_members_are_bounded():
    """A central directory listing one member many times (a zip bomb
    without compression) is scanned within the input budget."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a.pkl", pickle.dumps(list(range(20000))))
    raw = out.getvalue()
    cd_at, eocd_at = raw.index(b"PK\x01\x02"), raw.index(b"PK\x05\x06")
    copies = 200
    directory = raw[cd_at:eocd_at] * copies
    eocd = bytearray(raw[eocd_at:])
    eocd[8:20] = copies.to_bytes(2, "little") * 2 + \
        len(directory).to_bytes(4, "little") + cd_at.to_bytes(4, "little")
    bomb = raw[:cd_at] + directory + bytes(eocd)
    report = scan(bomb, limits=Limits(max_input_bytes=2_000_000))
    assert report.verdict == "resource"
    assert len(report.parts) < copies


def test_brinery_command_line_scan(tmp_path):
    # As a user types it: the scan subcommand of `python -m brinery`.
    import subprocess
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps([1, "a", {2: 3.0}]))
    bad = corpus.path(corpus.BY_NAME["global_reduce_p0"])

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "brinery", "scan", *argv],
                              capture_output=True, text=True, timeout=120)
    done = run(str(good))
    assert done.returncode == 0 and "SAFE" in done.stdout
    done = run(str(good), bad)
    assert done.returncode == 1 and "os.system" in done.stdout
    done = run("--json", str(tmp_path / "missing.pkl"))
    assert done.returncode == 2
    assert json.loads(done.stdout)[0]["verdict"] == "malformed"
    done = run("--allow", "nodot", str(good))
    assert done.returncode == 2 and "Traceback" not in done.stderr
