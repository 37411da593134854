"""Scoring: `shadowlab score` with 1 and 2 processes against a bare asyncio loop of the same judge calls (also
with 1 and 2 processes), and the peak memory of `shadowlab score` on 200,000 pending items.

Both sides send the same pointwise judge calls (`scoring.judge.PointwiseJudge`'s request for each replay) to
one simulator process (`sim-judge`, 0 ms TTFB, instant tokens, TTFT from `--ttft-ms`), the same calls in
flight per process. `--ttft-ms 0,400` (the default) prints the tables once per TTFT: at 0 ms the client's CPU
is the bound (the simulator, Postgres and the clients share both cores, so nothing scales to 1.7× there); at
400 ms (a realistic judge) the provider is, and 2 processes should do 1.7× the bare loop in 1 process, as
replay's 400 ms goal measures scaling.
The scorer side is the whole path: score tasks seeded and leased in batches, the shared rate limiter (a limit
high enough never to bind), budget reservations and settlements by group commit, scores written by group
commit. Rate = judge calls per second from the first call's reservation to the last one's settlement
(`judge_calls` rows; process start-up excluded), the bare loop from its first call's start to its last call's
end (over all its processes). The goals compare with the bare loop in one process; with Postgres and the
simulator on the same 2 cores the bare loop itself does not double with 2 processes, so its own scaling is
printed beside the scorer's, and the CPU per call of both. A second table splits each side's measured window
by component (clients, simulator, Postgres, the rest of the machine) and gives the own CPU ratio, which other
users' load does not move.

`--baseline-ref REF` adds, in the same run, `shadowlab score` by the code at REF (extracted with `git
archive`, first on PYTHONPATH) on the same workload: its rate and CPU per call beside this checkout's.

Memory: `shadowlab score` on an experiment of 200,000 replays none of which is scored, for `--rss-s` seconds
(then SIGTERM): its resident set every second (/proc) and its peak (VmHWM). `--pending 0` skips it.

Needs the project's Postgres (127.0.0.1:54329); a scratch database is created and dropped. Prints a markdown
section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_analyze_db import checkout
from bench_replayer import (
    ADMIN_URL,
    Sampler,
    Where,
    Window,
    cpu_model,
    cpu_since,
    create_scratch,
    drop_scratch,
    start_simulator,
)

PROFILE = """
default:
  ttfb_ms: {median: 0}
  ttft_ms: {median: TTFT}
  tokens_per_s: 10000000
  chunk_tokens: 8
  output_tokens: {median: 40, low: 40, high: 40}
