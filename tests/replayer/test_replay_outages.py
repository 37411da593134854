"""The replayer end to end through a provider's outage (issue 20, defect 11): real Postgres, the simulator
over HTTP with one provider down, real SDKs."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from replayer.follow import replay_all
from replayer.metrics import WorkerMetrics
from replayer.run import ReplayOptions, run_replay
from shadowlab.config import load_settings
from shadowlab.db import session_factory
from shadowlab.models import Arm, BudgetLedger, BudgetReservation, Experiment, RateLimitKey, Replay, WorkLease
from simulator import Simulator
from simulator.outages import OutageFault
from tests.support.replay_lab import CANDIDATE_MODEL, T0, Lab, capture
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Issue 20, defect 11: a provider that answers nothing is an outage, not the candidate's error rate.
OUTAGE = {"failures": 4, "requests": 2, "probe_s": 0.2}
QUICK_RETRIES = {"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "lease_s": 30}


def _candidate_down(
    lab_factory: Callable[..., Any], name: str, n: int, max_s: float, fault: OutageFault
) -> tuple[Lab, Simulator]:
    """`n` captures, experiment `name` running, and its candidate's provider down (`fault` to every call)."""
    lab, simulator = lab_factory()
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    lab.create_and_start(name, replay={**QUICK_RETRIES, "outage": {**OUTAGE, "max_s": max_s}})
    simulator.outages.start(CANDIDATE_MODEL, fault)
    return lab, simulator


@pytest.mark.faults
def test_a_provider_outage_pauses_its_calls_until_it_is_back_and_fails_no_arm(
    lab_factory: Callable[..., Any],
) -> None:
    n = 12
    # Every connection to the candidate drops (reset), as in a real outage.
    lab, simulator = _candidate_down(lab_factory, "outage", n, max_s=120, fault="reset")
    worker = lab.popen("replay", "outage", "--backfill", "--no-progress")
    try:
        paused = sa.select(sa.func.count()).where(RateLimitKey.key == "outage:openai")
        wait_for(lambda: worker.poll() is not None or lab.scalar(paused) == 1, what="the outage to be seen")
        # Before the fix the worker had recorded every candidate call as a `connection` error and ended.
        assert worker.poll() is None, (lab.tmp / "worker-1.log").read_text()[-2000:]
        refused = [r for r in simulator.records() if r.model == CANDIDATE_MODEL]
        wait_for(lambda: sum(r.model == CANDIDATE_MODEL for r in simulator.records()) >= len(refused) + 2,
                 what="two more probes of the provider while it is down")  # fmt: skip
        assert lab.scalar(sa.select(sa.func.count()).where(WorkLease.done.is_(True))) == 0
        # Down means paused: one probe every probe_s, not every held call retrying.
        assert sum(r.model == CANDIDATE_MODEL for r in simulator.records()) < 2 * n

        simulator.outages.end()

        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    keys = lab.replay_keys()
    assert len(keys) == len(set(keys)) == 2 * n  # every (arm, request) exactly one outcome
    assert lab.scalar(sa.select(sa.func.count()).where(Replay.status != "ok")) == 0
    log = (lab.tmp / "worker-1.log").read_text()
    assert "provider openai is down" in log and "provider openai is back" in log


@pytest.mark.faults
def test_an_outage_longer_than_its_limit_stops_the_run_with_its_requests_not_done(
    lab_factory: Callable[..., Any],
) -> None:
    n = 6
    lab, simulator = _candidate_down(lab_factory, "long-outage", n, max_s=1.0, fault="server_error")  # 500s

    stopped = lab.cli("replay", "long-outage", "--backfill", "--no-progress", ok=False)

    assert stopped.returncode == 3, stopped.stderr
    (line,) = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert "provider openai: down for" in line and "replay.outage.max_s" in line
    assert "Traceback" not in stopped.stderr
    assert lab.scalar(sa.select(sa.func.count()).where(WorkLease.done.is_(True))) == 0
    with lab.engine.connect() as conn:
        kept = conn.execute(sa.select(Arm.name, Replay.captured_request_id).join(Arm)).all()
        leases = conn.execute(sa.select(WorkLease.captured_request_id, WorkLease.deadline)).all()
        now = conn.execute(sa.select(sa.func.now())).scalar_one()
    # No arm failed for the vendor: the candidate has no row. The control arms that answered are kept and
    # their requests' leases given up (deadline passed): the next run takes them over at once.
    assert kept and {name for name, _ in kept} == {"control"}
    assert sorted(crid for _, crid in kept) == sorted(crid for crid, _ in leases)
    assert all(deadline is not None and deadline <= now for _, deadline in leases)


