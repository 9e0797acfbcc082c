"""The benchmark's workloads: deterministic data generators and their metadata.

Every workload builds its data from a fixed seed, so two runs (or two
machines) pickle exactly the same objects. Sizes are given for scale 1.0
(the full run); ``build(scale)`` shrinks them for the quick mode and the
smoke test. The shapes of the first few imitate pyperformance's pickle
benchmarks (user-record dicts, a mixed tuple of lists, lists of lists); the
rest cover the goals of issues 2 and 3: bulk scalars, strings, instances,
globals by name, many small calls, file loads at the text-era protocols,
shared references, deep nesting and 100 MB payloads.

A workload's `kind` says what one timed operation is:

- "object": ``dumps(data, protocol)`` and ``loads(pickle)``;
- "calls": data is a list of small objects, one timed operation is a
  ``dumps`` call per item (and a ``loads`` call per item's pickle), which
  measures per-call overhead;
- "bytesio" / "file": ``dump`` to and ``load`` from an ``io.BytesIO`` or a
  real file opened "wb"/"rb", rewound before each call;
- "pipe": the same through an unseekable buffered stream
  (``io.BufferedReader`` / ``BufferedWriter`` over a raw stream that
  cannot seek, as ``os.fdopen`` on a pipe and ``socket.makefile`` give);
- "stream": the same through objects with only ``read``/``readline`` or
  ``write`` (no ``peek``, no ``seek``), like an HTTP response body.
"""

import bisect
import collections
import datetime
import decimal
import fractions
import functools
import heapq
import io
import itertools
import json
import math
import operator
import os
import os.path
import pathlib
import pickle
import random
import re
import shutil
import statistics
import string
import tempfile
import textwrap
from dataclasses import dataclass, field
from typing import Callable

SEED = "brinery-bench-1"

ALL_PROTOCOLS = (0, 1, 2, 3, 4, 5)

# Group names, in the order the report shows them.
CORE = "core"
WEAK_SPOT = "_pickle weak spots"
LARGE = "100 MB payloads"
BRINERY_ONLY = "brinery only"
GROUPS = (CORE, WEAK_SPOT, LARGE, BRINERY_ONLY)

MEGABYTE = 1024 * 1024


def rng_for(name):
    """A random generator seeded by the workload name (str seeds are stable)."""
    return random.Random(f"{SEED}:{name}")


def scaled(count, scale, minimum=1):
    return max(minimum, int(count * scale))


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    build: Callable[[float], object]
    group: str = CORE
    kind: str = "object"
    protocols: tuple = ALL_PROTOCOLS
    # Protocols run by default on top of the run's default ones (5 and 2).
    extra_default_protocols: tuple = ()
    out_of_band: bool = False
    # Payload size in bytes at scale 1.0, for the memory probes (large only).
    payload_bytes: int = 0
    # At least this many rounds (within the run's maximum): single 100 MB
    # operations vary a lot with page faults, so they need more samples.
    min_rounds: int = 0
    # Equality for the correctness check before timing; None skips it.
    equal: Callable[[object, object], bool] = operator.eq
    tags: tuple = field(default_factory=tuple)


# -- plain classes and functions that the workloads pickle by name -------


class UserRecord:
    """A plain class: instances pickle as class reference plus __dict__."""

    def __init__(self, user_id, name, email, age, score, active, tags):
        self.user_id = user_id
        self.name = name
        self.email = email
        self.age = age
        self.score = score
        self.active = active
        self.tags = tags

    def __eq__(self, other):
        return type(other) is UserRecord and vars(self) == vars(other)

    __hash__ = None


def lookup_user(user_id):
    """A module-level function, the global pickled by name."""
    return user_id


# -- data generators ---------------------------------------------------

FIRST_NAMES = ("ana", "bruno", "chen", "dara", "emeka", "fatima", "goran",
               "hana", "ivan", "julia", "kofi", "lena", "mateo", "nadia",
               "oscar", "priya", "quinn", "rosa", "sven", "tomoko")
COUNTRIES = ("BR", "CN", "DE", "ES", "FR", "GB", "IN", "JP", "NG", "US")
TAGS = ("admin", "beta", "vip", "trial", "mobile", "desktop", "eu", "us",
        "newsletter", "verified")
