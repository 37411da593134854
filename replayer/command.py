"""CLI: `shadowlab experiment create|list|show|start|pause|resume|conclude` and `shadowlab replay`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.analysis_runs import ANALYZE_EVERY_HELP
from shadowlab.analysis_runs import analyze_every as analyze_every_s
from shadowlab.config import Settings
from shadowlab.store.experiments import Transition

if TYPE_CHECKING:
    from shadowlab.experiment import ExperimentSpec

__all__ = ["register"]


SettingsOf = Callable[[typer.Context], Settings]
FactoryOf = Callable[[typer.Context], "sessionmaker[Session]"]
# What `experiment create` checks beyond the spec itself (the CLI passes the other stages' checks): given the
# command's context (its settings), the spec and the file's name for the message.
SpecCheck = Callable[[typer.Context, "ExperimentSpec", str], None]
# Budget changes and status transitions are kept in the experiment's changes (`shadowlab.store.changes`), by
# "local": the command line has no signed-in user (the rule decisions follow).
Name = Annotated[str, typer.Argument(help="Experiment name.")]
Reason = Annotated[
    str | None,
    typer.Option(help="Why, kept with the change in the experiment's history (the dashboard's Live page)."),
]


def register(app: typer.Typer, settings_of: SettingsOf, check_spec: SpecCheck | None = None) -> None:
    """Add the `experiment` group and the `replay` command; `create` runs `check_spec` on a new spec."""
    experiment_app = typer.Typer(
        help="Experiments: arms, traffic, limits, budget, plan.", no_args_is_help=True
    )
    app.add_typer(experiment_app, name="experiment")

    def factory_of(ctx: typer.Context) -> sessionmaker[Session]:
        from shadowlab.db import engine_from, session_factory

        engine = engine_from(settings_of(ctx))
        ctx.call_on_close(engine.dispose)  # its pooled connections close with the command (in process too)
        return session_factory(engine)

    _register_records(experiment_app, factory_of, check_spec)
    _register_lifecycle(experiment_app, settings_of, factory_of)
    _register_replay(app, settings_of, factory_of)


def _register_records(
    experiment_app: typer.Typer, factory_of: FactoryOf, check_spec: SpecCheck | None
) -> None:
    """`experiment create`, `list` and `show`."""

    @experiment_app.command("create")
    def create(
        ctx: typer.Context,
        spec_file: Annotated[Path, typer.Argument(help="Experiment YAML (see docs/experiments.md).")],
        created_by: Annotated[str, typer.Option(help="Who creates it (audit).")] = "",
    ) -> None:
        """Create a draft experiment from a YAML spec."""
        from shadowlab import store
        from shadowlab.db import session_scope
        from shadowlab.experiment import load_spec

        spec = load_spec(spec_file)
        if check_spec is not None:
            check_spec(ctx, spec, str(spec_file))
        with session_scope(factory_of(ctx)) as session:
            store.experiments.create(spec, session=session, created_by=created_by)
        typer.echo(f"created experiment {spec.name!r} (draft, {len(spec.arms())} arms)")

    @experiment_app.command("list")
    def list_(ctx: typer.Context) -> None:
        """List experiments with their status."""
        from shadowlab import store

        with factory_of(ctx)() as session:
            for experiment in store.experiments.list_all(session=session):
                typer.echo(f"{experiment.name}\t{experiment.status}\t{len(experiment.arms)} arms")

    @experiment_app.command("show")
    def show(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Status, arms, spend and replay counts of one experiment."""
        from replayer.experiments import summarize
        from shadowlab import store

        with factory_of(ctx)() as session:
            summary = summarize(session, store.experiments.by_name(name, session=session))
        if as_json:
            typer.echo(json.dumps(summary.as_dict(), indent=2))
            return
        for key, value in summary.as_dict().items():
            typer.echo(f"{key}: {', '.join(value) if isinstance(value, tuple) else value}")


