"""The wheel ships the migrations, so `shadowlab db upgrade` works from an installed package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    uv = Path(sys.executable).with_name("uv")
    subprocess.run(
        [str(uv), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("shadowlab-*.whl")
    return built


def test_wheel_ships_every_package_and_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("shadowlab", "ingest", "replayer", "scoring", "analysis", "dashboard", "migrations"):
        assert f"{package}/__init__.py" in names
    assert "migrations/env.py" in names
    assert "migrations/script.py.mako" in names
    shipped = {Path(n).name for n in names if n.startswith("migrations/versions/") and n.endswith(".py")}
    in_repo = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert in_repo <= shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "shadowlab = cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_upgrade_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Unpack the wheel alone on sys.path (no repo checkout) and migrate a fresh SQLite file."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "w.db"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import migrations, shadowlab;"
        "assert migrations.__file__.startswith(sys.argv[1]), migrations.__file__;"
        "from cli.main import main; sys.argv = ['shadowlab', 'db', 'upgrade']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"SHADOWLAB_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert result.stdout.strip().endswith(f": {head}")
