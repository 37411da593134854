"""Replayer throughput: `shadowlab replay --workers N` against a bare asyncio loop of the same SDK calls.

Both sides send the same calls (every arm of every captured request, as `replayer.arms.prepare_call` builds
them, through the providers' `complete` / `complete_raw`) to one simulator process at 0 ms TTFB/TTFT and
~instant token streaming, with the same requests in flight per process. The replayer side is the whole
path: leases, budget reservations, the shared rate limiter (limits set high enough never to bind, so every
call is admitted and released in Postgres), replay rows written, settlements. Rate = replay rows per second
from the first call's start to the last call's end (process start-up excluded on both sides).

Needs the project's Postgres (127.0.0.1:54329); a scratch database is created and dropped.
`--profile` runs one in-process worker under cProfile instead and prints where the time goes.
`--workers 1,2,4` (the default) runs each worker count in one invocation: each side's scaling is printed
against its own 1-worker row of the same run (at `--ttft-ms 400` the goal is provider-bound scaling; on 2
shared cores the bare loop's own scaling shows how far the machine lets any client scale), with the CPU per
replay of both sides less their start-up. Prints a markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
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


def body(index: int) -> dict[str, Any]:
    return {
        "model": CONTROL,
        "max_tokens": 64,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": f"Question {index}: what is {index} plus {index}?"}],
    }


def arms() -> list[dict[str, Any]]:
    return [
        {"name": "control", "provider": "anthropic", "model": CONTROL},
        {"name": "cand", "provider": "openai", "model": CANDIDATE},
    ]


# --- the bare loop: one process per worker, each with its share of the requests ---------------------------


async def _bare(base_url: str, indices: list[int], concurrency: int) -> tuple[float, float, int]:
    from replayer.arms import ArmRuntime, prepare_call
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

    async def arm_call(arm: ArmRuntime, captured: dict[str, Any]) -> None:
        nonlocal ok
        call = prepare_call(arm, "anthropic.messages", captured)
        provider = providers[arm.provider]
        if call.raw_body is not None:
            result = await provider.complete_raw(call.raw_body, untranslated=call.notes)
        else:
            assert call.request is not None
            result = await provider.complete(call.request, model=arm.model)
        ok += result.ok

    async def one(index: int) -> None:
        async with slots:  # a request with all its arms, as the replayer's unit of work
            await asyncio.gather(*(arm_call(arm, body(index)) for arm in runtimes))

    started = time.time()
    await asyncio.gather(*(one(i) for i in indices))
    ended = time.time()
    for provider in providers.values():
        await provider.aclose()
    return started, ended, ok


def bare_child(base_url: str, worker: int, workers: int, requests: int, concurrency: int) -> None:
    started, ended, ok = asyncio.run(_bare(base_url, list(range(worker, requests, workers)), concurrency))
    print(json.dumps({"started": started, "ended": ended, "ok": ok}))


def bare_rate(base_url: str, workers: int, requests: int, concurrency: int) -> tuple[float, float]:
    """(replays/s over all its processes, their CPU seconds)."""
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
    return calls / (max(o["ended"] for o in outs) - min(o["started"] for o in outs)), cpu_since(before)


def cpu_since(before: resource.struct_rusage) -> float:
    """User + system seconds of the children waited for since `before`."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
    cpu_s: float  # the worker processes' CPU (the parent's too when there are several)


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


def measured(engine: sa.Engine, name: str) -> tuple[int, float]:
    with engine.connect() as conn:
        rows, first, last = conn.execute(
            sa.text(
                "SELECT count(*), min(r.started_at), max(r.finished_at) FROM replays r "
                "JOIN experiments e ON e.id = r.experiment_id WHERE e.name = :n AND r.status = 'ok'"
            ),
            {"n": name},
        ).one()
    return int(rows), (last - first).total_seconds()


def steady_rate(engine: sa.Engine, name: str) -> float:
    """Replays/s while every worker process was running: rows finished between the last worker's first
    call and the first worker's last one (process start-up, staggered on a loaded machine, left out)."""
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
    return int(rows) / (end - start).total_seconds()


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
    rows, span = measured(engine, name)
    assert rows == requests * len(arms()), f"replayer: {rows} ok replays of {requests * len(arms())}"
    return ReplayRun(rows / span, wall, rows, steady_rate(engine, name), cpu)


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
        {"request_id": f"b-{i:06d}", "captured_at": T0 + timedelta(milliseconds=i), "service": "bench",
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
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            engine.dispose()
            with engine.begin() as conn:  # each run replays fresh captures: no lease or replay to skip
                conn.execute(sa.text("TRUNCATE captured_requests CASCADE"))
            seed(engine, args.requests)
            bare = bare_rate(base_url, workers, args.requests, args.concurrency)
            run = replay_rate(url, env, engine, workers, args.requests, args.concurrency)
            rows.append((workers, bare, run))
        report(args, load_before, startup, rows)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        engine.dispose()
        drop_scratch(scratch)


def report(
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    startup: tuple[float, float],
    rows: list[tuple[int, tuple[float, float], ReplayRun]],
) -> None:
    """The markdown section: rates, ratios, scaling of both sides against their 1-worker row of this run."""
    command = (
        f"python bench/bench_replayer.py --requests {args.requests} --concurrency {args.concurrency}"
        f" --workers {args.workers} --ttft-ms {args.ttft_ms:g}"
    )
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    machine = f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"
    print("## Replayer (bench/bench_replayer.py)\n")
    print(f"`{command}` — {when}, {machine}; Postgres and the simulator on the same machine.\n")
    print(
        f"{args.requests} captured requests × 2 arms (Anthropic same-API body, OpenAI translated), "
        f"{args.concurrency} requests in flight per process, simulator at 0 ms TTFB, "
        f"{args.ttft_ms:g} ms TTFT; load average (1 min) {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after.\n"
    )
    print(
        f"CPU per replay: the processes' user + system time less their start-up (measured alone: bare loop "
        f"{startup[0]:.2f} s, replay worker {startup[1]:.2f} s per process, the parent of several workers "
        "counted as one) over the replays. Scaling: each "
        "side's rate against its own 1-worker row of this run (the replayer's while all workers ran).\n"
    )
    print("| workers | bare loop (replays/s) | replayer (replays/s) | ratio (goal ≥ 0.8) "
          "| replayer, all workers running (replays/s) | scaling vs 1: bare loop, replayer "
          "| CPU per replay (ms): bare loop, replayer | wall (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    one = next(((bare, run) for workers, (bare, _), run in rows if workers == 1), None)
    for workers, (bare, bare_cpu), run in rows:
        processes = workers + (workers > 1)  # `replay --workers N` is a parent and N workers
        cpu = (f"{1000 * (bare_cpu - workers * startup[0]) / run.rows:.2f}, "
               f"{1000 * (run.cpu_s - processes * startup[1]) / run.rows:.2f}")  # fmt: skip
        scaling = "—" if one is None else f"{bare / one[0]:.2f}×, {run.steady / one[1].steady:.2f}×"
        print(f"| {workers} | {bare:.0f} | {run.rate:.0f} | {run.rate / bare:.2f} | {run.steady:.0f} "
              f"| {scaling} | {cpu} | {run.wall_s:.1f} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-child":
        worker, workers, requests, concurrency = (int(a) for a in sys.argv[3:7])
        bare_child(sys.argv[2], worker, workers, requests, concurrency)
    else:
        main()