# Non-ASCII alphabets of growing UTF-8 width: Latin-1, Cyrillic, CJK, emoji.
NON_ASCII_ALPHABETS = ("aeiouáéíóúçñßøå", "абвгдежзийклмнопрст",
                       "日本語中文字漢字春夏秋冬山川", "😀🐍🚀🌍🎉")
EPOCH = datetime.datetime(2010, 1, 1)


def _ascii_word(rng, low, high):
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(low, high)))


def _non_ascii_word(rng, low, high):
    alphabet = rng.choice(NON_ASCII_ALPHABETS)
    ascii_part = rng.choices(string.ascii_lowercase, k=rng.randint(0, 3))
    return "".join(ascii_part + rng.choices(alphabet, k=rng.randint(low, high)))


def user_record(rng, index):
    """A user-record dict of the pyperformance "pickle" benchmark's shape."""
    name = rng.choice(FIRST_NAMES)
    return {
        "id": 1_000_000 + index,
        "username": f"{name}{rng.randrange(10_000)}",
        "email": f"{name}.{index}@example.org",
        "country": rng.choice(COUNTRIES),
        "age": rng.randint(18, 90),
        "score": rng.uniform(0, 100),
        "balance": rng.uniform(-1e4, 1e6),
        "active": rng.random() < 0.8,
        "signup": EPOCH + datetime.timedelta(seconds=rng.randrange(4 * 10**8)),
        "tags": rng.sample(TAGS, rng.randint(0, 4)),
        "favorite_ids": [rng.randrange(2**31) for _ in range(rng.randint(0, 8))],
        "last_ip": ".".join(str(rng.randrange(256)) for _ in range(4)),
    }


def build_pyperf_pickle(scale):
    """One record, a mixed tuple of lists, and three record variants."""
    rng = rng_for("pyperf_pickle")
    record = user_record(rng, 0)
    mixed = ([rng.randrange(2**40) for _ in range(20)],
             [rng.uniform(-1, 1) for _ in range(20)],
             [_ascii_word(rng, 3, 12) for _ in range(20)],
             [EPOCH + datetime.timedelta(days=d) for d in range(5)],
             (1, 2.0, "three", b"four", None, True))
    group = [user_record(rng, i) for i in range(1, 4)]
    return (record, mixed, group)


def build_pyperf_list(scale):
    """Ten pairs of ten-int lists (pyperformance's "pickle_list" shape)."""
    rng = rng_for("pyperf_list")
    return [[[rng.randrange(1000) for _ in range(10)] for _ in range(2)]
            for _ in range(10)]


def build_records(scale):
    rng = rng_for("records")
    return [user_record(rng, i) for i in range(scaled(10_000, scale))]


def build_small_ints(scale):
    # Mostly BININT1/BININT2 range, a few negatives (BININT).
    rng = rng_for("ints")
    return [rng.randint(-1000, 65535) for _ in range(scaled(1_000_000, scale))]


def build_ascii_strs(scale):
    rng = rng_for("ascii_strs")
    return [_ascii_word(rng, 3, 20) for _ in range(scaled(100_000, scale))]


def build_non_ascii_strs(scale):
    rng = rng_for("non_ascii_strs")
    return [_non_ascii_word(rng, 2, 12) for _ in range(scaled(100_000, scale))]


def build_str_float_dict(scale):
    rng = rng_for("str_float_dict")
    count = scaled(100_000, scale)
    return {f"key_{i}_{_ascii_word(rng, 2, 6)}": rng.uniform(-1e6, 1e6)
            for i in range(count)}


def build_instances(scale):
    rng = rng_for("instances")
    records = []
    for i in range(scaled(10_000, scale)):
        name = rng.choice(FIRST_NAMES)
        records.append(UserRecord(i, name, f"{name}.{i}@example.org",
                                  rng.randint(18, 90), rng.uniform(0, 5),
                                  rng.random() < 0.5,
                                  rng.sample(TAGS, rng.randint(0, 3))))
    return records


def build_text_docs(scale):
    """Str-heavy data: documents with long ASCII and non-ASCII text."""
    rng = rng_for("text_docs")
    docs = []
    for i in range(scaled(5_000, scale)):
        make_word = _ascii_word if i % 3 else _non_ascii_word
        body = " ".join(make_word(rng, 2, 10) for _ in range(rng.randint(50, 400)))
        docs.append({"title": make_word(rng, 5, 30), "body": body,
                     "lang": "en" if i % 3 else "xx",
                     "keywords": [make_word(rng, 3, 9) for _ in range(5)]})
    return docs