"""
PRICES = {"sim-judge": {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6,
                        "litellm_provider": "anthropic", "mode": "chat"}}  # fmt: skip
JUDGE = {"name": "quality", "kind": "pointwise", "model": "sim-judge"}
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def prompt(index: int) -> str:
    return f"Question {index}: explain topic {index % 17} briefly please"


def answer(arm: str, index: int) -> str:
    return f"The {arm} answer to question {index}: it depends, mostly on {index % 5}."


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "control": {"name": "control", "provider": "anthropic", "model": "ctrl-model"},
        "candidates": [{"name": "candidate", "provider": "anthropic", "model": "cand-model"}],
        "allowed_providers": ["anthropic"],
        "limits": [
            {"provider": "anthropic", "model": "sim-judge", "rpm": 10_000_000, "concurrency": 100_000}
        ],
        "budget": {"usd": 1_000_000},
        "plan": {"primary_metric": "judge_score"},
        "scoring": {"judges": [JUDGE]},
    }


def seed(engine: sa.Engine, name: str, requests: int) -> None:
    """A running experiment with `requests` captures replayed on both arms (2 × requests items to judge)."""
    from shadowlab.models import Arm, CapturedRequest, Experiment, Replay

    with engine.begin() as conn:
        experiment_id = conn.execute(
            sa.insert(Experiment)
            .values(name=name, status="running", spec=spec(name))
            .returning(Experiment.id)
        ).scalar_one()
        arm_ids = [
            conn.execute(
                sa.insert(Arm).values(experiment_id=experiment_id, name=arm, role=arm, provider="anthropic",
                                      model=f"{arm[:4]}-model").returning(Arm.id)
            ).scalar_one()
            for arm in ("control", "candidate")
        ]  # fmt: skip
        for start in range(0, requests, 10_000):
            chunk = range(start, min(start + 10_000, requests))
            ids = conn.execute(
                sa.insert(CapturedRequest).returning(CapturedRequest.id, sort_by_parameter_order=True),
                [{"request_id": f"{name}-{i:07d}", "captured_at": T0 + timedelta(milliseconds=i),
                  "service": "b", "api": "anthropic.messages", "model": "prod-model",
                  "request": {"model": "prod-model", "max_tokens": 120,
                              "messages": [{"role": "user", "content": prompt(i)}]}} for i in chunk],
            ).scalars().all()  # fmt: skip
            conn.execute(
                sa.insert(Replay),
                [{"experiment_id": experiment_id, "arm_id": arm_id, "captured_request_id": crid,
                  "status": "ok", "answer_text": answer(arm, i), "tool_calls": [], "cost_usd": 0.001}
                 for i, crid in zip(chunk, ids, strict=True)
                 for arm, arm_id in zip(("control", "candidate"), arm_ids, strict=True)],
            )  # fmt: skip


# --- the bare loop: one process, the judge's requests straight to the provider ----------------------------


async def _bare(base_url: str, indices: range, concurrency: int) -> tuple[float, float, int]:
    from pydantic import SecretStr

    from scoring.base import Subject
    from scoring.judge import JudgeSpec, PointwiseJudge
    from scoring.judge_calls import CallOutcome
    from shadowlab.apis.internal import NormalizedRequest
    from shadowlab.providers import ProviderConfig, create_provider

    provider = create_provider("anthropic", ProviderConfig(base_url=base_url, api_key=SecretStr("k")))

    async def call(request: NormalizedRequest) -> CallOutcome:
        return CallOutcome(await provider.complete(request, model="sim-judge"))

    judge = PointwiseJudge(JudgeSpec.model_validate(JUDGE), call)
    slots = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(subject: Subject) -> None:
        nonlocal ok
        async with slots:
            scored = await judge.score(subject)  # awaited first: `ok += await …` reads `ok` before the wait
            ok += scored.value is not None

    subjects = [Subject(prompt(i), answer(arm, i)) for i in indices for arm in ("control", "candidate")]
    started = time.time()
    await asyncio.gather(*(one(subject) for subject in subjects))
    ended = time.time()
    await provider.aclose()
    return started, ended, ok


def bare_rate(base_url: str, requests: int, concurrency: int, processes: int, startup_s: float) -> Run:
    """The bare loop in `processes` processes, each with its share of the requests."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = [
        subprocess.Popen([sys.executable, __file__, "--bare-child", base_url, str(p), str(processes),
                          str(requests), str(concurrency)], stdout=subprocess.PIPE, text=True)
        for p in range(processes)
    ]  # fmt: skip
    found = [json.loads(child.communicate()[0]) for child in children]
    ok = sum(f["ok"] for f in found)
    assert ok == 2 * requests, f"bare loop: {ok} scores of {2 * requests}"
    window = (min(f["started"] for f in found), max(f["ended"] for f in found))
    return Run(ok / (window[1] - window[0]), (cpu_since(before) - processes * startup_s) / ok, window, ok)


@dataclass(frozen=True)
class Run:
    rate: float  # judge calls per second
    cpu_per_call_s: float  # the processes' CPU less their start-up
    window: Window  # what the rate is measured over (epoch seconds)
    calls: int


# --- shadowlab score ----------------------------------------------------------------------------------------


def score_args(name: str, concurrency: int) -> list[str]:
    return [sys.executable, "-m", "cli.main", "score", name, "--concurrency", str(concurrency)]


def code_env(env: dict[str, str], code: Path | None) -> dict[str, str]:
    """`env` for a `shadowlab score` of the code in `code` (None: this checkout)."""
    return env if code is None else env | {"PYTHONPATH": str(code)}


