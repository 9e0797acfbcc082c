"""Unpickler.find_class, on every implementation: what it resolves and
when it must look again.

The C implementation remembers what find_class found (importing is its
slow part; the pure one imports every time: in Python the checks a memory
needs cost more than __import__ of a loaded module). These tests check, on
every implementation, that the memory never shows: a rebound attribute,
a replaced or removed module, an attribute that only a module __getattr__
provides, an import hook, the audit event and protocol-dependent rules
(dotted names, Python 2 names) all behave as if every call imported anew.
"""

import builtins
import collections
import io
import sys
import types

import pytest


MODULE = "brinery_test_find_class"


@pytest.fixture
def module():
    mod = types.ModuleType(MODULE)
    sys.modules[MODULE] = mod
    try:
        yield mod
    finally:
        sys.modules.pop(MODULE, None)


def global_pickle(name, proto):
    """A pickle of MODULE.name written by hand (the object need not exist)."""
    if proto >= 4:
        head = b"\x80\x04\x95" + (len(MODULE) + len(name) + 6).to_bytes(8, "little")
        return (head + b"\x8c" + bytes([len(MODULE)]) + MODULE.encode()
                + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93.")
    prefix = b"\x80\x02" if proto == 2 else b""
    return prefix + b"c" + MODULE.encode() + b"\n" + name.encode() + b"\n."


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_rebinding_and_replacing_are_seen(impl, module, proto):
    data = global_pickle("target", proto)
    module.target = first = object()
    assert impl.loads(data) is first
    assert impl.loads(data) is first
    module.target = second = object()
    assert impl.loads(data) is second
    replacement = types.ModuleType(MODULE)
    replacement.target = third = object()
    sys.modules[MODULE] = replacement
    assert impl.loads(data) is third
    del replacement.target
    with pytest.raises(AttributeError, match="Can't get attribute"):
        impl.loads(data)
    replacement.__getattr__ = lambda name: ("from __getattr__", name)
    assert impl.loads(data) == ("from __getattr__", "target")
    replacement.__getattr__ = lambda name: ("changed", name)
    assert impl.loads(data) == ("changed", "target")
    del sys.modules[MODULE]
    with pytest.raises(ModuleNotFoundError):
        impl.loads(data)


def test_a_module_subclass_is_asked_every_time(impl, module):
    calls = []

    class Tracing(types.ModuleType):
        def __getattribute__(self, name):
            calls.append(name)
            return super().__getattribute__(name)

    tracing = Tracing(MODULE)
    tracing.target = 42
    sys.modules[MODULE] = tracing
    data = global_pickle("target", 0)
    assert impl.loads(data) == 42
    assert impl.loads(data) == 42
    assert calls.count("target") == 2


def test_dunder_and_dotted_names(impl, module):
    module.__version__ = "1.0"
    data = global_pickle("__version__", 0)
    assert impl.loads(data) == "1.0"
    module.__version__ = "2.0"
    assert impl.loads(data) == "2.0"
    module.Outer = type("Outer", (), {"Inner": "inner"})
    dotted = global_pickle("Outer.Inner", 4)
    assert impl.loads(dotted) == "inner"
    module.Outer.Inner = "changed"
    assert impl.loads(dotted) == "changed"
    # Below protocol 4 a dotted name is one attribute name.
    setattr(module, "Outer.Inner", "flat")
    assert impl.loads(global_pickle("Outer.Inner", 0)) == "flat"
    setattr(module, "<locals>", "odd")
    assert impl.loads(global_pickle("<locals>", 0)) == "odd"
    with pytest.raises(AttributeError, match="local attribute"):
        impl.loads(global_pickle("<locals>", 4))


def test_python2_names_are_mapped_below_protocol_3(impl):
    data = b"c__builtin__\nxrange\n."
    assert impl.loads(data) is range
    assert impl.loads(data) is range
    with pytest.raises(ModuleNotFoundError):
        impl.loads(data, fix_imports=False)
    assert impl.loads(data) is range


def test_every_call_is_audited(impl):
    events = []

    def hook(event, args):
        if event == "pickle.find_class" and events is not None:
            events.append(tuple(args))

    sys.addaudithook(hook)   # hooks cannot be removed: this one goes quiet
    try:
        data = b"\x80\x02]q\x00(c__builtin__\nlen\nq\x01h\x01ccollections\nOrderedDict\ne."
        impl.loads(data)
        impl.loads(data)
        assert events == [("__builtin__", "len"),
                          ("collections", "OrderedDict")] * 2
    finally:
        events = None


def test_an_import_hook_sees_every_import(impl, monkeypatch):
    data = b"ccollections\nOrderedDict\n."
    assert impl.loads(data) is collections.OrderedDict   # remembered
    imported = []
    real_import = builtins.__import__

    def spying_import(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spying_import)
    impl.loads(data)
    impl.loads(data)
    assert imported.count("collections") == 2


def test_a_subclass_find_class_is_called(impl, module):
    module.target = "real"
    data = global_pickle("target", 0)
    assert impl.loads(data) == "real"

    class Redirecting(impl.Unpickler):
        def find_class(self, mod, name):
            return ("redirected", mod, name)

    assert (Redirecting(io.BytesIO(data)).load()
            == ("redirected", MODULE, "target"))


def test_odd_arguments_behave_as_before(impl):
    unpickler = impl.Unpickler(io.BytesIO(b"N."))
    unpickler.load()
    with pytest.raises(TypeError):
        unpickler.find_class(["builtins"], "len")
    with pytest.raises(TypeError):
        unpickler.find_class("builtins", 2)
    assert unpickler.find_class("builtins", "len") is len
    assert unpickler.find_class("builtins", "len") is len
