"""The README cannot rot: every command it shows exists (`make -n`, or the command's `--help`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _commands(prefix: str) -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(prefix):
                lines.append(line)
    return lines


def test_the_two_commands_come_first() -> None:
    first = _blocks("bash")[0]
    assert [line.split()[:2] for line in first.splitlines()] == [["make", "demo"], ["make", "test"]]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("line", _commands("make "))
def test_make_targets_exist(line: str) -> None:
    result = subprocess.run(
        ["make", "-n", *line.split()[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("line", _commands("shadowlab "))
def test_shadowlab_commands_exist(line: str) -> None:
    words = []
    for token in line.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", token):
            break
        words.append(token)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *words, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "No such command" not in result.stdout + result.stderr


def test_the_python_example_names_real_things() -> None:
    import shadowlab_tee as tee

    (example,) = _blocks("python")
    for name in re.findall(r"tee\.(\w+)", example):
        assert hasattr(tee, name), name


def test_documents_linked_from_the_readme_exist() -> None:
    for doc in set(re.findall(r"`(docs/[\w.-]+\.md)`", README)) | set(
        re.findall(r"\((docs/[\w.-]+\.md)\)", README)
    ):
        assert (ROOT / doc).exists(), doc
