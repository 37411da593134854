"""Scoring's database work per wave of judge calls: this checkout against the code at a git ref, in one
process.

A wave is what `shadowlab score` does on its executor threads for every `--concurrency` (16) judge calls:
one claim of 16 score tasks, one budget transaction (the last wave's 16 calls settled, this wave's 16
reserved) and two result writes of 8. Measured: the client CPU of that work (`time.thread_time`, one
thread), median wave of each round. The two codes alternate round by round in this one process (each round
imports its code afresh: the project's modules are dropped from `sys.modules` and its tree put first on the
path), so a drift of the machine's load hits both alike. Needs the project's Postgres (127.0.0.1:54329); a
scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_analyze_db import checkout
from bench_replayer import create_scratch, drop_scratch
from bench_scoring import seed

HERE = Path(__file__).resolve().parent
PROJECT = ("shadowlab", "scoring", "replayer", "cli", "ingest", "analysis", "simulator", "dashboard", "demo")


def use(tree: Path, trees: list[Path]) -> None:
    """Import the project from `tree` from now on."""
    for name in list(sys.modules):
        if name.split(".")[0] in PROJECT:
            del sys.modules[name]
    others = {str(t) for t in trees}
    sys.path[:] = [str(tree)] + [p for p in sys.path if p not in others]


def waves(url: str, round_: int, code: int, count: int, size: int) -> float:
    """Median client CPU (ms) of one wave, over `count` waves of the code imported now."""
    from scoring.base import ScoreResult
    from scoring.judge_calls import SharedBudget
    from scoring.store import PointWritten
    from scoring.tasks import ScorerKey, TaskQueue
    from shadowlab.db import create_engine, session_factory

    try:
        from shadowlab.budget_judges import JudgeHold, JudgeRef
    except ImportError:  # before e5c94ab
        from shadowlab.budget import JudgeHold, JudgeRef  # type: ignore[attr-defined,no-redef]

    engine = create_engine(url)
    factory = session_factory(engine)
    with engine.connect() as conn:
        experiment = conn.execute(sa.text("SELECT id FROM experiments WHERE name = 'w'")).scalar_one()
    version = f"r{round_}c{code}"  # a scorer version of its own: its own tasks
    queue = TaskQueue(factory, ScorerKey(experiment, "quality", version, "point"), worker_id="b", lease_s=300)
    queue.seed()
    budget = SharedBudget(factory, experiment, call_deadline_s=600)
    settles: dict[int, float] = {}
    spent: list[float] = []
    for wave in range(count):
        started = time.thread_time()
        items: Any = queue.claim(size)
        deadline = datetime.now(UTC) + timedelta(seconds=600)
        refs = [JudgeRef(experiment, "quality", version, i.captured_request_id, replay_id=i.replay_id)
                for i in items]  # fmt: skip
        holds = [JudgeHold(ref, "sim-judge", 0.001, deadline) for ref in refs]
        settles = {call: 0.0005 for _, call in budget._flush(holds, settles) if call is not None}
        result = ScoreResult(4.0, "fine", {"raw": "4"}, cost_usd=0.0005)
        written = [PointWritten(i.task_id, i.replay_id, result) for i in items]
        queue.finish(written[: size // 2], [])
        queue.finish(written[size // 2 :], [])
        if wave >= 5:  # psycopg prepares a statement at its fifth run
            spent.append(time.thread_time() - started)
    budget._flush([], settles)
    engine.dispose()
    return 1000 * statistics.median(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline-ref", default="b818a99", help="the code to compare with (default: as of 2026-12-07 04:40)"
    )
    parser.add_argument("--waves", type=int, default=30, help="waves per round and code")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=16, help="calls per wave (`--concurrency`)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        trees = [HERE.parent, stack.enter_context(checkout(args.baseline_ref))]
        use(trees[0], trees)
        from shadowlab import migrate
        from shadowlab.db import create_engine

        scratch, url = create_scratch("bench_scoring_db")
        stack.callback(drop_scratch, scratch)
        engine = create_engine(url)
        migrate.upgrade(engine)
        seed(engine, "w", args.waves * args.size // 2 + args.size)
        engine.dispose()
        found: list[list[float]] = [[], []]
        for round_ in range(args.rounds):
            for code, tree in enumerate(trees):
                use(tree, trees)
                found[code].append(waves(url, round_, code, args.waves, args.size))
        use(trees[0], trees)
    this, base = (statistics.median(f) for f in found)
    command = (f"python bench/bench_scoring_db.py --baseline-ref {args.baseline_ref} --waves {args.waves} "
               f"--rounds {args.rounds} --size {args.size}")  # fmt: skip
    rounds = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(*found, strict=True))
    print(f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load (1 min) {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after: client CPU per wave of {args.size} calls (claim, budget, two "
          f"writes) **{this:.2f} ms** (this checkout) vs {base:.2f} ms ({args.baseline_ref}), "
          f"{this / args.size:.3f} vs {base / args.size:.3f} ms per call; rounds (this/baseline): "
          f"{rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
