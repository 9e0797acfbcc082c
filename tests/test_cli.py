"""Tests of the command line, run as a user types it.

Every test runs ``python -m brinery ...`` (or the installed ``brinery``
script) in a subprocess, with files in a temporary directory, and compares
with what ``python -m pickletools`` and ``python -m pickle`` print for the
same files, or with the library functions those commands are made of.
"""

import io
import json
import pickle
import pickletools
import pprint
import subprocess
import sys
import types
from pathlib import Path

import pytest

import brinery
from brinery import __main__ as cli
from brinery import tools

VALUE = [1, "two", (3.0, None), {"four": b"5"}, {6}, [7] * 3]
OTHER = {"k": list(range(20)), "t": (True, False)}


def run(*args, stdin=b"", executable=None, cwd=None):
    command = ([executable] if executable
               else [sys.executable, "-m", "brinery"]) + list(args)
    return subprocess.run(command, input=stdin, capture_output=True,
                          cwd=cwd, timeout=120)


def run_stdlib(module, *args, stdin=b""):
    return subprocess.run([sys.executable, "-m", module, *args],
                          input=stdin, capture_output=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    """One-pickle files of several protocols, and a multi-pickle file."""
    made = {}
    for proto in (0, 2, 5):
        path = tmp_path / f"p{proto}.pkl"
        path.write_bytes(pickle.dumps(VALUE, proto))
        made[proto] = path
    several = tmp_path / "several.pkl"
    several.write_bytes(pickle.dumps(VALUE, 2) + pickle.dumps(VALUE, 0)
                        + pickle.dumps(OTHER, 4))
    made["several"] = several
    one_pickler = tmp_path / "one_pickler.pkl"
    with one_pickler.open("wb") as f:
        pickler = pickle.Pickler(f, 2)
        pickler.dump(VALUE)
        pickler.dump(VALUE)   # same pickler: fetches what the first stored
    made["one_pickler"] = one_pickler
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(VALUE, 2)[:-5])
    made["bad"] = bad
    return types.SimpleNamespace(**{
        (f"p{k}" if isinstance(k, int) else k): v for k, v in made.items()})


def assert_one_line_error(result, prefix):
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert b"Traceback" not in result.stderr


# --------------------------------------------------------------------- dis

@pytest.mark.parametrize("options", [[], ["-a"], ["-l", "2"],
                                     ["-a", "-l", "0"]])
@pytest.mark.parametrize("proto", [0, 2, 5])
def test_dis_prints_what_pickletools_prints(files, proto, options):
    path = str(getattr(files, f"p{proto}"))
    ours = run("dis", *options, path)
    theirs = run_stdlib("pickletools", *options, path)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert ours.stderr == b""


@pytest.mark.parametrize("options", [[], ["-p", "## {name}"],
                                     ["-a", "-l", "1", "-p", "{name}:"]])
def test_dis_of_several_files_as_pickletools(files, options):
    paths = [str(files.p0), str(files.p2), str(files.p5)]
    ours = run("dis", *options, *paths)
    theirs = run_stdlib("pickletools", *options, *paths)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout


def test_dis_memo_option_reports_reuse_as_pickletools(files):
    """-m with pickles of separate picklers: the memo keys collide."""
    paths = [str(files.p2), str(files.p0)]
    ours = run("dis", "-m", *paths)
    theirs = run_stdlib("pickletools", "-m", *paths)
    assert theirs.returncode == 1 and ours.returncode == 2
    assert ours.stdout == theirs.stdout
    assert_one_line_error(ours, f"brinery dis: {paths[1]}: ValueError: memo "
                                f"key 0 already defined")


