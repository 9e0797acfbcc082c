"""Property tests: random object graphs, the standard library as oracle.

Graphs come from `strategies.object_graphs` (nested containers, shared
references and cycles, every scalar type and edge value, instances of the
catalogue's classes). For each protocol: brinery's ``dumps`` writes the
standard library's bytes; ``loads`` of those bytes gives the standard
library's graph; and across every (dumper, loader) pair the round trip
gives it too. Set BRINERY_HYPOTHESIS_EXAMPLES for longer runs.
"""

import pickle

from hypothesis import assume, given
from hypothesis import strategies as st

from compare import assert_same, assert_same_outcome, outcome
from strategies import SETTINGS, object_graphs

protocols = st.integers(0, pickle.HIGHEST_PROTOCOL)


def _stdlib_dumps(graph, proto):
    """The standard library's pickle; examples it refuses are dropped
    (test_dumps_same_bytes checks brinery refuses them the same way)."""
    try:
        return pickle.dumps(graph, proto)
    except Exception:
        assume(False)


@SETTINGS
@given(graph=object_graphs(), proto=protocols)
def test_dumps_same_bytes(impl, graph, proto):
    expected = outcome(pickle.dumps, graph, proto)
    actual = outcome(impl.dumps, graph, proto)
    if expected.error is None and actual.error is None:
        assert actual.value == expected.value
    else:
        assert_same_outcome(expected, actual)


@SETTINGS
@given(graph=object_graphs(), proto=protocols)
def test_loads_stdlib_bytes(impl, graph, proto):
    data = _stdlib_dumps(graph, proto)
    assert_same_outcome(outcome(pickle.loads, data),
                        outcome(impl.loads, data))


@SETTINGS
@given(graph=object_graphs(), proto=protocols)
def test_round_trip(pair, graph, proto):
    dumper, loader = pair
    expected = outcome(pickle.loads, _stdlib_dumps(graph, proto))
    actual = outcome(loader.loads, dumper.dumps(graph, proto))
    assert_same_outcome(expected, actual)


@SETTINGS
@given(graph=object_graphs(), proto=protocols)
def test_round_trip_gives_the_original(impl, graph, proto):
    assume(outcome(pickle.loads, _stdlib_dumps(graph, proto)).error is None)
    assert_same(graph, impl.loads(impl.dumps(graph, proto)))
