"""Build shadowlab's two wheels and install the tee's into a fresh venv, from this checkout.

Used by tests/test_packaging.py and bench/bench_tee_install.py. The wheels are built offline. Installing
resolves the tee wheel's own dependencies (that is what is tested), pinned to the versions in uv.lock: the
packages come from uv's cache, and the index pages a resolution reads from the package index when the cache
lacks them (a fresh machine's `uv sync --frozen` caches the locked wheels by URL, not those pages; with
`--offline` the install then failed: "kafka-python was not found in the cache").
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
TEE_PROJECT = ROOT / "packages" / "shadowlab-tee"


def _uv(*args: str | Path, cwd: Path = ROOT) -> None:
    subprocess.run([str(UV), *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=600)


def build_wheels(out: Path) -> tuple[Path, Path]:
    """(the platform's wheel, the tee's wheel), built into `out`.

    Each wheel is built from its sdist (uv build's default), not straight from the tree: setuptools
    reuses an in-tree `build/lib`, where modules that no longer exist (the old `shadowlab/tee/`) linger.
    """
    for package in ("shadowlab", "shadowlab-tee"):
        _uv("build", "--offline", "--quiet", "--package", package, "--out-dir", out)
    (platform,) = out.glob("shadowlab-*.whl")
    (tee,) = out.glob("shadowlab_tee-*.whl")
    return platform, tee


def locked_constraints(path: Path) -> Path:
    """A constraints file pinning every package that uv.lock records at a single version."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = defaultdict(set)
    for package in lock["package"]:
        if "registry" in package.get("source", {}):
            versions[package["name"]].add(package["version"])
    path.write_text(
        "".join(f"{name}=={next(iter(vs))}\n" for name, vs in sorted(versions.items()) if len(vs) == 1),
        encoding="utf-8",
    )
    return path


def fresh_venv(path: Path) -> Path:
    """A new, empty venv (no pip, no setuptools) on this interpreter; returns its python."""
    _uv("venv", "--offline", "--quiet", "--python", sys.executable, path, cwd=path.parent)
    return path / "bin" / "python"


def install(python: Path, constraints: Path, *requirements: str | Path) -> None:
    _uv(
        "pip", "install", "--quiet", "--python", python, "--constraint", constraints,
        *requirements, cwd=python.parents[2],
    )  # fmt: skip


def installed(python: Path) -> set[str]:
    """The normalised names of every distribution importable by `python` (isolated: no cwd, no env)."""
    code = (
        "import importlib.metadata as m, json, re;"
        "print(json.dumps(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()"
        " for d in m.distributions()})))"
    )
    out = subprocess.run(
        [str(python), "-I", "-c", code], cwd=python.parents[1], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))
