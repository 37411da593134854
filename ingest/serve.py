"""What `shadowlab ingest` runs: a source (Kafka or a JSONL file), its dead letters, the runner."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from ingest.dlq import DeadLetterSink, FileDeadLetters, KafkaDeadLetters, dlq_topic, rejected_path
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig
from ingest.redact import Redactor
from ingest.redact_rules import parse_user_rule
from ingest.runner import Runner, RunOptions
from ingest.sampling import Selector, parse_tag_filters
from ingest.sink import CaptureSink
from ingest.sources import FileSource, KafkaSource, Source
from shadowlab.broker import TopicSpec, capture_topics, ensure_topics, require_topic
from shadowlab.config import Settings
from shadowlab.errors import ConfigError
from shadowlab.logs import configure_logging


@dataclass(frozen=True)
class IngestArgs:
    """The command line of `shadowlab ingest` (see its --help)."""

    input_path: Path | None
    from_file: bool
    topic: str | None
    group: str
    batch_size: int
    sample_rate: float
    services: tuple[str, ...]
    routes: tuple[str, ...]
    environments: tuple[str, ...]
    models: tuple[str, ...]
    tags: tuple[str, ...]
    redact_patterns: tuple[str, ...]
    metrics_port: int | None
    idle_exit_s: float | None
    metrics_host: str = "127.0.0.1"


def _pipeline(settings: Settings, args: IngestArgs) -> PipelineConfig:
    selector = Selector(
        sample_rate=args.sample_rate,
        services=frozenset(args.services),
        routes=frozenset(args.routes),
        environments=frozenset(args.environments),
        models=frozenset(args.models),
        tags=parse_tag_filters(args.tags),
    )
    redactor = Redactor(parse_user_rule(p) for p in args.redact_patterns)
    return PipelineConfig(settings.ingest_max_bytes, selector, redactor)


def _source(
    settings: Settings, args: IngestArgs, metrics: IngestMetrics, stop: threading.Event
) -> tuple[Source, DeadLetterSink]:
    if args.from_file:
        if args.input_path is None or not args.input_path.is_file():
            raise ConfigError(
                f"INPUT: expected a readable JSONL file with --source file, found {args.input_path}"
            )
        return FileSource(args.input_path, stop), FileDeadLetters(rejected_path(args.input_path))
    if args.input_path is not None:
        raise ConfigError(f"INPUT: expected no file with --source kafka, found {args.input_path}")
    name = args.topic or settings.capture_topic
    # A missing source would be polled forever ("Topic … not found"), with a stray DLQ created for it.
    require_topic(settings.kafka_bootstrap, name, settings.connect_timeout_s)
    dlq_spec: TopicSpec = capture_topics(name)[1]
    ensure_topics(settings.kafka_bootstrap, [TopicSpec(dlq_topic(name), 1, dlq_spec.config)])
    source = KafkaSource(
        settings.kafka_bootstrap,
        name,
        args.group,
        max_poll_records=args.batch_size,
        metrics=metrics,
        timeout_s=settings.connect_timeout_s,
    )
    return source, KafkaDeadLetters(settings.kafka_bootstrap, dlq_topic(name))


def run_ingest(settings: Settings, args: IngestArgs, engine_of: Callable[[Settings], Engine]) -> list[str]:
    """Ingest until stopped (SIGTERM/SIGINT), the file ends or `idle_exit_s` passes; the summary lines."""
    configure_logging(settings.log_level, settings.log_format)
    config = _pipeline(settings, args)
    engine = engine_of(settings)
    metrics = IngestMetrics()
    stop = threading.Event()
    try:
        source, dead = _source(settings, args, metrics, stop)
        if args.metrics_port is not None:
            metrics.serve(args.metrics_port, args.metrics_host)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        options = RunOptions(batch_size=args.batch_size, idle_exit_s=args.idle_exit_s)
        Runner(source, CaptureSink(engine), dead, config, metrics, options, stop).run()
    finally:
        engine.dispose()
    lines = [metrics.tally.summary()]
    if args.from_file and metrics.tally.rejected and args.input_path is not None:
        lines.append(f"rejected lines: {rejected_path(args.input_path)}")
    return lines
