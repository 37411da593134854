"""The replayer end to end: real Postgres, the simulator over HTTP, real SDKs, several worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from replayer.follow import replay_all
from replayer.metrics import WorkerMetrics
from replayer.run import ReplayOptions, run_replay
from shadowlab import migrate, store
from shadowlab.config import load_settings
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import (
    Arm,
    BudgetLedger,
    BudgetReservation,
    CapturedRequest,
    Experiment,
    RateLimitKey,
    Replay,
    WorkLease,
)
from shadowlab.pricing import load_price_table
from simulator import Distribution, FaultRates, ModelProfile, ProfileSet, Simulator, running_simulator
from simulator.outages import OutageFault

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONTROL_MODEL, CANDIDATE_MODEL = "claude-haiku-4-5", "gpt-4o-mini"
FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=40, sigma=0.3, low=10, high=60),
    retry_after_s=0.5,
    stall_ms=2_000,
)


def _capture(index: int, at: datetime, *, messages: list[Any] | None = None) -> dict[str, Any]:
    request = {
        "model": CONTROL_MODEL,
        "max_tokens": 60,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": messages
        if messages is not None
        else [
            {"role": "user", "content": f"Question {index}: what is {index} plus {index}? (r-{index:04d})"}
        ],
    }
    return {
        "request_id": f"r-{index:04d}", "captured_at": at, "service": "chat", "route": "/ask",
        "api": "anthropic.messages", "model": CONTROL_MODEL, "request": request,
    }  # fmt: skip


class Lab:
    """A migrated database, a simulator and the environment the CLI subprocesses get."""

    def __init__(self, url: str, sim_url: str, tmp: Path, cli: Callable[..., Any]) -> None:
        self.url, self.tmp, self._cli = url, tmp, cli
        self._spawned = 0
        self.engine = create_engine(url)
        migrate.upgrade(self.engine)
        self.env = {
            "SHADOWLAB_DATABASE_URL": url,
            "SHADOWLAB_ANTHROPIC_BASE_URL": sim_url,
            "SHADOWLAB_OPENAI_BASE_URL": f"{sim_url}/v1",
            "ANTHROPIC_API_KEY": "sk-ant-test-key",
            "OPENAI_API_KEY": "sk-test-key",
        }

    def cli(self, *args: str, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done: subprocess.CompletedProcess[str] = self._cli(*args, env=self.env, cwd=self.tmp, timeout=timeout)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | self.env
        self._spawned += 1
        with (self.tmp / f"worker-{self._spawned}.log").open("w") as log:  # the child keeps its own copy
            return subprocess.Popen(
                [sys.executable, "-m", "cli.main", *args], env=env, cwd=self.tmp, text=True,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def seed(self, captures: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(CapturedRequest), captures)

    def experiment(self, name: str, **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "name": name,
            "control": {"name": "control", "provider": "anthropic", "model": CONTROL_MODEL,
                        "extra_headers": {"x-sim-arm": "control"}},
            "candidates": [{"name": "cand", "provider": "openai", "model": CANDIDATE_MODEL,
                            "extra_headers": {"x-sim-arm": "cand"}}],
            "allowed_providers": ["anthropic", "openai"],
            "budget": {"usd": 100},
            "plan": {"primary_metric": "judge_score", "min_sample": 10, "max_sample": 100},
            "replay": {"max_attempts": 12, "backoff_base_s": 0.05, "backoff_max_s": 0.5, "lease_s": 30},
        }  # fmt: skip
        spec.update(overrides)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    def create_and_start(self, name: str, **overrides: Any) -> None:
        """What `experiment create` + `experiment start` do, in process: two CLI start-ups (2-5 s each on a
        loaded machine) less per test; the commands themselves are tested in tests/shadowlab/."""
        spec = parse_spec(yaml.safe_load(self.experiment(name, **overrides).read_text()), f"{name}.yaml")
        prices = self.env.get("SHADOWLAB_PRICES_FILE")
        with session_scope(session_factory(self.engine)) as session:
            store.experiments.create(spec, session=session)
            store.experiments.start(name, load_price_table(Path(prices) if prices else None), session=session)

    def scalar(self, query: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def replay_keys(self) -> list[tuple[int, int]]:
        with self.engine.connect() as conn:
            return [(a, c) for a, c in conn.execute(sa.select(Replay.arm_id, Replay.captured_request_id))]


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def lab_factory(pg_database: str, tmp_path: Path, cli: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    labs: list[Any] = []

    def make(profile: ModelProfile = FAST) -> tuple[Lab, Simulator]:
        context = running_simulator(seed=3, profiles=ProfileSet(default=profile))
        running = context.__enter__()
        labs.append(context)
        lab = Lab(pg_database, running.base_url, tmp_path, cli)
        engines.append(lab.engine)
        return lab, running.simulator

    engines: list[sa.Engine] = []
    yield make
    for engine in engines:
        engine.dispose()
    for context in labs:
        context.__exit__(None, None, None)


T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.faults
def test_faults_three_workers_one_outcome_each_and_limits_hold(lab_factory: Callable[..., Any]) -> None:
    faults = FaultRates(rate_limit=0.20, overloaded=0.05, stream_error=0.02)
    lab, simulator = lab_factory(FAST.model_copy(update={"faults": faults}))
    n = 16
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
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
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(90)])
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
    assert {count for _, count in per_request} == {2} and len(per_request) == leased < 90
    assert undone == 0


@pytest.mark.faults
def test_killed_worker_work_is_recovered_exactly_once(lab_factory: Callable[..., Any]) -> None:
    # Two worker processes replay together; one is killed (-9) mid-run and the survivor, still running,
    # takes over what it held once those leases expire. Every answer takes 1.5 s, 4 requests at a time per
    # model: the kill lands while the victim holds requests it cannot finish for 1.5 s.
    slow = FAST.model_copy(update={"ttft_ms": Distribution(median=1500)})
    lab, _ = lab_factory(slow)
    n = 20
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
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
    # Every request the victim held was finished by the survivor, on a second lease.
    assert all(done and attempts >= 2 and f":{survivor.pid}:" in (worker or "")
               for worker, done, attempts in taken_over), taken_over  # fmt: skip


def test_rejected_request_is_a_failed_replay_with_the_providers_message(
    lab_factory: Callable[..., Any],
) -> None:
    lab, _ = lab_factory()
    lab.seed([_capture(0, T0), _capture(1, T0 + timedelta(seconds=1), messages=[])])
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
    lab.seed([_capture(0, T0)])
    lab.create_and_start("live", traffic={"mode": "live"})
    worker = lab.popen("replay", "live", "--live", "--no-progress")
    try:
        replays = sa.select(sa.func.count()).select_from(Replay)
        wait_for(lambda: lab.scalar(replays) == 2, what="the first capture's replays")
        lab.seed([_capture(i, T0 + timedelta(minutes=i)) for i in range(1, 4)])
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
    lab.seed([_capture(i, T0 + timedelta(seconds=i), messages=same) for i in range(3)])
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
    slow = FAST.model_copy(update={"ttft_ms": Distribution(median=150)})
    lab, _ = lab_factory(slow)
    n = 200
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
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


# Issue 20, defect 11: a provider that answers nothing is an outage, not the candidate's error rate.
OUTAGE = {"failures": 4, "requests": 2, "probe_s": 0.2}
QUICK_RETRIES = {"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "lease_s": 30}


def _candidate_down(
    lab_factory: Callable[..., Any], name: str, n: int, max_s: float, fault: OutageFault
) -> tuple[Lab, Simulator]:
    """`n` captures, experiment `name` running, and its candidate's provider down (`fault` to every call)."""
    lab, simulator = lab_factory()
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
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


def test_all_follow_replays_an_experiment_started_after_it_and_stops_on_sigterm(
    lab_factory: Callable[..., Any],
) -> None:
    lab, _ = lab_factory()
    n = 4
    lab.seed([_capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
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
