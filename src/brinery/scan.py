"""Static scanning of pickles: what a file would import and call.

``scan(source) -> Report`` reads pickles without importing or calling
anything they name. It runs the safe loader's own machine
(`brinery.safe.SafeUnpickler`: the same opcode table, the same argument
parsing, the same limits, the same policy) with a session that answers
every global with a placeholder and records every import, call, BUILD,
persistent ID, extension code and out-of-band buffer instead of
performing it. Because the bytes are read by the very code that loads
them, there is no parser differential: a FRAME that splits an opcode, an
``I0x1`` integer, a text argument cut at a NUL byte mean the same here as
when loading. Data opcodes build real values (so that STACK_GLOBAL names
assembled from memoized strings are known exactly); calls to builtin data
constructors are modelled with builtins; everything else is a placeholder
that carries what made it. The machine is a loop: linear time, no
recursion.

The verdict is one of "safe", "unsafe", "malformed", "resource":

- "unsafe": something the default policy (plus ``allow``/``preset``)
  refuses: a global, a call or its arguments, a BUILD or item opcode on
  the wrong object, a persistent ID, an unregistered extension code.
  Findings made before a stream turns out malformed still count: a
  loader would have acted on them before failing;
- "resource": a `Limits` value was exceeded (the safe loader would refuse);
- "malformed": a pickle could not be read to its STOP (never "safe");
- "safe": the safe loader with the same policy would accept it.

Containers: several pickles in a row (with the memo shared, as when one
Unpickler reads them in turn) and data after the last STOP; zip files
(PyTorch checkpoints): every member is examined by content whatever its
name, read through its local header with CRC errors ignored, and the bytes
before the archive are scanned too (pickle/zip polyglots); NumPy .npy and
.npz (object arrays hold a pickle); gzip, bz2, xz and zlib streams
(joblib).

``main(argv)`` is the ``brinery scan`` command line: exit 0 when every
file is safe, 1 when one is unsafe or exceeds the limits, 2 when one is
malformed or cannot be read.
"""

import argparse
import ast
import bz2
import copyreg
import encodings.cp437  # noqa: F401  (zip names: never imported mid-scan)
import io
import json
import lzma
import mmap
import os
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass, field

from ._errors import PickleLimitError, UnpicklingError, UnsafePickleError
from ._opcodes import OPCODE_BY_BYTE
from ._unpickler import compat_name
from .safe import (DEFAULT_LIMITS, FOREIGN, Session,
                   _describe, _NOT_TARGETS, _policy_for,
                   _PySafeUnpickler as SafeUnpickler)

__all__ = ["scan", "Report", "Part", "main", "VERDICTS"]

VERDICTS = ("safe", "malformed", "resource", "unsafe")   # by severity
_SEVERITY = {v: i for i, v in enumerate(VERDICTS)}


def _worst(verdicts, default="safe"):
    worst = default
    for verdict in verdicts:
        if _SEVERITY[verdict] > _SEVERITY[worst]:
            worst = verdict
    return worst


# ------------------------------------------------------------ placeholders

class GlobalRef:
    """A global the pickle names: never imported."""

    __slots__ = ("name", "rule")

    def __init__(self, name, rule):
        self.name = name
        self.rule = rule

    def __repr__(self):
        return f"<global {self.name}>"


class ResultRef:
    """What an allowed call, NEWOBJ or INST would have returned."""

    __slots__ = ("desc", "kind")

    def __init__(self, desc, kind):
        self.desc = desc
        self.kind = kind

    def _safe_description(self):
        return self.desc

    def __repr__(self):
        return f"<{self.desc}>"


class OpaqueRef:
    """An object from outside the pickle (persistent ID, buffer)."""

    __slots__ = ("desc",)

    def __init__(self, desc):
        self.desc = desc

    def _safe_description(self):
        return self.desc

    def __repr__(self):
        return f"<{self.desc}>"


_REFS = (GlobalRef, ResultRef, OpaqueRef)


