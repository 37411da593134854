"""The replayer end to end: real Postgres, the simulator over HTTP, real SDKs, several worker processes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab.models import (
    Arm,
    BudgetLedger,
    BudgetReservation,
    CapturedRequest,
    Experiment,
    Replay,
    WorkLease,
)
from simulator import Distribution, FaultRates
from tests.support.ledger import ledger_gaps
from tests.support.replay_lab import CANDIDATE_MODEL, CONTROL_MODEL, LAB_FAST, T0, capture
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.faults
def test_faults_three_workers_one_outcome_each_and_limits_hold(lab_factory: Callable[..., Any]) -> None:
    faults = FaultRates(rate_limit=0.20, overloaded=0.05, stream_error=0.02)
    lab, simulator = lab_factory(LAB_FAST.model_copy(update={"faults": faults}))
    n = 16
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    window, rpm = 2.0, 8
    limits = [{"provider": "anthropic", "model": CONTROL_MODEL, "rpm": rpm, "window_s": window},
              {"provider": "openai", "model": CANDIDATE_MODEL, "rpm": rpm, "window_s": window}]  # fmt: skip
    lab.create_and_start("faults", limits=limits)

    done = lab.cli("replay", "faults", "--workers", "3", "--backfill", timeout=180)

    assert "16 requests done" in done.stdout
    keys = lab.replay_keys()
    assert len(keys) == len(set(keys)) == n * 2
    assert lab.scalar(sa.select(sa.func.max(Replay.attempts))) > 1  # retries happened and were counted
    # The simulator's own record of every request it read: when it arrived, and what it answered.
    arrivals = sorted((r for r in simulator.records() if r.capture_id), key=lambda r: r.arrived_at)
    assert {a.status for a in arrivals} >= {200, 429}
    # Every kind of fault was met (the simulator draws them as a seeded sequence, so these are in every run):
    # 429s, 529s (503 from the OpenAI-compatible side), and an error in the middle of a streamed answer.
    assert {a.fault for a in arrivals} >= {"rate_limit", "overloaded", "stream_error"}
    assert any(a.fault == "stream_error" and a.stream and a.status == 200 for a in arrivals)
    for model in (CONTROL_MODEL, CANDIDATE_MODEL):
        times = [a.arrived_at for a in arrivals if a.model == model]
        # No window of `window` seconds holds more than `rpm` arrivals, exactly: a worker counts a call from
        # its admission until its response head (placed back from the stream's end, so never before the
        # simulator read it), and the shares of all workers never sum above `rpm` in any window, also while
        # they join (tests/shadowlab/test_limit_grants.py). The 1 ms is the clocks': arrivals are on the
        # simulator's wall clock, windows on the workers' monotonic one (NTP slews by at most 500 ppm).
        worst = max(sum(1 for t in times if start <= t < start + window - 0.001) for start in times)
        assert worst <= rpm, (model, worst)
    for limited in (a for a in arrivals if a.status == 429):
        assert limited.retry_after_s is not None
        until = limited.answered_at + limited.retry_after_s
        call = (limited.arm, limited.capture_id)
        retries = [a for a in arrivals if a.arrived_at > limited.arrived_at and (a.arm, a.capture_id) == call]
        assert retries and retries[0].arrived_at >= until - 0.01, "a retry came inside the retry-after window"
        # Every worker honours the pause: nothing for that model arrives once the 429 had time to be seen.
        inside = [
            a
            for a in arrivals
            if a.model == limited.model and limited.answered_at + 0.3 < a.arrived_at < until - 0.01
        ]
        assert not inside, f"{len(inside)} requests inside a retry-after window"


def test_budget_four_workers_never_exceeded(lab_factory: Callable[..., Any]) -> None:
    lab, _ = lab_factory()
    prices = {CONTROL_MODEL: {"input_cost_per_token": 1e-5, "output_cost_per_token": 1.2e-4},
              CANDIDATE_MODEL: {"input_cost_per_token": 1e-5, "output_cost_per_token": 1.2e-4}}  # fmt: skip
    (lab.tmp / "prices.json").write_text(json.dumps(prices))
    lab.env["SHADOWLAB_PRICES_FILE"] = str(lab.tmp / "prices.json")
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(90)])
    lab.create_and_start("budget", budget={"usd": 0.5})

    lab.cli("replay", "budget", "--workers", "4", "--backfill", "--concurrency", "8", timeout=180)

    spent = lab.scalar(sa.select(sa.func.sum(Replay.cost_usd)))
    reservation = BudgetReservation
    committed = lab.scalar(
        sa.select(sa.func.sum(sa.func.coalesce(reservation.settled_usd, reservation.reserved_usd)))
    )
    assert 0.3 < spent <= 0.5 and committed <= 0.5
    assert spent == pytest.approx(committed, rel=1e-9)  # every reservation settled to its replays' cost
    # Every reservation is settled, and the ledger is exactly the sum of what they settled to.
    assert lab.scalar(sa.select(sa.func.count()).where(reservation.settled_usd.is_(None))) == 0
    assert lab.scalar(sa.select(BudgetLedger.replay_usd)) == pytest.approx(committed, rel=1e-9)
    assert lab.scalar(sa.select(BudgetLedger.unsettled)) == 0
    assert lab.scalar(sa.select(Experiment.status)) == "budget_exhausted"
    with lab.engine.connect() as conn:
        per_request = conn.execute(
            sa.select(Replay.captured_request_id, sa.func.count()).group_by(Replay.captured_request_id)
        ).all()
        leased = conn.execute(sa.select(sa.func.count()).select_from(WorkLease)).scalar_one()
        undone = conn.execute(sa.select(sa.func.count()).where(WorkLease.done.is_(False))).scalar_one()
        gaps = ledger_gaps(conn)
    assert {count for _, count in per_request} == {2} and len(per_request) == leased < 90
    assert undone == 0
    assert gaps == []  # the ledger's holdback too is the sum of its reservations'


@pytest.mark.faults
def test_killed_worker_work_is_recovered_exactly_once(lab_factory: Callable[..., Any]) -> None:
    # Two worker processes replay together; one is killed (-9) mid-run and the survivor, still running,
    # takes over what it held once those leases expire. Every answer takes 1.5 s, 4 requests at a time per
    # model: the kill lands while the victim holds requests it cannot finish for 1.5 s.
    slow = LAB_FAST.model_copy(update={"ttft_ms": Distribution(median=1500)})
    lab, _ = lab_factory(slow)
    n = 20
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    # A concurrency limit too (issue 20, defect 4): the dead worker's share must come back to the survivor
    # within its heartbeat timeout, not after the 600 s call timeout.
    limits = [{"provider": "anthropic", "model": CONTROL_MODEL, "concurrency": 4},
              {"provider": "openai", "model": CANDIDATE_MODEL, "concurrency": 4}]  # fmt: skip
    lab.create_and_start(
        "crash", limits=limits, replay={"max_attempts": 5, "backoff_base_s": 0.05, "lease_s": 2.0}
    )
    victim = lab.popen("replay", "crash", "--backfill", "--concurrency", "4", "--no-progress")
    survivor = lab.popen("replay", "crash", "--backfill", "--concurrency", "4", "--no-progress")
    of_victim = WorkLease.worker_id.like(f"%:{victim.pid}:%")  # worker ids are host:pid:random
    done_leases = sa.select(sa.func.count()).where(WorkLease.done.is_(True))
    held_by_victim = sa.select(WorkLease.id).where(of_victim, WorkLease.done.is_(False))
    try:
        # Kill it once requests are finishing AND it holds some (between two claims it may hold none).
        wait_for(
            lambda: lab.scalar(done_leases) >= 2 and lab.scalar(sa.select(sa.func.count()).where(
                of_victim, WorkLease.done.is_(False))) > 0,
            what="requests finishing, and the victim holding some",
        )  # fmt: skip
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        with lab.engine.connect() as conn:
            orphaned = set(conn.execute(held_by_victim).scalars())
        assert orphaned  # it died holding work (the survivor takes it over only once its lease expired)

        assert survivor.wait(timeout=120) == 0, (lab.tmp / "worker-2.log").read_text()[-2000:]
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()

    assert "20 requests done" in (lab.tmp / "worker-2.log").read_text()
    keys = lab.replay_keys()
    assert len(keys) == len(set(keys)) == n * 2
    with lab.engine.connect() as conn:
        taken_over = conn.execute(
            sa.select(WorkLease.worker_id, WorkLease.done, WorkLease.attempts).where(
                WorkLease.id.in_(orphaned)
            )
        ).all()
        assert ledger_gaps(conn) == []  # the dead worker's charges and the re-replays settled in the ledger
    # Every request the victim held was finished by the survivor, on a second lease (a lease that had gone
    # would pass the check below unseen).
    assert len(taken_over) == len(orphaned), taken_over
    assert all(done and attempts >= 2 and f":{survivor.pid}:" in (worker or "")
               for worker, done, attempts in taken_over), taken_over  # fmt: skip


def test_rejected_request_is_a_failed_replay_with_the_providers_message(
    lab_factory: Callable[..., Any],
) -> None:
    lab, _ = lab_factory()
    lab.seed([capture(0, T0), capture(1, T0 + timedelta(seconds=1), messages=[])])
    lab.create_and_start("bad")

    lab.cli("replay", "bad", "--backfill")

    with lab.engine.connect() as conn:
        rows = conn.execute(
            sa.select(CapturedRequest.request_id, Arm.name, Replay.status, Replay.error_code,
                      Replay.error_detail, Replay.attempts)
            .join(CapturedRequest, CapturedRequest.id == Replay.captured_request_id)
            .join(Arm, Arm.id == Replay.arm_id)
        ).all()  # fmt: skip
    assert len(rows) == 4
    # The control arm speaks the capture's API, so the body goes as captured and the provider refuses it.
    (bad,) = [r for r in rows if r.request_id == "r-0001" and r.name == "control"]
    assert (bad.status, bad.error_code, bad.attempts) == ("error", "bad_request", 1)
    assert "400" in bad.error_detail and "at least one message" in bad.error_detail
    assert {r.status for r in rows if r.request_id == "r-0000"} == {"ok"}


def test_live_mode_picks_up_captures_ingested_after_start(lab_factory: Callable[..., Any]) -> None:
    lab, _ = lab_factory()
    lab.seed([capture(0, T0)])
    lab.create_and_start("live", traffic={"mode": "live"})
    worker = lab.popen("replay", "live", "--live", "--no-progress")
    try:
        replays = sa.select(sa.func.count()).select_from(Replay)
        wait_for(lambda: lab.scalar(replays) == 2, what="the first capture's replays")
        lab.seed([capture(i, T0 + timedelta(minutes=i)) for i in range(1, 4)])
        wait_for(lambda: lab.scalar(replays) == 8, what="replays of captures ingested later")
        lab.cli("experiment", "pause", "live")
        assert worker.wait(timeout=30) == 0  # a paused experiment stops its workers
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_each_replay_names_its_capture_so_repeated_bodies_are_sampled_afresh(
    lab_factory: Callable[..., Any],
) -> None:
    lab, simulator = lab_factory()
    same = [{"role": "user", "content": "What are your opening hours?"}]
    lab.seed([capture(i, T0 + timedelta(seconds=i), messages=same) for i in range(3)])
    lab.create_and_start("repeats")

    lab.cli("replay", "repeats", "--backfill")

    records = [r for r in simulator.records() if r.status == 200]
    assert sorted((r.arm, r.capture_id) for r in records) == [
        (arm, f"r-{i:04d}") for arm in ("cand", "control") for i in range(3)
    ]
    with lab.engine.connect() as conn:
        answers = conn.execute(
            sa.select(Arm.name, Replay.answer_text).join(Arm, Arm.id == Replay.arm_id)
        ).all()  # fmt: skip
    for arm in ("control", "cand"):
        texts = [text for name, text in answers if name == arm]
        assert len(texts) == len(set(texts)) == 3  # one body, three captures: three samplings


def _children_of(pid: int) -> list[int]:
    """The running processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command name (in parentheses, which may hold spaces): state, then the parent's pid.
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(parent) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# SIGTERM is what `docker stop` sends, to the parent only; SIGINT (Ctrl-C) is handled the same way.
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_to_the_parent_drains_every_worker_and_leaves_no_lease_held(
    stop: signal.Signals, lab_factory: Callable[..., Any]
) -> None:
    slow = LAB_FAST.model_copy(update={"ttft_ms": Distribution(median=150)})
    lab, _ = lab_factory(slow)
    n = 200
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    lab.create_and_start("sigterm")
    parent = lab.popen(
        "replay", "sigterm", "--workers", "2", "--backfill", "--concurrency", "2", "--no-progress"
    )
    workers: list[int] = []
    try:
        replays = sa.select(sa.func.count()).select_from(Replay)
        wait_for(lambda: lab.scalar(replays) >= 8, what="replays flowing from both workers")
        workers = _children_of(parent.pid)
        assert len(workers) == 2, (workers, (lab.tmp / "worker-1.log").read_text()[-3000:])

        parent.send_signal(stop)

        code = parent.wait(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        orphans = [pid for pid in workers if _running(pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
    log = (lab.tmp / "worker-1.log").read_text()[-3000:]  # the parent's and its workers' output
    assert not orphans, f"workers {orphans} outlived their parent"
    assert code == 0, log
    with lab.engine.connect() as conn:
        held = conn.execute(sa.select(sa.func.count()).where(WorkLease.done.is_(False))).scalar_one()
        done = conn.execute(sa.select(sa.func.count()).where(WorkLease.done.is_(True))).scalar_one()
    assert held == 0, (held, log)  # each worker finished what it had claimed before exiting
    assert 0 < done < n, (done, log)  # it stopped early, on the signal
    keys = lab.replay_keys()
    # both arms of every finished request, once each
    assert len(keys) == len(set(keys)) == 2 * done, (len(keys), done, log)


def test_all_follow_replays_an_experiment_started_after_it_and_stops_on_sigterm(
    lab_factory: Callable[..., Any],
) -> None:
    lab, _ = lab_factory()
    n = 4
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    follower = lab.popen("replay", "--all", "--follow")
    log = lab.tmp / "worker-1.log"
    try:
        wait_for(lambda: "replaying every running experiment until stopped" in log.read_text(),
                 what="the follower to serve before any experiment runs")  # fmt: skip
        lab.create_and_start("late")  # after it started: found by its next scan

        replays = sa.select(sa.func.count()).select_from(Replay)
        wait_for(lambda: lab.scalar(replays) == 2 * n, what="the follower to replay the new experiment")
        follower.send_signal(signal.SIGTERM)

        assert follower.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    keys = lab.replay_keys()
    assert len(keys) == len(set(keys)) == 2 * n
    assert "replaying late (backfill)" in log.read_text()
