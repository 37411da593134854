"""Latency the tee adds to a model call whose upstream answers at once (p50/p99, µs; 1 and 8 threads).

Two upstreams: the official Anthropic SDK on an httpx2.MockTransport (the real call path), and a stub
client whose `messages.create` returns a ready Message (nothing but the tee's own cost). Wrapped and
unwrapped calls alternate in the same run, so both see the same machine load. Prints a markdown table.

    .venv/bin/python bench/bench_tee.py [--calls 4000] [--kafka 127.0.0.1:19092]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2

from shadowlab import tee

REQUEST: dict[str, Any] = {
    "model": "claude-bench",
    "max_tokens": 64,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Say hello in one short sentence, please."}],
}
MESSAGE: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-bench",
    "content": [{"type": "text", "text": "Hello there!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 4},
}
BODY = json.dumps(MESSAGE).encode()


def sdk_client() -> anthropic.Anthropic:
    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=BODY, headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(answer)
    return anthropic.Anthropic(
        api_key="sk-ant-bench", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


class _StubMessages:
    def __init__(self) -> None:
        self._message = anthropic.types.Message.model_validate(MESSAGE)

    def create(self, **_: Any) -> anthropic.types.Message:
        return self._message

    def stream(self, **_: Any) -> None:
        raise NotImplementedError


class StubClient:
    """Shaped like anthropic.Anthropic for the tee; answers instantly without HTTP."""

    def __init__(self) -> None:
        self.messages = _StubMessages()


def timed_calls(plain: Any, wrapped: Any, calls: int) -> tuple[list[float], list[float]]:
    """Alternate unwrapped and wrapped calls; durations in µs."""
    base: list[float] = []
    teed: list[float] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        for client, out in ((plain, base), (wrapped, teed)) if i % 2 else ((wrapped, teed), (plain, base)):
            start = clock()
            client.messages.create(**REQUEST)
            out.append((clock() - start) / 1000)
    return base, teed


def run(
    make_client: Callable[[], Any], sink: tee.Sink | None, calls: int, threads: int
) -> tuple[list[float], list[float]]:
    """Per-call µs, unwrapped and wrapped; with no sink both sides are unwrapped (the noise floor)."""
    results: list[tuple[list[float], list[float]]] = []
    lock = threading.Lock()

    def worker() -> None:
        plain = make_client()
        wrapped = make_client() if sink is None else tee.wrap(make_client(), sink, "bench")
        timed_calls(plain, wrapped, 50)  # warm up
        result = timed_calls(plain, wrapped, calls // threads)
        with lock:
            results.append(result)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [x for r in results for x in r[0]], [x for r in results for x in r[1]]


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="wrapped calls per scenario (same unwrapped)")
    parser.add_argument("--kafka", help="bootstrap servers: send captures to a real broker (default: memory)")
    args = parser.parse_args()
    if args.kafka:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        args.topic = f"bench.tee.{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=args.kafka)
        admin.create_topics([NewTopic(args.topic, num_partitions=4, replication_factor=1)])
    try:
        bench(args)
    finally:
        if args.kafka:
            admin.delete_topics([args.topic])
            admin.close()


def bench(args: argparse.Namespace) -> None:

    print(f"Command: `{' '.join([os.path.basename(sys.executable), *sys.argv])}`  ")
    print(f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}  ")
    print(f"Date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}  ")
    print(f"Sink: {'Kafka ' + args.kafka if args.kafka else 'in-memory'}; {args.calls} calls per row\n")
    print(
        "| upstream | threads | unwrapped p50 | unwrapped p99 | wrapped p50 | wrapped p99 "
        "| added p50 µs | added p99 µs | ratio p50 | captures sent |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[tuple[str, Callable[[], Any], bool]] = [
        ("SDK + MockTransport, no tee (noise floor)", sdk_client, False),
        ("SDK + MockTransport", sdk_client, True),
        ("stub client", StubClient, True),
    ]
    for name, make_client, teed in rows:
        for threads in (1, 8):
            sink: tee.Sink | None = None
            if teed:
                sink = (
                    tee.KafkaSink(args.kafka, args.topic, queue_size=100_000)
                    if args.kafka
                    else tee.MemorySink(queue_size=100_000)
                )
            base, other = run(make_client, sink, args.calls, threads)
            sent = "-"
            if sink is not None:
                sink.close(timeout=60)
                sent = f"{sink.stats().sent}/{sink.stats().offered}"
            b50, b99, t50, t99 = (quantile(v, q) for v in (base, other) for q in (0.5, 0.99))
            print(
                f"| {name} | {threads} | {b50:.1f} | {b99:.1f} | {t50:.1f} | {t99:.1f} | {t50 - b50:.1f} "
                f"| {t99 - b99:.1f} | {t50 / b50:.2f} | {sent} |"
            )


if __name__ == "__main__":
    main()