def _brief(obj, room=120, depth=0):
    """A short, safe description of a value (never a full repr; nested
    containers three levels deep at most)."""
    t = type(obj)
    if t in _REFS:
        text = repr(obj)
    elif t in (tuple, list) and depth >= 3:
        text = f"{t.__name__} of {len(obj)} items"
    elif t in (tuple, list):
        inner = ", ".join(_brief(x, 40, depth + 1) for x in obj[:4])
        if len(obj) > 4:
            inner += f", ... ({len(obj)} items)"
        text = f"({inner})" if t is tuple else f"[{inner}]"
    elif t is dict:
        text = f"{{dict of {len(obj)} items}}"
    else:
        text = _describe(obj)
    return text if len(text) <= room else text[:room - 3] + "..."


# ---------------------------------------------------------------- session

class ScanSession(Session):
    """A Session that decides like the loader's but performs nothing.

    Every refusal is recorded as a reason and the scan goes on with a
    placeholder; limits still stop it (verdict "resource").
    """

    symbolic = True

    def __init__(self, policy=None, limits=None, persistent_load=None):
        super().__init__(policy, limits, persistent_load)
        self.machine = None
        self.allow_persistent = False
        self.reasons = []
        self.found_globals = []
        self.calls = []
        self.persistent_ids = []
        self.ext_codes = []
        self.buffers = 0

    def _where(self):
        machine = self.machine
        offset = machine.op_offset
        op = OPCODE_BY_BYTE.get(machine._data[offset - machine._base])
        return (op.name if op is not None else "?"), offset

    def _flag(self, message):
        op, offset = self._where()
        self.reasons.append(f"{message} ({op} at byte {offset})")

    def global_rule(self, obj):
        return obj.rule if type(obj) is GlobalRef else None

    def kind_of(self, obj):
        t = type(obj)
        if t is ResultRef:
            return obj.kind
        if t is GlobalRef or t is OpaqueRef:
            return FOREIGN
        return None

    def _name_of(self, obj):
        return obj.name if type(obj) is GlobalRef else _brief(obj, 60)

    # -- globals

    def resolve(self, module, name, proto, fix_imports):
        op, offset = self._where()
        try:
            rule = self.check_global(module, name, proto, fix_imports)
        except UnsafePickleError as exc:
            rule = None
            self._flag(str(exc))
        entry = {"module": module, "name": name, "opcode": op,
                 "offset": offset, "allowed": rule is not None}
        if proto < 3 and fix_imports:
            mapped = compat_name(module, name)
            if mapped != (module, name):
                entry["module"], entry["name"] = mapped
                entry["written_as"] = f"{module}.{name}"
        self.found_globals.append(entry)
        self.charge(64)
        return GlobalRef(f"{entry['module']}.{entry['name']}", rule)

    def ext(self, code, proto, fix_imports, find_class):
        op, offset = self._where()
        key = copyreg._inverted_registry.get(code)
        if type(key) is not tuple or len(key) != 2 or \
                not all(type(k) is str for k in key):
            self.ext_codes.append({"code": code, "offset": offset,
                                   "module": None, "name": None})
            self._flag(f"extension code {code} is not registered here: "
                       f"the loading process's copyreg registry decides "
                       f"what it loads")
            return GlobalRef(f"<extension code {code}>", None)
        self.ext_codes.append({"code": code, "offset": offset,
                               "module": key[0], "name": key[1]})
        return find_class(*key)

    # -- calls

    def _call(self, opname, func, args, check, model_args=None):
        op, offset = self._where()
        self.calls.append({"opcode": op, "offset": offset,
                           "callable": self._name_of(func),
                           "args": _brief(args)})
        try:
            cost, kind = check()
        except UnsafePickleError as exc:
            self._flag(str(exc))
            return ResultRef(f"result of {self._name_of(func)}", None)
        self.charge(cost)
        rule = self.global_rule(func)
        if kind is None and rule is not None and rule.model is not None:
            try:
                return rule.model(model_args if model_args is not None
                                  else args)
            except Exception as exc:
                raise UnpicklingError(
                    f"{rule.name}() would fail: {type(exc).__name__}") \
                    from exc
        return ResultRef(f"{self._name_of(func)}(...)", kind)

    def reduce(self, func, args):
        return self._call("REDUCE", func, args,
                          lambda: self.check_call(func, args))

    def newobj(self, cls, args, kwargs):
        opname = "NEWOBJ_EX" if kwargs else "NEWOBJ"
        return self._call(opname, cls, args if not kwargs else
                          (args, kwargs),
                          lambda: self.check_new(cls, args, kwargs, opname),
                          model_args=args)

    def instantiate(self, cls, args, opname="INST"):
        rule = self.global_rule(cls)
        if not args and rule is not None and rule.new is not None:
            return self._call(opname, cls, args,
                              lambda: self.check_new(cls, args, {}, opname))
        return self._call(opname, cls, args,
                          lambda: self.check_call(cls, args, opname))

    # -- BUILD and items

    def _check_target(self, obj, opname):
        if self.kind_of(obj) is FOREIGN or isinstance(obj, _NOT_TARGETS):
            raise UnsafePickleError(
                f"{opname} on {self._name_of(obj)} is not allowed",
                what=f"{opname} {self._name_of(obj)}")

    def build(self, inst, state):
        op, offset = self._where()
        self.calls.append({"opcode": "BUILD", "offset": offset,
                           "callable": f"BUILD on {self._name_of(inst)}",
                           "args": _brief(state)})
        try:
            self.charge(self.check_build(inst, state))
        except UnsafePickleError as exc:
            self._flag(str(exc))

    def add_items(self, target, opname, items):
        try:
            cost = self.check_items(target, opname, items)
        except UnsafePickleError as exc:
            self._flag(str(exc))
            return
        if type(target) in (list, dict, set):
            super().add_items(target, opname, items)
        else:
            self.charge(cost)

    # -- persistent IDs and buffers

    def persistent(self, pid):
        op, offset = self._where()
        self.persistent_ids.append({"offset": offset, "pid": _brief(pid)})
        if not self.allow_persistent:
            self._flag(f"persistent ID {_brief(pid, 60)}: the safe loader "
                       f"refuses persistent IDs unless given "
                       f"persistent_load")
        self.charge(64)
        return OpaqueRef(f"persistent object {_brief(pid, 60)}")


