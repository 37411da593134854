"""Tests share code one way (tests/support/__init__.py): fixtures through conftest.py files, the rest
through `tests.support`; no test imports a conftest, another test module or a benchmark."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _wrong(module: str) -> bool:
    parts = module.split(".")
    if parts[0] == "bench":
        return True
    return parts[0] == "tests" and parts[1:2] != ["support"] and module != "tests"


def test_tests_import_shared_code_from_tests_support_only() -> None:
    wrong = sorted(
        f"{path.relative_to(TESTS)}: {module}"
        for path in TESTS.rglob("*.py")
        for module in _imported_modules(path)
        if _wrong(module)
    )
    assert wrong == []


def test_no_test_loads_a_python_file_by_path() -> None:
    loader = "spec_from_file_" + "location"  # spelled in two so that this file does not match itself
    assert sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if loader in p.read_text()) == []