def test_dis_memo_option_carries_the_memo_across_files(tmp_path):
    f = io.BytesIO()
    pickler = pickle.Pickler(f, 2)
    pickler.dump(VALUE)
    first = f.getvalue()
    pickler.dump(VALUE)
    second = f.getvalue()[len(first):]
    (tmp_path / "a.pkl").write_bytes(first)
    (tmp_path / "b.pkl").write_bytes(second)
    paths = [str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")]
    ours = run("dis", "-m", *paths)
    assert ours.returncode == 0
    assert ours.stdout == run_stdlib("pickletools", "-m", *paths).stdout
    # Without -m the second file fetches a memo entry it never stored.
    without = run("dis", *paths)
    assert_one_line_error(without, f"brinery dis: {paths[1]}: ValueError: "
                                   f"memo key 0 has never been stored into")


def test_dis_output_file(files, tmp_path):
    out = tmp_path / "out.txt"
    theirs = tmp_path / "theirs.txt"
    result = run("dis", "-a", "-o", str(out), str(files.p2))
    assert result.returncode == 0 and result.stdout == b""
    run_stdlib("pickletools", "-a", "-o", str(theirs), str(files.p2))
    assert out.read_text() == theirs.read_text()


def test_dis_from_stdin(files):
    data = files.p2.read_bytes()
    ours = run("dis", "-", stdin=data)
    assert ours.returncode == 0
    assert ours.stdout == run_stdlib("pickletools", str(files.p2)).stdout


def test_dis_of_stdin_among_files_is_named_stdin(files):
    ours = run("dis", str(files.p0), "-", stdin=files.p2.read_bytes())
    assert ours.returncode == 0
    assert b"==> <stdin> <==\n" in ours.stdout


def _dis_all(data, memo=None):
    """The oracle for a multi-pickle file: pickletools.dis until the end."""
    stream, out = io.BytesIO(data), io.StringIO()
    while stream.tell() < len(data):
        pickletools.dis(stream, out, memo)
    return out.getvalue().encode()


def test_dis_shows_every_pickle_of_a_file(files):
    data = files.several.read_bytes()
    result = run("dis", str(files.several))
    assert result.returncode == 0
    assert result.stdout == _dis_all(data)
    assert result.stdout.count(b"highest protocol among opcodes") == 3


def test_dis_memo_option_within_a_file(files):
    data = files.one_pickler.read_bytes()
    result = run("dis", "-m", str(files.one_pickler))
    assert result.returncode == 0
    assert result.stdout == _dis_all(data, memo={})
    assert_one_line_error(run("dis", str(files.one_pickler)),
                          f"brinery dis: {files.one_pickler}: ValueError: "
                          f"memo key 0 has never been stored into")


def test_dis_several_pickles_from_stdin(files):
    data = files.one_pickler.read_bytes()
    result = run("dis", "-m", "-", stdin=data)
    assert result.stdout == _dis_all(data, memo={})


def test_dis_malformed_input_prints_up_to_the_error(files):
    result = run("dis", str(files.bad))
    assert_one_line_error(
        result, f"brinery dis: {files.bad}: ValueError: pickle exhausted "
                f"before seeing STOP")
    expected = io.StringIO()
    with pytest.raises(ValueError):
        pickletools.dis(files.bad.read_bytes(), expected)
    assert result.stdout.decode() == expected.getvalue()


@pytest.mark.parametrize("data,message", [
    (b"", "ValueError: pickle exhausted before seeing STOP"),
    (b"N\xff", "ValueError: at position 1, opcode b'\\xff' unknown"),
    (b"]N.", "ValueError: stack not empty after STOP: [list]"),
    (b"(2t.", "IndexError: list index out of range"),
    (b"N.\n", "ValueError: at position 2, opcode b'\\n' unknown"),
])
def test_dis_malformed_stdin(data, message):
    assert_one_line_error(run("dis", "-", stdin=data),
                          f"brinery dis: <stdin>: {message}")


def test_dis_goes_on_with_the_next_file_after_a_bad_one(files):
    result = run("dis", str(files.bad), str(files.p0))
    assert_one_line_error(result, f"brinery dis: {files.bad}: ")
    assert result.stdout.endswith(
        run_stdlib("pickletools", str(files.p0)).stdout)


def test_dis_of_a_stream_that_cannot_seek(files):
    """Process substitution hands over a pipe: read it like stdin."""
    result = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m brinery dis "
                       f"<(cat '{files.several}')"],
        capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == _dis_all(files.several.read_bytes())


def test_dis_missing_file(tmp_path):
    missing = tmp_path / "missing.pkl"
    assert_one_line_error(run("dis", str(missing)),
                          f"brinery dis: {missing}: No such file or "
                          f"directory")


def test_dis_bad_preamble(files):
    assert_one_line_error(run("dis", "-p", "{nope}", str(files.p0),
                              str(files.p2)),
                          "brinery dis: bad --preamble '{nope}'")


def test_dis_into_a_closed_pipe_is_quiet(tmp_path):
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(list(range(100000)), 0))
    result = subprocess.run(
        f"'{sys.executable}' -m brinery dis '{path}' | head -n 1",
        shell=True, capture_output=True, timeout=120)
    assert result.stdout == b"    0: (    MARK\n"
    assert result.stderr == b""


# -------------------------------------------------------------------- show

def test_show_prints_what_python_m_pickle_prints(files):
    for path in (files.p0, files.p2, files.p5):
        ours = run("show", str(path))
        theirs = run_stdlib("pickle", str(path))
        assert ours.returncode == theirs.returncode == 0
        assert ours.stdout == theirs.stdout


