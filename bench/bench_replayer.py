"""Replayer throughput: `shadowlab replay --workers N` against a bare asyncio loop of the same SDK calls.

Both sides send the same calls (every arm of every captured request, as `replayer.arms.prepare_call` builds
them, through the providers' `complete` / `complete_raw`, with the capture's id header) to one simulator
process at 0 ms TTFB/TTFT and ~instant token streaming, with the same requests in flight per process. The
replayer side is the whole path: leases, budget reservations, the shared rate limiter (limits set high enough
never to bind, so every call is admitted and released in Postgres), replay rows written, settlements. Rate =
replay rows per second from the first call's start to the last call's end (process start-up excluded on both
sides).

Needs the project's Postgres (127.0.0.1:54329); a scratch database is created and dropped.
`--profile` runs one in-process worker under cProfile instead and prints where the time goes.
`--workers 1,2,4` (the default) runs each worker count in one invocation, `--rounds` times (3: a bare loop run
then a replayer run, three pairs in a row; a summary table gives each count's median ratio, lowest and
highest): each side's scaling is printed against the median of its own 1-worker rows of the same run (at
`--ttft-ms 400` the goal is provider-bound scaling; on 2 shared cores the bare loop's own scaling shows how
far the machine lets any client scale), with the CPU per replay of both sides less their start-up. A second
table splits each side's measured window by where the machine's CPU went (sampled from /proc every 50 ms):
busy cores, and per replay the bench's client processes, the simulator, the scratch database's Postgres
backends and the rest of the machine; idle cores while the replayer runs point at waiting, not work. Prints a
markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cpu_split import machine_s, proc_cpu
from pydantic import SecretStr

ADMIN_URL = os.environ.get(
    "SHADOWLAB_BENCH_ADMIN_URL", "postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:54329/shadowlab"
)
CONTROL, CANDIDATE = "claude-haiku-4-5", "gpt-4o-mini"
PROFILE = """
default:
  ttfb_ms: {median: 0}
  ttft_ms: {median: TTFT}
  tokens_per_s: 10000000
  chunk_tokens: 8
  output_tokens: {median: 40, low: 40, high: 40}
"""
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
Window = tuple[float, float]  # (start, end), epoch seconds
SIDES = ("bare loop", "replayer", "replayer, all workers running")  # the windows split by `Sampler.where`


def body(index: int) -> dict[str, Any]:
    return {
        "model": CONTROL,
        "max_tokens": 64,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": f"Question {index}: what is {index} plus {index}?"}],
    }


def request_id(index: int) -> str:
    return f"b-{index:06d}"


def arms() -> list[dict[str, Any]]:
    return [
        {"name": "control", "provider": "anthropic", "model": CONTROL},
        {"name": "cand", "provider": "openai", "model": CANDIDATE},
    ]


# --- the bare loop: one process per worker, each with its share of the requests ---------------------------


async def _bare(base_url: str, indices: list[int], concurrency: int) -> tuple[float, float, int]:
    from replayer.arms import ArmRuntime, prepare_call
    from shadowlab.headers import CAPTURE_ID_HEADER
    from shadowlab.providers import Provider, ProviderConfig, create_provider

    runtimes = [ArmRuntime(i, a["name"], "control", a["provider"], a["model"], {}, None, {})
                for i, a in enumerate(arms())]  # fmt: skip
    providers: dict[str, Provider] = {
        "anthropic": create_provider("anthropic", ProviderConfig(base_url=base_url, api_key=SecretStr("k"))),
        "openai": create_provider(
            "openai", ProviderConfig(base_url=f"{base_url}/v1", api_key=SecretStr("k"))
        ),
    }
    slots = asyncio.Semaphore(concurrency)
    ok = 0

    async def arm_call(arm: ArmRuntime, captured: dict[str, Any], request_id: str) -> None:
        nonlocal ok
        call = prepare_call(arm, "anthropic.messages", captured)
        provider = providers[arm.provider]
        headers = {CAPTURE_ID_HEADER: request_id}  # as the replayer sends it: the simulator draws per capture
        if call.raw_body is not None:
            result = await provider.complete_raw(
                call.raw_body, untranslated=call.notes, extra_headers=headers
            )
        else:
            assert call.request is not None
            result = await provider.complete(call.request, model=arm.model, extra_headers=headers)
        ok += result.ok

    async def one(index: int) -> None:
        async with slots:  # a request with all its arms, as the replayer's unit of work
            await asyncio.gather(*(arm_call(arm, body(index), request_id(index)) for arm in runtimes))

    started = time.time()
    await asyncio.gather(*(one(i) for i in indices))
    ended = time.time()
    for provider in providers.values():
        await provider.aclose()
    return started, ended, ok


def bare_child(base_url: str, worker: int, workers: int, requests: int, concurrency: int) -> None:
    started, ended, ok = asyncio.run(_bare(base_url, list(range(worker, requests, workers)), concurrency))
    print(json.dumps({"started": started, "ended": ended, "ok": ok}))


def bare_rate(base_url: str, workers: int, requests: int, concurrency: int) -> tuple[float, float, Window]:
    """(replays/s over all its processes, their CPU seconds, the measured window)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--bare-child",
                base_url,
                str(w),
                str(workers),
                str(requests),
                str(concurrency),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w in range(workers)
    ]
    outs = [json.loads(child.communicate()[0]) for child in children]
    calls = sum(o["ok"] for o in outs)
    assert calls == requests * len(arms()), f"bare loop: {calls} ok calls of {requests * len(arms())}"
    window = (min(o["started"] for o in outs), max(o["ended"] for o in outs))
    return calls / (window[1] - window[0]), cpu_since(before), window


