"""Wiring one scoring run: the experiment's scorers, their providers, the price table and the budget."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from scoring.gate import Budget, CostOf, JudgeCaller, Limiter, RetryLimiter, SpendCap, Unlimited
from scoring.judge import JudgeSpec, PairwiseJudge, PointwiseJudge
from scoring.registry import ScoringSpec, scoring_spec
from scoring.runner import Progress, RunSummary, score_pairs, score_points
from scoring.store import experiment_named
from shadowlab.config import Settings
from shadowlab.db import check_connection, create_engine, session_factory
from shadowlab.models import Experiment, Replay
from shadowlab.pricing import PriceTable, load_price_table
from shadowlab.providers import Provider, config_from_settings, create_provider

__all__ = ["experiment_budget", "run_scoring", "score_experiment"]

ProviderFor = Callable[[JudgeSpec], Provider]


def experiment_budget(session: Session, experiment: Experiment) -> Budget:
    """What is left of the experiment's budget after its replays (Unlimited when it has none)."""
    if experiment.budget_usd is None:
        return Unlimited()
    spent = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Replay.cost_usd), 0.0)).where(
            Replay.experiment_id == experiment.id
        )
    )
    return SpendCap(experiment.budget_usd, float(spent or 0.0))


async def score_experiment(
    factory: sessionmaker[Session],
    experiment_id: int,
    spec: ScoringSpec,
    *,
    provider_for: ProviderFor,
    cost_of: CostOf,
    budget: Budget,
    limiter: Limiter | None = None,
    concurrency: int = 8,
    progress: Callable[[str], Progress] | None = None,
) -> list[RunSummary]:
    """Run each scorer of `spec` over what it has not scored yet; checks first (they cost nothing)."""
    summaries: list[RunSummary] = []
    for check in spec.checks:
        summaries.append(
            await score_points(
                factory,
                experiment_id,
                check,
                concurrency=concurrency,
                progress=progress(check.name) if progress else None,
            )
        )
    shared = limiter or RetryLimiter(concurrency=concurrency)
    for judge_spec in spec.judges:
        provider = provider_for(judge_spec)
        caller = JudgeCaller(
            provider,
            judge_spec.model,
            limiter=shared,
            budget=budget,
            cost_of=cost_of,
            extra_headers=judge_spec.extra_headers,
        )
        shown = progress(judge_spec.name) if progress else None
        try:
            if judge_spec.kind == "pointwise":
                summary = await score_points(
                    factory,
                    experiment_id,
                    PointwiseJudge(judge_spec, caller),
                    concurrency=concurrency,
                    progress=shown,
                )
            else:
                summary = await score_pairs(
                    factory,
                    experiment_id,
                    PairwiseJudge(judge_spec, caller),
                    concurrency=concurrency,
                    progress=shown,
                )
        finally:
            await provider.aclose()
        summaries.append(summary)
    return summaries


async def run_scoring(
    settings: Settings,
    experiment_name: str,
    *,
    scorer: str | None = None,
    concurrency: int = 8,
    progress: Callable[[str], Progress] | None = None,
) -> list[RunSummary]:
    """`shadowlab score`: prices from the experiment's snapshot (else the price file), checked first."""
    engine = create_engine(settings.database_url, connect_timeout_s=settings.connect_timeout_s)
    check_connection(engine)
    factory = session_factory(engine)
    with factory() as session:
        experiment = experiment_named(session, experiment_name)
        spec = scoring_spec(experiment.spec).only(scorer)
        budget = experiment_budget(session, experiment)
        prices = (
            PriceTable.from_json(experiment.price_snapshot)
            if experiment.price_snapshot
            else load_price_table(settings.prices_file)
        )
        experiment_id = experiment.id
    prices.require([judge.model for judge in spec.judges])

    def provider_for(judge: JudgeSpec) -> Provider:
        return create_provider(judge.provider, config_from_settings(judge.provider, settings))

    try:
        return await score_experiment(
            factory,
            experiment_id,
            spec,
            provider_for=provider_for,
            cost_of=prices.cost,
            budget=budget,
            concurrency=concurrency,
            progress=progress,
        )
    finally:
        engine.dispose()
