"""The opcode table: complete, consistent, and the C header generated from it.

The standard library's pickletools is the oracle for the facts of the wire
format (codes, names, protocols, argument kinds and stack effects).
"""

import pathlib
import pickletools

import pytest

from brinery import _opcodes

HEADER = (pathlib.Path(__file__).parent.parent / "src" / "brinery" /
          "_accel" / "opcodes.h")


def test_c_header_is_generated_from_the_table():
    assert HEADER.read_text() == _opcodes.c_header(), (
        "src/brinery/_accel/opcodes.h is stale: regenerate it with "
        "python -m brinery._opcodes --header > src/brinery/_accel/opcodes.h")


def test_every_stdlib_opcode_is_in_the_table():
    assert {op.name for op in pickletools.opcodes} == \
        set(_opcodes.OPCODE_BY_NAME)


@pytest.mark.parametrize("ref", pickletools.opcodes, ids=lambda o: o.name)
def test_opcode_facts_match_pickletools(ref):
    op = _opcodes.OPCODE_BY_NAME[ref.name]
    assert op.code == ref.code
    assert op.byte == ord(ref.code)
    assert op.proto == ref.proto
    assert (op.arg.name if op.arg else None) == \
        (ref.arg.name if ref.arg else None)
    if op.arg:
        assert op.arg.n == ref.arg.n
    assert [s.name for s in op.stack_before] == \
        [s.name for s in ref.stack_before]
    assert [s.name for s in op.stack_after] == \
        [s.name for s in ref.stack_after]
    # The summary is what dis(annotate=...) prints.
    assert op.summary == ref.doc.split("\n", 1)[0]


def test_byte_constants_match_the_table():
    for op in _opcodes.OPCODES:
        assert getattr(_opcodes, op.name) == bytes((op.byte,))


def test_default_protocol_is_the_running_pythons():
    import pickle
    assert _opcodes.DEFAULT_PROTOCOL == pickle.DEFAULT_PROTOCOL
    assert _opcodes.HIGHEST_PROTOCOL == pickle.HIGHEST_PROTOCOL