class _ScanMachine(SafeUnpickler):
    """The safe loader's machine with a ScanSession."""

    _session_class = ScanSession

    def _setup(self, policy, limits, persistent_load):
        super()._setup(policy, limits, persistent_load)
        self._session.machine = self

    def _is_type(self, obj):
        return type(obj) is GlobalRef or isinstance(obj, type)

    def load_next_buffer(self, pos):
        self._session.buffers += 1
        self._session.charge(64)
        self.stack.append(OpaqueRef("out-of-band buffer"))
        return pos

    def load_readonly_buffer(self, pos):
        if type(self._top()) in _REFS:
            return pos
        return super().load_readonly_buffer(pos)

    def scan_from(self, start):
        """Run one pickle from byte start; return the STOP position."""
        self._start = start
        self.stop_pos = None
        self.load()
        return self.stop_pos

    def _run(self, pos):
        self.stop_pos = super()._run(pos)
        return self.stop_pos


# ---------------------------------------------------------------- reports

@dataclass
class Part:
    """One pickle stream inside the scanned source."""

    name: str
    offset: int
    end: int = None
    protocol: int = 0
    verdict: str = "safe"
    reasons: list = field(default_factory=list)
    error: str = None
    globals: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    persistent_ids: list = field(default_factory=list)
    ext_codes: list = field(default_factory=list)
    buffers: int = 0
    found: bool = False        # anything recorded (even if it then broke)

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "found"}


