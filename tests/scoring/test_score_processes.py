"""`shadowlab score` as processes on one experiment (real Postgres, the simulator's judge over HTTP): two at
once judge each item once, a survivor finishes a killed one's items, `--all --follow` picks up an
experiment started after it and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab.db import session_scope
from shadowlab.models import (
    Experiment,
    JudgeCall,
    Preference,
    RateLimitGrant,
    Replay,
    Score,
    ScoreTask,
    WorkerHeartbeat,
)
from tests.support.replayed_arms import N_REQUESTS, Seeded
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

ITEMS = 2 * N_REQUESTS  # per judge: every replay (pointwise), every prompt in both orders (pairwise)
PRICES = {"sim-judge": {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6,
                        "litellm_provider": "anthropic", "mode": "chat"}}  # fmt: skip


def _spec(ttfb_ms: int, lease_s: float = 300.0) -> dict[str, Any]:
    """The seeded experiment as a full spec; the judges' latency header changes their version, never a
    verdict (the simulator's judge noise is seeded by the request body)."""
    headers = {"x-sim-judge-noise": "0.05", "x-sim-ttfb-ms": str(ttfb_ms)}
    return {
        "name": "exp",
        "control": {"name": "control", "provider": "anthropic", "model": "ctrl-model"},
        "candidates": [{"name": "candidate", "provider": "anthropic", "model": "cand-model"}],
        "allowed_providers": ["anthropic"],
        "budget": {"usd": 100},
        "plan": {"primary_metric": "judge_score"},
        "replay": {"lease_s": lease_s, "max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        "scoring": {"judges": [
            {"name": "quality", "kind": "pointwise", "model": "sim-judge", "extra_headers": headers},
            {"name": "pref", "kind": "pairwise", "model": "sim-judge", "extra_headers": headers},
        ]},
    }  # fmt: skip


def _set(seeded: Seeded, spec: dict[str, Any], status: str = "running") -> None:
    with session_scope(seeded.factory) as session:
        experiment = session.get_one(Experiment, seeded.experiment_id)
        experiment.spec, experiment.status = spec, status


def _env(seeded: Seeded, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "prices.json").write_text(json.dumps(PRICES), encoding="utf-8")
    url = seeded.factory.kw["bind"].url.render_as_string(hide_password=False)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    prices = str(tmp_path / "prices.json")
    return keep | {"SHADOWLAB_DATABASE_URL": url, "SHADOWLAB_ANTHROPIC_BASE_URL": seeded.sim.base_url,
                   "SHADOWLAB_PRICES_FILE": prices, "ANTHROPIC_API_KEY": "k"}  # fmt: skip


def _score(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "score", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def _judge_calls_served(seeded: Seeded) -> int:
    return sum(1 for r in seeded.sim.simulator.records() if r.model == "sim-judge")


def _results(seeded: Seeded, version: dict[str, str]) -> dict[tuple[Any, ...], Any]:
    """(scorer, arm, request[, order]) → value or preferred arm, for the given version of each judge."""
    with seeded.factory() as session:
        points = session.execute(
            sa.select(Replay.arm_id, Replay.captured_request_id, Score.value)
            .join(Replay, Replay.id == Score.replay_id)
            .where(Score.scorer_name == "quality", Score.scorer_version == version["quality"])
        ).all()
        pairs = session.execute(
            sa.select(Preference.arm_b_id, Preference.captured_request_id, Preference.order_shown,
                      Preference.result)
            .where(Preference.scorer_name == "pref", Preference.scorer_version == version["pref"])
        ).all()  # fmt: skip
    found: dict[tuple[Any, ...], Any] = {("quality", a, r): v for a, r, v in points}
    found |= {("pref", a, r, o): result for a, r, o, result in pairs}
    return found


def _versions(seeded: Seeded) -> dict[str, str]:
    from scoring.registry import scoring_spec

    with seeded.factory() as session:
        spec = session.get_one(Experiment, seeded.experiment_id).spec
    return {judge.name: judge.version for judge in scoring_spec(spec).judges}


def _done_by(seeded: Seeded, version: dict[str, str]) -> Counter[str | None]:
    """Which process finished how many tasks of these versions."""
    with seeded.factory() as session:
        rows = session.execute(
            sa.select(ScoreTask.scorer_name, ScoreTask.scorer_version, ScoreTask.worker_id).where(
                ScoreTask.done.is_(True)
            )
        ).all()
    return Counter(worker for name, v, worker in rows if version.get(name) == v)


def test_two_processes_judge_each_item_once_with_the_scores_of_one(seeded: Seeded, tmp_path: Path) -> None:
    env = _env(seeded, tmp_path)
    limits = [{"provider": "anthropic", "model": "sim-judge", "rpm": 100_000, "concurrency": 8}]
    _set(seeded, _spec(ttfb_ms=1) | {"limits": limits})
    alone = _versions(seeded)
    _finished(_score(env, tmp_path, "exp", "--concurrency", "8"))
    expected = _results(seeded, alone)
    assert len(expected) == 2 * ITEMS
    with seeded.factory() as session:  # it left: its share is free for the next run at once
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkerHeartbeat)) == 0
        grants = session.execute(sa.select(RateLimitGrant.rpm, RateLimitGrant.concurrency)).all()
    assert grants and all(g == (0, 0) for g in grants), grants

    _set(seeded, _spec(ttfb_ms=20))  # a new version of both judges
    together = _versions(seeded)
    served = _judge_calls_served(seeded)
    # The simulator holds the judge's answers until both processes have calls in flight (at most 2 each),
    # so each judges items whatever the machine's load makes of their start-ups.
    holds = seeded.sim.simulator.holds
    holds.start("sim-judge*")
    first = _score(env, tmp_path, "exp", "--concurrency", "2")
    wait_for(lambda: holds.waiting() >= 2, "the first process's calls (2 at most: pointwise first)")
    second = _score(env, tmp_path, "exp", "--concurrency", "2")
    wait_for(lambda: holds.waiting() >= 4, "the second process's judge calls too")
    holds.end()
    _finished(first), _finished(second)

    assert _judge_calls_served(seeded) - served == 2 * ITEMS  # zero duplicate judge calls
    got = _results(seeded, together)
    assert got == expected  # the same verdicts as one process
    assert len(_done_by(seeded, together)) == 2  # both processes judged
    with seeded.factory() as session:
        calls = session.execute(
            sa.select(JudgeCall.scorer_version, JudgeCall.replay_id, JudgeCall.captured_request_id,
                      JudgeCall.order_shown).where(JudgeCall.scorer_version.in_(together.values()))
        ).all()  # fmt: skip
    assert len(calls) == len(set(calls)) == 2 * ITEMS


