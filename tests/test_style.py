"""The tree is lint-clean and formatted as pyproject.toml's [tool.ruff] asks (`ruff check`, `ruff format`)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


LONGEST = 40  # lines of a function in tasks/, flows/ and schema/, its docstring included


def long_functions(folders=("tasks", "flows", "schema")):
    """(file:line name, its lines) of each function over `LONGEST` lines under `folders`."""
    found = []
    for path in sorted(p for folder in folders for p in (PROJECT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > LONGEST:
                found.append((f"{path.relative_to(PROJECT)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_no_function_of_the_layers_around_models_is_longer_than_40_lines():
    assert long_functions() == []
