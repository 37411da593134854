"""Ingest benchmark: N captures of ~2 KB from Kafka into Postgres, next to a bare kafka-python consume loop.

Usage: .venv/bin/python bench/bench_ingest.py [--n 100000] [--partitions 4] [--baseline-ref REF]
Needs the project's services (`make services`). Prints one line per measurement; copy them to BENCHMARKS.md.
Each line also splits the machine's CPU per capture (sampled from /proc): the consumer (ingest processes,
or this process for the bare loop), the database's Postgres processes, the Kafka broker and the rest; and
the "ceiling": the rate 2 cores would allow an ingest whose own work cost nothing beyond the bare loop's,
given the Postgres and broker CPU it causes (a bound no ingest code can beat on this machine); and the
"measured ceiling": one process of ingest's own consumer and sink storing rows prepared before the clock
started (`ingest_ceiling.py`), the rate of an ingest whose prepare step cost nothing.
`--baseline-ref REF` also runs the ingest of the code at REF (a `git archive` copy) on the same topic, right
before this checkout's at each process count: same-run before/after figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from bench_analyze_db import checkout
from cpu_split import CpuSplit, Split
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get(
    "SHADOWLAB_TEST_DATABASE_URL", "postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:54329/shadowlab"
)
KAFKA = os.environ.get("SHADOWLAB_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def capture(i: int) -> bytes:
    """~2 KB, shaped like a support chat: a system prompt, three turns, a tool call, some personal data."""
    body = {
        "schema_version": 1,
        "request_id": f"bench-{i:09d}",
        "captured_at": "2025-01-31T12:00:00+00:00",
        "source": {
            "service": "support-bot",
            "route": "/chat",
            "environment": "prod",
            "user_hash": f"u{i % 997}",
        },
        "api": "anthropic.messages",
        "request": {
            "model": "claude-sonnet-4",
            "max_tokens": 512,
            "system": "You are the support assistant of ACME. Answer briefly and politely. " * 3,
            "messages": [
                {
                    "role": "user",
                    "content": f"Hello, I am writing about order {i}. It has not arrived yet. " * 5,
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look that up for you right away. " * 3},
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "lookup_order",
                            "input": {"order_id": str(i)},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "status: shipped, carrier: UPS " * 4,
                        },
                        {
                            "type": "text",
                            "text": f"You can reach me at user{i}@example.com if needed, thanks.",
                        },
                    ],
                },
            ],
        },
        "response": {
            "text": "Your order shipped on Monday with UPS and should arrive within two days. " * 4,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 420, "output_tokens": 90},
            "ttft_ms": 310.0,
            "latency_ms": 1450.0,
        },
    }
    return json.dumps(body).encode()


def produce(topic: str, n: int, partitions: int) -> float:
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={"max.message.bytes": "1048576"})])
    admin.create_topics([NewTopic(f"{topic}.dlq", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=20, batch_size=512 * 1024)
    started = time.perf_counter()
    size = 0
    for i in range(n):
        value = capture(i)
        size += len(value)
        producer.send(topic, key=f"bench-{i:09d}".encode(), value=value)
    producer.flush()
    producer.close()
    print(
        f"produced {n} captures, mean {size / n:.0f} bytes, {n / (time.perf_counter() - started):,.0f} msg/s"
    )
    return size / n


def bare_consume(topic: str, n: int) -> tuple[float, Split]:
    split = CpuSplit(None, lambda: [os.getpid()])
    split.start()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=1000,
    )
    seen, started = 0, None
    while seen < n:
        for records in consumer.poll(timeout_ms=1000).values():
            started = started or split.mark()
            seen += len(records)
    end = split.mark()
    consumer.close()
    split.stop()
    assert started is not None
    return n / (end - started), split.between(started, end)


def fresh_database(name: str, code: Path) -> str:
    """A new database, migrated by the code that will ingest into it (`shadowlab db upgrade` of `code`)."""
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(PG).set(database=name).render_as_string(hide_password=False)
    subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "upgrade"],
        cwd=code, env=code_env(url, code), check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return url


def code_env(url: str, code: Path) -> dict[str, str]:
    """The environment of a `shadowlab` command of the code in `code` (first on the path)."""
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "SHADOWLAB_DATABASE_URL": url,
        "SHADOWLAB_KAFKA_BOOTSTRAP": KAFKA,
        "SHADOWLAB_LOG_LEVEL": "WARNING",
    }


def rows(url: str, n: int) -> Callable[[], int]:
    """Rows stored so far, cheaply: the largest id (an index look-up; ids may skip, never repeat) until it
    reaches `n`, then a count. A count every 50 ms would scan the table, taking CPU from ingest."""
    engine = sa.create_engine(url)

    def count() -> int:
        with engine.connect() as conn:
            top = conn.execute(sa.text("select coalesce(max(id), 0) from captured_requests")).scalar_one()
            if top < n:
                return int(top)
            return int(conn.execute(sa.text("select count(*) from captured_requests")).scalar_one())

    return count


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ingest(
    url: str, topic: str, n: int, processes: int, code: Path, *, ceiling: int = 0
) -> tuple[float, float, Split]:
    """Rate from the first stored row to the last (start-up and group join excluded), and the ingest
    processes' CPU per capture in µs (start-up included): the CPU figure barely moves with the machine's
    load, the rate does. `code`: the checkout whose ingest runs; `ceiling`: run `ingest_ceiling.py` (ingest's
    consumer and sink with every row prepared before the clock starts) with that many writer threads
    instead of `shadowlab ingest`."""
    cpu_before = _children_cpu_s()
    env = code_env(url, code)
    group = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    command = [sys.executable, "-m", "cli.main", "ingest", "--topic", topic, "--group", group]
    command += ["--batch-size", "1000", "--idle-exit", "3"]
    if ceiling:
        script = str(Path(__file__).with_name("ingest_ceiling.py"))
        command = [sys.executable, script, topic, str(n), str(ceiling)]
    procs: list[subprocess.Popen[bytes]] = []
    split = CpuSplit(sa.engine.make_url(url).database, lambda: [p.pid for p in procs])
    split.start()
    procs += [
        subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL) for _ in range(processes)
    ]
    count = rows(url, n)
    first = None
    while (stored := count()) < n:
        if stored and first is None:
            first = (split.mark(), stored)
        if all(p.poll() is not None for p in procs):
            raise SystemExit(f"ingest exited with {stored} of {n} rows stored")
        time.sleep(0.05)
    end = split.mark()
    for p in procs:
        p.wait(60)
    split.stop()
    assert first is not None
    rate = (n - first[1]) / (end - first[0])
    return rate, (_children_cpu_s() - cpu_before) / n * 1e6, split.between(first[0], end)


def _per_capture_us(split: Split, rate: float) -> dict[str, float]:
    """CPU µs per capture over the rate's own window (seconds of CPU per second, over captures per second:
    start-up and the last idle seconds left out)."""
    us: dict[str, float] = split.per_item_us(rate * split.seconds)  # (bench modules import as Any)
    return us


def _split_line(us: dict[str, float]) -> str:
    return (
        f"machine CPU µs/capture: consumer {us['clients']:.0f}, postgres {us['postgres']:.0f}, broker "
        f"{us['broker']:.0f}, rest {us['rest']:.0f} (total {us['machine']:.0f})"
    )


def _load() -> str:
    """The 1-minute load average: the machine is shared, and rates move with it."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--baseline-ref", default=None, help="also run the ingest of the code at REF")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        codes = [("", ROOT)]
        if args.baseline_ref:
            codes.insert(0, (f" [{args.baseline_ref}]", stack.enter_context(checkout(args.baseline_ref))))
        run(args, codes)


