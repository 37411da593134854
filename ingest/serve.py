"""What `shadowlab ingest` runs: a source (Kafka, a JSONL file, OTLP spans), its dead letters, the runner."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    source: Literal["kafka", "file", "otlp"]
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
    otlp_port: int | None = None  # the receiver's port with --source otlp and no INPUT (default 4318)
    otlp_host: str = "127.0.0.1"


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
    if args.otlp_port is not None and (args.source != "otlp" or args.input_path is not None):
        found = "an INPUT file" if args.source == "otlp" else f"--source {args.source}"
        raise ConfigError(
            f"--otlp-port: expected with --source otlp and no INPUT (the receiver), found {found}"
        )
    if args.source == "otlp" and args.input_path is not None:
        from ingest.otlp_source import OtlpFileSource

        source: Source = OtlpFileSource(args.input_path, metrics, stop)
        return source, FileDeadLetters(rejected_path(args.input_path))
    if args.source == "file":
        if args.input_path is None or not args.input_path.is_file():
            raise ConfigError(
                f"INPUT: expected a readable JSONL file with --source file, found {args.input_path}"
            )
        dead_letters = FileDeadLetters(rejected_path(args.input_path))  # first: it may fail, the source not
        return FileSource(args.input_path, stop), dead_letters
    if args.input_path is not None:
        raise ConfigError(f"INPUT: expected no file with --source kafka, found {args.input_path}")
    # an empty value (a compose variable left unset) would read the default topic, or join no group
    for option, value in (("--topic", args.topic), ("--group", args.group)):
        if value is not None and not value.strip():
            raise ConfigError(f"{option}: expected a name, found an empty one")
    name = args.topic or settings.capture_topic
    if args.source == "otlp":  # the receiver: dead letters on the capture topic's DLQ, as from Kafka
        return _otlp_receiver(settings, args, metrics, stop, name)
    # A missing source would be polled forever ("Topic … not found"), with a stray DLQ created for it.
    require_topic(settings.kafka_bootstrap, name, settings.connect_timeout_s)
    dead = _kafka_dead_letters(settings, name)
    kafka = KafkaSource(
        settings.kafka_bootstrap,
        name,
        args.group,
        max_poll_records=args.batch_size,
        metrics=metrics,
        timeout_s=settings.connect_timeout_s,
    )
    return kafka, dead


def _kafka_dead_letters(settings: Settings, topic: str) -> KafkaDeadLetters:
    """The dead letters of `topic`, on `<topic>.dlq` (created if missing)."""
    dlq_spec: TopicSpec = capture_topics(topic)[1]
    ensure_topics(settings.kafka_bootstrap, [TopicSpec(dlq_topic(topic), 1, dlq_spec.config)])
    return KafkaDeadLetters(settings.kafka_bootstrap, dlq_topic(topic))


def _otlp_receiver(
    settings: Settings, args: IngestArgs, metrics: IngestMetrics, stop: threading.Event, topic: str
) -> tuple[Source, DeadLetterSink]:
    from ingest.otlp_source import DEFAULT_PORT, OtlpReceiver

    port = DEFAULT_PORT if args.otlp_port is None else args.otlp_port
    receiver = OtlpReceiver(args.otlp_host, port, metrics, stop)  # a port in use: one error line, no DLQ
    try:
        return receiver, _kafka_dead_letters(settings, topic)
    except BaseException:
        receiver.close()
        raise


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
            try:
                metrics.serve(args.metrics_port, args.metrics_host)
            except BaseException:  # a port taken: the runner, which closes them, never starts
                source.close()
                dead.close()
                raise
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        options = RunOptions(batch_size=args.batch_size, idle_exit_s=args.idle_exit_s)
        Runner(source, CaptureSink(engine), dead, config, metrics, options, stop).run()
    finally:
        engine.dispose()
    lines = [metrics.tally.summary()]
    if args.source != "kafka" and metrics.tally.rejected and args.input_path is not None:
        lines.append(f"rejected lines: {rejected_path(args.input_path)}")
    return lines