@dataclass
class Report:
    """What scan() found in one source."""

    source: str
    verdict: str = "safe"
    reasons: list = field(default_factory=list)
    parts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    container: str = "pickle"

    @property
    def globals(self):
        return [g for p in self.parts for g in p.globals]

    @property
    def calls(self):
        return [c for p in self.parts for c in p.calls]

    @property
    def persistent_ids(self):
        return [x for p in self.parts for x in p.persistent_ids]

    @property
    def ext_codes(self):
        return [x for p in self.parts for x in p.ext_codes]

    @property
    def protocol(self):
        return max((p.protocol for p in self.parts), default=None)

    def to_dict(self):
        return {"source": self.source, "verdict": self.verdict,
                "reasons": self.reasons, "container": self.container,
                "protocol": self.protocol, "notes": self.notes,
                "parts": [p.to_dict() for p in self.parts]}

    def _add(self, part):
        self.parts.append(part)
        for reason in part.reasons:
            self.reasons.append(f"{part.name}: {reason}")
        self.verdict = _worst((self.verdict, part.verdict))

    def _fail(self, verdict, reason):
        self.reasons.append(reason)
        self.verdict = _worst((self.verdict, verdict))


# ---------------------------------------------------------------- scanning

class _Scanner:
    def __init__(self, policy, limits, allow_persistent, encoding,
                 fix_imports):
        self.policy = policy
        self.limits = limits
        self.allow_persistent = allow_persistent
        self.encoding = encoding
        self.fix_imports = fix_imports
        self.budget = limits.max_input_bytes    # decompressed bytes

    # -- pickle streams

    def _machine(self, data):
        machine = _ScanMachine._for_bytes(
            data, self.fix_imports, self.encoding, "strict", None,
            policy=self.policy, limits=self.limits)
        machine._session.allow_persistent = self.allow_persistent
        return machine

    def _run_one(self, machine, start, name):
        """Scan the pickle at data[start:]; return (Part, end or None)."""
        part = Part(name=name, offset=start)
        session = machine._session
        marks = (len(session.reasons), len(session.found_globals),
                 len(session.calls), len(session.persistent_ids),
                 len(session.ext_codes), session.buffers)
        end = None
        try:
            end = machine.scan_from(start)
        except PickleLimitError as exc:
            part.verdict = "resource"
            part.error = str(exc)
        except UnsafePickleError as exc:
            session.reasons.append(str(exc))
        except UnpicklingError as exc:
            part.verdict = "malformed"
            part.error = str(exc)
        part.end = end
        part.protocol = machine.proto
        part.reasons = session.reasons[marks[0]:]
        part.globals = session.found_globals[marks[1]:]
        part.calls = session.calls[marks[2]:]
        part.persistent_ids = session.persistent_ids[marks[3]:]
        part.ext_codes = session.ext_codes[marks[4]:]
        part.buffers = session.buffers - marks[5]
        part.found = bool(part.reasons or part.globals or part.calls or
                          part.persistent_ids or part.ext_codes)
        if part.reasons:
            part.verdict = "unsafe"
        elif part.error is not None:
            part.reasons = [part.error]
        return part, end

    def pickles(self, report, data, name, required=True):
        """Every pickle in data, one after another from offset 0."""
        if not len(data):
            if required:
                report._fail("malformed", f"{name}: empty")
            return
        machine = self._machine(data)
        start = 0
        index = 0
        while start < len(data):
            label = name if index == 0 else f"{name}#{index + 1}"
            # Each pickle with a fresh memo (a new Unpickler, as most
            # readers do); if that fails for want of a memo entry, again
            # with the memo so far (one Unpickler reading them in turn).
            shared = machine.memo
            machine.memo = []
            part, end = self._run_one(machine, start, label)
            if index and part.error is not None and \
                    "Memo value not found" in part.error:
                machine.memo = shared
                part, end = self._run_one(machine, start, label)
            if end is None and not part.found and \
                    not (required and index == 0):
                part = None             # not a pickle: just data
            if part is None:
                if index:
                    report.notes.append(
                        f"{name}: {len(data) - start} bytes after the last "
                        f"pickle (byte {start}) are not a pickle")
                return
            report._add(part)
            if end is None:
                return
            start = end
            index += 1

    # -- containers

    def blob(self, report, data, name, depth=0):
        """Whatever data is: npy, compressed, zip (and what precedes it),
        or pickles."""
        head = bytes(data[:8])
        if head.startswith(b"\x93NUMPY"):
            self._container(report, depth, "npy")
            self.npy(report, data, name)
            return
        codec = _compression(head)
        if codec is not None:
            self._container(report, depth, codec)
            inner = self.decompress(report, data, name, codec)
            if inner is not None:
                self.blob(report, inner, f"{name}[{codec}]", depth + 1)
            return
        is_zip = depth < 4 and self.zip(report, data, name, depth)
        if head.startswith(b"PK\x03\x04"):
            if not is_zip:
                report._fail("malformed", f"{name}: unreadable zip archive")
            return
        # Bytes before an archive are what pickle.load() reads.
        self.pickles(report, data, name, required=not is_zip)

    @staticmethod
    def _container(report, depth, kind):
        if depth == 0:
            report.container = kind

    def decompress(self, report, data, name, codec):
        room = self.budget
        try:
            if codec == "gzip":
                out = _inflate(data, lambda: zlib.decompressobj(31), room)
            elif codec == "zlib":
                out = _inflate(data, zlib.decompressobj, room)
            elif codec == "bz2":
                out = _inflate(data, bz2.BZ2Decompressor, room)
            else:
                out = _inflate(data, lzma.LZMADecompressor, room)
        except _TooBig:
            report._fail("resource", f"{name}: decompresses to more than "
                         f"{room} bytes (Limits.max_input_bytes)")
            return None
        except (OSError, EOFError, ValueError, zlib.error,
                lzma.LZMAError) as exc:
            report._fail("malformed", f"{name}: bad {codec} data: {exc}")
            return None
        self.budget -= len(out)
        return out

    def zip(self, report, data, name, depth):
        """Scan the members of a zip archive in data; False if none."""
        try:
            archive = zipfile.ZipFile(_BlobFile(data))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError,
                struct.error, NotImplementedError):
            return False
        except Exception:
            return False
        with archive:
            infos = archive.infolist()
            self._container(report, depth, "zip")
            for info in infos:
                member = f"{name}:{info.filename}"
                pickle_named = info.filename.endswith(
                    (".pkl", ".pickle", ".pck"))
                if not pickle_named and not self._may_hold_pickle(
                        data, info):
                    continue
                content = self.member(report, data, info, member)
                if content is None:
                    continue
                if bytes(content[:6]) == b"\x93NUMPY":
                    self.npy(report, content, member)
                elif _compression(bytes(content[:8])) or \
                        bytes(content[:4]) == b"PK\x03\x04":
                    self.blob(report, content, member, depth + 1)
                else:
                    self.pickles(report, content, member,
                                 required=pickle_named)
        return True

    @staticmethod
    def _may_hold_pickle(data, info):
        """False for a stored member whose first byte is no opcode (raw
        tensor data, mostly): not worth copying."""
        if info.compress_type != zipfile.ZIP_STORED or not info.file_size:
            return True
        at = info.header_offset
        header = bytes(data[at:at + 30])
        if len(header) < 30:
            return True
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        first = bytes(data[at + 30 + name_len + extra_len:][:1])
        return not first or first[0] in OPCODE_BY_BYTE or \
            first in (b"\x93", b"\x1f", b"B", b"\xfd", b"x", b"P")

    def member(self, report, data, info, name):
        """A zip member's bytes, from its local header, CRC ignored."""
        at = info.header_offset
        header = bytes(data[at:at + 30])
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            report._fail("malformed", f"{name}: no local header")
            return None
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        local_name = bytes(data[at + 30:at + 30 + name_len])
        if local_name.decode("utf-8", "replace") != info.filename and \
                local_name.decode("cp437", "replace") != info.filename:
            report.notes.append(f"{name}: the local header names it "
                                f"{local_name!r}")
        start = at + 30 + name_len + extra_len
        raw = data[start:start + info.compress_size]
        method = info.compress_type
        if method == zipfile.ZIP_STORED:
            # Members may overlap: what is scanned counts, copied or not.
            if len(raw) > self.budget:
                report._fail("resource", f"{name}: the archive's members "
                             f"add up to more than Limits.max_input_bytes")
                return None
            self.budget -= len(raw)
            content = raw
        else:
            try:
                if method == zipfile.ZIP_DEFLATED:
                    content = _inflate(raw, lambda: zlib.decompressobj(-15),
                                       self.budget)
                elif method == zipfile.ZIP_BZIP2:
                    content = _inflate(raw, bz2.BZ2Decompressor,
                                       self.budget)
                else:
                    report._fail("malformed", f"{name}: compression method "
                                 f"{method} is not supported by the scanner")
                    return None
            except _TooBig:
                report._fail("resource", f"{name}: decompresses to more "
                             f"than {self.budget} bytes")
                return None
            except (zlib.error, OSError, EOFError, ValueError) as exc:
                report._fail("malformed", f"{name}: {exc}")
                return None
            self.budget -= len(content)
        if zlib.crc32(content) != info.CRC:
            report.notes.append(f"{name}: CRC mismatch (ignored)")
        return content

    def npy(self, report, data, name):
        """A .npy file: an object array's data is a pickle."""
        head = bytes(data[:12])
        major = head[6] if len(head) > 6 else 0
        if major == 1 and len(head) >= 10:
            (size,), start = struct.unpack("<H", head[8:10]), 10
        elif major in (2, 3) and len(head) >= 12:
            (size,), start = struct.unpack("<I", head[8:12]), 12
        else:
            report._fail("malformed", f"{name}: bad .npy header")
            return
        if size > 1 << 20:
            report._fail("resource", f"{name}: .npy header of {size} bytes")
            return
        text = bytes(data[start:start + size]).decode("latin-1")
        try:
            header = ast.literal_eval(text)
            descr = header["descr"]
        except (ValueError, SyntaxError, TypeError, KeyError,
                MemoryError, RecursionError):
            report._fail("malformed", f"{name}: unreadable .npy header")
            return
        if _descr_has_object(descr):
            self.pickles(report, data[start + size:], f"{name}[object data]")
        else:
            report.notes.append(f"{name}: array of {descr!r}, no pickle")


