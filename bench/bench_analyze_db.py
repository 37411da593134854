"""Benchmark `shadowlab analyze EXP --json`, `report` and `route` on experiments stored in Postgres.

Run: `.venv/bin/python bench/bench_analyze_db.py [--baseline-ref REF] [--stamp REV] [--keep] [--repeat N]`.
Seeds 500,000 captures × 2 arms and 200,000 × 5 arms (1,000,000 replays each, a judge score on every answer;
the SQL of bench_dashboard.py), times each command in a fresh process (wall time, CPU time and peak RSS), and,
in the same run, the baseline: the same commands by the code at REF (default d0efba9, before issue 23),
extracted with `git archive`. Code before 0006 refuses a newer schema, so `--stamp` (default
0005_prompt_fingerprint, for d0efba9; `--stamp ''` for a ref at the current schema) sets the database's
revision stamp during its run. With `--keep` the seeded databases stay and a later run reuses them (the
machine is shared: seeding costs minutes). Each command runs `--repeat` times (default 3) per code,
alternating new, baseline, new, … so a change in the machine's load hits both alike; the table gives medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_dashboard import ADMIN_URL, drop_database, fresh_database, seed_rows  # noqa: E402

from shadowlab import migrate  # noqa: E402

COMMANDS = (("analyze", "--json"), ("report", "--format", "json"), ("route", "--json"))
SHAPES = ((500_000, 2), (200_000, 5))


def run(args: list[str], url: str, cwd: Path, module: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds of the command's process (user + system) and its peak RSS (MB), in a fresh
    process (from GNU time: getrusage of the children would report the largest child so far)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "cpu_s=%U+%S peak_kb=%M", sys.executable, "-m", module, *args], cwd=cwd,
        capture_output=True, text=True, check=False, env={**os.environ, "SHADOWLAB_DATABASE_URL": url},
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr[-2000:]}")
    cpu, peak = next(line for line in reversed(done.stderr.splitlines()) if line.startswith("cpu_s=")).split()
    user, system = cpu.removeprefix("cpu_s=").split("+")
    return wall, float(user) + float(system), int(peak.removeprefix("peak_kb=")) / 1024


def summary(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Median wall and CPU seconds, largest peak RSS, of repeated runs."""
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        max(r[2] for r in runs),
    )


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The code at `ref`, in a temporary directory, its bytecode compiled (as `make setup` compiles the work
    tree's: a copy without it would compile every module again in each timed command)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        compile_bytecode(Path(tmp))
        yield Path(tmp)


def compile_bytecode(root: Path) -> None:
    """Compile the bytecode of the project's packages under `root` (its top-level packages and those of
    `packages/`; not tests, whose modules the commands do not import)."""
    found = [*root.glob("*/__init__.py"), *root.glob("packages/*/*/__init__.py")]
    packages = [str(init.parent) for init in found if init.parent.name != "tests"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *packages], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


@contextmanager
def stamped(url: str, stamp: str) -> Iterator[None]:
    """The database's revision stamp reads `stamp` meanwhile (unless empty)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        if stamp:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :s"), {"s": stamp})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        engine.dispose()


def seeded(name: str, n: int, arms: int, keep: bool) -> tuple[str, float | None]:
    """The bench database (reused when `keep` and it holds the experiment), and the seconds seeding took."""
    url = sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    if keep:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                found = conn.execute(sa.text("SELECT count(*) FROM replays")).scalar_one()
            if found == n * arms:
                migrate.upgrade(engine)  # a migration added since it was seeded
                return url, None
        except sa.exc.SQLAlchemyError:
            pass
        finally:
            engine.dispose()
    url = fresh_database(name)
    return url, seed_rows(url, n, arms)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-ref", default="d0efba9")
    parser.add_argument("--stamp", default="0005_prompt_fingerprint")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command and code (alternating)")
    options = parser.parse_args()
    ref = options.baseline_ref
    rows: list[str] = []
    loads = [os.getloadavg()[0]]
    compile_bytecode(REPO)  # current after edits made since `make setup`
    for n, arms in SHAPES:
        name = f"shadowlab_bench_analyze_{arms}arms"
        url, seconds = seeded(name, n, arms, options.keep)
        try:
            with checkout(ref) as old:
                for command in COMMANDS:
                    args = [command[0], "bench-1m", *command[1:]]
                    new: list[tuple[float, float, float]] = []
                    baseline: list[tuple[float, float, float]] = []
                    for _ in range(options.repeat):  # alternating: a load change hits both codes alike
                        new.append(run(args, url, REPO, "shadowlab"))  # the console entry, as users run it
                        with stamped(url, options.stamp):  # `python -m shadowlab`: the command at every ref
                            baseline.append(run(args, url, old, "shadowlab"))
                    loads.append(os.getloadavg()[0])
                    new_wall, new_cpu, new_peak = summary(new)
                    old_wall, old_cpu, old_peak = summary(baseline)
                    rows.append(
                        f"| {n:,} × {arms} | `{' '.join(command)}` | {new_wall:.2f} s "
                        f"({min(r[0] for r in new):.2f}–{max(r[0] for r in new):.2f}) | {new_cpu:.2f} s | "
                        f"{new_peak:,.0f} MB | {old_wall:.2f} s | {old_cpu:.2f} s | {old_peak:,.0f} MB | "
                        f"{old_wall / new_wall:.2f}× |"
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
        finally:
            if not options.keep:
                drop_database(name)
        print("<!-- " + (f"seeded {n:,} × {arms} in {seconds:.0f} s" if seconds else "reused") + " -->")
    print(
        f"## Analysis from Postgres at 1,000,000 replays (`bench/bench_analyze_db.py`) — {dt.date.today()}\n"
    )
    print(f"Load average (1 min) before and after each command: {', '.join(f'{x:.1f}' for x in loads)}. "
          f"Each figure is the median of {options.repeat} runs, this checkout's and {ref}'s alternating "
          "(range of this checkout's walls in brackets); peak RSS is the largest.\n")  # fmt: skip
    before = f"{ref} wall | {ref} CPU | {ref} RSS"
    print(f"| captures × arms | command | wall | CPU | peak RSS | {before} | wall ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
