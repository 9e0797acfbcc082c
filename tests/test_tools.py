"""Tests of brinery.tools: genops, dis, optimize and opcode_docs.

The oracle is the standard library's pickletools:

- exact-text goldens (tests/dis_golden/, written by gen_dis_golden.py from
  pickletools.dis) for every opcode and every malformed-stream report;
- differential tests on hypothesis-generated input: pickles of random
  objects at every protocol (dis text under several settings, optimize's
  size and round trip) and random, mostly malformed, opcode streams (dis
  text and exception, genops items and exception).
"""

import io
import json
import pickle
import pickletools
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import brinery
import gen_dis_golden
from brinery import tools
from brinery._opcodes import OPCODES, OPCODE_BY_NAME

RUNNING_PYTHON = "%d.%d" % sys.version_info[:2]

# ----------------------------------------------------------------- goldens


def _golden_files():
    return sorted(gen_dis_golden.GOLDEN_DIR.glob("*.txt"))


def _golden_params():
    for path in _golden_files():
        header, sections = gen_dis_golden.parse(
            path.read_text(encoding="utf-8"))
        for indentlevel, annotate, error, output in sections:
            yield pytest.param(header, indentlevel, annotate, error, output,
                               id=f"{path.stem}-{indentlevel}-{annotate}")


def _inputs(header):
    inputs = [bytes.fromhex(data) for data in header["inputs"]]
    return inputs[0] if len(inputs) == 1 else inputs


@pytest.mark.parametrize("header,indentlevel,annotate,error,output",
                         list(_golden_params()))
def test_dis_matches_golden(header, indentlevel, annotate, error, output):
    if header["python"] != RUNNING_PYTHON:
        pytest.skip(f"goldens come from Python {header['python']}; the "
                    f"differential tests cover this Python")
    got = gen_dis_golden.run_dis(tools.dis, _inputs(header),
                                 header["source"], indentlevel, annotate)
    assert got == (output, error)


def test_goldens_are_current():
    """The checked-in goldens are what the generator and oracle give now."""
    versions = {gen_dis_golden.parse(p.read_text(encoding="utf-8"))[0]
                ["python"] for p in _golden_files()}
    if versions != {RUNNING_PYTHON}:
        pytest.skip(f"goldens come from Python {versions}")
    assert gen_dis_golden.main(["--check"]) == 0


def test_goldens_cover_every_opcode_and_error_kind():
    seen = set()
    errors = set()
    for path in _golden_files():
        header, sections = gen_dis_golden.parse(
            path.read_text(encoding="utf-8"))
        inputs = [bytes.fromhex(data) for data in header["inputs"]]
        if sections[0][2] is None:
            for data in inputs:
                seen.update(op.name for op, _, _ in tools.genops(data))
        else:
            errors.add(sections[0][2][1].split(" ")[0])
    assert seen == {op.name for op in OPCODES}
    # One of each pickletools report family appears (first word).
    assert {"pickle", "at", "not", "expected", "no", "tries", "stack",
            "memo", "can't", "invalid", "could", "strinq", "list",
            "'utf-8'", "'ascii'", "string4", "long4", "bytes8",
            "bytearray8", "unicodestring8"} <= errors


# ------------------------------------------------------------------ genops

def test_genops_items_and_positions():
    data = b"(I123\nK\x12J\x12\x34\x56\x78t."
    assert [(op.name, arg, pos) for op, arg, pos in tools.genops(data)] == [
        ("MARK", None, 0), ("INT", 123, 1), ("BININT1", 0x12, 6),
        ("BININT", 0x78563412, 8), ("TUPLE", None, 13), ("STOP", None, 14)]


def test_genops_reads_a_file_from_its_position_through_stop():
    f = io.BytesIO(b"prefix(K\x01t.suffix")
    f.read(6)
    assert [(op.name, pos) for op, _, pos in tools.genops(f)] == [
        ("MARK", 6), ("BININT1", 7), ("TUPLE", 9), ("STOP", 10)]
    assert f.read() == b"suffix"


def test_genops_without_tell_has_no_positions():
    reader = gen_dis_golden.ReaderWithoutTell(b"K\x01.")
    assert [pos for _, _, pos in tools.genops(reader)] == [None, None]


def test_genops_yields_the_table_entries():
    ops = [op for op, _, _ in tools.genops(pickle.dumps([1], 4))]
    assert all(op is OPCODE_BY_NAME[op.name] for op in ops)