class _TooBig(Exception):
    pass


def _inflate(data, make, room):
    """Decompress data (possibly several concatenated streams), refusing
    to produce more than room bytes."""
    out = []
    total = 0
    view = memoryview(data)
    while len(view):
        d = make()
        chunk_in = view
        while True:
            piece = d.decompress(chunk_in, max(1, min(1 << 20, room - total
                                                      + 1)))
            total += len(piece)
            out.append(piece)
            if total > room:
                raise _TooBig()
            if d.eof:
                break
            if not piece and not getattr(d, "unconsumed_tail", b"") and \
                    getattr(d, "needs_input", True):
                raise EOFError("compressed data ends early")
            chunk_in = getattr(d, "unconsumed_tail", b"")
        rest = d.unused_data
        if not rest.strip(b"\0"):
            break
        view = memoryview(rest)
    return b"".join(out)


def _compression(head):
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 2 and head[0] == 0x78 and \
            (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    return None


def _descr_has_object(descr):
    """Whether a .npy 'descr' (a type string, or a list of (name, descr
    [, shape]) fields) has an object field."""
    pending = [descr]
    while pending:
        d = pending.pop()
        if isinstance(d, str):
            if d.lstrip("<>|=").startswith("O"):
                return True
        elif isinstance(d, list):
            for f in d:
                if not isinstance(f, tuple) or len(f) < 2:
                    return True
                pending.append(f[1])
        else:
            return True          # not understood: scan the data anyway
    return False


class _BlobFile(io.RawIOBase):
    """A read-only seekable file over a bytes-like object (or mmap)."""

    def __init__(self, data):
        self._data = data
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self._pos
        elif whence == 2:
            offset += len(self._data)
        self._pos = max(0, offset)
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        chunk = self._data[self._pos:self._pos + len(buffer)]
        buffer[:len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


# -------------------------------------------------------------------- API

def scan(source, *, allow=(), preset=(), policy=None, limits=None,
         allow_persistent=False, encoding="ASCII", fix_imports=True,
         name=None):
    """Scan bytes, a path or a binary file; return a `Report`.

    ``allow``, ``preset`` and ``policy`` are the safe loader's; with
    ``allow_persistent`` persistent IDs are reported but not held against
    the verdict (for callers that will give the loader a persistent_load).
    ``encoding`` is the one the loader will use for Python 2 str.
    """
    policy = _policy_for(policy, allow, preset)
    limits = limits if limits is not None else DEFAULT_LIMITS
    scanner = _Scanner(policy, limits, allow_persistent, encoding,
                       fix_imports)
    if isinstance(source, (bytes, bytearray, memoryview)):
        report = Report(name or "<bytes>")
        scanner.blob(report, bytes(source), report.source)
        return report
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        report = Report(name or path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                scanner.blob(report, b"", report.source)
                return report
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                if size > limits.max_input_bytes and \
                        not mm[:4] == b"PK\x03\x04":
                    report._fail("resource", f"{path}: {size} bytes "
                                 f"(Limits.max_input_bytes)")
                    return report
                scanner.blob(report, mm if mm[:4] == b"PK\x03\x04" else
                             mm[:], report.source)
        return report
    read = getattr(source, "read", None)
    if read is None:
        raise TypeError(f"scan() takes bytes, a path or a binary file, "
                        f"not {type(source).__name__}")
    report = Report(name or getattr(source, "name", None) or "<file>")
    data = read(limits.max_input_bytes + 1)
    if len(data) > limits.max_input_bytes:
        report._fail("resource", "more than Limits.max_input_bytes")
        return report
    scanner.blob(report, bytes(data), str(report.source))
    return report


# -------------------------------------------------------------------- CLI

_EXIT = {"safe": 0, "unsafe": 1, "resource": 1, "malformed": 2}


def _print_report(report, out):
    out.write(f"{report.source}: {report.verdict.upper()}\n")
    for reason in report.reasons:
        out.write(f"  - {reason}\n")
    for note in report.notes:
        out.write(f"  note: {note}\n")
    for part in report.parts:
        if part.globals:
            names = ", ".join(
                f"{g['module']}.{g['name']}"
                f"{'' if g['allowed'] else ' (refused)'}"
                for g in part.globals[:20])
            more = len(part.globals) - 20
            out.write(f"  {part.name}: protocol {part.protocol}, globals: "
                      f"{names}{f' and {more} more' if more > 0 else ''}\n")


def add_arguments(parser):
    """The options of ``brinery scan`` (used by `main` and by the
    ``brinery`` command line)."""
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true",
                        help="print the reports as JSON")
    parser.add_argument("--allow", action="extend", nargs="+", default=[],
                        metavar="NAME",
                        help="also allow these globals (module.name or "
                             "module:qualname)")
    parser.add_argument("--preset", action="append", default=[],
                        choices=["numpy"], help="allow a preset's names")
    parser.add_argument("--allow-persistent", action="store_true",
                        help="do not count persistent IDs against a file")
    parser.add_argument("--encoding", default="ASCII",
                        help="how the loader will decode Python 2 str "
                             "(default ASCII)")


def main(argv=None):
    """``brinery scan FILE... [--json] [--allow NAME...] [--preset numpy]``.

    Exit status: 0 every file safe, 1 one unsafe (or over the limits), 2
    one malformed or unreadable.
    """
    parser = argparse.ArgumentParser(
        prog="brinery scan",
        description="Report what pickles would import and call, without "
                    "loading them.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, parser.error)


def run(args, usage_error):
    """Scan args.files and print the reports; the exit status."""
    try:
        policy = _policy_for(None, args.allow, args.preset)
    except (ValueError, TypeError) as exc:
        usage_error(str(exc))
        return 2
    codes = set()
    reports = []
    for path in args.files:
        try:
            report = scan(path, policy=policy, encoding=args.encoding,
                          allow_persistent=args.allow_persistent)
            codes.add(_EXIT[report.verdict])
        except (OSError, ValueError) as exc:
            report = Report(path, verdict="malformed",
                            reasons=[f"cannot read: {exc}"])
            codes.add(2)
        reports.append(report)
        if not args.json:
            _print_report(report, sys.stdout)
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2,
                  default=str)
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 1 if 1 in codes else 2 if 2 in codes else 0


if __name__ == "__main__":
    sys.exit(main())
