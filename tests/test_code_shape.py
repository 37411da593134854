"""The code keeps a shape a newcomer can read (issue 21): no module over 400 lines anywhere in the product or
its tests (bench/ is not held to it), and no function over 60 lines in the core and the pipeline stages
unless a comment right above it says why (`# Long: …`), e.g. a typer command whose signature is one option
per flag."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "shadowlab", "ingest", "replayer", "scoring", "analysis", "dashboard", "simulator", "demo")
SHORT_MODULES = (*PACKAGES, "tests")
SHORT_FUNCTIONS = ("shadowlab", "ingest", "replayer", "scoring")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules(packages: tuple[str, ...]) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def _explained(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    above = lines[first - 2].strip() if first >= 2 else ""
    return above.startswith("# Long:")


def test_no_module_is_over_400_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in _modules(SHORT_MODULES)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, "split these modules by concept:\n" + "\n".join(long)


def test_no_function_is_over_60_lines_without_a_reason() -> None:
    long = []
    for path in _modules(SHORT_FUNCTIONS):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
                continue
            size = node.end_lineno - node.lineno + 1
            if size > MAX_FUNCTION_LINES and not _explained(lines, node):
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "shorten these functions or say why above them (# Long: ...):\n" + "\n".join(long)
