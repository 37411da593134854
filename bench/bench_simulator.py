"""Simulator benchmark: TTFT measurement error of the Anthropic provider, and simulator capacity.

TTFT error = TTFT the provider measured − TTFT the simulator says it injected (`x-sim-injected-ttft-ms`). The
simulator counts from when it read the request, after the client wrote it, and never sends early: an error
below 0 (the `min` column) is a clock started late or a chunk stamped before it came. The simulator runs in
its own process (`shadowlab simulate`); the client (N concurrent streams through `AnthropicProvider`, one
asyncio process) runs in another. Two layouts: pinned (simulator `taskset -c 1`, client `taskset -c 0`: the
error is the client's) and unpinned (both free on the machine's cores). Two clients in the same run: `after`
is this checkout; `before` is the `shadowlab` package at `--before REV` (default: the commit before transport
stamping), extracted with `git archive` and put first on PYTHONPATH.
Prints a markdown section.

    .venv/bin/python bench/bench_simulator.py [--before REV] [--nice N] [--realtime] [--streams 64,256]

On a machine shared with other work, `--nice -10` (root) gives both processes the CPU they ask for, so the
error is the client's and not the other tenants' scheduling; say which in the results. With the kernel's
autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled` = 1, as on the 2-core bench machine) a
process's own niceness only ranks it inside its session, and every session gets an equal share of the cores
whatever the niceness of its processes: `--nice` then starts the simulator and each client in a session of
its own and sets that session's niceness (`/proc/self/autogroup`). Without that, the 20:11 runs at
`--nice -10` looked like the runs without it. Even then the other sessions' tasks delay a wake-up by their
time slice; `--realtime` (SCHED_FIFO, root) runs both processes ahead of every ordinary task, which leaves
the client's own event loop as the only source of error: report it beside `--nice`, not instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

import shadowlab
from shadowlab.apis import normalize_request_body
from shadowlab.providers import ProviderConfig, ProviderResult, create_provider

BEFORE_REV = "1503552"  # the last commit that stamped TTFT after the SDK parsed the event
ROOT = Path(__file__).resolve().parent.parent
PROFILE = """
default:
  ttfb_ms: {median: 20}
  ttft_ms: {median: 300, sigma: 0.3, low: 100, high: 1000}
  tokens_per_s: 400
  chunk_tokens: 4
  output_tokens: {median: 40, low: 40, high: 40}
"""
REQUEST = normalize_request_body(
    "anthropic.messages",
    {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "bench"}]},
)
SIZES = ((64, 6), (256, 2))  # (concurrent streams, rounds)


NICE: list[str] = []  # `--nice N`: both processes at that priority (a shared machine's other tenants)
AUTOGROUP = Path("/proc/self/autogroup")


def prioritised(nice: int) -> list[str]:
    """The command prefix that runs a process at `nice`: in its own session (start_new_session), whose
    autogroup gets that niceness where the kernel groups by session; else the process's own niceness."""
    if not AUTOGROUP.exists():
        return ["nice", "-n", str(nice)]
    return ["sh", "-c", 'echo "$0" > /proc/self/autogroup && exec nice -n "$0" "$@"', str(nice)]


