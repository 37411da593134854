"""Simulator benchmark: TTFT measurement error of the Anthropic provider, and simulator capacity.

The simulator runs in its own process (`shadowlab simulate`), as it would beside a replayer; the client side
(N concurrent streams through `AnthropicProvider`, one asyncio process) measures TTFT and compares it with the
TTFT the simulator says it injected (`x-sim-injected-ttft-ms`). Prints a markdown section.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from shadowlab.apis import normalize_request_body
from shadowlab.providers import ProviderConfig, ProviderResult, create_provider

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


def start_simulator(profile: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowlab", "simulate", "--port", "0", "--profile", str(profile)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split("http://", 1)[1].split()[0]


async def ttft_errors(base_url: str, streams: int, rounds: int) -> tuple[list[float], int]:
    provider = create_provider(
        "anthropic", ProviderConfig(base_url=f"http://{base_url}", api_key=SecretStr("k"))
    )
    errors: list[float] = []
    failed = 0

    async def one(delay: float) -> ProviderResult:
        await asyncio.sleep(delay)
        return await provider.complete(REQUEST)

    await asyncio.gather(*(one(0) for _ in range(streams)))  # warm-up: connections, SDK imports; not counted
    for _ in range(rounds):
        # starts spread over 250 ms (less than one stream lasts): all overlap, none arrive at once
        results = await asyncio.gather(*(one(0.25 * i / streams) for i in range(streams)))
        for result in results:
            injected = result.header("x-sim-injected-ttft-ms")
            if result.ok and result.ttft_ms is not None and injected is not None:
                errors.append(result.ttft_ms - float(injected))
            else:
                failed += 1
    await provider.aclose()
    return errors, failed


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


def main() -> None:
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_simulator_profile.yaml"
    profile.write_text(PROFILE)
    proc, base_url = start_simulator(profile)
    try:
        print("## Simulator and provider timing (bench/bench_simulator.py)\n")
        print(
            "TTFT measurement error = provider-measured TTFT − TTFT the simulator injected (ms); simulator in"
        )
        print("its own process, N concurrent streams through `AnthropicProvider` in one asyncio process.\n")
        print("| concurrent streams | samples | median (ms) | p99 (ms) | max (ms) | failed |")
        print("|---|---|---|---|---|---|")
        for streams, rounds in ((64, 6), (256, 2)):
            errors, failed = asyncio.run(ttft_errors(base_url, streams, rounds))
            print(
                f"| {streams} | {len(errors)} | {statistics.median(errors):.2f} "
                f"| {quantile(errors, 0.99):.2f} "
                f"| {max(errors):.2f} | {failed} |"
            )
        rate = asyncio.run(capacity(base_url, 64, 1500))
        print(
            f"\nSimulator capacity: {rate:.0f} streams/s completed (40-token streams, no injected delay, 64 "
            "concurrent, client = `OpenAICompatProvider` in one process; the client shares the cores, "
            "so this is "
            "a lower bound)."
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
