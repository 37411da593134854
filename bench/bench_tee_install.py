"""Installing the tee's wheel (`shadowlab-tee`) into a fresh venv: wall time, what gets installed, size.

Builds both wheels from this checkout, then, `--runs` times: a new empty venv, then
`uv pip install --offline <shadowlab_tee wheel>` (kafka-python from uv's local cache, pinned by uv.lock),
then a first `import shadowlab_tee` in it. The platform wheel's own dependencies are counted for comparison.
Prints a markdown section. Goal: the tee installs in < 10 s from a local wheel.

    .venv/bin/python bench/bench_tee_install.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import tee_wheel  # noqa: E402


def _size_mib(venv: Path) -> float:
    site = next((venv / "lib").glob("python*/site-packages"))
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, tee = tee_wheel.build_wheels(work / "wheels")
        constraints = tee_wheel.locked_constraints(work / "constraints.txt")
        venv_s, install_s, import_s = [], [], []
        for run in range(args.runs):
            started = time.perf_counter()
            python = tee_wheel.fresh_venv(work / f"venv{run}")
            venv_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            tee_wheel.install(python, constraints, tee)
            install_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([str(python), "-I", "-c", "import shadowlab_tee"], check=True)
            import_s.append(time.perf_counter() - started)
        installed = sorted(tee_wheel.installed(python))
        size = _size_mib(work / f"venv{args.runs - 1}")
    load = os.getloadavg()[0]
    print("## Tee: installing `shadowlab-tee` alone from a local wheel (`bench/bench_tee_install.py`)")
    print()
    print(
        f"Command: `.venv/bin/python bench/bench_tee_install.py --runs {args.runs}` · "
        f"{os.cpu_count()} cores, "
        f"Python {platform.python_version()} · {dt.date.today()} · load ≈ {load:.1f} · uv's cache warm."
    )
    print()
    print("| step | median s | max s |")
    print("|---|---:|---:|")
    for name, values in (
        ("new empty venv (`uv venv`)", venv_s),
        ("`uv pip install --offline shadowlab_tee-*.whl` (+ kafka-python)", install_s),
        ("first `import shadowlab_tee` (python start-up included)", import_s),
    ):
        print(f"| {name} | {statistics.median(values):.2f} | {max(values):.2f} |")
    print()
    print(
        f"Installed: {', '.join(installed)} ({size:.1f} MiB in site-packages). Goal < 10 s: "
        f"{'met' if max(install_s) < 10 else 'NOT met'}."
    )


if __name__ == "__main__":
    main()