def score_rate(
    engine: sa.Engine, env: dict[str, str], name: str, processes: int, concurrency: int, startup_s: float
) -> Run:
    args = score_args(name, concurrency)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 cwd=env.get("PYTHONPATH"))
                for _ in range(processes)]  # fmt: skip
    for child in children:
        _, err = child.communicate()
        assert child.returncode == 0, err[-2000:]
    with engine.connect() as conn:
        calls, first, last = conn.execute(
            sa.text("SELECT count(*), min(j.created_at), max(j.settled_at) FROM judge_calls j "
                    "JOIN experiments e ON e.id = j.experiment_id WHERE e.name = :n"), {"n": name},
        ).one()  # fmt: skip
        scores = conn.execute(
            sa.text("SELECT count(*) FROM scores s JOIN replays r ON r.id = s.replay_id "
                    "JOIN experiments e ON e.id = r.experiment_id WHERE e.name = :n"), {"n": name},
        ).scalar_one()  # fmt: skip
    assert scores == calls, f"{name}: {scores} scores for {calls} judge calls"
    cpu = (cpu_since(before) - processes * startup_s) / calls
    return Run(calls / (last - first).total_seconds(), cpu, (first.timestamp(), last.timestamp()), calls)


def startup_cpu(
    engine: sa.Engine, envs: list[dict[str, str]], base_url: str, concurrency: int, empty: str
) -> list[float]:
    """CPU seconds of one process with nothing to do: the bare loop's, then `shadowlab score`'s (of each code
    in `envs`) on an experiment with nothing to judge (imports, connections, grants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, __file__, "--bare-child", base_url, "0", "1", "0", str(concurrency)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    found = [cpu_since(before)]
    seed(engine, empty, 0)
    for env in envs:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(score_args(empty, concurrency), env=env, check=True, stdout=subprocess.DEVNULL,
                       cwd=env.get("PYTHONPATH"))  # fmt: skip
        found.append(cpu_since(before))
    return found


def rss_run(
    engine: sa.Engine, env: dict[str, str], name: str, seconds: float, concurrency: int
) -> tuple[list[int], int, int]:
    """RSS (MB) every second of a `shadowlab score` run on `name`, its peak (MB), and the items it scored."""
    args = score_args(name, concurrency)
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = Path(f"/proc/{child.pid}/status")
    samples: list[int] = []
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and child.poll() is None:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        samples.append(int(fields["VmRSS"].split()[0]) // 1024)
        peak = int(fields["VmHWM"].split()[0]) // 1024
        time.sleep(1.0)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode in (0, -signal.SIGTERM), err[-2000:]  # (stopped before its handler was set)
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(*) FROM scores")).scalar_one()
    return samples, peak, int(scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="captures (× 2 arms = items) per rate run")
    parser.add_argument("--concurrency", type=int, default=16, help="judge calls in flight per process")
    parser.add_argument(
        "--pending", type=int, default=200_000, help="items pending in the memory run (0: none)"
    )
    parser.add_argument("--rss-s", type=float, default=40.0, help="seconds the memory run scores")
    parser.add_argument("--baseline-ref", default=None, help="also run `shadowlab score` of the code at REF")
    parser.add_argument(
        "--ttft-ms", default="0,400", help="simulator TTFTs, comma-separated (400: realistic)"
    )
    parser.add_argument(
        "--requests-at-ttft", type=int, default=400, help="captures per rate run at a TTFT above 0 ms"
    )
    args = parser.parse_args()

    from shadowlab import migrate
    from shadowlab.db import create_engine

    scratch, url = create_scratch("bench_scoring")
    engine = create_engine(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    (tmp / "prices.json").write_text(json.dumps(PRICES))
    admin = create_engine(ADMIN_URL)
    stack = contextlib.ExitStack()
    env: dict[str, str] = {}
    try:
        baseline_code = stack.enter_context(checkout(args.baseline_ref)) if args.baseline_ref else None
        migrate.upgrade(engine)
        where = Scratch(engine, admin, scratch, url, tmp, baseline_code, stack)
        for ttft_ms in (float(t) for t in args.ttft_ms.split(",")):
            requests = args.requests if ttft_ms == 0 else args.requests_at_ttft
            found = rate_tables(where, args, ttft_ms, requests)
            env = env or found  # the memory run uses the first TTFT's simulator
        if args.pending == 0:
            return
        seed_started = time.monotonic()
        seed(engine, "pending", args.pending // 2)
        seed_s = time.monotonic() - seed_started
        with engine.begin() as conn:  # only the memory run's scores are counted
            conn.execute(sa.text("DELETE FROM scores"))
        samples, peak, scored = rss_run(engine, env, "pending", args.rss_s, args.concurrency)
        every = ", ".join(str(mb) for mb in samples[:: max(1, len(samples) // 8)])
        print(f"\nMemory: `shadowlab score` on {args.pending:,} pending items (seeded in {seed_s:.0f} s), "
              f"{args.rss_s:g} s of scoring ({scored:,} stored), then SIGTERM: peak RSS {peak} MB "
              f"(goal < 300 MB), RSS over the run (MB): {every}.")  # fmt: skip
    finally:
        admin.dispose()
        stack.close()
        engine.dispose()
        drop_scratch(scratch)


@dataclass(frozen=True)
class Scratch:
    """Where a run works: the scratch database (and the admin engine the sampler reads), the price file's
    folder, the baseline's code, and the stack that stops the simulators."""

    engine: sa.Engine
    admin: sa.Engine
    name: str
    url: str
    tmp: Path
    baseline_code: Path | None
    stack: contextlib.ExitStack