def build_shared_refs(scale):
    shared = {"name": "shared", "values": [1, 2, 3], "label": "one object"}
    return [shared] * scaled(100_000, scale)


def nested_lists(depth):
    """A chain of lists `depth` deep: [0, [1, [2, ... []]]]."""
    chain = []
    for level in range(depth, 0, -1):
        chain = [level, chain]
    return chain


def build_deep_300(scale):
    """100 chains 300 deep, alternating lists and dicts at each level."""
    chains = []
    for chain_index in range(scaled(100, scale)):
        node = {"leaf": chain_index}
        for level in range(300, 0, -1):
            node = [level, node] if level % 2 else {"level": level, "child": node}
        chains.append(node)
    return chains


def build_deep_100k(scale):
    return nested_lists(scaled(100_000, scale, minimum=1000))


def chain_equal(a, b):
    """Compare two nested_lists chains without recursion."""
    while True:
        if type(a) is not list or type(b) is not list or len(a) != len(b):
            return False
        if not a:
            return True
        if a[0] != b[0]:
            return False
        a, b = a[1], b[1]


def build_small_calls(scale):
    rng = rng_for("small_calls")
    return [{"id": i, "name": rng.choice(FIRST_NAMES), "ok": True,
             "score": rng.random()} for i in range(scaled(10_000, scale))]


def build_global_calls(scale):
    return [lookup_user] * scaled(10_000, scale)


# Modules whose top-level functions and classes make the "distinct globals" list.
GLOBAL_SOURCE_MODULES = (bisect, collections, datetime, decimal, fractions,
                         functools, heapq, io, itertools, json, math, operator,
                         os, os.path, pathlib, random, re, shutil, statistics,
                         string, tempfile, textwrap)


def distinct_globals():
    """Top-level classes and functions found by name where they are defined.

    Sorted by module and name, so the list is the same on every run of the
    same Python; only objects whose (__module__, __qualname__) finds them
    again, with a dot-free qualname, and that the standard library's pickle
    gives back identically at protocols 0 and 2 too (fix_imports maps some
    names, e.g. OSError's subclasses, to a different object).
    """
    import builtins
    import importlib
    found = {}
    for module in (builtins,) + GLOBAL_SOURCE_MODULES:
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if not (isinstance(obj, type) or callable(obj)):
                continue
            module_name = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None)
            if not isinstance(module_name, str) or not isinstance(qualname, str):
                continue
            if "." in qualname or "<" in qualname or module_name == "__main__":
                continue
            try:
                home = importlib.import_module(module_name)
            except ImportError:
                continue
            if getattr(home, qualname, None) is obj and all(
                    pickle.loads(pickle.dumps(obj, protocol)) is obj
                    for protocol in (0, 2, 5)):
                found[(module_name, qualname)] = obj
    return [found[key] for key in sorted(found)]


def build_globals_list(scale):
    names = distinct_globals()
    return names[:scaled(len(names), scale, minimum=10)]


def build_file_records(scale):
    rng = rng_for("file_records")
    return [user_record(rng, i) for i in range(scaled(2_000, scale))]


