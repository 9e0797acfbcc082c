"""Error notes: an exception raised while pickling says where it happened.

brinery adds the notes CPython 3.14 adds (PEP 678 ``__notes__``, innermost
first), in its words: "when serializing list item 3", "when serializing
dict item 'a'", "when serializing mod.Cls state", ... The running Python
(3.11-3.13) adds none, so these expectations are written from CPython
3.14's C pickler: a note per container level on the path to the failing
object, for a dict only when a value fails (not a key), "__new__
arguments" for NEWOBJ/NEWOBJ_EX arguments, "reconstructor"/"reconstructor
arguments" for REDUCE, "class", "state", "state setter", and "object"
around anything that goes wrong while saving a reduce value (but not for
sets, frozensets, bytes and bytearrays that older protocols save through
a reduce value internally).

The exception itself (type and message) is the standard library's.
"""

import pickle

import pytest

import catalogue
from compare import assert_same_error
from test_deep import nested_lists


class Unpicklable:
    """Refuses to be pickled, with a recognisable error."""

    def __reduce_ex__(self, proto):
        raise TypeError("refused")

    def __repr__(self):
        return "Unpicklable()"


BAD = Unpicklable()


def bad_function():
    """Pickled by name, which the fixture below makes wrong."""


class BadReduce:
    """__reduce__ returns a tuple the pickler refuses."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return self.value


def _deep_with_bad_bottom():
    deep = nested_lists(120)
    node = deep
    while node:
        node = node[0]
    node.append(BAD)
    return deep


def _below_2(notes_0_1, notes_2_up):
    """Notes that depend on the protocol: below 2 and from 2 on."""
    return lambda proto: notes_0_1 if proto < 2 else notes_2_up


_SUBCLASS_0_1 = ["when serializing tuple item 2",
                 "when serializing {0} reconstructor arguments",
                 "when serializing {0} object"]

# name -> (factory, notes, or a function of the protocol giving them).
CASES = {
    "list": (lambda: [1, 2, 3, BAD], ["when serializing list item 3"]),
    "list-after-batches": (lambda: list(range(2500)) + [BAD],
                           ["when serializing list item 2500"]),
    "dict-value": (lambda: {"a": 1, "b": BAD},
                   ["when serializing dict item 'b'"]),
    "dict-value-int-key": (lambda: {7: BAD}, ["when serializing dict item 7"]),
    "dict-key": (lambda: {BAD: 1}, []),
    "tuple": (lambda: (0, BAD), ["when serializing tuple item 1"]),
    "tuple-long": (lambda: (0, 1, 2, 3, BAD),
                   ["when serializing tuple item 4"]),
    "nested": (lambda: {"a": [0, (1, BAD)]},
               ["when serializing tuple item 1",
                "when serializing list item 1",
                "when serializing dict item 'a'"]),
    "deep": (_deep_with_bad_bottom, ["when serializing list item 0"] * 121),
    "instance-state": (lambda: catalogue.Plain(x=1, y=BAD),
                       ["when serializing dict item 'y'",
                        "when serializing catalogue.Plain state",
                        "when serializing catalogue.Plain object"]),
    "slots-state": (lambda: catalogue.Slotted(1, BAD),
                    ["when serializing dict item 'b'",
                     "when serializing tuple item 1",
                     "when serializing catalogue.Slotted state",
                     "when serializing catalogue.Slotted object"]),
    "getstate": (lambda: catalogue.WithState(BAD),
                 ["when serializing tuple item 1",
                  "when serializing catalogue.WithState state",
                  "when serializing catalogue.WithState object"]),
    "newargs": (lambda: catalogue.NewArgs(BAD, 1),
                ["when serializing tuple item 0",
                 "when serializing catalogue.NewArgs __new__ arguments",
                 "when serializing catalogue.NewArgs object"]),
    "list-subclass-items": (
        lambda: catalogue.MyList([1, BAD]),
        _below_2(["when serializing list item 1"]
                 + [n.format("catalogue.MyList") for n in _SUBCLASS_0_1],
                 ["when serializing catalogue.MyList item 1",
                  "when serializing catalogue.MyList object"])),
    "dict-subclass-items": (
        lambda: catalogue.MyDict(k=BAD),
        _below_2(["when serializing dict item 'k'"]
                 + [n.format("catalogue.MyDict") for n in _SUBCLASS_0_1],
                 ["when serializing catalogue.MyDict item 'k'",
                  "when serializing catalogue.MyDict object"])),
    "dict-subclass-key": (
        lambda: catalogue.MyDict({BAD: 1}),
        _below_2([n.format("catalogue.MyDict") for n in _SUBCLASS_0_1],
                 ["when serializing catalogue.MyDict object"])),
    "reduce-args": (lambda: BadReduce((catalogue.rebuild, (1, BAD))),
                    ["when serializing tuple item 1",
                     "when serializing test_notes.BadReduce reconstructor "
                     "arguments",
                     "when serializing test_notes.BadReduce object"]),
    "reduce-callable": (lambda: BadReduce((bad_function, ())),
                        ["when serializing test_notes.BadReduce "
                         "reconstructor",
                         "when serializing test_notes.BadReduce object"]),
    "reduce-state": (lambda: BadReduce((catalogue.rebuild, (), [BAD])),
                     ["when serializing list item 0",
                      "when serializing test_notes.BadReduce state",
                      "when serializing test_notes.BadReduce object"]),
    "reduce-state-setter": (
        lambda: BadReduce((catalogue.rebuild, (), 1, None, None,
                           bad_function)),
        ["when serializing test_notes.BadReduce state setter",
         "when serializing test_notes.BadReduce object"]),
    "reduce-state-with-setter": (
        lambda: BadReduce((catalogue.rebuild, (), [BAD], None, None,
                           catalogue.set_state)),
        ["when serializing list item 0",
         "when serializing test_notes.BadReduce state",
         "when serializing test_notes.BadReduce object"]),
    "reduce-listitems": (
        lambda: BadReduce((catalogue.rebuild, (), None, iter([0, BAD]))),
        ["when serializing test_notes.BadReduce item 1",
         "when serializing test_notes.BadReduce object"]),
    "reduce-dictitems": (
        lambda: BadReduce((catalogue.rebuild, (), None, None,
                           iter([("a", 1), ("b", BAD)]))),
        ["when serializing test_notes.BadReduce item 'b'",
         "when serializing test_notes.BadReduce object"]),
    "reduce-dictitems-key": (
        lambda: BadReduce((catalogue.rebuild, (), None, None,
                           iter([("a", 1), (BAD, 2)]))),
        ["when serializing test_notes.BadReduce object"]),
    "reduce-dictitems-not-pairs": (
        lambda: BadReduce((catalogue.rebuild, (), None, None,
                           iter([("a", 1), 5]))),
        ["when serializing test_notes.BadReduce object"]),
    "reduce-not-tuple": (lambda: BadReduce([catalogue.rebuild, ()]),
                         ["when serializing test_notes.BadReduce object"]),
    "reduce-too-short": (lambda: BadReduce((catalogue.rebuild,)),
                         ["when serializing test_notes.BadReduce object"]),
    "reduce-not-callable": (lambda: BadReduce((1, ())),
                            ["when serializing test_notes.BadReduce "
                             "object"]),
    "reduce-args-not-tuple": (lambda: BadReduce((catalogue.rebuild, [1])),
                              ["when serializing test_notes.BadReduce "
                               "object"]),
    "reduce-in-list": (
        lambda: [BadReduce((catalogue.rebuild, (BAD,)))],
        ["when serializing tuple item 0",
         "when serializing test_notes.BadReduce reconstructor arguments",
         "when serializing test_notes.BadReduce object",
         "when serializing list item 0"]),
    "reduce-raises": (lambda: [0, BAD], ["when serializing list item 1"]),
    "no-note-at-top": (lambda: BAD, []),
    "global-at-top": (lambda: bad_function, []),
    # At protocol 4+ a set is saved with ADDITEMS; below, as set(list),
    # with no "object" note (CPython saves it as a reduce value without
    # going through the path that adds it).
    "set": (lambda: {BAD},
            lambda proto: ["when serializing set element"] if proto >= 4
            else ["when serializing list item 0",
                  "when serializing tuple item 0",
                  "when serializing set reconstructor arguments"]),
    "frozenset": (lambda: frozenset([BAD]),
                  lambda proto: ["when serializing frozenset element"]
                  if proto >= 4
                  else ["when serializing list item 0",
                        "when serializing tuple item 0",
                        "when serializing frozenset reconstructor "
                        "arguments"]),
    # NEWOBJ_EX at protocol 4+; below, functools.partial(cls.__new__,
    # cls, *args, **kwargs), whose state holds the arguments.
    "newargs-ex": (
        lambda: catalogue.NewArgsEx(BAD, key=1),
        lambda proto: [
            "when serializing tuple item 0",
            "when serializing catalogue.NewArgsEx __new__ arguments",
            "when serializing catalogue.NewArgsEx object"] if proto >= 4
        else [
            "when serializing tuple item 1",
            "when serializing tuple item 1",
            "when serializing functools.partial state",
            "when serializing functools.partial object",
            "when serializing catalogue.NewArgsEx reconstructor",
            "when serializing catalogue.NewArgsEx object"]),
    "newargs-ex-kwargs": (
        lambda: catalogue.NewArgsEx(1, key=BAD),
        lambda proto: [
            "when serializing dict item 'key'",
            "when serializing catalogue.NewArgsEx __new__ arguments",
            "when serializing catalogue.NewArgsEx object"] if proto >= 4
        else [
            "when serializing dict item 'key'",
            "when serializing tuple item 2",
            "when serializing functools.partial state",
            "when serializing functools.partial object",
            "when serializing catalogue.NewArgsEx reconstructor",
            "when serializing catalogue.NewArgsEx object"]),
}

# Objects the standard library refuses below protocol 2 for other reasons.
_NEEDS_PROTOCOL_2 = {"slots-state", "newargs", "newargs-ex",
                     "newargs-ex-kwargs"}


@pytest.fixture(autouse=True)
def _unfindable_function(monkeypatch):
    """bad_function's qualified name does not lead back to it."""
    monkeypatch.setattr(bad_function, "__qualname__", "no.such.function")