def rate_tables(where: Scratch, args: argparse.Namespace, ttft_ms: float, requests: int) -> dict[str, str]:
    """Both tables at one simulator TTFT, `requests` captures per run; the environment of this checkout's
    `shadowlab score` on that simulator (which stays up until `where.stack` closes)."""
    profile = where.tmp / f"profile-{ttft_ms:g}.yaml"
    profile.write_text(PROFILE.replace("TTFT", f"{ttft_ms:g}"))
    sim, base_url = start_simulator(profile)
    where.stack.callback(sim.wait)
    where.stack.callback(sim.send_signal, signal.SIGTERM)
    sampler = Sampler(where.admin, where.name, sim.pid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | {
        "SHADOWLAB_DATABASE_URL": where.url, "SHADOWLAB_ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "k", "SHADOWLAB_PRICES_FILE": str(where.tmp / "prices.json"),
    }  # fmt: skip
    envs = [env] + ([code_env(env, where.baseline_code)] if where.baseline_code else [])
    engine = where.engine
    load_before = os.getloadavg()
    startup = startup_cpu(engine, envs, base_url, args.concurrency, f"empty-{ttft_ms:g}")
    sampler.start()
    try:
        bare: dict[int, Run] = {}
        rates: list[dict[int, Run]] = [{} for _ in envs]  # this checkout's, then the baseline's
        for processes in (1, 2):
            bare[processes] = bare_rate(base_url, requests, args.concurrency, processes, startup[0])
            for code, (code_env_, runs) in enumerate(zip(envs, rates, strict=True)):
                name = f"rate{processes}-{code}-{ttft_ms:g}"
                seed(engine, name, requests)
                runs[processes] = score_rate(engine, code_env_, name, processes, args.concurrency,
                                             startup[1 + code])  # fmt: skip
    finally:
        sampler.stop.set()
        if sampler.is_alive():
            sampler.join()
    report_rates(args, load_before, bare, rates, startup, ttft_ms, requests)
    report_where(sampler, bare, rates, args.baseline_ref)
    return env


def report_rates(
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    bare: dict[int, Run],
    rates: list[dict[int, Run]],
    startup: list[float],
    ttft_ms: float,
    requests: int,
) -> None:
    command = (f"python bench/bench_scoring.py --requests {args.requests} --concurrency {args.concurrency} "
               f"--pending {args.pending} --rss-s {args.rss_s:g} --ttft-ms {args.ttft_ms} "
               f"--requests-at-ttft {args.requests_at_ttft}"
               + (f" --baseline-ref {args.baseline_ref}" if args.baseline_ref else ""))  # fmt: skip
    machine = f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"
    print(f"## Scoring (bench/bench_scoring.py), simulator at {ttft_ms:g} ms TTFT\n")
    load = f"load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}; Postgres and the simulator on "
          f"the same machine; {load}.\n")  # fmt: skip
    starts = ", ".join(f"{s:.2f}" for s in startup[1:])
    print(
        f"{2 * requests} pointwise judge calls per run, {args.concurrency} in flight per process, "
        f"simulator at 0 ms TTFB, {ttft_ms:g} ms TTFT; bare loop and scorer alternate, 1 process then 2. "
        "CPU per call: the processes' user + system time less their start-up (measured alone: bare loop "
        f"{startup[0]:.2f} s, "
        f"`shadowlab score` {starts} s per process) over the calls.\n"
    )
    base = f" | `score` at {args.baseline_ref} (calls/s) | its ratio in 1 process" if len(rates) > 1 else ""
    print("| processes | bare loop (calls/s) | shadowlab score (calls/s) | score / bare loop in 1 process "
          f"| goal | score / bare loop, same processes | scaling 1 → 2: bare loop, score{base} "
          "| CPU per call (ms): bare loop, score" + (", baseline |" if len(rates) > 1 else " |"))  # fmt: skip
    print("|---" * (8 + 2 * (len(rates) > 1)) + "|")
    one, mine = bare[1].rate, rates[0]
    for processes, goal in ((1, "≥ 0.8×"), (2, "≥ 1.7×")):
        b, r = bare[processes], mine[processes]
        scaling = f"{b.rate / one:.2f}×, {r.rate / mine[1].rate:.2f}×" if processes > 1 else "—"
        old = "".join(
            f" | {runs[processes].rate:.0f} | {runs[processes].rate / one:.2f}×" for runs in rates[1:]
        )
        cpu = ", ".join(
            f"{1000 * run.cpu_per_call_s:.2f}" for run in [b] + [runs[processes] for runs in rates]
        )
        print(f"| {processes} | {b.rate:.0f} | {r.rate:.0f} | {r.rate / one:.2f}× | {goal} "
              f"| {r.rate / b.rate:.2f}× | {scaling}{old} | {cpu} |", flush=True)  # fmt: skip