def _ledger_matches_reservations(lab: Lab) -> tuple[int, float]:
    """The ledger holds exactly each reservation at its settled cost, or its worst case while open: (open
    reservations, settled total)."""
    res = BudgetReservation
    with lab.engine.connect() as conn:
        ledger = conn.execute(sa.select(BudgetLedger.replay_usd, BudgetLedger.unsettled)).one()
        open_, held, settled = conn.execute(
            sa.select(sa.func.count().filter(res.settled_usd.is_(None)),
                      sa.func.coalesce(sa.func.sum(res.reserved_usd).filter(res.settled_usd.is_(None)), 0.0),
                      sa.func.coalesce(sa.func.sum(res.settled_usd), 0.0))
        ).one()  # fmt: skip
    assert settled is not None  # coalesce(sum, 0.0)
    assert ledger.unsettled == open_
    assert ledger.replay_usd == pytest.approx(held + settled, rel=1e-9, abs=1e-12)
    return open_, settled


@pytest.mark.faults
def test_a_stop_during_an_outage_gives_back_what_it_holds_and_the_next_run_replays_each_arm_once(
    lab_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 8
    lab, simulator = _candidate_down(lab_factory, "stop-outage", n, max_s=600, fault="reset")
    # Concurrency 4: all 8 requests leased (4 replaying, a batch of 4 ahead); the control arms answer, the
    # candidate's wait.
    follower = lab.popen("replay", "--all", "--follow", "--concurrency", "4")
    log = lab.tmp / "worker-1.log"

    def answered() -> list[tuple[str, str | None]]:
        return [(r.arm, r.capture_id) for r in simulator.records() if r.status == 200]

    try:
        paused = sa.select(sa.func.count()).where(RateLimitKey.key == "outage:openai")
        wait_for(lambda: lab.scalar(paused) == 1 and len(answered()) == 4,
                 what="the outage to be seen with 4 control arms answered")  # fmt: skip
        started = time.monotonic()
        follower.send_signal(signal.SIGTERM)

        assert follower.wait(timeout=20) == 0, log.read_text()[-2000:]
        stopped_in = time.monotonic() - started
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert "8 requests given back (4 with no arm replayed" in log.read_text(), stopped_in
    with lab.engine.connect() as conn:
        leases = conn.execute(
            sa.select(WorkLease.captured_request_id, WorkLease.done, WorkLease.deadline)
        ).all()
        now = conn.execute(sa.select(sa.func.now())).scalar_one()
        kept = conn.execute(sa.select(Arm.name, Replay.captured_request_id).join(Arm)).all()
    # The 4 not started: no lease, no reservation. The 4 part done: their control rows, the lease expired.
    assert len(leases) == 4 and not any(
        done or deadline is None or deadline > now for _, done, deadline in leases
    )
    assert sorted(kept) == sorted(("control", crid) for crid, _, _ in leases)
    assert _ledger_matches_reservations(lab)[0] == 4

    simulator.outages.end()
    for name, value in lab.env.items():  # the second run in this process: one CLI start-up (2-5 s) less
        monkeypatch.setenv(name, value)
    options = ReplayOptions("stop-outage", workers=1, mode="backfill", progress=False)
    assert run_replay(session_factory(lab.engine), load_settings(), options).done == n

    assert sorted(answered()) == sorted((arm, f"r-{i:04d}") for arm in ("control", "cand") for i in range(n))
    keys = lab.replay_keys()
    assert len(keys) == len(set(keys)) == 2 * n
    open_, settled = _ledger_matches_reservations(lab)
    assert open_ == 0 and settled == pytest.approx(lab.scalar(sa.select(sa.func.sum(Replay.cost_usd))))


def test_all_follow_goes_on_serving_when_one_experiments_provider_stays_down(
    lab_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    n = 4
    lab, _ = _candidate_down(lab_factory, "down", n, max_s=0.5, fault="server_error")
    anthropic_only = {"name": "cand", "provider": "anthropic", "model": "claude-sonnet-4-5",
                      "extra_headers": {"x-sim-arm": "cand"}}  # fmt: skip
    lab.create_and_start("up", candidates=[anthropic_only])
    for name, value in lab.env.items():  # the follower in this process: no CLI start-up (2-5 s)
        monkeypatch.setenv(name, value)
    up = sa.select(sa.func.count()).select_from(Replay).join(Experiment).where(Experiment.name == "up")
    ended = "down: provider openai: down for"

    async def follow() -> None:
        stop = asyncio.Event()
        follower = asyncio.create_task(
            replay_all(session_factory(lab.engine), load_settings(), worker_id="follower", concurrency=4,
                       metrics=WorkerMetrics.create(), follow=True, poll_s=0.1, stop=stop)
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        while not follower.done() and not (
            ended in caplog.text and await loop.run_in_executor(None, lab.scalar, up) == 2 * n
        ):
            await asyncio.sleep(0.05)
        assert not follower.done(), caplog.text[-2000:]  # before: the follower ended on the first such outage
        stop.set()
        await follower

    asyncio.run(asyncio.wait_for(follow(), 60))

    assert f"{ended}" in caplog.text and "served again from the next scan" in caplog.text
