"""The `ingest`, `retention` and `forget` commands, added to the CLI by `register(app, settings_of)`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from shadowlab.config import Settings

log = logging.getLogger(__name__)
SettingsOf = Callable[[typer.Context], Settings]


class SourceKind(StrEnum):
    kafka = "kafka"
    file = "file"
    otlp = "otlp"


def migrated_engine(settings: Settings) -> Engine:
    """An engine that answered and whose schema is at the code's head revision (never migrated here):
    `engine_from` checks both, with the same messages as every other command."""
    from shadowlab.db import engine_from

    return engine_from(settings)


def register(app: typer.Typer, settings_of: SettingsOf) -> None:
    """Add `ingest`, `retention` and `forget` to `app`; `settings_of` is the CLI's settings accessor."""
    _register_ingest(app, settings_of)
    _register_governance(app, settings_of)


# Long: the `ingest` command's signature declares one typer option per flag (18 of them).
def _register_ingest(app: typer.Typer, settings_of: SettingsOf) -> None:
    # Long: one typer option per flag; the body only packs them into `IngestArgs`.
    @app.command("ingest")
    def ingest(
        ctx: typer.Context,
        input_path: Annotated[
            Path | None,
            typer.Argument(
                metavar="[INPUT]",
                help="JSONL file of captures (--source file), or an OTLP JSON trace export (--source otlp).",
            ),
        ] = None,
        source: Annotated[
            SourceKind,
            typer.Option(
                help="Kafka, a JSONL file, or OpenTelemetry spans (a file, or an OTLP/HTTP receiver)."
            ),
        ] = SourceKind.kafka,
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
        metrics_host: Annotated[
            str, typer.Option(help="Address for --metrics-port (0.0.0.0 in a container).")
        ] = "127.0.0.1",
        idle_exit: Annotated[
            float | None,
            typer.Option(help="Exit 0 after this many seconds without a message, once all is read."),
        ] = None,
        otlp_port: Annotated[
            int | None,
            typer.Option(
                min=0, max=65535, help="--source otlp without INPUT: receiver port [default: 4318]."
            ),
        ] = None,
        otlp_host: Annotated[
            str, typer.Option(help="Address for the OTLP receiver (0.0.0.0 in a container).")
        ] = "127.0.0.1",
    ) -> None:
        """Store captures from Kafka, a JSONL file or OpenTelemetry GenAI spans: validated, redacted."""
        from ingest.serve import IngestArgs, run_ingest

        args = IngestArgs(
            input_path, source.value, topic, group, batch_size, sample_rate,
            tuple(service or ()), tuple(route or ()), tuple(environment or ()), tuple(model or ()),
            tuple(tag or ()), tuple(redact_pattern or ()), metrics_port, idle_exit, metrics_host,
            otlp_port, otlp_host,
        )  # fmt: skip
        for line in run_ingest(settings_of(ctx), args, migrated_engine):
            typer.echo(line)


def _register_governance(app: typer.Typer, settings_of: SettingsOf) -> None:
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