def run(args: argparse.Namespace, codes: list[tuple[str, Path]]) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    topic = f"bench.captures.{uuid.uuid4().hex[:6]}"
    produce(topic, args.n, args.partitions)
    bare, bare_split = bare_consume(topic, args.n)
    bare_us = _per_capture_us(bare_split, bare)
    print(f"bare kafka-python consume: {bare:,.0f} msg/s (load {_load()}); {_split_line(bare_us)}")
    consumer_us = bare_us["clients"]
    for writers in (1, 2):
        url = fresh_database("shadowlab_bench_ingest_ceiling", ROOT)
        rate, _, split = ingest(url, topic, args.n, 1, ROOT, ceiling=writers)
        print(
            f"measured ceiling, 1 process, {writers} writer thread(s) (ingest's consumer and sink, rows "
            f"prepared before the clock): {rate:,.0f} msg/s ({rate / bare:.2f} x bare) (load {_load()}); "
            f"{_split_line(_per_capture_us(split, rate))}"
        )
    cores = os.cpu_count() or 1
    for processes in (1, 2):
        for label, code in codes:
            url = fresh_database(f"shadowlab_bench_ingest_{processes}", code)
            rate, cpu_us, split = ingest(url, topic, args.n, processes, code)
            us = _per_capture_us(split, rate)
            # What the machine could give an ingest costing no more than the bare loop, with the Postgres
            # and broker CPU this one caused (every core busy, nothing else running).
            ceiling = cores * 1e6 / (consumer_us + us["postgres"] + us["broker"])
            print(
                f"ingest{label}, {processes} process(es), redaction on: {rate:,.0f} msg/s "
                f"({rate / bare:.2f} x bare), ingest CPU {cpu_us:.0f} µs/capture (load {_load()}); "
                f"{_split_line(us)}; ceiling {ceiling:,.0f} msg/s ({ceiling / bare:.2f} x bare)"
            )
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.delete_topics([topic, f"{topic}.dlq"])
    admin.close()


if __name__ == "__main__":
    main()
