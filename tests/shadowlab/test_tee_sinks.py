"""Sinks: bounded queue accounting, flush/close, JSONL rotation, threads, asyncio, fork, a dead broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import shadowlab_tee as tee
from shadowlab.capture import parse_capture_bytes
from tests.support import fake_upstreams as fakes


class GatedSink(tee.MemorySink):
    """A memory sink whose worker cannot connect until the test opens the gate."""

    def __init__(self, queue_size: int) -> None:
        self.gate = threading.Event()
        super().__init__(queue_size=queue_size)

    def _open(self) -> None:
        if not self.gate.wait(timeout=10):
            raise ConnectionError("gate stayed closed")


def test_a_full_queue_drops_and_counts_and_flush_reports_the_loss() -> None:
    sink = GatedSink(queue_size=5)
    client = tee.wrap(fakes.openai_client(), sink, "svc")
    for _ in range(20):
        client.chat.completions.create(**fakes.OPENAI_REQUEST)
    assert (sink.stats().dropped, sink.stats().pending) == (15, 5)
    assert not sink.flush(timeout=0.05)  # still pending, and 15 lost since the start
    sink.gate.set()
    assert sink.flush(timeout=10)  # all delivered now, nothing lost since the previous flush
    stats = sink.stats()
    assert (stats.offered, stats.sent, stats.dropped, stats.failed, stats.pending) == (20, 5, 15, 0, 0)
    assert sink.close(timeout=5)


def test_close_counts_what_is_still_queued_as_dropped() -> None:
    sink = GatedSink(queue_size=100)
    client = tee.wrap(fakes.openai_client(), sink, "svc")
    for _ in range(7):
        client.chat.completions.create(**fakes.OPENAI_REQUEST)
    assert not sink.close(timeout=0.1)
    stats = sink.stats()
    assert (stats.sent, stats.dropped, stats.pending) == (0, 7, 0)
    client.chat.completions.create(**fakes.OPENAI_REQUEST)  # after close: still works, capture dropped
    assert sink.stats().dropped == 8
    sink.gate.set()


def test_jsonl_sink_rotates_and_keeps_every_line(tmp_path: Path) -> None:
    sink = tee.JsonlSink(tmp_path / "captures.jsonl", max_bytes=4_000, backups=50)
    client = tee.wrap(fakes.anthropic_client(), sink, "svc")
    for i in range(30):
        client.messages.create(**fakes.ANTHROPIC_REQUEST, tee_request_id=f"r{i:02d}")
    assert sink.close(timeout=10)
    files = sorted(tmp_path.iterdir())
    assert len(files) > 3
    for path in files:
        assert path.stat().st_size <= 4_000
    ids = sorted(parse_capture_bytes(line).request_id for p in files for line in p.read_bytes().splitlines())
    assert ids == [f"r{i:02d}" for i in range(30)]


def test_jsonl_sink_with_no_backups_keeps_only_the_current_file(tmp_path: Path) -> None:
    sink = tee.JsonlSink(tmp_path / "c.jsonl", max_bytes=2_000, backups=0)
    client = tee.wrap(fakes.openai_client(), sink, "svc")
    for _ in range(10):
        client.chat.completions.create(**fakes.OPENAI_REQUEST)
    assert sink.close(timeout=10)
    assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl"] and sink.stats().sent == 10


def test_eight_threads_and_asyncio_tasks_lose_nothing() -> None:
    sink = tee.MemorySink(queue_size=2_000)
    client = tee.wrap(fakes.anthropic_client(), sink, "svc")

    def worker(n: int) -> None:
        for i in range(40):
            request = fakes.ANTHROPIC_REQUEST | {"tee_request_id": f"t{n}-{i}"}
            if i % 2:
                list(client.messages.create(**request, stream=True))
            else:
                client.messages.create(**request)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def tasks() -> None:
        aclient = tee.wrap(fakes.openai_client(is_async=True), sink, "svc")

        async def one(i: int) -> None:
            stream = await aclient.chat.completions.create(
                **fakes.OPENAI_REQUEST, stream=True, tee_request_id=f"a{i}"
            )
            async for _ in stream:
                pass

        await asyncio.gather(*(one(i) for i in range(100)))

    asyncio.run(tasks())
    assert sink.close(timeout=10)
    ids = {parse_capture_bytes(value).request_id for _, value in sink.records()}
    assert len(ids) == 8 * 40 + 100 and sink.stats().dropped == 0


def test_a_forked_child_keeps_capturing_into_its_own_file(tmp_path: Path) -> None:
    sink = tee.JsonlSink(tmp_path / "c-{pid}.jsonl")
    client = tee.wrap(fakes.openai_client(), sink, "svc")
    client.chat.completions.create(**fakes.OPENAI_REQUEST, tee_request_id="parent-0")
    assert sink.flush(timeout=10)  # the parent's worker thread and file are live at fork time
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            for i in range(3):
                client.chat.completions.create(**fakes.OPENAI_REQUEST, tee_request_id=f"child-{i}")
            code = 0 if sink.close(timeout=10) and sink.stats().sent == 3 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.chat.completions.create(**fakes.OPENAI_REQUEST, tee_request_id="parent-1")
    assert sink.close(timeout=10)

    def ids(owner: int) -> list[str]:
        lines = (tmp_path / f"c-{owner}.jsonl").read_bytes().splitlines()
        return [json.loads(line)["request_id"] for line in lines]

    assert ids(pid) == ["child-0", "child-1", "child-2"]
    assert ids(os.getpid()) == ["parent-0", "parent-1"]


def test_with_the_broker_down_1000_calls_return_normally_and_every_loss_is_counted() -> None:
    sink = tee.KafkaSink("127.0.0.1:1", "llm.captures", queue_size=100, bootstrap_timeout_ms=300)
    wrapped = tee.wrap(fakes.anthropic_client(), sink, "svc")
    plain = fakes.anthropic_client()
    expected = plain.messages.create(**fakes.ANTHROPIC_REQUEST).model_dump()
    slowest = 0.0
    for _ in range(1000):
        started = time.perf_counter()
        got = wrapped.messages.create(**fakes.ANTHROPIC_REQUEST)
        slowest = max(slowest, time.perf_counter() - started)
        assert got.model_dump() == expected
    assert slowest < 1.0  # no call ever waited on the broker (a bootstrap attempt alone takes 0.3 s)
    assert not sink.close(timeout=1)
    stats = sink.stats()
    assert (stats.offered, stats.sent, stats.failed, stats.dropped) == (1000, 0, 0, 1000)
    assert stats.last_error is not None and stats.last_error.startswith("open:")


def test_importing_the_tee_loads_neither_pydantic_nor_an_sdk_nor_kafka() -> None:
    code = (
        "import sys, shadowlab_tee; heavy = {'pydantic', 'anthropic', 'openai', 'httpx2', 'kafka'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sink_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(tee.TeeConfigError, match="queue_size must be an int >= 1, got 0"):
        tee.MemorySink(queue_size=0)
    with pytest.raises(tee.TeeConfigError, match="delivery_timeout_ms must be >= request_timeout_ms"):
        tee.KafkaSink("127.0.0.1:1", request_timeout_ms=10_000, delivery_timeout_ms=1_000)
    with pytest.raises(tee.TeeConfigError, match="max_bytes >= 1 and backups >= 0"):
        tee.JsonlSink(tmp_path / "x", backups=-1)
    with pytest.raises(tee.TeeConfigError, match="non-empty secret salt"):
        tee.hash_user("u", salt="")
