"""The layering rules of DESIGN §2 are enforced: a deliberate violation makes import-linter fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "shadowlab", "ingest", "replayer", "scoring", "analysis", "dashboard", "simulator", "demo")
# The tee's own distribution (a uv workspace member); copied to the top level, where PYTHONPATH finds it.
TEE_PACKAGE = ROOT / "packages" / "shadowlab-tee" / "shadowlab_tee"
TEE = "shadowlab_tee imports only the standard library"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def copy_project(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(TEE_PACKAGE, dest / "shadowlab_tee", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "import_contracts.py", dest / "scripts" / "import_contracts.py")
    return dest


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_project_keeps_its_contracts(tmp_path: Path) -> None:
    result = lint_imports(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("ingest/_probe.py", "import replayer\n", "Layers:"),
        ("scoring/_probe.py", "import simulator\n", "Layers:"),
        ("analysis/stats/_probe.py", "import sqlalchemy\n", "analysis.stats is pure"),
        ("shadowlab/new_module.py", "import ingest\n", "Layers:"),
        ("shadowlab/db.py", "\nimport scoring\n", "Layers:"),
        ("shadowlab/_probe.py", "import cli.main\n", "Layers:"),
        ("replayer/_probe.py", "import dashboard\n", "Layers:"),
        ("demo/_probe.py", "import dashboard\n", "Layers:"),
        ("simulator/_probe.py", "import replayer\n", "Layers:"),
        ("shadowlab_tee/_probe.py", "import pydantic\n", TEE),
        ("shadowlab_tee/_probe.py", "import orjson\n", TEE),
        ("shadowlab_tee/sink.py", "\nfrom shadowlab import config\n", TEE),
        ("shadowlab_tee/wrapper.py", "\nimport shadowlab.tee\n", TEE),
        ("shadowlab_tee/record.py", "\nimport ingest\n", TEE),
    ],
)
def test_a_violation_fails_the_lint(tmp_path: Path, module: str, source: str, contract: str) -> None:
    project = copy_project(tmp_path)
    target = project / module
    target.write_text((target.read_text() if target.exists() else "") + source)
    result = lint_imports(project)
    assert result.returncode != 0
    assert contract in result.stdout
    assert "BROKEN" in result.stdout
