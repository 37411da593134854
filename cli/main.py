"""The `shadowlab` command: the composition root, the one place that wires settings into the stages."""

from __future__ import annotations

import gc
import json
import sys
from typing import Annotated

import typer
from sqlalchemy.engine import Engine
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from cli.lazy import Registration, lazy_group
from shadowlab import __version__
from shadowlab.config import Settings, load_settings
from shadowlab.errors import ShadowlabError

# Each module is imported when one of its commands runs (or for `--help`), not at every start.
COMMANDS = (
    Registration("ingest.command", ("ingest", "retention", "forget")),
    Registration("simulator.command", ("simulate",), takes_settings=False),
    Registration("cli.experiments", ("experiment", "replay")),  # replayer.command, with the spec's checks
    Registration("analysis.cli", ("analyze", "gate", "route", "report")),
    Registration("scoring.command", ("score", "agreement")),
    Registration("dashboard.command", ("dashboard",)),
    Registration("cli.prices", ("prices",)),
    Registration("cli.otlp", ("otlp",), takes_settings=False),
)

app = typer.Typer(
    cls=lazy_group(COMMANDS, lambda ctx: settings_of(ctx)),
    name="shadowlab",
    help="Prove an LLM model switch is safe before cutover: tee, ingest, replay, score, analyse, decide.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema (Alembic migrations, shipped in the package).", no_args_is_help=True
)
schema_app = typer.Typer(help="Print the JSON Schemas of shadowlab's contracts.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics for captures and dead letters.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
app.add_typer(topics_app, name="topics")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shadowlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = None  # settings are read on first use, once (so `--help` works with a broken environment)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings, read once per process at the entrypoint and passed down from here."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
    assert isinstance(root.obj, Settings)
    return root.obj


def database_of(ctx: typer.Context, *, migrated: bool = True, create: bool = False) -> Engine:
    """An engine on SHADOWLAB_DATABASE_URL that exists, answered once and (unless `migrated=False`) has the
    code's schema; else one clear error line. Only `create` makes a missing SQLite file (`db upgrade`)."""
    from shadowlab.db import engine_from

    return engine_from(settings_of(ctx), migrated=migrated, create=create)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    grant_app: Annotated[
        str | None, typer.Option(help="Then grant this role row access and no ownership (see db grant-app).")
    ] = None,
) -> None:
    """Apply migrations up to REVISION (default: head) on SHADOWLAB_DATABASE_URL."""
    from sqlalchemy.exc import DBAPIError

    from shadowlab import migrate
    from shadowlab.db import shown_url, upgrade_failed

    engine = database_of(ctx, migrated=False, create=True)
    try:
        try:
            migrate.upgrade(engine, revision)
        except DBAPIError as exc:  # e.g. a role that may not create tables: one line, not a traceback
            failed = upgrade_failed(engine.url, exc)
            if failed is None:
                raise
            raise failed from None
        where = shown_url(engine.url)
        typer.echo(f"database at {where}: {migrate.current_revision(engine)}")
        if grant_app is not None:
            _grant(engine, grant_app)
    finally:
        engine.dispose()


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context, revision: Annotated[str, typer.Argument(help="Target revision.")]
) -> None:
    """Revert migrations down to REVISION (`base` removes every table)."""
    from shadowlab import migrate

    engine = database_of(ctx, migrated=False)
    migrate.downgrade(engine, revision)
    typer.echo(f"database downgraded to {migrate.current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the database's revision and the code's head revision."""
    from shadowlab import migrate

    engine = database_of(ctx, migrated=False)
    current = migrate.current_revision(engine) or "base"
    typer.echo(f"current: {current}  head: {migrate.head_revision(engine)}")


@db_app.command("grant-app")
def db_grant_app(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The existing Postgres role the services connect as.")],
) -> None:
    """Grant ROLE row access to every table, and no ownership (run as the owner, after `db upgrade`).

    The services then connect as ROLE: it cannot truncate decisions nor disable or drop their triggers."""
    engine = database_of(ctx)
    try:
        _grant(engine, role)
    finally:
        engine.dispose()


def _grant(engine: Engine, role: str) -> None:
    from shadowlab.roles import grant_app_role

    statements = grant_app_role(engine, role)
    typer.echo(f"granted {role}: {len(statements)} statements (decisions and the forget list: append only)")


@schema_app.command("capture")
def schema_capture() -> None:
    """Print the JSON Schema of the capture message (schema v1, docs/capture.md)."""
    from shadowlab.capture import capture_json_schema

    typer.echo(json.dumps(capture_json_schema(), indent=2, sort_keys=True))


@topics_app.command("create")
def topics_create(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the capture topic.")] = 4,
) -> None:
    """Create the capture topic and its dead-letter topic if they are missing."""
    from shadowlab.broker import capture_topics, ensure_topics

    settings = settings_of(ctx)
    topics = capture_topics(settings.capture_topic, partitions)
    created = ensure_topics(settings.kafka_bootstrap, topics, timeout_s=settings.connect_timeout_s)
    typer.echo(f"created: {', '.join(created)}" if created else "topics already exist")


@app.command("doctor")
def doctor(ctx: typer.Context) -> None:
    """Check the settings, the database and its schema revision, the price file, and Kafka's topics."""
    from shadowlab import migrate
    from shadowlab.broker import list_topics
    from shadowlab.db import shown_url
    from shadowlab.errors import ConfigError
    from shadowlab.pricing import load_price_table

    settings = settings_of(ctx)
    engine = database_of(ctx)
    where = shown_url(engine.url)
    typer.echo(f"database ok: {where} (revision {migrate.current_revision(engine)}, the head)")
    prices = load_price_table(settings.prices_file)
    source = settings.prices_file or "the shipped prices.json"
    skipped = f"; {prices.skipped_summary()}" if prices.skipped else ""
    typer.echo(f"prices ok: {source} ({len(prices.models())} models{skipped})")
    topics = set(list_topics(settings.kafka_bootstrap, settings.connect_timeout_s))
    if settings.capture_topic not in topics:
        raise ConfigError(
            f"SHADOWLAB_CAPTURE_TOPIC: topic {settings.capture_topic} does not exist on "
            f"{settings.kafka_bootstrap}: run `shadowlab topics create`"
        )
    dlq = f"{settings.capture_topic}.dlq"
    dlq_state = "present" if dlq in topics else "missing (ingest creates it)"
    typer.echo(f"kafka ok: {settings.kafka_bootstrap}: {settings.capture_topic} present, {dlq} {dlq_state}")


@app.command("demo")
def demo(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic traffic and the simulator.")] = 1,
    small: Annotated[
        bool, typer.Option("--small", help="240 requests instead of 1,000 (under a minute).")
    ] = False,
    real: Annotated[
        bool, typer.Option("--real", help="Through the real Kafka broker and Postgres (`make services`).")
    ] = False,
    out: Annotated[str, typer.Option(help="Folder for every output of the demo.")] = "demo-output",
) -> None:
    """The whole pipeline offline: traffic → ingest → shadow replay → judge → analysis → verdict."""
    from pathlib import Path

    from demo.run import DemoOptions, run_demo
    from shadowlab.files import output_folder

    output_folder(Path(out), "--out")
    options = DemoOptions(out=Path(out), seed=seed, small=small, real=real)
    if real:
        from demo.real import real_options, tee_into_kafka

        options = real_options(options, settings_of(ctx))
        result = run_demo(options, typer.echo, ingest=tee_into_kafka)
    else:
        result = run_demo(options, typer.echo)
    if not result.matches_truth:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: a `ShadowlabError` becomes one `error:` line and its exit code, no traceback; so
    does a usage error click finds (an option's value of the wrong type, an unknown command or option, a
    missing argument), which it would print as a usage block ending in `Error: …`, and so does a database
    connection that went while the command worked, a server in trouble (out of disk, memory or connections,
    an I/O error, corruption), or a SQLite file locked past the wait
    (`shadowlab.db.unusable_during_command`, exit 3).

    When the command is done, what is alive is frozen out of the garbage collector: the interpreter's
    shutdown then frees it without walking it again and again (0.25 s of `analyze` on a million replays, 0.07
    s frozen). Finalizers and `atexit` handlers run as before."""
    try:
        _run_app()
    finally:
        gc.freeze()


def _run_app() -> None:
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `shadowlab` or a group alone: its help, as click prints it
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "shadowlab"
        typer.echo(f"error: {command}: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:  # Ctrl-D at a prompt
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except ShadowlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the database went away or stayed locked mid-command: one line too, exit 3
        from shadowlab.db import unusable_during_command

        unusable = unusable_during_command(exc)
        if unusable is None:
            raise
        typer.echo(f"error: {unusable}", err=True)
        sys.exit(unusable.exit_code)
    # Without standalone mode the group returns what its command returned, or the code of a `typer.Exit`.
    sys.exit(code if type(code) is int else 0)


if __name__ == "__main__":
    main()
