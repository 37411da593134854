"""Wiring one scoring run: the experiment's scorers, their providers, the price table, limits and budget.

`shadowlab score` sends judge calls through the same shared limiter and budget as the replayer: the
experiment's `limits` hold across every replayer and scorer process, and judge spend is reserved and
settled in the experiment budget (`judge_calls`), so replay progress and the dashboard count it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from scoring.judge import JudgeSpec, PairwiseJudge, PointwiseJudge
from scoring.judge_calls import Budget, CostOf, JudgeCaller, Limiter, SharedBudget, SharedLimiter
from scoring.metrics import ScoreMetrics
from scoring.registry import ScoringSpec, scoring_spec
from scoring.runner import Progress, RunSummary, score_pairs, score_points
from shadowlab import store
from shadowlab.config import Settings
from shadowlab.db import engine_from, session_factory
from shadowlab.experiment import LimitSpec, ReplaySettings
from shadowlab.limits import RateLimiter, RetryPolicy
from shadowlab.pricing import PriceTable, load_price_table
from shadowlab.providers import Provider, config_from_settings, create_provider

__all__ = ["SharedJudgeCalls", "run_scoring", "score_experiment", "shared_judge_calls"]

ProviderFor = Callable[[JudgeSpec], Provider]


class SharedJudgeCalls:
    """The limiter and budget every judge call of one experiment goes through, and the call settings."""

    def __init__(self, limiter: SharedLimiter, budget: SharedBudget, replay: ReplaySettings) -> None:
        self.limiter, self.budget, self.replay = limiter, budget, replay


def shared_judge_calls(
    factory: sessionmaker[Session], experiment_id: int, limits: tuple[LimitSpec, ...], replay: ReplaySettings
) -> SharedJudgeCalls:
    """From the experiment spec's `limits` and `replay` retry settings."""
    # A judge call holds its reservation for at most all its attempts with their backoff.
    deadline_s = replay.max_attempts * (replay.timeout_s + replay.backoff_max_s)
    limiter = SharedLimiter(
        RateLimiter(factory, limits, max_call_s=replay.timeout_s),
        RetryPolicy(replay.max_attempts, replay.backoff_base_s, replay.backoff_max_s),
    )
    return SharedJudgeCalls(limiter, SharedBudget(factory, experiment_id, call_deadline_s=deadline_s), replay)


async def score_experiment(
    factory: sessionmaker[Session],
    experiment_id: int,
    spec: ScoringSpec,
    *,
    provider_for: ProviderFor,
    cost_of: CostOf,
    budget: Budget,
    limiter: Limiter,
    concurrency: int = 8,
    progress: Callable[[str], Progress] | None = None,
    metrics: ScoreMetrics | None = None,
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
                metrics=metrics,
            )
        )
    for judge_spec in spec.judges:
        provider = provider_for(judge_spec)
        caller = JudgeCaller(
            provider,
            judge_spec.model,
            limiter=limiter,
            budget=budget,
            cost_of=cost_of,
            extra_headers=judge_spec.extra_headers,
            limit_key=f"{judge_spec.provider}/{judge_spec.model}",
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
                    metrics=metrics,
                )
            else:
                summary = await score_pairs(
                    factory,
                    experiment_id,
                    PairwiseJudge(judge_spec, caller),
                    concurrency=concurrency,
                    progress=shown,
                    metrics=metrics,
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
    metrics: ScoreMetrics | None = None,
) -> list[RunSummary]:
    """`shadowlab score`: prices from the experiment's snapshot (else the price file), checked first."""
    engine = engine_from(settings)
    factory = session_factory(engine)
    with factory() as session:
        experiment = store.experiments.by_name(experiment_name, session=session)
        typed = store.experiments.spec_of(experiment)
        spec = scoring_spec(experiment.spec).only(scorer)
        prices = (
            PriceTable.from_json(experiment.price_snapshot)
            if experiment.price_snapshot
            else load_price_table(settings.prices_file)
        )
        experiment_id = experiment.id
        calls = shared_judge_calls(factory, experiment_id, typed.limits, typed.replay)
    prices.require([judge.model for judge in spec.judges])
    timeouts = {"stall_timeout_s": calls.replay.stall_timeout_s, "timeout_s": calls.replay.timeout_s}

    def provider_for(judge: JudgeSpec) -> Provider:
        return create_provider(judge.provider, config_from_settings(judge.provider, settings, **timeouts))

    try:
        return await score_experiment(
            factory,
            experiment_id,
            spec,
            provider_for=provider_for,
            cost_of=prices.cost,
            budget=calls.budget,
            limiter=calls.limiter,
            concurrency=concurrency,
            progress=progress,
            metrics=metrics,
        )
    finally:
        engine.dispose()
