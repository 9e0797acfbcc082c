"""Tests of how the C unpickler makes strs (unpickler.c): the dict-key cache
(decode_dict_key) and short strs built without PyUnicode_New
(new_ascii_str, new_wide_str).

The C str opcodes look short ASCII dict keys up in a cache that outlives a
load, so many small pickles of the same shape share their key objects. That
is only allowed to change object identity: every load must still give
exactly the str the pickle holds. These tests compare each load with the
standard library's, around the cache's edges (keys that agree on their
first and last 8 bytes, every length up to and past the cache's limit,
non-ASCII keys, strs that are values or list items, dict subclasses, a
load that keeps missing) and check that the cache's memory is bounded. The
strs must be indistinguishable from the ones CPython makes, ASCII or not: size, hash,
interning, the UTF-8 form CPython caches in a str, tracemalloc's record of
where they were allocated.
"""

import gc
import pickle
import sys
import tracemalloc
from collections import OrderedDict

import pytest
from hypothesis import given, settings, strategies as st

try:
    from brinery import _accel
    _accel.Unpickler
except (ImportError, AttributeError):  # pragma: no cover - build without C
    pytest.skip("brinery._accel has no Unpickler", allow_module_level=True)

pytestmark = pytest.mark.c_extension

PROTOCOLS = range(1, pickle.HIGHEST_PROTOCOL + 1)   # BINUNICODE and SHORT_