def test_show_several_files(files):
    paths = [str(files.p0), str(files.p5)]
    assert run("show", *paths).stdout == run_stdlib("pickle", *paths).stdout


def test_show_every_pickle_of_a_file(files):
    result = run("show", str(files.several))
    assert result.returncode == 0
    expected = io.StringIO()
    for value in (VALUE, VALUE, OTHER):
        pprint.pprint(value, stream=expected)
    assert result.stdout.decode() == expected.getvalue()


def test_show_stdin(files):
    result = run("show", "-", stdin=files.p2.read_bytes())
    assert result.returncode == 0
    assert result.stdout == run_stdlib("pickle", str(files.p2)).stdout


@pytest.mark.parametrize("data,message", [
    (b"", "EOFError: Ran out of input"),
    (b"\x80\x02]q\x00(K\x01", "EOFError: Ran out of input"),
    (b"\x80\x02]q\x00(K", "UnpicklingError: pickle data was truncated "
                          "(when unpickling BININT1 at byte 6)"),
    (b"cno_such_module_xyz\nname\n.", "ModuleNotFoundError: No module "
                                      "named 'no_such_module_xyz'"),
])
def test_show_malformed_input(data, message):
    result = run("show", "--unsafe", "-", stdin=data)
    assert_one_line_error(result, f"brinery show: <stdin>: {message}")


def test_show_missing_file(tmp_path):
    assert_one_line_error(run("show", str(tmp_path / "nope")),
                          "brinery show: ")


# ---------------------------------------------- show: choice of the loader

def _fake_safe_module(monkeypatch, load):
    # A stand-in for brinery.safe with another load (or none); the rest is
    # the real module's, which brinery.scan (the scan command) imports.
    import brinery.safe as real
    module = types.ModuleType("brinery.safe")
    module.__dict__.update({k: v for k, v in vars(real).items()
                            if k not in ("load", "__name__")})
    if load is not None:
        module.load = load
    monkeypatch.setitem(sys.modules, "brinery.safe", module)
    monkeypatch.setattr(brinery, "safe", module, raising=False)
    return module


def test_loader_is_the_full_one_without_brinery_safe(monkeypatch):
    monkeypatch.setitem(sys.modules, "brinery.safe", None)  # not importable
    assert cli.choose_loader() == (brinery.load, "unsafe")


def test_loader_is_the_safe_one_when_installed(monkeypatch):
    def safe_load(file):
        return "loaded safely"
    _fake_safe_module(monkeypatch, safe_load)
    assert cli.choose_loader() == (safe_load, "safe")
    assert cli.choose_loader(unsafe=True) == (brinery.load, "unsafe")


def test_loader_ignores_a_safe_module_without_load(monkeypatch):
    _fake_safe_module(monkeypatch, None)
    assert cli.choose_loader() == (brinery.load, "unsafe")


def test_show_uses_the_safe_loader_and_unsafe_opts_out(monkeypatch, files,
                                                       capsys):
    calls = []

    def safe_load(file):
        calls.append(file)
        return brinery.load(file)
    _fake_safe_module(monkeypatch, safe_load)
    assert cli.main(["show", str(files.p2)]) == 0
    assert len(calls) == 1
    assert cli.main(["show", "--unsafe", str(files.p2)]) == 0
    assert len(calls) == 1
    assert capsys.readouterr().out == 2 * (pprint.pformat(VALUE) + "\n")