def build_large_bytes(scale):
    size = scaled(100 * MEGABYTE, scale, minimum=4096)
    # Repetition of a 256-byte block: built in one allocation, no temporaries.
    return bytes(range(256)) * (size // 256)


def build_large_bytes_oob(scale):
    from pickle import PickleBuffer
    return PickleBuffer(build_large_bytes(scale))


def build_numpy(scale):
    import numpy
    size = scaled(100 * MEGABYTE, scale, minimum=4096)
    return numpy.arange(size // 8, dtype=numpy.float64)


def numpy_equal(a, b):
    import numpy
    return isinstance(b, numpy.ndarray) and numpy.array_equal(a, b)


def buffer_equal(a, b):
    return memoryview(a) == memoryview(b)


def _numpy_available():
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


WORKLOADS = [
    Workload("pyperf_pickle", "one user-record dict, a mixed tuple of lists "
             "and 3 more records (pyperformance 'pickle' shape)",
             build_pyperf_pickle),
    Workload("pyperf_list", "10 pairs of 10-int lists (pyperformance "
             "'pickle_list' shape)", build_pyperf_list),
    Workload("records_10k", "10k user-record dicts: str, int, float, bool, "
             "datetime, lists", build_records),
    Workload("ints_1m", "list of 1M small ints (-1000..65535)",
             build_small_ints),
    Workload("ascii_strs_100k", "list of 100k ASCII strs, 3-20 chars",
             build_ascii_strs),
    Workload("nonascii_strs_100k", "list of 100k non-ASCII strs (Latin-1, "
             "Cyrillic, CJK, emoji), 2-15 chars", build_non_ascii_strs),
    Workload("str_float_dict_100k", "dict of 100k str keys to floats",
             build_str_float_dict),
    Workload("shared_refs_100k", "list of 100k references to one dict",
             build_shared_refs),
    Workload("deep_300", "100 chains nested 300 deep (lists and dicts "
             "alternating)", build_deep_300),
    Workload("instances_10k", "10k instances of a plain class (7 attributes)",
             build_instances, group=WEAK_SPOT),
    Workload("text_docs_5k", "5k documents with 0.2-4 kB ASCII or non-ASCII "
             "text (str-heavy)", build_text_docs, group=WEAK_SPOT),
    Workload("small_calls_10k", "10k separate dumps/loads calls of a 4-key "
             "dict (per-call overhead)", build_small_calls, group=WEAK_SPOT,
             kind="calls"),
    Workload("global_calls_10k", "10k separate dumps/loads calls of one "
             "function pickled by name", build_global_calls, group=WEAK_SPOT,
             kind="calls"),
    Workload("globals_list", "list of ~800 distinct classes and functions "
             "(by name) from builtins and 22 stdlib modules",
             build_globals_list, group=WEAK_SPOT),
    Workload("bytesio_2k", "dump to / load from io.BytesIO, 2k records",
             build_file_records, group=WEAK_SPOT, kind="bytesio",
             extra_default_protocols=(0, 1, 3)),
    Workload("file_2k", "dump to / load from a real file ('wb'/'rb'), 2k "
             "records", build_file_records, group=WEAK_SPOT, kind="file",
             extra_default_protocols=(0, 1, 3)),
    Workload("pipe_2k", "dump to / load from an unseekable buffered "
             "stream (a pipe or socket as os.fdopen / makefile give it), 2k "
             "records", build_file_records, group=WEAK_SPOT, kind="pipe",
             extra_default_protocols=(0, 1, 3)),
    Workload("stream_2k", "dump to / load from an object with only write() "
             "/ read() and readline() (no peek, no seek), 2k records",
             build_file_records, group=WEAK_SPOT, kind="stream",
             extra_default_protocols=(0, 1, 3)),
    Workload("bytes_100mb", "one 100 MB bytes object, in-band",
             build_large_bytes, group=LARGE, protocols=(4, 5),
             payload_bytes=100 * MEGABYTE, min_rounds=9),
    Workload("bytes_100mb_oob", "PickleBuffer over 100 MB bytes, out-of-band "
             "(buffer_callback / buffers=)", build_large_bytes_oob,
             group=LARGE, protocols=(5,), out_of_band=True,
             payload_bytes=100 * MEGABYTE, min_rounds=9, equal=buffer_equal),
    Workload("numpy_100mb", "numpy float64 array of 100 MB, in-band",
             build_numpy, group=LARGE, protocols=(4, 5),
             payload_bytes=100 * MEGABYTE, min_rounds=9, equal=numpy_equal,
             tags=("numpy",)),
    Workload("numpy_100mb_oob", "numpy float64 array of 100 MB, out-of-band",
             build_numpy, group=LARGE, protocols=(5,), out_of_band=True,
             payload_bytes=100 * MEGABYTE, min_rounds=9, equal=numpy_equal,
             tags=("numpy",)),
    Workload("deep_100k", "one list chain nested 100k deep (the stdlib "
             "picklers hit the recursion limit)", build_deep_100k,
             group=BRINERY_ONLY, equal=chain_equal),
]

BY_NAME = {w.name: w for w in WORKLOADS}


def available(workload):
    return "numpy" not in workload.tags or _numpy_available()


def _check_unique_names():
    assert len(BY_NAME) == len(WORKLOADS), "duplicate workload names"
    assert all(w.group in GROUPS for w in WORKLOADS)


_check_unique_names()
