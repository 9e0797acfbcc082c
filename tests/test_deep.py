"""No recursion limit: deep structures pickle and unpickle.

CPython's pickler recurses in C and raises RecursionError near 1000 levels
(and crashes when the limit is raised too far); brinery's implementations
must not. A list nested 1,000,000 deep and a chain of 1,000,000 ordinary
instances round-trip; results are checked with loops, never recursion.
At depths the standard library can handle, the bytes are the standard
library's. Fast mode (no memo) refuses cycles with ValueError, as the
standard library does.

``BRINERY_DEEP_N`` changes the depth of the million-level tests.
"""

import io
import os
import pickle
import sys

import pytest

import catalogue
from compare import assert_same

DEEP = int(os.environ.get("BRINERY_DEEP_N", "1000000"))
# Deep enough to leave the pickler's shallow recursive path far behind,
# shallow enough for the tests that run at every protocol.
MEDIUM = 10_000
# The standard library's C pickler handles this depth by recursion.
STDLIB_SAFE = 300


def nested_lists(depth):
    root = []
    node = root
    for _ in range(depth):
        child = []
        node.append(child)
        node = child
    return root


def check_nested_lists(obj, depth):
    node = obj
    for level in range(depth):
        assert type(node) is list and len(node) == 1, f"level {level}"
        node = node[0]
    assert node == []


def nested_dicts(depth):
    root = {}
    node = root
    for i in range(depth):
        child = {}
        node["k"] = child
        node["i"] = i
        node = child
    return root


def check_nested_dicts(obj, depth):
    node = obj
    for i in range(depth):
        assert type(node) is dict and list(node) == ["k", "i"], f"level {i}"
        assert node["i"] == i
        node = node["k"]
    assert node == {}


def nested_tuples(depth):
    node = ()
    for i in range(depth):
        node = (node, i)
    return node


def check_nested_tuples(obj, depth):
    node = obj
    for i in reversed(range(depth)):
        assert type(node) is tuple and node[1] == i, f"level {i}"
        node = node[0]
    assert node == ()


def instance_chain(depth):
    head = catalogue.Plain(index=0)
    node = head
    for i in range(1, depth + 1):
        child = catalogue.Plain(index=i)
        node.next = child
        node = child
    return head


def check_instance_chain(obj, depth):
    node = obj
    for i in range(depth):
        assert type(node) is catalogue.Plain and node.index == i, f"{i}"
        node = node.next
    assert node.index == depth and not hasattr(node, "next")


def mixed(depth):
    """Alternating list, dict, tuple, instance and set levels."""
    node = "bottom"
    for i in range(depth):
        kind = i % 5
        if kind == 0:
            node = [node, i]
        elif kind == 1:
            node = {"v": node}
        elif kind == 2:
            node = (node,)
        elif kind == 3:
            node = catalogue.Slotted(node, i, None)
        else:
            node = catalogue.NewArgs(node, i)
    return node


SHAPES = {
    "lists": (nested_lists, check_nested_lists),
    "dicts": (nested_dicts, check_nested_dicts),
    "tuples": (nested_tuples, check_nested_tuples),
    "instances": (instance_chain, check_instance_chain),
}


def test_list_nested_a_million_deep(impl):
    obj = nested_lists(DEEP)
    data = impl.dumps(obj, 5)
    del obj
    check_nested_lists(impl.loads(data), DEEP)


def test_instance_chain_of_a_million(impl):
    obj = instance_chain(DEEP)
    data = impl.dumps(obj, 4)
    del obj
    check_instance_chain(impl.loads(data), DEEP)


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_shapes_round_trip(impl, shape, proto):
    build, check = SHAPES[shape]
    data = impl.dumps(build(MEDIUM), proto)
    check(impl.loads(data), MEDIUM)


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_deep_mixed_round_trip(impl, proto):
    if proto < 2:
        pytest.skip("Slotted needs protocol 2")
    obj = mixed(MEDIUM)
    result = impl.loads(impl.dumps(obj, proto))
    assert_same(obj, result)     # assert_same walks with its own stack


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("shape", list(SHAPES) + ["mixed"])
def test_same_bytes_as_stdlib_where_it_can(impl, shape, proto):
    build = mixed if shape == "mixed" else SHAPES[shape][0]
    obj = build(STDLIB_SAFE)
    try:
        expected = pickle.dumps(obj, proto)
    except Exception as exc:
        with pytest.raises(type(exc)):
            impl.dumps(obj, proto)
        return
    assert impl.dumps(obj, proto) == expected
    f = io.BytesIO()
    impl.Pickler(f, proto).dump(obj)
    assert f.getvalue() == expected


@pytest.mark.parametrize("shape", SHAPES)
def test_stdlib_pickles_of_deep_shapes_load(impl, shape):
    """Deep pickles written by hand-off from brinery load in brinery from
    a file too (the unpickler's file path has no recursion either)."""
    build, check = SHAPES[shape]
    data = impl.dumps(build(MEDIUM), 4)
    f = io.BytesIO(data + b"rest")
    check(impl.load(f), MEDIUM)
    assert f.read() == b"rest"