def cpu_since(before: resource.struct_rusage) -> float:
    """User + system seconds of the children waited for since `before`."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclass(frozen=True)
class Where:
    """Where the machine's CPU went while one side ran: busy cores, and ms per replay by component."""

    busy_cores: float
    clients: float  # this bench's child processes (bare loop or replay parent + workers)
    simulator: float
    postgres: float  # the backends of the scratch database
    rest: float  # everything else on the machine (other users, Kafka, the kernel)


@dataclass(frozen=True)
class Sample:
    at: float
    idle_s: float  # the machine's idle + iowait, all cores
    total_s: float
    simulator_s: float
    backends: dict[int, float]  # the scratch database's backends
    children: dict[int, float]  # this bench's child processes but the simulator


class Sampler(threading.Thread):
    """Every 50 ms: the machine's idle time, the simulator's CPU, the scratch database's backends' CPU and
    this bench's other children's CPU, so a window can be split by component (no start-up guessed)."""

    def __init__(self, admin: sa.Engine, database: str, simulator_pid: int) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.admin, self.database, self.simulator_pid = admin, database, simulator_pid
        self.samples: list[Sample] = []
        self.born: dict[int, float] = {}  # start time (epoch seconds) of every child process seen
        self.stop = threading.Event()

    def run(self) -> None:
        backends: set[int] = set()
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            own = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            while not self.stop.wait(0.05):
                backends |= set(conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                                             {"d": self.database}).scalars()) - {own}  # fmt: skip
                (idle, total), sim = machine_s(), proc_cpu(self.simulator_pid)
                pg = {pid: got[0] for pid in backends if (got := proc_cpu(pid)) is not None}
                sim_s = sim[0] if sim else 0.0
                self.samples.append(Sample(time.time(), idle, total, sim_s, pg, self._children()))

    def _children(self) -> dict[int, float]:
        """CPU of every descendant of this process but the simulator."""
        parent_of: dict[int, list[tuple[int, float, float]]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (got := proc_cpu(int(entry))) is not None:
                parent_of.setdefault(got[1], []).append((int(entry), got[0], got[2]))
        found, todo = {}, [os.getpid()]
        while todo:
            for pid, cpu, born in parent_of.get(todo.pop(), []):
                if pid != self.simulator_pid:
                    found[pid] = cpu
                    self.born.setdefault(pid, born)
                    todo.append(pid)
        return found

    def where(self, start: float, end: float, replays: int) -> Where:
        """The split of [start, end] (epoch seconds); a process that ended inside counts to its last sample,
        one born inside from zero."""
        times = [sample.at for sample in self.samples]
        first = max(0, bisect.bisect_left(times, start) - 1)
        last = min(len(times) - 1, bisect.bisect_left(times, end))
        begin, end_sample, inside = self.samples[first], self.samples[last], self.samples[first : last + 1]

        def used(pick: Callable[[Sample], dict[int, float]]) -> float:
            seen: dict[int, float] = {}
            for sample in inside:
                seen.update(pick(sample))
            return sum(cpu - pick(begin).get(pid, 0.0) for pid, cpu in seen.items())

        span = end_sample.at - begin.at
        busy = (end_sample.total_s - begin.total_s) - (end_sample.idle_s - begin.idle_s)
        simulator = end_sample.simulator_s - begin.simulator_s
        postgres, clients = used(lambda sample: sample.backends), used(lambda sample: sample.children)
        per = 1000 / replays
        return Where(busy / span, clients * per, simulator * per, postgres * per,
                     (busy - clients - simulator - postgres) * per)  # fmt: skip


def startup_cpu(url: str, env: dict[str, str], base_url: str) -> tuple[float, float]:
    """CPU seconds of one process with nothing to do: the bare loop's (imports, clients) and a replay worker's
    on an experiment with nothing to replay (imports, engine, grants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, __file__, "--bare-child", base_url, "0", "1", "0", "1"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    bare = cpu_since(before)
    name = f"bench-empty-{uuid.uuid4().hex[:6]}"
    create_started(url, name, 1)
    spec_nothing = [sys.executable, "-m", "cli.main", "replay", name, "--workers", "1", "--backfill",
                    "--no-progress"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(spec_nothing, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bare, cpu_since(before)


# --- the replayer -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayRun:
    rate: float
    wall_s: float
    rows: int
    steady: float  # while all workers ran
    steady_rows: int
    steady_window: Window
    cpu_s: float  # the worker processes' CPU (the parent's too when there are several)
    window: Window  # first call's start, last call's end (epoch seconds)
    name: str  # the experiment


LIMITS = True  # --no-limits: keys without limits never touch the database (for profiling)


def spec(name: str, requests: int) -> dict[str, Any]:
    high = {"rpm": 10_000_000, "concurrency": 100_000}
    limits = [{"provider": a["provider"], "model": a["model"], **high} for a in arms()] if LIMITS else []
    control, candidate = arms()
    return {
        "name": name, "control": control, "candidates": [candidate],
        "allowed_providers": ["anthropic", "openai"],
        "limits": limits, "budget": {"usd": 1_000_000}, "traffic": {"max_requests": requests},
        "plan": {"primary_metric": "judge_score", "min_sample": 10, "max_sample": 100},
    }  # fmt: skip


def create_started(url: str, name: str, requests: int) -> None:
    from shadowlab import store
    from shadowlab.db import create_engine, session_factory, session_scope
    from shadowlab.experiment import parse_spec
    from shadowlab.pricing import load_price_table

    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        store.experiments.create(parse_spec(spec(name, requests), "bench"), session=session)
        store.experiments.start(name, load_price_table(), session=session)
    engine.dispose()


def measured(engine: sa.Engine, name: str) -> tuple[int, Window]:
    with engine.connect() as conn:
        rows, first, last = conn.execute(
            sa.text(
                "SELECT count(*), min(r.started_at), max(r.finished_at) FROM replays r "
                "JOIN experiments e ON e.id = r.experiment_id WHERE e.name = :n AND r.status = 'ok'"
            ),
            {"n": name},
        ).one()
    return int(rows), (first.timestamp(), last.timestamp())


def steady_rate(engine: sa.Engine, name: str) -> tuple[float, int, Window]:
    """Replays/s while every worker process was running: rows finished between the last worker's first
    call and the first worker's last one (process start-up, staggered on a loaded machine, left out); those
    rows, that window."""
    with engine.connect() as conn:
        spans = conn.execute(
            sa.text(
                "SELECT l.worker_id, min(r.started_at), max(r.finished_at) FROM replays r "
                "JOIN experiments e ON e.id = r.experiment_id JOIN work_leases l ON l.experiment_id = e.id "
                "AND l.captured_request_id = r.captured_request_id WHERE e.name = :n GROUP BY l.worker_id"
            ),
            {"n": name},
        ).all()
        start, end = max(s for _, s, _ in spans), min(e for _, _, e in spans)
        rows = conn.execute(
            sa.text(
                "SELECT count(*) FROM replays r JOIN experiments e ON e.id = r.experiment_id "
                "WHERE e.name = :n AND r.finished_at > :s AND r.finished_at <= :e"
            ),
            {"n": name, "s": start, "e": end},
        ).scalar_one()
    return float(int(rows) / (end - start).total_seconds()), int(rows), (start.timestamp(), end.timestamp())


@dataclass(frozen=True)
class Edge:
    """One replay worker inside the replayer's measured window (seconds)."""

    pid: int
    replays: int
    startup_s: float  # process start → its first call
    late_s: float  # window start (any worker's first call) → its first call
    early_s: float  # its last call's end → window end
    idle_s: float  # window time with none of its calls in flight (late and early included)


def edges(engine: sa.Engine, name: str, window: Window, born: dict[int, float]) -> list[Edge]:
    """Per worker: when it started calling and stopped, and how long it had nothing in flight."""
    with engine.connect() as conn:
        calls = conn.execute(
            sa.text(
                "SELECT l.worker_id, r.started_at, r.finished_at FROM replays r "
                "JOIN experiments e ON e.id = r.experiment_id JOIN work_leases l ON l.experiment_id = e.id "
                "AND l.captured_request_id = r.captured_request_id WHERE e.name = :n ORDER BY r.started_at"
            ),
            {"n": name},
        ).all()
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for worker_id, started, finished in calls:
        by_worker.setdefault(worker_id, []).append((started.timestamp(), finished.timestamp()))
    found = []
    for worker_id, spans in sorted(by_worker.items(), key=lambda item: item[1][0][0]):
        busy, reach = 0.0, window[0]
        for start, end in spans:  # sorted by start: the union of the intervals
            if end > reach:
                busy += end - max(start, reach)
                reach = end
        pid = int(worker_id.split(":")[1])
        first, last = spans[0][0], max(end for _, end in spans)
        found.append(Edge(pid, len(spans), first - born.get(pid, float("nan")), first - window[0],
                          window[1] - last, window[1] - window[0] - busy))  # fmt: skip
    return found


def replay_rate(url: str, env: dict[str, str], engine: sa.Engine, workers: int, requests: int,
                concurrency: int) -> ReplayRun:  # fmt: skip
    name = f"bench-w{workers}-{uuid.uuid4().hex[:6]}"
    create_started(url, name, requests)
    args = [sys.executable, "-m", "cli.main", "replay", name, "--workers", str(workers), "--backfill",
            "--concurrency", str(concurrency), "--no-progress"]  # fmt: skip
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    cpu = cpu_since(before)
    wall = time.monotonic() - started
    rows, window = measured(engine, name)
    assert rows == requests * len(arms()), f"replayer: {rows} ok replays of {requests * len(arms())}"
    steady, steady_rows, steady_window = steady_rate(engine, name)
    return ReplayRun(
        rows / (window[1] - window[0]), wall, rows, steady, steady_rows, steady_window, cpu, window, name
    )


def profile_worker(url: str, env: dict[str, str], requests: int, concurrency: int) -> str:
    """One worker in this process under cProfile; the top of the cumulative and internal-time tables."""
    from replayer.run import ReplayOptions, run_replay
    from shadowlab.config import Settings
    from shadowlab.db import create_engine, session_factory

    name = f"bench-profile-{uuid.uuid4().hex[:6]}"
    create_started(url, name, requests)
    os.environ.update(env)
    settings = Settings()
    engine = create_engine(url)
    profiler = cProfile.Profile()
    profiler.enable()
    options = ReplayOptions(name, 1, "backfill", concurrency, progress=False)
    run_replay(session_factory(engine), settings, options, io.StringIO())
    profiler.disable()
    engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumtime").print_stats(40)
    return out.getvalue()


# --- scaffolding --------------------------------------------------------------------------------------------


def start_simulator(profile: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowlab", "simulate", "--port", "0", "--profile", str(profile)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, "http://" + line.split("http://", 1)[1].split()[0]


def create_scratch(prefix: str) -> tuple[str, str]:
    """A new, empty database on the project's Postgres for one run: (its name, its URL)."""
    from shadowlab.db import create_engine

    scratch = f"{prefix}_{os.getpid()}"
    admin = create_engine(ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
    admin.dispose()
    return scratch, sa.engine.make_url(ADMIN_URL).set(database=scratch).render_as_string(hide_password=False)


def drop_scratch(scratch: str) -> None:
    from shadowlab.db import create_engine

    admin = create_engine(ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    admin.dispose()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def seed(engine: sa.Engine, requests: int) -> None:
    from shadowlab.models import CapturedRequest

    rows = [
        {"request_id": request_id(i), "captured_at": T0 + timedelta(milliseconds=i), "service": "bench",
         "api": "anthropic.messages", "model": CONTROL, "request": body(i)}
        for i in range(requests)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(CapturedRequest), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REPLAYER_REQUESTS", "600")))
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per process")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process worker instead")
    parser.add_argument("--no-limits", action="store_true", help="no limits in the spec (diagnosis)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="simulator TTFT (400: provider-bound)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare loop / replayer pairs per worker count, one after the other")  # fmt: skip
    args = parser.parse_args()
    load_before = os.getloadavg()
    global LIMITS
    LIMITS = not args.no_limits

    from shadowlab import migrate
    from shadowlab.db import create_engine

    scratch, url = create_scratch("bench_replayer")
    engine = create_engine(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_replayer_"))
    (tmp / "profile.yaml").write_text(PROFILE.replace("TTFT", f"{args.ttft_ms:g}"))
    sim, base_url = start_simulator(tmp / "profile.yaml")
    admin = create_engine(ADMIN_URL)
    sampler = Sampler(admin, scratch, sim.pid)
    try:
        migrate.upgrade(engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | {
            "SHADOWLAB_DATABASE_URL": url, "SHADOWLAB_ANTHROPIC_BASE_URL": base_url,
            "SHADOWLAB_OPENAI_BASE_URL": f"{base_url}/v1", "ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k",
        }  # fmt: skip
        if args.profile:
            seed(engine, args.requests)
            print(profile_worker(url, env, args.requests, args.concurrency))
            return
        startup = startup_cpu(url, env, base_url)
        sampler.start()
        rows = []
        worker_edges: list[tuple[int, Window, list[Edge]]] = []
        # Each worker count runs `--rounds` pairs, each side right after the other: a burst of other users'
        # load (this machine's usual noise) moves the ratio of one pair, the median of several much less.
        for workers in (int(w) for w in args.workers.split(",") for _ in range(args.rounds)):
            engine.dispose()
            with engine.begin() as conn:  # each run replays fresh captures: no lease or replay to skip
                conn.execute(sa.text("TRUNCATE captured_requests CASCADE"))
            seed(engine, args.requests)
            bare_replays, bare_cpu, bare_window = bare_rate(
                base_url, workers, args.requests, args.concurrency
            )
            run = replay_rate(url, env, engine, workers, args.requests, args.concurrency)
            where = (sampler.where(*bare_window, run.rows), sampler.where(*run.window, run.rows),
                     sampler.where(*run.steady_window, run.steady_rows))  # fmt: skip
            rows.append((workers, (bare_replays, bare_cpu), run, where))
            worker_edges.append((workers, run.window, edges(engine, run.name, run.window, sampler.born)))
        report(args, load_before, startup, rows)
        report_edges(worker_edges)
    finally:
        sampler.stop.set()
        if sampler.is_alive():
            sampler.join()
        admin.dispose()
        sim.terminate()
        sim.wait(timeout=10)
        engine.dispose()
        drop_scratch(scratch)


def report(
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    startup: tuple[float, float],
    rows: list[tuple[int, tuple[float, float], ReplayRun, tuple[Where, Where, Where]]],
) -> None:
    """The markdown section: rates, ratios, scaling of both sides against their 1-worker row of this run."""
    command = (
        f"python bench/bench_replayer.py --requests {args.requests} --concurrency {args.concurrency}"
        f" --workers {args.workers} --ttft-ms {args.ttft_ms:g} --rounds {args.rounds}"
    )
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    machine = f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"
    print("## Replayer (bench/bench_replayer.py)\n")
    print(f"`{command}` — {when}, {machine}; Postgres and the simulator on the same machine.\n")
    print(
        f"{args.requests} captured requests × 2 arms (Anthropic same-API body, OpenAI translated), "
        f"{args.concurrency} requests in flight per process, simulator at 0 ms TTFB, "
        f"{args.ttft_ms:g} ms TTFT; load average (1 min) {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; {args.rounds} pairs (bare loop, then replayer) per worker count, "
        "a row each.\n"
    )
    print(
        f"CPU per replay: the processes' user + system time less their start-up (measured alone: bare loop "
        f"{startup[0]:.2f} s per process, replay worker {startup[1]:.2f} s once: `--workers N` forks its "
        "workers after its imports, so what each worker does after the fork counts as replay CPU) over the "
        "replays. Scaling: each side's rate against the median of its own 1-worker rows of this run (the "
        "replayer's while all workers ran).\n"
    )
    print("| workers | bare loop (replays/s) | replayer (replays/s) | ratio (goal ≥ 0.8) "
          "| replayer, all workers running (replays/s) | scaling vs 1: bare loop, replayer "
          "| CPU per replay (ms): bare loop, replayer | wall (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    ones = [(bare, run.steady) for workers, (bare, _), run, _ in rows if workers == 1]
    one = (statistics.median(b for b, _ in ones), statistics.median(r for _, r in ones)) if ones else None
    for workers, (bare, bare_cpu), run, _ in rows:
        cpu = (f"{1000 * (bare_cpu - workers * startup[0]) / run.rows:.2f}, "
               f"{1000 * (run.cpu_s - startup[1]) / run.rows:.2f}")  # fmt: skip
        scaling = "—" if one is None else f"{bare / one[0]:.2f}×, {run.steady / one[1]:.2f}×"
        print(f"| {workers} | {bare:.0f} | {run.rate:.0f} | {run.rate / bare:.2f} | {run.steady:.0f} "
              f"| {scaling} | {cpu} | {run.wall_s:.1f} |")  # fmt: skip
    print(
        "\nThe pairs of each worker count: the median ratio (the figure to compare with the goal), the "
        "lowest and highest, and the median own-CPU ratio of the replayer's window (next table).\n"
    )
    print("| workers | pairs | ratio: median (lowest–highest) | own CPU ratio: median |")
    print("|---|---|---|---|")
    for count in dict.fromkeys(workers for workers, *_ in rows):
        mine = [(run.rate / bare, own_ratio(sides, 1)) for workers, (bare, _), run, sides in rows
                if workers == count]  # fmt: skip
        ratios = [ratio for ratio, _ in mine]
        median, own = statistics.median(ratios), statistics.median(own for _, own in mine)
        print(f"| {count} | {len(mine)} | {median:.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | {own:.2f} |")
    print(
        "\nWhere the machine's CPU went inside each side's measured window (sampled every 50 ms from /proc: "
        "no start-up subtracted; a worker still starting counts): busy cores of 2, then ms per replay. Own "
        "CPU ratio: the bare loop's clients + simulator + Postgres per replay over this side's, the ratio "
        "the rates would have if nothing else ran on the machine and its cores stayed busy (the rest of "
        "the machine, other users' load, moves the rates of two runs apart; idle cores are not in it). At 1 "
        "worker one process cannot keep both cores busy: there the clients column alone bounds the rate.\n"
    )
    print("| workers | side | busy cores | clients | simulator | Postgres (scratch db) | rest of machine "
          "| own CPU ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for workers, _, _, sides in rows:
        for index, (side, where) in enumerate(zip(SIDES, sides, strict=True)):
            own = own_ratio(sides, index)
            print(
                f"| {workers} | {side} | {where.busy_cores:.2f} | {where.clients:.2f} "
                f"| {where.simulator:.2f} | {where.postgres:.2f} | {where.rest:.2f} | {own:.2f} |"
            )


def own_ratio(sides: tuple[Where, Where, Where], index: int) -> float:
    """The bare loop's clients + simulator + Postgres CPU per replay over side `index`'s."""
    bare, where = sides[0], sides[index]
    return (bare.clients + bare.simulator + bare.postgres) / (
        where.clients + where.simulator + where.postgres
    )


def report_edges(runs: list[tuple[int, Window, list[Edge]]]) -> None:
    """Each replay worker inside the replayer's window: its start-up, late start, early end, idle time."""
    print(
        "\nThe edges: each replay worker inside the replayer's measured window (first call of any worker to "
        "the last call's end), in seconds; idle = window time with none of its calls in flight (late and "
        "early included); idle share = all workers' idle time over workers × window.\n"
    )
    print("| workers | window (s) | worker (pid) | replays | process start → first call | late start "
          "| early end | idle | idle share |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for workers, window, found in runs:
        span = window[1] - window[0]
        share = sum(edge.idle_s for edge in found) / (workers * span)
        for edge in found:
            print(f"| {workers} | {span:.2f} | {edge.pid} | {edge.replays} | {edge.startup_s:.2f} | "
                  f"{edge.late_s:.2f} | {edge.early_s:.2f} | {edge.idle_s:.2f} | {share:.0%} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-child":
        worker, workers, requests, concurrency = (int(a) for a in sys.argv[3:7])
        bare_child(sys.argv[2], worker, workers, requests, concurrency)
    else:
        main()