def _register_lifecycle(experiment_app: typer.Typer, settings_of: SettingsOf, factory_of: FactoryOf) -> None:
    """`experiment start`, `experiment budget` and the transitions `pause`, `resume`, `conclude`."""

    @experiment_app.command("start")
    def start(ctx: typer.Context, name: Name, reason: Reason = None) -> None:
        """draft → running: checks the provider allowlist and prices, snapshots the price table."""
        from shadowlab import store
        from shadowlab.db import session_scope
        from shadowlab.pricing import load_price_table

        prices = load_price_table(settings_of(ctx).prices_file)
        with session_scope(factory_of(ctx)) as session:
            experiment = store.experiments.start(name, prices, reason=reason, session=session)
            typer.echo(
                f"started {name!r}; prices snapshotted for {', '.join(sorted(experiment.price_snapshot))}"
            )

    @experiment_app.command("budget")
    def budget(
        ctx: typer.Context,
        name: Name,
        usd: Annotated[float, typer.Argument(help="The new budget in USD (at least what it committed).")],
        reason: Reason = None,
    ) -> None:
        """Set the experiment's budget (raise a spent one, then `experiment resume`)."""
        from shadowlab import store
        from shadowlab.budget import committed_usd, set_budget
        from shadowlab.db import session_scope

        with session_scope(factory_of(ctx)) as session:
            experiment = store.experiments.by_name(name, session=session, lock=True)
            before = set_budget(session, experiment, usd, reason=reason)
            committed = committed_usd(session, experiment.id)
            status = experiment.status
        typer.echo(f"{name}: budget ${before:g} -> ${usd:g} (committed ${committed:.4f}; status {status})")
        if status == "budget_exhausted":
            typer.echo(f"resume it to replay again: shadowlab experiment resume {name}")

    def transition(command: Transition) -> Callable[[typer.Context, str, str | None], None]:
        def run(ctx: typer.Context, name: Name, reason: Reason = None) -> None:
            from shadowlab import store
            from shadowlab.db import session_scope

            with session_scope(factory_of(ctx)) as session:
                experiment = store.experiments.transition(name, command, reason=reason, session=session)
                typer.echo(f"{name}: {experiment.status}")

        run.__doc__ = {"pause": "running → paused.", "resume": "paused or budget_exhausted → running.",
                       "conclude": "→ concluded (no more replays)."}[command]  # fmt: skip
        return run

    for command in get_args(Transition):
        experiment_app.command(command)(transition(command))


def _register_replay(app: typer.Typer, settings_of: SettingsOf, factory_of: FactoryOf) -> None:
    # Long only by its typer signature: one Annotated option per flag.
    @app.command("replay")
    def replay(
        ctx: typer.Context,
        experiment: Annotated[
            str | None, typer.Argument(help="Experiment name (status running), or --all.")
        ] = None,
        every: Annotated[bool, typer.Option("--all", help="Every running experiment.")] = False,
        follow: Annotated[
            bool, typer.Option("--follow", help="With --all: new experiments too, until stopped.")
        ] = False,
        workers: Annotated[
            int, typer.Option(min=1, help="Worker processes (more than 1 needs Postgres).")
        ] = 1,
        live: Annotated[bool, typer.Option("--live", help="Follow new captures until stopped.")] = False,
        backfill: Annotated[
            bool, typer.Option("--backfill", help="Replay the selection, then exit.")
        ] = False,
        concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight per worker.")] = 64,
        metrics_port: Annotated[
            int | None, typer.Option(help="Serve Prometheus /metrics on PORT (+ worker index).")
        ] = None,
        metrics_host: Annotated[
            str, typer.Option(help="Address /metrics listens on (0.0.0.0 in a container, for Prometheus).")
        ] = "127.0.0.1",
        worker_index: Annotated[int | None, typer.Option(hidden=True)] = None,
        progress: Annotated[bool, typer.Option(help="Print progress: rate, ETA, spend.")] = True,
        analyze_every: Annotated[str | None, typer.Option(help=ANALYZE_EVERY_HELP)] = None,
    ) -> None:
        """Replay captured traffic to every arm of EXPERIMENT (default: --backfill, or the spec's mode), or of
        every running experiment (--all; --follow keeps serving, experiments started later too)."""
        from replayer.run import ReplayOptions, run_replay, run_replay_all
        from replayer.worker import Mode
        from shadowlab import store

        _check_target(experiment, every, follow, live, backfill)
        every_s = analyze_every_s(analyze_every, follow)
        factory = factory_of(ctx)
        if experiment is None:
            every_options = ReplayOptions("", workers, "live", concurrency, metrics_port, worker_index, False,
                                          metrics_host, True, follow, every_s)  # fmt: skip
            run_replay_all(factory, settings_of(ctx), every_options)
            return
        mode: Mode = "live" if live else "backfill"
        if not (live or backfill):
            with factory() as session:
                found = store.experiments.by_name(experiment, session=session)
                mode = store.experiments.spec_of(found).traffic.mode
        options = ReplayOptions(
            experiment, workers, mode, concurrency, metrics_port, worker_index, progress, metrics_host
        )
        final = run_replay(factory, settings_of(ctx), options)
        typer.echo(f"{experiment}: {final.done} requests done{final.dropped_note()}, status {final.status}, "
                   f"spend ${final.spent_usd:.4f}")  # fmt: skip


def _check_target(experiment: str | None, every: bool, follow: bool, live: bool, backfill: bool) -> None:
    """Exactly one of EXPERIMENT and --all; --follow with --all; --live/--backfill with one experiment."""
    from shadowlab.errors import ConfigError

    if experiment is not None and not experiment.strip():  # e.g. a compose variable left empty
        raise ConfigError("EXPERIMENT: expected the name of a running experiment, found an empty name")
    if (experiment is None) == (not every):
        found = "both" if every else "neither"
        raise ConfigError(f"replay: expected an experiment name or --all, found {found}")
    if follow and not every:
        raise ConfigError("--follow: expected --all with it (it serves every running experiment)")
    if live and backfill:
        raise ConfigError("--live and --backfill: expected at most one of them")
    if every and (live or backfill):
        raise ConfigError("--all: each experiment runs in its spec's traffic mode; drop --live/--backfill")
