"""pytest fixtures: every test runs against every implementation.

``impl`` is each of brinery's implementations in turn (see impls.py);
``pair`` is each (dumper, loader) combination across brinery's
implementations and the standard library. Tests marked ``c_extension``
are about the C accelerator alone.
"""

import pytest

from impls import IMPLEMENTATIONS, PAIRS


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "c_extension: test of the C accelerator only")


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda i: i.name)
def impl(request):
    return request.param


@pytest.fixture(params=PAIRS, ids=lambda p: f"{p[0].name}-to-{p[1].name}")
def pair(request):
    return request.param