def test_show_reports_a_refusal(monkeypatch, files, capsys):
    def refusing_load(file):
        raise brinery.UnsafePickleError("global os.system is not allowed")
    _fake_safe_module(monkeypatch, refusing_load)
    assert cli.main(["show", str(files.p2)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"brinery show: {files.p2}: UnsafePickleError: "
                             f"global os.system is not allowed")
    assert "--unsafe" in err[0]


# ---------------------------------------------------------------- optimize

def test_optimize_writes_a_smaller_equivalent_pickle(files, tmp_path):
    out = tmp_path / "small.pkl"
    result = run("optimize", str(files.p2), "-o", str(out))
    assert result.returncode == 0 and result.stderr == b""
    data = files.p2.read_bytes()
    assert out.read_bytes() == tools.optimize(data)
    assert len(out.read_bytes()) < len(data)
    assert pickle.loads(out.read_bytes()) == VALUE


def test_optimize_to_stdout_and_from_stdin(files):
    data = files.p5.read_bytes()
    result = run("optimize", "-", stdin=data)
    assert result.returncode == 0
    assert result.stdout == tools.optimize(data)


def test_optimize_every_pickle_of_a_file(files, tmp_path):
    data = pickle.dumps(VALUE, 2) + pickle.dumps(OTHER, 4)
    path = tmp_path / "two.pkl"
    path.write_bytes(data)
    result = run("optimize", str(path))
    stream = io.BytesIO(result.stdout)
    assert pickle.load(stream) == VALUE
    assert pickle.load(stream) == OTHER
    assert stream.read() == b""


def test_optimize_malformed_input_writes_nothing(files, tmp_path):
    out = tmp_path / "out.pkl"
    result = run("optimize", str(files.bad), "-o", str(out))
    assert_one_line_error(result, f"brinery optimize: {files.bad}: "
                                  f"ValueError: pickle exhausted")
    assert not out.exists()


# ----------------------------------------------------------------- opcodes

def test_opcodes_lists_the_table():
    result = run("opcodes")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(tools.OPCODES)
    assert lines[0].split()[:3] == ["0x49", "'I'", "INT"]


def test_opcodes_describes_by_name_code_or_byte():
    result = run("opcodes", "memoize", "q", "0x95")
    text = result.stdout.decode()
    assert result.returncode == 0
    for name in ("MEMOIZE", "BINPUT", "FRAME"):
        doc = next(d for d in tools.opcode_docs() if d["name"] == name)
        assert doc["summary"] in text
        assert text.count(f"{name} = ") == 1


def test_opcodes_json_is_the_documentation_data():
    result = run("opcodes", "--json")
    assert json.loads(result.stdout) == tools.opcode_docs()


def test_opcodes_unknown():
    assert_one_line_error(run("opcodes", "NOPE"),
                          "brinery opcodes: unknown opcode 'NOPE'")


# ------------------------------------------------------ help, version, usage

def test_help_lists_commands_and_examples():
    result = run("--help")
    text = result.stdout.decode()
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command.name in text
        assert command.examples[0] in text
    assert "Exit status" in text


def test_each_command_has_help():
    for command in cli.COMMANDS:
        result = run(command.name, "--help")
        assert result.returncode == 0
        assert b"examples:" in result.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith(f"brinery {brinery.__version__} "
                                             f"({brinery.IMPLEMENTATION} ")


def test_no_command_is_a_usage_error():
    result = run()
    assert result.returncode == 2 and b"usage: brinery" in result.stderr


def test_unknown_option_is_a_usage_error():
    result = run("dis", "--bogus", "x")
    assert result.returncode == 2 and b"unrecognized arguments" in \
        result.stderr


# ---------------------------------------------------------- console script

def _console_script():
    script = Path(sys.executable).with_name("brinery")
    if not script.exists():
        pytest.skip("the brinery script is not installed next to "
                    f"{sys.executable} (pip install -e .)")
    return str(script)


def test_console_script(files):
    script = _console_script()
    assert run("--version", executable=script).stdout == \
        run("--version").stdout
    ours = run("dis", "-a", str(files.p5), executable=script)
    assert ours.returncode == 0
    assert ours.stdout == run_stdlib("pickletools", "-a",
                                     str(files.p5)).stdout
    assert_one_line_error(run("show", "-", stdin=b"", executable=script),
                          "brinery show: <stdin>: EOFError")


def test_show_safe_loader_takes_allow_and_preset(tmp_path):
    import fractions
    path = tmp_path / "point.pkl"
    # A class the default policy refuses: fractions are allowed, but not
    # their module's other names; pathlib paths are not data at all.
    import pathlib
    path.write_bytes(pickle.dumps([pathlib.PurePosixPath("/a"),
                                   fractions.Fraction(1, 3)]))
    # (the module the class names: pathlib, or pathlib._local on 3.13)
    name = f"{pathlib.PurePosixPath.__module__}.PurePosixPath"
    refused = run("show", str(path))
    assert refused.returncode == 1
    assert name.encode() in refused.stderr
    allowed = run("show", str(path), "--allow", name)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.decode() == pprint.pformat(
        [pathlib.PurePosixPath("/a"), fractions.Fraction(1, 3)]) + "\n"
    bad = run("show", str(path), "--allow", "nodot")
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    np = pytest.importorskip("numpy")
    arrays = tmp_path / "arrays.pkl"
    arrays.write_bytes(pickle.dumps(np.arange(3)))
    assert run("show", str(arrays)).returncode == 1
    shown = run("show", str(arrays), "--preset", "numpy")
    assert shown.returncode == 0 and shown.stdout == b"array([0, 1, 2])\n"