class _RecordingFile(io.RawIOBase):
    """A file that records the largest read it was asked for."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)
        self.largest_read = 0

    def read(self, n=-1):
        self.largest_read = max(self.largest_read, n)
        return self._stream.read(n)

    def readline(self, size=-1):
        return self._stream.readline(size)

    def tell(self):
        return self._stream.tell()


@pytest.mark.parametrize("data,message", [
    (b"\x8e" + struct.pack("<Q", 2**62) + b"abc",
     f"expected {2**62} bytes in a bytes8, but only 3 remain"),
    (b"\x8d" + struct.pack("<Q", 2**40),
     f"expected {2**40} bytes in a unicodestring8, but only 0 remain"),
    (b"B\xff\xff\xff\x7f",
     f"expected {2**31 - 1} bytes in a bytes4, but only 0 remain"),
])
def test_declared_lengths_do_not_size_reads(data, message):
    f = _RecordingFile(data)
    with pytest.raises(ValueError, match=message):
        list(tools.genops(f))
    assert f.largest_read <= 1 << 20


# --------------------------------------------------------------- optimize

def test_optimize_drops_unused_memo_stores():
    data = pickle.dumps([["a"], ["b"]], 2)
    result = tools.optimize(data)
    names = [op.name for op, _, _ in tools.genops(result)]
    assert "BINPUT" not in names and "BINGET" not in names
    assert pickle.loads(result) == [["a"], ["b"]]


def test_optimize_binput_and_memoize():
    # The same stream as CPython's test_optimize_binput_and_memoize.
    data = (b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00"
            b"]\x94(\x8c\x04spamq\x01\x8c\x03ham\x94h\x02e.")
    result = tools.optimize(data)
    loaded = pickle.loads(result)
    assert loaded == ["spam", "ham", "ham"] and loaded[1] is loaded[2]
    assert result == pickletools.optimize(data)


def _late_hot_entries():
    """300 shared strings, then many fetches of the last few only."""
    strings = [f"s{i}" for i in range(300)]
    return [strings, strings[::-1]] + [strings[-1]] * 200 + [strings[-2]] * 50


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("loads", [pickle.loads, brinery.loads],
                         ids=["stdlib", "brinery"])
def test_optimize_gives_short_indices_to_hot_entries(proto, loads):
    value = _late_hot_entries()
    data = pickle.dumps(value, proto)
    ours, theirs = tools.optimize(data), pickletools.optimize(data)
    assert len(ours) < len(theirs)
    loaded = loads(ours)
    assert loaded == value
    assert loaded[2] is loaded[0][-1] and loaded[-1] is loaded[0][-2]
    pickletools.dis(ours, out=io.StringIO())   # passes the oracle's checks


def test_optimize_swaps_memo_indices_only_when_it_pays():
    # 300 strings fetched once each (from the copy), the last one `extra`
    # times more. Giving it index 0 instead of 299 costs 1 byte on its
    # store (BINPUT for MEMOIZE), 4 on the swapped entry's store
    # (LONG_BINPUT) and 3 on that entry's one fetch; it saves 3 on each of
    # its own 1 + extra fetches: 3 * (1 + extra) - 8 bytes.
    strings = [f"s{i}" for i in range(300)]
    for extra, saved in [(1, 0), (2, 1), (5, 10)]:
        value = [strings, list(strings)] + [strings[-1]] * extra
        data = pickle.dumps(value, 4)
        ours, theirs = tools.optimize(data), pickletools.optimize(data)
        assert len(theirs) - len(ours) == saved
        assert pickle.loads(ours) == value
        if not saved:
            assert ours == theirs


def test_optimize_drops_a_store_overwritten_before_any_fetch():
    data = b"(Np0\nNp0\ng0\nt."     # the first PUT 0 is never read
    result = tools.optimize(data)
    assert result == b"(NNp0\ng0\nt."
    assert len(result) < len(pickletools.optimize(data))


def test_optimize_rejects_a_fetch_of_nothing():
    with pytest.raises(ValueError,
                       match="at position 1, memo key 5 has never been "
                             "stored into"):
        tools.optimize(b"Nh\x05.")


def test_optimize_frames_like_the_pickler():
    value = [b"x" * 70000, "a" * 100000, list(range(30000)), "tail"]
    for proto in (4, 5):
        data = pickle.dumps(value, proto)
        result = tools.optimize(data)
        assert result == pickletools.optimize(data)
        assert pickle.loads(result) == value


def test_optimize_stops_at_stop():
    data = pickle.dumps(1, 2)
    assert tools.optimize(data + b"trailing") == tools.optimize(data)


def test_optimize_all_handles_consecutive_pickles():
    first, second = pickle.dumps([1, 1], 2), pickle.dumps({"a": 2}, 4)
    results = list(tools._optimize_all(first + second))
    assert results == [tools.optimize(first), tools.optimize(second)]


# ------------------------------------------------------------ opcode docs

def test_opcode_docs_describe_the_table():
    docs = tools.opcode_docs()
    assert json.loads(json.dumps(docs)) == docs
    assert [doc["name"] for doc in docs] == [op.name for op in OPCODES]
    by_name = {doc["name"]: doc for doc in docs}
    for op in pickletools.opcodes:
        doc = by_name[op.name]
        assert doc["code"] == ord(op.code)
        assert doc["protocol"] == op.proto
        assert doc["summary"] == op.doc.split("\n", 1)[0]
        assert doc["stack_before"] == [s.name for s in op.stack_before]
        assert doc["stack_after"] == [s.name for s in op.stack_after]
        assert (doc["argument"] and doc["argument"]["name"]) == (
            op.arg and op.arg.name)
        assert doc["description"]
    assert by_name["FRAME"]["argument"]["size"] == 8
    assert by_name["BINUNICODE"]["argument"]["size"] == (
        "4-byte length, then data")


# ------------------------------------------------- differential: objects

_keys = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=8))
_leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.binary(max_size=20), st.binary(max_size=300).map(bytearray),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
)


def _shared(children):
    """A list holding repeated references to a pool of objects."""
    return st.builds(
        lambda pool, picks: [pool[i % len(pool)] for i in picks],
        st.lists(children, min_size=1, max_size=5),
        st.lists(st.integers(0, 20), max_size=12))


_objects = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(_keys, children, max_size=5),
        st.sets(_keys, max_size=5),
        st.frozensets(_keys, max_size=5),
        _shared(children)),
    max_leaves=25)

_DIS_SETTINGS = [(4, 0), (2, 30), (0, 1), (1, 60)]
_settings = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _dis_result(dis, source, **kwargs):
    out = io.StringIO()
    try:
        dis(source, out=out, **kwargs)
    except Exception as exc:
        return out.getvalue(), type(exc).__name__, str(exc)
    return out.getvalue(), None, None


@_settings
@given(value=_objects, proto=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_dis_and_optimize_agree_with_pickletools(value, proto):
    data = pickle.dumps(value, proto)
    for indentlevel, annotate in _DIS_SETTINGS:
        kwargs = dict(indentlevel=indentlevel, annotate=annotate)
        assert (_dis_result(tools.dis, data, **kwargs)
                == _dis_result(pickletools.dis, data, **kwargs))

    ours, theirs = tools.optimize(data), pickletools.optimize(data)
    assert ours == theirs or len(ours) < len(theirs)
    assert pickle.loads(ours) == value
    assert _dis_result(pickletools.dis, ours)[1] is None


# ---------------------------------------------- differential: raw streams

def _pack(fmt):
    return lambda n: struct.pack(fmt, n)


_small_index = st.integers(0, 4)
_LINES = {
    "decimalnl_short": [b"0", b"1", b"00", b"01", b"-3", b"12L", b"x", b"",
                        b" 7 ", b"1_0", b"0x10"],
    "decimalnl_long": [b"5L", b"-12L", b"L", b"", b"9" * 30, b"1.5"],
    "floatnl": [b"1.5", b"nan", b"-inf", b"x", b"1e500", b""],
    "stringnl": [b"'a'", b'"b"', b"'c", b"d", b"'\\x4'", b"'\xff'", b"'",
                 b"'e\\n'"],
    "stringnl_noescape": [b"mod", b"\xff", b"a\\x41", b"", b"a\\x"],
    "unicodestringnl": [b"abc", b"\\u20ac", b"\\u12", b"\xe9", b""],
}


def _argument(arg):
    """A strategy for the bytes of one argument, often well-formed."""
    name = arg.name
    if name in ("uint1",):
        return st.one_of(_small_index.map(_pack("<B")), st.binary(max_size=1))
    if name == "uint2":
        return st.one_of(_small_index.map(_pack("<H")), st.binary(max_size=2))
    if name in ("int4", "uint4"):
        return st.one_of(_small_index.map(_pack("<i")), st.binary(max_size=4))
    if name == "uint8":
        return st.one_of(_small_index.map(_pack("<Q")), st.binary(max_size=8))
    if name == "float8":
        return st.binary(max_size=8)
    if name in _LINES:
        return st.sampled_from(_LINES[name]).map(lambda line: line + b"\n")
    if name == "stringnl_noescape_pair":
        line = st.sampled_from(_LINES["stringnl_noescape"])
        return st.tuples(line, line).map(lambda p: p[0] + b"\n" + p[1]
                                         + b"\n")
    # Counted: a length (sometimes a lie), then data.
    width = {1: 1, -2: 1, -3: 4, -4: 4, -5: 8}[
        arg.n if arg.n < 0 else 1]
    signed = arg.n == -3
    data = st.one_of(st.binary(max_size=6),
                     st.text(max_size=4).map(
                         lambda s: s.encode("utf-8", "surrogatepass")))
    return st.tuples(data, st.integers(-2, 3)).map(
        lambda d: (max(len(d[0]) + d[1], -1 if signed else 0)).to_bytes(
            width, "little", signed=signed) + d[0])


_no_argument_tokens = st.sampled_from(
    [op.code_bytes for op in OPCODES if op.arg is None])
_argument_tokens = st.sampled_from(
    [op for op in OPCODES if op.arg is not None]).flatmap(
        lambda op: _argument(op.arg).map(lambda arg: op.code_bytes + arg))
_junk_tokens = st.binary(min_size=1, max_size=2)
# Mostly opcodes, one token in twenty random bytes.
_opcode_tokens = st.integers(0, 19).flatmap(
    lambda k: _junk_tokens if k == 0
    else _no_argument_tokens if k <= 10 else _argument_tokens)
_streams = st.lists(_opcode_tokens, max_size=14).map(b"".join)


def _genops_result(genops, source):
    items = []
    try:
        for op, arg, pos in genops(source):
            items.append((op.name, repr(arg), pos))
    except Exception as exc:
        return items, type(exc).__name__, str(exc)
    return items, None, None


@settings(max_examples=300, deadline=None)
@given(data=_streams, stop=st.booleans(),
       source=st.sampled_from(["bytes", "file", "notell"]))
def test_streams_disassemble_like_pickletools(data, stop, source):
    if stop:
        data += b"."

    def fresh():
        return gen_dis_golden.make_source(data, source)

    assert (_genops_result(tools.genops, fresh())
            == _genops_result(pickletools.genops, fresh()))
    for indentlevel, annotate in _DIS_SETTINGS[:2]:
        kwargs = dict(indentlevel=indentlevel, annotate=annotate)
        assert (_dis_result(tools.dis, fresh(), **kwargs)
                == _dis_result(pickletools.dis, fresh(), **kwargs))


@settings(max_examples=100, deadline=None)
@given(data=_streams)
def test_streams_optimize_no_larger_than_pickletools(data):
    data += b"."
    try:
        theirs = pickletools.optimize(data)
    except Exception:
        return      # pickletools cannot optimize it; nothing to compare
    try:
        ours = tools.optimize(data)
    except ValueError as exc:
        # Only a fetch of a memo index stored nowhere before it, which
        # pickletools turns into a nonsense fetch.
        assert "has never been stored into" in str(exc)
        return
    assert len(ours) <= len(theirs)


def test_memo_shared_between_calls():
    memo = {}
    out = io.StringIO()
    tools.dis(b"Np1\n.", out=out, memo=memo)
    tools.dis(b"g1\n.", out=out, memo=memo)
    expected, memo = io.StringIO(), {}
    pickletools.dis(b"Np1\n.", out=expected, memo=memo)
    pickletools.dis(b"g1\n.", out=expected, memo=memo)
    assert out.getvalue() == expected.getvalue()


def test_dis_writes_to_stdout_by_default(capsys):
    tools.dis(b"N.")
    pickletools.dis(b"N.")
    first, second = capsys.readouterr().out.split("highest protocol among "
                                                  "opcodes = 0\n")[:2]
    assert first == second
