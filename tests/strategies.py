"""Hypothesis strategies for object graphs, and the settings they run with.

`object_graphs()` draws a tree of containers (lists, tuples, dicts, sets,
frozensets, list/dict subclasses, instances of the module-level classes of
`catalogue`) over every kind of scalar (the edge values of the catalogue
included: -0.0, NaN, huge ints, lone surrogates, strings around 255/256/
65536 bytes), then adds links from mutable nodes to other nodes: links to
an ancestor make cycles, links elsewhere make shared references.

Example counts: ``BRINERY_HYPOTHESIS_EXAMPLES`` (default 40) sets how many
examples each property test draws; e.g. ``BRINERY_HYPOTHESIS_EXAMPLES=5000
pytest tests/test_hypothesis.py`` for a long run.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import catalogue

EXAMPLES = int(os.environ.get("BRINERY_HYPOTHESIS_EXAMPLES", "40"))

SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    # The impl and pair fixtures are stateless namespaces: sharing them
    # across examples is safe.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture])

# Any code point, surrogates included (st.text() leaves them out).
_any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                          blacklist_categories=())

# Hypothesis prints examples with repr(), which refuses ints of more than
# 4300 digits: the huge edge values are replaced by one of 3011 digits.
_INT_EDGES = [i for i in catalogue.INT_EDGES if i.bit_length() < 10_000]
_INT_EDGES += [2**10_000, -2**10_000]


class _Pick:
    """values[i], with a short repr: hypothesis prints strategies, and the
    repr of sampled_from() over 64 KiB strings costs gigabytes."""

    def __init__(self, name, values):
        self.name = name
        self.values = values

    def __call__(self, index):
        return self.values[index]

    def __repr__(self):
        return self.name


def _one_of_values(name, values):
    return st.integers(0, len(values) - 1).map(_Pick(name, values))


# Hypothesis prints strategies in its reports; st.deferred keeps the repr
# of these nested strategies to one line (expanded, it reaches megabytes).
hashable_scalars = st.deferred(lambda: _hashable_scalars)
scalars = st.deferred(lambda: _scalars)
hashable = st.deferred(lambda: _hashable)
trees = st.deferred(lambda: _trees)

_hashable_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), _one_of_values("INT_EDGES", _INT_EDGES),
    st.floats(allow_nan=True, allow_infinity=True),
    _one_of_values("FLOAT_EDGES", catalogue.FLOAT_EDGES),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.text(_any_char, max_size=20),
    _one_of_values("STR_EDGES", catalogue.STR_EDGES),
    st.binary(max_size=20),
    _one_of_values("BYTES_EDGES", catalogue.BYTES_EDGES),
    st.sampled_from([catalogue.Plain, catalogue.Outer.Inner, len,
                     catalogue.module_function, catalogue.Color.RED,
                     Ellipsis, type(None)]),
)

_scalars = st.one_of(
    hashable_scalars,
    st.binary(max_size=20).map(bytearray),
)

_hashable = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(
        st.tuples(inner, inner), st.lists(inner, max_size=4).map(tuple),
        st.frozensets(inner, max_size=4)),
    max_leaves=6)


def _instances(children):
    names = st.sampled_from(["a", "b", "attr", "x_y", "é"])
    return st.one_of(
        st.dictionaries(names, children, max_size=3).map(
            lambda attrs: catalogue.Plain(**attrs)),
        st.builds(catalogue.Slotted, children, children, children),
        st.builds(catalogue.WithState, children),
        st.builds(catalogue.NewArgs, children, children),
        st.builds(lambda args, kw: catalogue.NewArgsEx(*args, **kw),
                  st.lists(children, max_size=2),
                  st.dictionaries(names, children, max_size=2)),
        st.lists(children, max_size=4).map(catalogue.MyList),
        st.dictionaries(hashable, children, max_size=3).map(
            catalogue.MyDict),
    )


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable, children, max_size=5),
        st.sets(hashable, max_size=5),
        st.frozensets(hashable, max_size=5),
        _instances(children),
        # Sets of instances (hashed by identity), told apart by a serial
        # number so that compare.assert_same can pair them up.
        st.lists(st.integers(0, 10**6), max_size=3, unique=True).map(
            lambda serials: {catalogue.Plain(serial=n) for n in serials}),
    )


_trees = st.recursive(scalars, _containers, max_leaves=25)

_MUTABLE = (list, dict, catalogue.Plain)


def _nodes(root):
    """Every container and instance reachable from root (iteratively)."""
    seen = {}
    todo = [root]
    while todo:
        node = todo.pop()
        if type(node) in (int, float, str, bytes, bool, complex) or \
                node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        if isinstance(node, (list, tuple, set, frozenset)):
            todo.extend(node)
        elif isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        if isinstance(getattr(node, "__dict__", None), dict):
            todo.extend(node.__dict__.values())
        if isinstance(node, catalogue.Slotted):
            todo.extend(getattr(node, name) for name in ("a", "b")
                        if hasattr(node, name))
    return list(seen.values())


@st.composite
def object_graphs(draw):
    """A tree with extra links: shared references and cycles."""
    root = draw(trees)
    if type(root) not in _MUTABLE:
        root = draw(st.sampled_from([[root], {"root": root},
                                     catalogue.Plain(root=root)]))
    nodes = _nodes(root)
    mutable = [n for n in nodes if type(n) in _MUTABLE]
    # Keyword arguments of NewArgsEx must keep str keys.
    kwargs_dicts = {id(n.new_args[1]) for n in nodes
                    if isinstance(n, catalogue.NewArgsEx)}
    for _ in range(draw(st.integers(0, 6))):
        source = draw(st.sampled_from(mutable))
        target = draw(st.sampled_from(nodes))
        if type(source) is list:
            source.insert(draw(st.integers(0, len(source))), target)
        elif type(source) is dict:
            keys = st.text(max_size=5) if id(source) in kwargs_dicts \
                else hashable_scalars
            source[draw(keys)] = target
        else:
            setattr(source, draw(st.sampled_from(["link", "a", "other"])),
                    target)
    return root