def report_where(
    sampler: Sampler, bare: dict[int, Run], rates: list[dict[int, Run]], ref: str | None
) -> None:
    """Where the machine's CPU went inside each side's measured window, and the own CPU ratio."""
    print(
        "\nWhere the machine's CPU went inside each side's measured window (`bench_replayer.Sampler`: /proc "
        "every 50 ms, no start-up subtracted): busy cores of 2, then ms per judge call. Own CPU ratio: the "
        "bare loop's clients + simulator + Postgres per call (same processes) over this side's: the ratio "
        "the rates would have with nothing else on the machine and its cores busy (other users' load, the "
        "rest of the machine, moves the rates of two runs apart; idle cores are not in it). One process "
        "cannot keep both cores busy: at 1 process the clients column alone bounds its rate.\n"
    )
    print("| processes | side | busy cores | clients | simulator | Postgres (scratch db) | rest of machine "
          "| own CPU ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    sides = ["bare loop", "shadowlab score"] + ([f"`score` at {ref}"] if ref else [])
    for processes in (1, 2):
        runs = [bare[processes]] + [side[processes] for side in rates]
        found: list[Where] = [sampler.where(*run.window, run.calls) for run in runs]
        own = found[0].clients + found[0].simulator + found[0].postgres
        for side, where in zip(sides, found, strict=True):
            ratio = own / (where.clients + where.simulator + where.postgres)
            cpu = f"{where.clients:.2f} | {where.simulator:.2f} | {where.postgres:.2f} | {where.rest:.2f}"
            print(f"| {processes} | {side} | {where.busy_cores:.2f} | {cpu} | {ratio:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-child":
        base, (share, processes, requests, concurrency) = sys.argv[2], (int(a) for a in sys.argv[3:7])
        started, ended, ok = asyncio.run(_bare(base, range(share, requests, processes), concurrency))
        print(json.dumps({"started": started, "ended": ended, "ok": ok}))
    else:
        main()