def start_simulator(profile: Path, cpu: str | None) -> tuple[subprocess.Popen[str], str]:
    pin = ["taskset", "-c", cpu] if cpu is not None else []
    proc = subprocess.Popen(
        [
            *NICE,
            *pin,
            sys.executable,
            "-m",
            "shadowlab",
            "simulate",
            "--port",
            "0",
            "--profile",
            str(profile),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=bool(NICE),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split("http://", 1)[1].split()[0]


async def ttft_errors(base_url: str, streams: int, rounds: int) -> tuple[list[float], int, float]:
    """TTFT errors, failed calls, and the client's CPU ms per stream (warm-up excluded)."""
    provider = create_provider(
        "anthropic", ProviderConfig(base_url=f"http://{base_url}", api_key=SecretStr("k"))
    )
    errors: list[float] = []
    failed = 0

    async def one(delay: float) -> ProviderResult:
        await asyncio.sleep(delay)
        return await provider.complete(REQUEST)

    await asyncio.gather(*(one(0) for _ in range(streams)))  # warm-up: connections, SDK imports; not counted
    cpu_start = _cpu_s()
    for _ in range(rounds):
        # starts spread over 250 ms (less than one stream lasts): all overlap, none arrive at once
        results = await asyncio.gather(*(one(0.25 * i / streams) for i in range(streams)))
        for result in results:
            injected = result.header("x-sim-injected-ttft-ms")
            if result.ok and result.ttft_ms is not None and injected is not None:
                errors.append(result.ttft_ms - float(injected))
            else:
                failed += 1
    cpu_ms = (_cpu_s() - cpu_start) * 1000 / (streams * rounds)
    await provider.aclose()
    return errors, failed, cpu_ms


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_client(
    base_url: str, streams: int, rounds: int, *, cpu: str | None, before: Path | None
) -> dict[str, object]:
    """One client process (this file with `--client`): its errors, failures and which shadowlab it ran."""
    env = dict(os.environ)
    if before is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(before), env.get("PYTHONPATH", "")) if p)
    pin = ["taskset", "-c", cpu] if cpu is not None else []
    out = subprocess.run(
        [*NICE, *pin, sys.executable, __file__, "--client", base_url, str(streams), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=bool(NICE),
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def client_main(base_url: str, streams: int, rounds: int) -> None:
    errors, failed, cpu_ms = asyncio.run(ttft_errors(base_url, streams, rounds))
    print(json.dumps({"errors": errors, "failed": failed, "cpu_ms": cpu_ms, "shadowlab": shadowlab.__file__}))


async def capacity(base_url: str, concurrency: int, total: int) -> float:
    """Streams/s with no injected delay (`x-sim-ttfb-ms: 0`, `x-sim-ttft-ms: 0`)."""
    provider = create_provider(
        "openai", ProviderConfig(base_url=f"http://{base_url}/v1", api_key=SecretStr("k"))
    )
    headers = {"x-sim-ttfb-ms": "0", "x-sim-ttft-ms": "0"}
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            await provider.complete(REQUEST, extra_headers=headers)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await provider.aclose()
    return total / elapsed


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def extract(rev: str, into: Path) -> Path:
    """The `shadowlab` package as it was at `rev`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "shadowlab"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=BEFORE_REV, help="commit whose shadowlab is the `before` client")
    parser.add_argument("--nice", type=int, default=None, help="run simulator and clients at this niceness")
    parser.add_argument(
        "--realtime", action="store_true", help="run simulator and clients SCHED_FIFO (chrt -f 10; root)"
    )
    parser.add_argument(
        "--streams", default=",".join(str(n) for n, _ in SIZES), help="which sizes to run (comma-separated)"
    )
    args = parser.parse_args()
    sizes = [(n, rounds) for n, rounds in SIZES if str(n) in args.streams.split(",")]
    if args.nice is not None:
        NICE[:] = prioritised(args.nice)
    if args.realtime:
        NICE[:] = ["chrt", "-f", "10", *NICE]
    tmp = Path(tempfile.mkdtemp(prefix="bench_simulator_"))
    profile = tmp / "profile.yaml"
    profile.write_text(PROFILE)
    before = extract(args.before, tmp)
    print("## Simulator and provider timing (bench/bench_simulator.py)\n")
    print(f"TTFT error = provider-measured − injected TTFT (ms); `before` = shadowlab at {args.before},")
    runs = " and ".join(f"{n} streams × {rounds} rounds" for n, rounds in sizes)
    print(f"`after` = this checkout; {runs}, starts spread over 250 ms;")
    policy = "SCHED_FIFO 10" if args.realtime else f"niceness {args.nice or 0}"
    print(f"{policy}; load average (1 min) {os.getloadavg()[0]:.1f} at the start.\n")
    print(
        "| layout | streams | client | samples | min (ms) | median (ms) | p99 (ms) | max (ms) | failed "
        "| CPU ms/stream |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for layout, sim_cpu, client_cpu in (("pinned", "1", "0"), ("unpinned", None, None)):
        proc, base_url = start_simulator(profile, sim_cpu)
        try:
            for streams, rounds in sizes:
                for name, path in (("before", before), ("after", None)):
                    run = run_client(base_url, streams, rounds, cpu=client_cpu, before=path)
                    assert (path is None) != str(run["shadowlab"]).startswith(str(tmp)), run["shadowlab"]
                    errors = [float(e) for e in run["errors"]]  # type: ignore[attr-defined]
                    print(
                        f"| {layout} | {streams} | {name} | {len(errors)} | {min(errors):.2f} "
                        f"| {statistics.median(errors):.2f} "
                        f"| {quantile(errors, 0.99):.2f} | {max(errors):.2f} | {run['failed']} "
                        f"| {float(run['cpu_ms']):.2f} |",  # type: ignore[arg-type]
                        flush=True,
                    )
            if layout == "unpinned":
                rate = asyncio.run(capacity(base_url, 64, 1500))
                print(
                    f"\nSimulator capacity: {rate:.0f} streams/s completed (40-token streams, no injected "
                    "delay, 64 concurrent, client = `OpenAICompatProvider` in one process; the client shares "
                    "the cores, so this is a lower bound)."
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