def _stack_depth():
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def test_depth_does_not_depend_on_the_recursion_limit(impl):
    """A structure far deeper than the recursion limit, with the limit set
    just above the current stack depth (plus the pickler's bounded use)."""
    old = sys.getrecursionlimit()
    obj = nested_lists(MEDIUM)
    try:
        sys.setrecursionlimit(_stack_depth() + 400)
        data = impl.dumps(obj, 2)
        result = impl.loads(data)
    finally:
        sys.setrecursionlimit(old)
    check_nested_lists(result, MEDIUM)


# ------------------------------------------------------------ fast mode

def _fast_dumps(module, obj, proto):
    f = io.BytesIO()
    p = module.Pickler(f, proto)
    p.fast = True
    p.dump(obj)
    return f.getvalue()


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", ["list:2", "dict:1001", "shared", "Plain",
                                  "tuple:4:nested", "frozensets-of-sizes",
                                  "Reduce5", "NewArgs", "str:9:len1",
                                  "many-refs", "sets-of-sizes"])
def test_fast_mode_same_bytes_as_stdlib(impl, name, proto):
    obj = catalogue.FACTORIES[name]()
    assert _fast_dumps(impl, obj, proto) == _fast_dumps(pickle, obj, proto)


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", ["recursive-list", "recursive-dict",
                                  "recursive-instance", "mutual-recursion"])
def test_fast_mode_refuses_cycles(impl, name, proto):
    obj = catalogue.FACTORIES[name]()
    with pytest.raises(ValueError) as expected:
        _fast_dumps(pickle, obj, proto)
    with pytest.raises(ValueError) as actual:
        _fast_dumps(impl, obj, proto)
    assert str(actual.value).startswith("fast mode: can't pickle cyclic "
                                        "objects including object type ")
    if name == "recursive-list":
        # One object in the cycle: both name it (type and address).
        assert str(actual.value) == str(expected.value)


def test_fast_mode_handles_deep_acyclic_structures(impl):
    obj = nested_lists(MEDIUM)
    check_nested_lists(impl.loads(_fast_dumps(impl, obj, 4)), MEDIUM)


def test_fast_mode_does_not_memoize_shared_objects(impl):
    shared = [1]
    result = impl.loads(_fast_dumps(impl, [shared, shared], 2))
    assert result == [[1], [1]] and result[0] is not result[1]


# ------------------------------------------------- endless reductions

class ReducesToItself:
    """__reduce__ gives arguments that hold the object itself: every save
    starts over (the object is memoized only after its arguments)."""

    def __init__(self, args=()):
        self.args = args

    def __reduce__(self):
        return (ReducesToItself, self.args)


def _self_reducing():
    obj = ReducesToItself()
    obj.args = ("s", obj)
    return obj


def _self_reducing_through_a_set():
    s = set()
    s.add(ReducesToItself((s,)))
    return s


@pytest.mark.parametrize("make", [_self_reducing,
                                  _self_reducing_through_a_set])
@pytest.mark.parametrize("proto", [0, 2, 3])
def test_endless_reduction_raises_recursion_error(impl, make, proto):
    # The standard library runs out of recursion; brinery, which has no
    # recursion limit, must not run out of memory instead.
    obj = make()
    with pytest.raises(RecursionError):
        pickle.dumps(obj, proto)
    with pytest.raises(RecursionError) as info:
        impl.dumps(obj, proto)
    assert "while pickling an object" in str(info.value)


@pytest.mark.parametrize("proto", [0, 2, 5])
def test_reduction_reached_again_through_a_list_is_not_endless(impl, proto):
    # Saved twice from the start (the list memoized in between stops it),
    # as the standard library does: same bytes, and it loads.
    inner = []
    obj = ReducesToItself((inner,))
    inner.append(obj)
    data = impl.dumps(obj, proto)
    assert data == pickle.dumps(obj, proto)
    back = impl.loads(data)
    assert back.args[0] is back       # ReducesToItself(inner)


def test_reductions_open_many_times_are_refused_only_past_the_bound(impl):
    # A tuple of k lists that each hold the object opens it k + 1 times
    # at once; the bound (1000 open saves of one object) is far above
    # what the standard library's recursion allows.
    obj = ReducesToItself()
    lists = tuple([obj] for _ in range(200))
    obj.args = (lists,)
    back = impl.loads(impl.dumps(obj, 2))
    assert all(item[0] is back for item in back.args)   # (lists)


class SelfNamed:
    """A class whose qualified name leads back to itself."""


SelfNamed.ref = SelfNamed
SelfNamed.__qualname__ = "SelfNamed.ref"


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_class_named_through_itself(impl, proto):
    # Below protocol 4 the nested name is getattr(parent, 'ref'), and the
    # parent is the class itself: the standard library (up to 3.12) runs
    # out of recursion, brinery must raise the same, not exhaust memory.
    try:
        expected = pickle.dumps(SelfNamed, proto)
    except RecursionError:
        with pytest.raises(RecursionError):
            impl.dumps(SelfNamed, proto)
    else:
        assert impl.dumps(SelfNamed, proto) == expected
        assert impl.loads(expected) is SelfNamed
