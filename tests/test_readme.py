"""The README's examples are true: every ```python block runs, and the
command-line tour works as typed (in a temporary directory)."""

import pathlib
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")


def _fenced_blocks(text):
    """(language, code) of every fenced block, fences indented or not."""
    blocks, language, code = [], None, []
    for line in text.splitlines():
        fence = re.match(r"\s*```(\w*)\s*$", line)
        if fence and language is None:
            language, code = fence.group(1), []
        elif fence:
            blocks.append((language, "\n".join(code) + "\n"))
            language = None
        elif language is not None:
            code.append(line)
    return blocks


BLOCKS = _fenced_blocks(TEXT)
PYTHON_BLOCKS = [code for language, code in BLOCKS if language == "python"]
PLAIN_BLOCKS = [code for language, code in BLOCKS if language == ""]


def test_readme_starts_with_install_and_test():
    first = PLAIN_BLOCKS[0].split("\n")
    assert first[0] == 'pip install -e ".[test]"'
    assert first[1] == "pytest"


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index):
    code = textwrap.dedent(PYTHON_BLOCKS[index])
    exec(compile(code, f"README.md python block {index}", "exec"), {})


def _cli_tour():
    for block in PLAIN_BLOCKS:
        lines = [line.split("#")[0].strip() for line in block.splitlines()]
        if any(line.startswith("brinery ") for line in lines):
            return [line for line in lines if line]
    raise AssertionError("README has no command-line tour")


def test_command_line_tour(tmp_path):
    for line in _cli_tour():
        argv = shlex.split(line)
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "brinery":
            argv[:1] = [sys.executable, "-m", "brinery"]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (line, done.stderr)
        assert "Traceback" not in done.stderr, line
