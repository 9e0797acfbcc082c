"""CPython's test_pickletools, run against brinery.tools.

``test.test_pickletools`` tests the standard library's pickletools through
its module-level name ``pickletools``; here every TestCase class of it is
run with that name pointing at brinery.tools instead (the pickles are still
made and loaded by the standard library's pickle). The classes differ by
CPython version (3.13 added GenopsTests and DisTests); all that the running
CPython has are run, except MiscTestCase, whose only test checks the
``__all__`` of pickletools itself; brinery.tools' ``__all__`` is checked
below with the same helper.

The disassembly doctests that test_pickletools adds from pickletools
(``pickletools.__test__``) are run too, with ``dis`` bound to brinery's.

The whole module is skipped when the ``test`` package is not installed.
"""

import doctest
import types
import unittest

import pytest

try:
    import test.test_pickletools as cpython_tests
    from test import support
except ImportError:  # pragma: no cover - depends on the Python build
    pytest.skip("the standard library's test package is not installed",
                allow_module_level=True)

import pickletools

from brinery import tools

# What test_pickletools sees as `pickletools`.
TOOLS_AS_PICKLETOOLS = types.SimpleNamespace(
    genops=tools.genops, dis=tools.dis, optimize=tools.optimize)

NOT_RUN = {
    "MiscTestCase": "checks the __all__ of pickletools itself",
}


def setup_module():
    cpython_tests.pickletools = TOOLS_AS_PICKLETOOLS


def teardown_module():
    cpython_tests.pickletools = pickletools


def _cpython_test_classes():
    for name, value in vars(cpython_tests).items():
        if (isinstance(value, type) and issubclass(value, unittest.TestCase)
                and value.__module__ == cpython_tests.__name__
                and name not in NOT_RUN):
            yield name, value


# One subclass here per CPython class, so that pytest collects them.
for _name, _cls in _cpython_test_classes():
    globals()[f"TestBrinery{_name}"] = type(f"TestBrinery{_name}", (_cls,),
                                            {"__module__": __name__})
del _name, _cls


def test_classes_were_found():
    assert "TestBrineryOptimizedPickleTests" in globals()


def test_the_shim_is_what_the_cpython_tests_see():
    """setup_module has swapped pickletools for brinery.tools."""
    assert cpython_tests.pickletools is TOOLS_AS_PICKLETOOLS


def test_brinery_tools_all():
    case = unittest.TestCase()
    support.check__all__(case, tools, extra={"OPCODES"})


def _disassembly_doctests():
    finder = doctest.DocTestFinder()
    return [t for t in finder.find(pickletools)
            if t.name.startswith("pickletools.__test__.")]


@pytest.mark.parametrize("doctest_case", _disassembly_doctests(),
                         ids=lambda t: t.name.rsplit(".", 1)[-1])
def test_pickletools_disassembly_doctests(doctest_case):
    case = doctest_case
    case.globs = dict(case.globs, dis=tools.dis)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(case, out=lambda text: None)
    assert result.attempted > 5
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples failed; run "
        f"doctest on pickletools.__test__ with dis=brinery.tools.dis")
