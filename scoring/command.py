"""`shadowlab score` (and `shadowlab agreement`): the scoring stage as commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated

import typer

from shadowlab.config import Settings
from shadowlab.logs import configure_logging
from shadowlab.progress import ProgressLine

__all__ = ["register"]

log = logging.getLogger("scoring")


def _progress(label: str) -> Callable[[int, int], None]:
    """The shared progress display (`shadowlab.progress`), closed when the last item is done."""
    line = ProgressLine(label)

    def show(done: int, total: int) -> None:
        line.update(done, total)
        if done == total:
            line.close()

    return show


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add `score` and `agreement` to the CLI."""

    @app.command("score")
    def score(
        ctx: typer.Context,
        experiment: Annotated[str, typer.Argument(help="Experiment name.")],
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
    ) -> None:
        """Score every replay not yet scored by each scorer's current version (resumable, idempotent)."""
        from scoring.metrics import ScoreMetrics
        from scoring.service import run_scoring
        from shadowlab.metrics import serve_metrics

        settings = settings_of(ctx)
        configure_logging(settings.log_level, settings.log_format)
        metrics = ScoreMetrics()
        if metrics_port is not None:
            serve_metrics(metrics.registry, metrics_port, metrics_host)
            log.info(
                "serving /metrics on %s:%d", metrics_host, metrics_port, extra={"metrics_port": metrics_port}
            )
        summaries = asyncio.run(
            run_scoring(
                settings,
                experiment,
                scorer=scorer,
                concurrency=concurrency,
                progress=_progress,
                metrics=metrics,
            )
        )
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

    @app.command("agreement")
    def agreement(
        ctx: typer.Context,
        experiment: Annotated[str, typer.Argument(help="Experiment name.")],
        scorer: Annotated[str, typer.Option(help="Pairwise judge to compare with the human labels.")],
    ) -> None:
        """Judge–human agreement (Cohen's kappa with a 95 % CI) for each version of a pairwise judge."""
        from scoring.labels import judge_human_agreement
        from shadowlab import store
        from shadowlab.db import engine_from, session_factory

        factory = session_factory(engine_from(settings_of(ctx)))
        with factory() as session:
            found = store.experiments.by_name(experiment, session=session)
            rows = judge_human_agreement(session, found.id, scorer)
        if not rows:
            typer.echo(f"{scorer}: no prompt has both a human label and a judge verdict in both orders")
        for version, k in rows.items():
            typer.echo(f"{scorer} ({version}): kappa {k.kappa:.3f} [{k.ci_low:.3f}, {k.ci_high:.3f}] n={k.n}")
