"""Every `from recgpt... import name` in the code base resolves, including the imports inside functions.

Imports deferred into a function (to keep `recgpt --help` fast) run only when that command runs; a refactor that
moves or renames a name breaks them silently until a user hits the command (found: `recgpt eval` importing
`METHODS` from the harness after it moved to `eval.runs`)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("recgpt", "tests", "scripts", "examples") for p in (ROOT / folder).rglob("*.py"))


def _recgpt_imports() -> list[tuple[str, int, str, str]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "recgpt":
                found += [(str(path.relative_to(ROOT)), node.lineno, node.module, alias.name) for alias in node.names]
    return found


def test_every_recgpt_import_names_something_that_exists() -> None:
    imports = _recgpt_imports()
    assert len(imports) > 300  # the walk sees the code base, deferred imports included
    missing = []
    for where, line, module, name in imports:
        target = importlib.import_module(module)
        if not hasattr(target, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{where}:{line}: from {module} import {name}")
    if missing:
        pytest.fail("imports that do not resolve:\n" + "\n".join(missing))