def _raise_from(dumps, obj, proto):
    with pytest.raises(Exception) as info:
        dumps(obj, proto)
    return info.value


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", CASES)
def test_notes(impl, name, proto):
    factory, notes = CASES[name]
    if proto < 2 and name in _NEEDS_PROTOCOL_2:
        pytest.skip("refused below protocol 2")
    if callable(notes):
        notes = notes(proto)
    expected = _raise_from(pickle.dumps, factory(), proto)
    actual = _raise_from(impl.dumps, factory(), proto)
    assert_same_error(expected, actual)
    assert getattr(actual, "__notes__", []) == notes


def test_notes_from_dump_to_a_file(impl):
    import io
    with pytest.raises(TypeError) as info:
        impl.Pickler(io.BytesIO(), 2).dump({"k": [0, BAD]})
    assert info.value.__notes__ == ["when serializing list item 1",
                                    "when serializing dict item 'k'"]


def test_notes_do_not_accumulate_across_dumps(impl):
    """A pickler reused after an error starts with a clean slate."""
    import io
    pickler = impl.Pickler(io.BytesIO(), 2)
    for _ in range(2):
        with pytest.raises(TypeError) as info:
            pickler.dump([BAD])
        assert info.value.__notes__ == ["when serializing list item 0"]
        del info.value.__notes__