@pytest.mark.faults
def test_a_killed_scorer_s_items_are_scored_once_by_the_survivor(seeded: Seeded, tmp_path: Path) -> None:
    # Two processes score together; one is killed (-9) while it holds tasks with calls in flight, and the
    # survivor, still running, takes them over once their leases (2 s) expire.
    env = _env(seeded, tmp_path)
    _set(seeded, _spec(ttfb_ms=400, lease_s=2.0))
    version = _versions(seeded)
    served = _judge_calls_served(seeded)
    victim = _score(env, tmp_path, "exp", "--concurrency", "4")
    survivor = _score(env, tmp_path, "exp", "--concurrency", "4")
    of_victim = ScoreTask.worker_id.like(f"%:{victim.pid}:%")  # worker ids are host:pid:random
    held_by_victim = sa.select(ScoreTask.id).where(of_victim, ScoreTask.done.is_(False))
    try:
        with seeded.factory() as session:

            def victim_holds_calls_in_flight() -> bool:
                session.expire_all()
                in_flight = session.scalar(sa.select(sa.func.count()).where(JudgeCall.settled_usd.is_(None)))
                return bool(in_flight) and session.execute(held_by_victim).first() is not None

            wait_for(victim_holds_calls_in_flight, "the victim to hold tasks with judge calls in flight")
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        with seeded.factory() as session:
            orphaned = set(session.scalars(held_by_victim))
        assert orphaned  # it died holding tasks

        _finished(survivor)
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.communicate()

    with seeded.factory() as session:
        scores = Counter(
            session.scalars(sa.select(Score.replay_id).where(Score.scorer_version == version["quality"]))
        )
        prefs = session.scalar(sa.select(sa.func.count()).where(Preference.scorer_version == version["pref"]))
        open_tasks = session.scalar(sa.select(sa.func.count()).where(ScoreTask.done.is_(False)))
        taken_over = session.execute(
            sa.select(ScoreTask.worker_id, ScoreTask.done, ScoreTask.attempts).where(
                ScoreTask.id.in_(orphaned)
            )
        ).all()
    assert len(scores) == ITEMS and set(scores.values()) == {1} and prefs == ITEMS  # every item once
    assert open_tasks == 0
    # Every task the victim held was finished by the survivor, on a second lease.
    assert len(taken_over) == len(orphaned), taken_over
    assert all(done and attempts >= 2 and f":{survivor.pid}:" in (worker or "")
               for worker, done, attempts in taken_over), taken_over  # fmt: skip
    # Judged twice: only what the killed process had in flight (at most its concurrency) when it died.
    assert 2 * ITEMS <= _judge_calls_served(seeded) - served <= 2 * ITEMS + 4


def test_all_follow_scores_an_experiment_started_after_it_and_stops_on_sigterm(
    seeded: Seeded, tmp_path: Path
) -> None:
    env = _env(seeded, tmp_path)
    _set(seeded, _spec(ttfb_ms=1), status="paused")
    version = _versions(seeded)
    follower = _score(env, tmp_path, "--all", "--follow", "--concurrency", "8")
    assert follower.stderr is not None
    for line in follower.stderr:  # it is up and serving before the experiment runs
        if "scoring every running experiment until stopped" in line:
            break
    _set(seeded, _spec(ttfb_ms=1), status="running")

    def scored() -> int:
        with seeded.factory() as session:
            points = session.scalar(
                sa.select(sa.func.count()).where(Score.scorer_version == version["quality"])
            )
            pairs = session.scalar(
                sa.select(sa.func.count()).where(Preference.scorer_version == version["pref"])
            )
            return int(points or 0) + int(pairs or 0)

    wait_for(lambda: scored() == 2 * ITEMS, "the follower to score the experiment started after it")
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "exp:" in out and f"quality ({version['quality']}): {ITEMS} stored" in out
