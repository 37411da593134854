"""The measured ceiling of one ingest process: ingest's own consumer and sink, with every capture's row
prepared before the clock starts, so the timed loop does only what any ingest must (poll Kafka, insert the
rows, commit the offsets) and none of its own work (decoding, validation, redaction, fingerprint).

Run by `bench_ingest.py` as a process of its own, like `shadowlab ingest`, against a migrated database
(`SHADOWLAB_DATABASE_URL`) and a topic of `n` captures. A first pass reads the topic in a throwaway group and
prepares every row with ingest's own `prepare`; nothing is inserted until the timed pass, which reads it
again in a fresh group, so the parent's clock (first stored row to last) sees the timed pass only. Its
rate is what one Python process can reach on this machine with this storage design: no change inside
`prepare` can take ingest past it.

Usage: python bench/ingest_ceiling.py TOPIC N [WRITERS]  (with the same environment as `shadowlab ingest`)
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import shadowlab  # noqa: F401  (before numpy: the project's import-time settings)
from ingest.messages import Message
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig, prepare
from ingest.sink import CaptureSink, Row, SinkResult
from ingest.sources import KafkaSource
from shadowlab.config import load_settings
from shadowlab.db import engine_from


def main(topic: str, n: int, writers: int) -> None:
    settings = load_settings()
    config, metrics = PipelineConfig(settings.ingest_max_bytes), IngestMetrics()
    rows: dict[tuple[int | None, int], Row] = {}
    source = KafkaSource(settings.kafka_bootstrap, topic, f"ceiling-prep-{uuid.uuid4().hex[:6]}")
    while len(rows) < n:
        prepared = prepare(source.poll(1000, 1.0), config, metrics)
        assert not prepared.dead, prepared.dead[:1]
        rows.update(((m.partition, m.offset), row) for m, row in prepared.rows)
    source.close()

    engine = engine_from(settings)
    sink = CaptureSink(engine)
    source = KafkaSource(settings.kafka_bootstrap, topic, f"ceiling-{uuid.uuid4().hex[:6]}")
    gc.freeze()  # as the runner does: the prepared rows live to the end, out of the collector's sight
    # As the runner: batch N inserted by a writer thread while N+1 is polled; offsets committed in order.
    # More writers than the runner's one: each its own connection, so Postgres works on several batches.
    pool = ThreadPoolExecutor(writers)
    in_flight: deque[tuple[list[Message], Future[SinkResult]]] = deque()
    done = 0
    while done < n:
        messages = source.poll(1000, 1.0)
        while in_flight and (len(in_flight) >= writers or not messages or in_flight[0][1].done()):
            done += _finish(source, *in_flight.popleft())
        if messages:
            batch = [(m, rows[(m.partition, m.offset)]) for m in messages]
            in_flight.append((messages, pool.submit(sink.write, batch)))
    pool.shutdown()
    source.close()
    engine.dispose()


def _finish(source: KafkaSource, messages: list[Message], write: Future[SinkResult]) -> int:
    result = write.result()
    source.commit(messages)
    return result.stored + result.duplicates


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
