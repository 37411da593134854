"""Benchmark `shadowlab analyze EXP --json`, `report` and `route` on experiments stored in Postgres.

Run: `.venv/bin/python bench/bench_analyze_db.py [--baseline-ref REF]`. Seeds 500,000 captures × 2 arms and
200,000 × 5 arms (1,000,000 replays each, a judge score on every answer; the SQL of bench_dashboard.py), times
each command in a fresh process (wall time and peak RSS), and, in the same run, the baseline: the same
`analyze` by the code at REF (default d0efba9, before issue 23), extracted with `git archive`. That code
refuses a newer schema, so the database's revision stamp reads 0005 during its run (the columns added
since are nullable and it does not read them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_dashboard import drop_database, fresh_database, seed_rows  # noqa: E402

COMMANDS = (("analyze", "--json"), ("report", "--format", "json"), ("route", "--json"))
SHAPES = ((500_000, 2), (200_000, 5))


def run(args: list[str], url: str, cwd: Path, module: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process (RSS from GNU time: getrusage of
    the children would report the largest child so far, not this one)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak_kb=%M", sys.executable, "-m", module, *args], cwd=cwd,
        capture_output=True, text=True, check=False, env={**os.environ, "SHADOWLAB_DATABASE_URL": url},
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr[-2000:]}")
    peak = next(line for line in reversed(done.stderr.splitlines()) if line.startswith("peak_kb="))
    return wall, int(peak.removeprefix("peak_kb=")) / 1024


def baseline(url: str, ref: str) -> tuple[float, float]:
    """`analyze bench-1m --json` by the code at `ref`."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0005_prompt_fingerprint'"))
        try:
            return run(["analyze", "bench-1m", "--json"], url, Path(tmp), "shadowlab.cli")
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-ref", default="d0efba9")
    options = parser.parse_args()
    rows: list[str] = []
    for n, arms in SHAPES:
        name = f"shadowlab_bench_analyze_{arms}arms"
        url = fresh_database(name)
        try:
            seconds = seed_rows(url, n, arms)
            for command in COMMANDS:
                wall, peak = run([command[0], "bench-1m", *command[1:]], url, REPO, "cli.main")
                rows.append(f"| {n:,} × {arms} | `{' '.join(command)}` | {wall:.2f} s | {peak:.0f} MB | |")
            if arms == 2:
                wall, peak = baseline(url, options.baseline_ref)
                rows.append(f"| {n:,} × {arms} | baseline: `analyze --json` at {options.baseline_ref} | "
                            f"{wall:.2f} s | {peak:.0f} MB | |")  # fmt: skip
        finally:
            drop_database(name)
        print(f"<!-- seeded {n:,} × {arms} in {seconds:.0f} s -->")
    load = os.getloadavg()[0]
    print(
        f"## Analysis from Postgres at 1,000,000 replays (`bench/bench_analyze_db.py`) — {dt.date.today()}\n"
    )
    print(f"Load average at the end: {load:.1f}.\n")
    print("| captures × arms | command | wall | peak RSS | |")
    print("|---|---|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
