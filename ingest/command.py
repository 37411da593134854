"""The `ingest`, `retention` and `forget` commands, added to the CLI by `register(app, settings_of)`."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from shadowlab.config import Settings
from shadowlab.errors import ConfigError, ShadowlabError

log = logging.getLogger(__name__)
SettingsOf = Callable[[typer.Context], Settings]


class NotMigratedError(ShadowlabError):
    exit_code = 2


class SourceKind(StrEnum):
    kafka = "kafka"
    file = "file"


def migrated_engine(settings: Settings) -> Engine:
    """An engine that answered and whose schema is at the code's head revision (never migrated here)."""
    from shadowlab import migrate
    from shadowlab.db import check_connection, create_engine

    engine = create_engine(settings.database_url, connect_timeout_s=settings.connect_timeout_s)
    check_connection(engine)
    if migrate.current_revision(engine) != migrate.head_revision(engine):
        engine.dispose()
        raise NotMigratedError("database not migrated: run `shadowlab db upgrade`")
    return engine


def register(app: typer.Typer, settings_of: SettingsOf) -> None:
    """Add `ingest`, `retention` and `forget` to `app`; `settings_of` is the CLI's settings accessor."""

    @app.command("ingest")
    def ingest(
        ctx: typer.Context,
        input_path: Annotated[
            Path | None,
            typer.Argument(metavar="[INPUT]", help="JSONL file of captures (with --source file)."),
        ] = None,
        source: Annotated[SourceKind, typer.Option(help="Read captures from Kafka or a JSONL file.")] = (
            SourceKind.kafka
        ),
        topic: Annotated[
            str | None, typer.Option(help="Capture topic (default: SHADOWLAB_CAPTURE_TOPIC).")
        ] = None,
        group: Annotated[
            str, typer.Option(help="Consumer group; processes in one group share partitions.")
        ] = ("shadowlab-ingest"),
        batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Messages per batch.")] = 1000,
        sample_rate: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Fraction kept, by request_id.")
        ] = 1.0,
        service: Annotated[
            list[str] | None, typer.Option(help="Keep only this service (repeatable).")
        ] = None,
        route: Annotated[list[str] | None, typer.Option(help="Keep only this route (repeatable).")] = None,
        environment: Annotated[list[str] | None, typer.Option(help="Keep only this environment.")] = None,
        model: Annotated[
            list[str] | None, typer.Option(help="Keep only this request model (repeatable).")
        ] = None,
        tag: Annotated[list[str] | None, typer.Option(help="Keep only captures with tag KEY=VALUE.")] = None,
        redact_pattern: Annotated[
            list[str] | None, typer.Option(help="Extra redaction NAME=REGEX → [NAME_1] (repeatable).")
        ] = None,
        metrics_port: Annotated[
            int | None, typer.Option(help="Serve Prometheus metrics on this port.")
        ] = None,
        idle_exit: Annotated[
            float | None,
            typer.Option(help="Exit 0 after this many seconds without a message, once all is read."),
        ] = None,
    ) -> None:
        """Store captures from Kafka (or a JSONL file) in the database: validated, redacted, sampled."""
        from ingest.dlq import DeadLetterSink, FileDeadLetters, KafkaDeadLetters, dlq_topic, rejected_path
        from ingest.logs import configure_logging
        from ingest.metrics import IngestMetrics
        from ingest.pipeline import PipelineConfig
        from ingest.redact import Redactor, parse_user_rule
        from ingest.runner import Runner, RunOptions
        from ingest.sampling import Selector, parse_tag_filters
        from ingest.sink import CaptureSink
        from ingest.sources import FileSource, KafkaSource, Source
        from shadowlab.broker import TopicSpec, capture_topics, ensure_topics, require_topic

        settings = settings_of(ctx)
        configure_logging(settings.log_level, settings.log_format)
        selector = Selector(
            sample_rate=sample_rate,
            services=frozenset(service or ()),
            routes=frozenset(route or ()),
            environments=frozenset(environment or ()),
            models=frozenset(model or ()),
            tags=parse_tag_filters(tag or ()),
        )
        config = PipelineConfig(
            settings.ingest_max_bytes, selector, Redactor(parse_user_rule(p) for p in redact_pattern or ())
        )
        engine = migrated_engine(settings)
        metrics = IngestMetrics()
        stop = threading.Event()
        src: Source
        dead: DeadLetterSink
        if source is SourceKind.file:
            if input_path is None or not input_path.is_file():
                raise ConfigError(
                    f"INPUT: expected a readable JSONL file with --source file, found {input_path}"
                )
            src, dead = FileSource(input_path, stop), FileDeadLetters(rejected_path(input_path))
        else:
            if input_path is not None:
                raise ConfigError(f"INPUT: expected no file with --source kafka, found {input_path}")
            name = topic or settings.capture_topic
            # A missing source would be polled forever ("Topic … not found"), with a stray DLQ created for it.
            require_topic(settings.kafka_bootstrap, name, settings.connect_timeout_s)
            dlq_spec: TopicSpec = capture_topics(name)[1]
            ensure_topics(settings.kafka_bootstrap, [TopicSpec(dlq_topic(name), 1, dlq_spec.config)])
            src = KafkaSource(
                settings.kafka_bootstrap,
                name,
                group,
                max_poll_records=batch_size,
                metrics=metrics,
                timeout_s=settings.connect_timeout_s,
            )
            dead = KafkaDeadLetters(settings.kafka_bootstrap, dlq_topic(name))
        if metrics_port is not None:
            metrics.serve(metrics_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        options = RunOptions(batch_size=batch_size, idle_exit_s=idle_exit)
        try:
            Runner(src, CaptureSink(engine), dead, config, metrics, options, stop).run()
        finally:
            engine.dispose()
        typer.echo(metrics.tally.summary())
        if source is SourceKind.file and metrics.tally.rejected:
            typer.echo(f"rejected lines: {rejected_path(input_path)}")  # type: ignore[arg-type]

    @app.command("retention")
    def retention(
        ctx: typer.Context,
        older_than: Annotated[str, typer.Option(help="Delete captures older than this: 30d, 12h, 2w.")],
    ) -> None:
        """Delete captures older than an age, with their replays, scores, labels and preferences."""
        from ingest.governance import delete_older_than, parse_age

        age = parse_age(older_than)
        engine = migrated_engine(settings_of(ctx))
        try:
            typer.echo(delete_older_than(engine, age).summary())
        finally:
            engine.dispose()

    @app.command("forget")
    def forget(
        ctx: typer.Context,
        user_hash: Annotated[str, typer.Argument(help="The user_hash whose captures are deleted.")],
    ) -> None:
        """Delete every capture of USER_HASH and everything derived from them."""
        from ingest.governance import forget_user

        engine = migrated_engine(settings_of(ctx))
        try:
            typer.echo(forget_user(engine, user_hash).summary())
        finally:
            engine.dispose()
