"""`shadowlab score` (and `shadowlab agreement`): the scoring stage as commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated

import typer

from shadowlab.analysis_runs import ANALYZE_EVERY_HELP
from shadowlab.analysis_runs import analyze_every as analyze_every_s
from shadowlab.config import Settings
from shadowlab.errors import ConfigError
from shadowlab.logs import configure_logging
from shadowlab.progress import ProgressLine

if TYPE_CHECKING:
    from scoring.metrics import ScoreMetrics
    from scoring.tally import RunSummary

__all__ = ["register"]

log = logging.getLogger("scoring")


def _report(experiment: str, summaries: list[RunSummary]) -> None:
    """One log record and one stdout line per scorer; a hint when items are left for the next run."""
    for s in summaries:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "none"
        log.info(
            "scored %s with %s (%s): %d stored, %d failed, %d pending", experiment, s.scorer, s.version,
            s.stored, s.failed, s.pending,
            extra={"experiment": experiment, "scorer": s.scorer, "version": s.version, "stored": s.stored,
                   "failed": s.failed, "pending": s.pending, "spent_usd": round(s.spent_usd, 6),
                   "errors": dict(s.errors), "budget_exhausted": s.budget_exhausted},
        )  # fmt: skip
        typer.echo(
            f"{s.scorer} ({s.version}): {s.stored} stored ({s.failed} failed), {s.pending} pending, "
            f"${s.spent_usd:.4f} spent; errors: {errors}"
            + ("; budget exhausted" if s.budget_exhausted else "")
        )
    if any(s.pending for s in summaries):
        typer.echo("some items are pending: run `shadowlab score` again to finish them")


def _report_named(experiment: str, summaries: list[RunSummary]) -> None:
    typer.echo(f"{experiment}:")
    _report(experiment, summaries)


def _target(experiment: str | None, every: bool, follow: bool, scorer: str | None) -> None:
    """Exactly one of EXPERIMENT and --all; --follow and --scorer each go with one of them."""
    if (experiment is None) == (not every):
        found = "both" if every else "neither"
        raise ConfigError(f"score: expected an experiment name or --all, found {found}")
    if follow and not every:
        raise ConfigError("--follow: expected --all with it (it serves every running experiment)")
    if scorer is not None and every:
        raise ConfigError("--scorer: expected one experiment, not --all (scorer names are per experiment)")


async def _serve(
    settings: Settings, experiment: str | None, *, follow: bool, scorer: str | None, concurrency: int,
    metrics: ScoreMetrics, analyze_every_s: float | None = None,
) -> None:  # fmt: skip
    """Score one experiment or all running ones; SIGTERM or SIGINT stops claiming, finishes what is in
    flight, hands back what was claimed but not started, and returns."""
    from scoring.drive import TaskOptions
    from scoring.follow import score_all
    from scoring.service import run_scoring

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Database work runs on executor threads (heartbeats, progress, seeding; on SQLite claims, budget batches
    # and result writes too): the default executor (cpu count + 4 threads: 6 here) queued them one by one.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="shadowlab-db"))
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    options = TaskOptions(stop=stop)
    if experiment is None:
        await score_all(settings, follow=follow, concurrency=concurrency, options=options, metrics=metrics,
                        report=_report_named, analyze_every_s=analyze_every_s)  # fmt: skip
        return
    summaries = await run_scoring(settings, experiment, scorer=scorer, concurrency=concurrency,
                                  progress=ProgressLine, metrics=metrics, options=options)  # fmt: skip
    _report(experiment, summaries)


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add `score` and `agreement` to the CLI."""

    # Long only by its typer signature: one Annotated option per flag.
    @app.command("score")
    def score(
        ctx: typer.Context,
        experiment: Annotated[str | None, typer.Argument(help="Experiment name (or --all).")] = None,
        every: Annotated[bool, typer.Option("--all", help="Every running experiment.")] = False,
        follow: Annotated[
            bool,
            typer.Option("--follow", help="With --all: keep scoring, new experiments too, until stopped."),
        ] = False,
        scorer: Annotated[
            str | None, typer.Option(help="Only this scorer (default: all configured).")
        ] = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Judge calls in flight.")] = 8,
        metrics_port: Annotated[
            int | None,
            typer.Option(min=1, max=65535, help="Serve Prometheus /metrics on PORT while scoring."),
        ] = None,
        metrics_host: Annotated[
            str, typer.Option(help="Address /metrics listens on (0.0.0.0 in a container, for Prometheus).")
        ] = "127.0.0.1",
        analyze_every: Annotated[str | None, typer.Option(help=ANALYZE_EVERY_HELP)] = None,
    ) -> None:
        """Score every replay not yet scored by each scorer's current version (resumable, idempotent; any
        number of processes may run at once, each item is judged by one of them)."""
        from scoring.metrics import ScoreMetrics
        from shadowlab.metrics import serve_metrics

        _target(experiment, every, follow, scorer)
        every_s = analyze_every_s(analyze_every, follow)
        settings = settings_of(ctx)
        configure_logging(settings.log_level, settings.log_format)
        metrics = ScoreMetrics()
        if metrics_port is not None:
            serve_metrics(metrics.registry, metrics_port, metrics_host)
            log.info(
                "serving /metrics on %s:%d", metrics_host, metrics_port, extra={"metrics_port": metrics_port}
            )
        asyncio.run(_serve(settings, experiment, follow=follow, scorer=scorer, concurrency=concurrency,
                           metrics=metrics, analyze_every_s=every_s))  # fmt: skip

    _register_agreement(app, settings_of)


def _register_agreement(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    @app.command("agreement")
    def agreement(
        ctx: typer.Context,
        experiment: Annotated[str, typer.Argument(help="Experiment name.")],
        scorer: Annotated[str, typer.Option(help="Pairwise judge to compare with the human labels.")],
    ) -> None:
        """Judge–human agreement (Cohen's kappa with a 95 % CI) for each version of a pairwise judge."""
        from scoring.base import ScorerConfigError
        from scoring.labels import judge_human_agreement
        from scoring.registry import scoring_spec
        from shadowlab import store
        from shadowlab.db import engine_from, session_factory

        factory = session_factory(engine_from(settings_of(ctx)))
        with factory() as session:
            found = store.experiments.by_name(experiment, session=session)
            pairwise = [j.name for j in scoring_spec(found.spec).judges if j.kind == "pairwise"]
            if scorer not in pairwise:  # else "no prompt has both …", exit 0, for a typo or a pointwise judge
                raise ScorerConfigError(
                    f"--scorer: expected a pairwise judge of experiment {experiment!r} "
                    f"({', '.join(pairwise) or 'none'}), found {scorer!r}"
                )
            rows = judge_human_agreement(session, found.id, scorer)
        if not rows:
            typer.echo(f"{scorer}: no prompt has both a human label and a judge verdict in both orders")
        for version, k in rows.items():
            typer.echo(f"{scorer} ({version}): kappa {k.kappa:.3f} [{k.ci_low:.3f}, {k.ci_high:.3f}] n={k.n}")