def check_same(obj, protocol):
    data = pickle.dumps(obj, protocol)
    got = _accel.loads(data)
    assert got == obj
    assert [type(k) for k in got] == [type(k) for k in obj]
    assert list(got) == list(obj)
    return got


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_small_pickles_share_their_keys(protocol):
    first = _accel.loads(pickle.dumps({"id": 1, "name": "x"}, protocol))
    second = _accel.loads(pickle.dumps({"id": 2, "name": "y"}, protocol))
    assert [a is b for a, b in zip(first, second)] == [True, True]
    # Values are never shared (only keys are looked up).
    third = _accel.loads(pickle.dumps({"k": "value-str", "j": 0}, protocol))
    fourth = _accel.loads(pickle.dumps({"k": "value-str", "j": 0}, protocol))
    assert third["k"] is not fourth["k"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keys_that_agree_on_their_ends(protocol):
    # Same size, same first and last 8 bytes: only the middle differs.
    for size in range(0, 41):
        keys = set()
        for position in range(size):
            for letter in "ab":
                keys.add("x" * position + letter + "x" * (size - position - 1))
        keys.add("x" * size)
        for key in sorted(keys):
            check_same({key: size}, protocol)
        # And all in one dict, twice, in both orders.
        check_same(dict.fromkeys(sorted(keys), 0), protocol)
        check_same(dict.fromkeys(sorted(keys, reverse=True), 0), protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_non_ascii_and_ascii_keys_of_equal_bytes(protocol):
    keys = ["caf\xe9", "cafe", "caf\u00e9\u00e9", "\u20ac", "e\u0301",
            "\U0001f600abc", "abc\U0001f600", "\udc80" * 2, "", "\x00",
            "a\x00b"]
    for _ in range(3):
        got = check_same(dict.fromkeys(keys, 1), protocol)
        for a, b in zip(got, keys):
            assert a == b and len(a) == len(b)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_strs_that_are_not_keys(protocol):
    # A value that equals a cached key, list items between a dict's MARK
    # and its items, a key of a dict subclass, tuple members.
    _accel.loads(pickle.dumps({"shared": 1}, protocol))
    obj = {"a": "shared", "b": ["shared", "shared"], "shared": ("shared",)}
    got = check_same(obj, protocol)
    assert got["a"] == "shared" and got["b"] == ["shared", "shared"]
    ordered = OrderedDict([("shared", 1), ("z", 2)])
    assert _accel.loads(pickle.dumps(ordered, protocol)) == ordered


def test_a_load_that_keeps_missing_is_still_right():
    unique = {f"key-{i:06d}": i for i in range(20000)}
    for protocol in (2, 5):
        assert _accel.loads(pickle.dumps(unique, protocol)) == unique


def test_instance_state_keys():
    class Point:
        pass

    globals()["Point"] = Point
    Point.__qualname__ = "Point"
    try:
        for protocol in PROTOCOLS:
            for i in range(3):
                p = Point()
                p.x, p.y, p.label = i, -i, "p"
                got = _accel.loads(pickle.dumps(p, protocol))
                assert vars(got) == vars(p)
    finally:
        del globals()["Point"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(
    st.text(alphabet=st.characters(max_codepoint=0x10FFFF), max_size=40)
    | st.text(alphabet="ab\x00", max_size=36),
    st.integers(), max_size=6), min_size=1, max_size=8),
    st.sampled_from(list(PROTOCOLS)))
def test_arbitrary_key_sets_load_exactly(dicts, protocol):
    pickles = [pickle.dumps(d, protocol) for d in dicts]
    for _ in range(2):
        for d, data in zip(dicts, pickles):
            got = _accel.loads(data)
            assert got == d
            assert list(got) == list(d)
            assert all(type(k) is str for k in got)


def test_cache_memory_is_bounded():
    # 50k loads, each with a key never seen before: whatever the cache
    # keeps is bounded by its size, not by how many keys went through it.
    def run(start, count):
        for i in range(start, start + count):
            _accel.loads(pickle.dumps({f"unique-key-{i:08d}": None}, 5))

    run(0, 2000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(10**6, 50000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 50k keys of ~70 bytes each would be ~3.5 MB; the cache holds 512.
    assert grown < 200_000, grown


def ascii_texts():
    for size in range(0, 70):
        yield "".join(chr(32 + (size * 7 + i * 13) % 95) for i in range(size))


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_ascii_strs_are_ordinary_strs(protocol):
    texts = list(ascii_texts())
    got = _accel.loads(pickle.dumps(texts, protocol))
    oracle = pickle.loads(pickle.dumps(texts, protocol))
    assert got == texts
    for mine, theirs in zip(got, oracle):
        assert type(mine) is str
        assert sys.getsizeof(mine) == sys.getsizeof(theirs)
        assert hash(mine) == hash(theirs)
        assert mine.isascii() and len(mine) == len(theirs)
        assert mine.encode() == theirs.encode()
        assert (mine + "\xe9")[:-1] == mine
        interned = sys.intern(mine)
        assert interned == mine
        assert {mine: 1}[theirs] == 1


def check_traced_by_tracemalloc(texts):
    data = pickle.dumps(texts, 5)
    tracemalloc.start(1)
    try:
        got = _accel.loads(data)
        traced = [tracemalloc.get_object_traceback(s) for s in got]
    finally:
        tracemalloc.stop()
    assert got == texts
    assert all(tb is not None for tb in traced)


def test_ascii_strs_are_traced_by_tracemalloc():
    check_traced_by_tracemalloc([f"text-number-{i}" for i in range(100)])


# -- non-ASCII strs (new_wide_str) --------------------------------------

WIDE_ALPHABETS = {
    "latin-1": "\xa0éßøÿ",                  # 1 byte per character
    "bmp": "жзиλ日本\u20ac\ufffd",          # 2 bytes per character
    "astral": "😀🐍\U0010fffd𝄞",            # 4 bytes per character
}


def wide_texts():
    for name, alphabet in WIDE_ALPHABETS.items():
        for size in range(1, 50):
            # ASCII around and between, so that each kind is reached from
            # texts whose first non-ASCII character is at any position.
            text = "".join(alphabet[(size + i) % len(alphabet)]
                           if (size * 5 + i * 3) % 4 else "a"
                           for i in range(size))
            yield name, text
            yield name, "x" * size + alphabet[size % len(alphabet)]


def utf8_cached(text):
    """Ask CPython for the str's UTF-8 form, which it keeps in the str."""
    import ctypes
    as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8
    as_utf8.restype = ctypes.c_char_p
    as_utf8.argtypes = [ctypes.py_object]
    return as_utf8(text)


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_wide_strs_are_ordinary_strs(protocol):
    texts = [text for _, text in wide_texts()]
    got = _accel.loads(pickle.dumps(texts, protocol))
    oracle = pickle.loads(pickle.dumps(texts, protocol))
    assert got == texts
    for mine, theirs in zip(got, oracle):
        assert type(mine) is str
        assert sys.getsizeof(mine) == sys.getsizeof(theirs), mine
        assert hash(mine) == hash(theirs)
        assert max(map(ord, mine)) == max(map(ord, theirs))
        assert (mine + "\x00")[:-1] == mine
        assert mine.encode("utf-16-le") == theirs.encode("utf-16-le")
        assert sys.intern(mine) == mine
        assert {mine: 1}[theirs] == 1
        # The UTF-8 form CPython caches in the str, and its size after.
        assert utf8_cached(mine) == utf8_cached(theirs) == mine.encode()
        assert sys.getsizeof(mine) == sys.getsizeof(theirs), mine


def test_wide_strs_are_traced_by_tracemalloc():
    check_traced_by_tracemalloc([f"{alphabet}-{i}"
                                 for alphabet in WIDE_ALPHABETS.values()
                                 for i in range(50)])


def test_wide_strs_leave_no_memory_behind():
    data = pickle.dumps([text for _, text in wide_texts()], 5)
    _accel.loads(data)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            _accel.loads(data)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096


@pytest.mark.parametrize("protocol", [1, 4, 5])
@pytest.mark.parametrize("wide", ["\x80", "é", "€", "😀", "\udc80"])
def test_one_wide_character_at_every_position(protocol, wide):
    # Short strs are checked for ASCII a few words at a time (the first
    # and last 4 or 8 bytes, overlapping): a wide character anywhere in
    # them must be found.
    texts = ["a" * at + wide + "b" * (size - at - 1)
             for size in range(1, 41) for at in range(size)]
    data = pickle.dumps(texts, protocol)
    got = _accel.loads(data)
    assert got == texts
    # (the originals now hold their cached UTF-8 form: compare sizes with
    # fresh strs)
    oracle = pickle.loads(data)
    assert [sys.getsizeof(t) for t in got] == [sys.getsizeof(t) for t in oracle]
