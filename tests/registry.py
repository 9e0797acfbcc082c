"""copyreg registrations the catalogue needs, installed and removed cleanly.

`registered()` adds `catalogue.Registered`'s reducer to
``copyreg.dispatch_table`` and the extension codes of
`catalogue.EXTENSION_CODES`, and restores the registries (and the
extension cache, which loading fills) afterwards. The ``registry`` fixture
does this around one test.
"""

import contextlib
import copyreg

import pytest

import catalogue


@contextlib.contextmanager
def registered():
    saved_dispatch = dict(copyreg.dispatch_table)
    saved_ext = dict(copyreg._extension_registry)
    saved_inverted = dict(copyreg._inverted_registry)
    saved_cache = dict(copyreg._extension_cache)
    copyreg.pickle(catalogue.Registered, catalogue.reduce_registered)
    for module, name, code in catalogue.EXTENSION_CODES:
        copyreg.add_extension(module, name, code)
    try:
        yield
    finally:
        for table, saved in ((copyreg.dispatch_table, saved_dispatch),
                             (copyreg._extension_registry, saved_ext),
                             (copyreg._inverted_registry, saved_inverted),
                             (copyreg._extension_cache, saved_cache)):
            table.clear()
            table.update(saved)


@pytest.fixture
def registry():
    with registered():
        yield
