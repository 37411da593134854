"""Wiring one scoring run: the experiment's scorers, their providers, the price table, limits and budget.

`shadowlab score` sends judge calls through the same shared limiter and budget as the replayer: the
experiment's `limits` hold across every replayer and scorer process, and judge spend is reserved and
settled in the experiment budget (`judge_calls`), so replay progress and the dashboard count it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from scoring.base import PointScorer
from scoring.judge import JudgeSpec, PairwiseJudge, PointwiseJudge
from scoring.judge_calls import Budget, CostOf, JudgeCaller, Limiter, SharedBudget, SharedLimiter
from scoring.metrics import ScoreMetrics
from scoring.registry import ScoringSpec, scoring_spec
from scoring.runner import ProgressOf, RunSummary, TaskOptions, score_pairs, score_points
from shadowlab import store
from shadowlab.config import Settings
from shadowlab.db import engine_from, session_factory
from shadowlab.experiment import LimitSpec, ReplaySettings
from shadowlab.limits import GRANT_TIMEOUT_S, HEARTBEAT_S, RateLimiter, RetryPolicy
from shadowlab.pricing import PriceTable, load_price_table
from shadowlab.providers import Provider, config_from_settings, create_provider

__all__ = ["SharedJudgeCalls", "run_scoring", "score_experiment", "score_named", "shared_judge_calls"]

ProviderFor = Callable[[JudgeSpec], Provider]


class SharedJudgeCalls:
    """The limiter and budget every judge call of one experiment goes through, and the call settings."""

    def __init__(self, limiter: SharedLimiter, budget: SharedBudget, replay: ReplaySettings) -> None:
        self.limiter, self.budget, self.replay = limiter, budget, replay

    async def close(self) -> None:
        """Give this process's rate-limit grants back, as the replayer does when it ends: a run that ends
        without it leaves its whole share counted until its heartbeat expires and the limit's window passes
        (about 70 s), and the next run (a raised budget, the next `--follow` pass) waits that long. The
        budget's last settlements are made durable first."""
        try:
            await self.budget.close()
        finally:
            await self.limiter.limiter.close()


def shared_judge_calls(
    factory: sessionmaker[Session],
    experiment_id: int,
    limits: tuple[LimitSpec, ...],
    replay: ReplaySettings,
    settings: Settings | None = None,
) -> SharedJudgeCalls:
    """From the experiment spec's `limits` and `replay` settings (grant heartbeats from `settings`)."""
    heartbeat_s = settings.limits_heartbeat_s if settings is not None else HEARTBEAT_S
    timeout_s = settings.limits_timeout_s if settings is not None else GRANT_TIMEOUT_S
    # A judge call holds its reservation for at most all its attempts with their backoff.
    deadline_s = replay.max_attempts * (replay.timeout_s + replay.backoff_max_s)
    limiter = SharedLimiter(
        RateLimiter(
            factory, limits, max_call_s=replay.timeout_s, heartbeat_s=heartbeat_s, timeout_s=timeout_s
        ),
        RetryPolicy(replay.max_attempts, replay.backoff_base_s, replay.backoff_max_s),
    )
    return SharedJudgeCalls(limiter, SharedBudget(factory, experiment_id, call_deadline_s=deadline_s), replay)


_CHECK_CONCURRENCY = 256  # checks cost nothing and wait for nothing: only the writes bound them


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
    progress: ProgressOf | None = None,
    metrics: ScoreMetrics | None = None,
    options: TaskOptions | None = None,
) -> list[RunSummary]:
    """Run each scorer of `spec` over what it has not scored yet; checks first (they cost nothing). Items are
    leased (`scoring.tasks`), so other processes may score the same experiment at the same time."""
    options = options or TaskOptions()
    summaries: list[RunSummary] = []

    async def points(scorer: PointScorer, in_flight: int) -> RunSummary:
        return await score_points(factory, experiment_id, scorer, concurrency=in_flight, progress=progress,
                                  metrics=metrics, options=options)  # fmt: skip

    for check in spec.checks:
        if options.stopped():
            return summaries
        summaries.append(await points(check, max(concurrency, _CHECK_CONCURRENCY)))
    for judge_spec in spec.judges:
        if options.stopped():
            return summaries
        provider = provider_for(judge_spec)
        caller = JudgeCaller(
            provider, judge_spec.model, limiter=limiter, budget=budget, cost_of=cost_of,
            extra_headers=judge_spec.extra_headers, limit_key=f"{judge_spec.provider}/{judge_spec.model}",
        )  # fmt: skip
        try:
            if judge_spec.kind == "pointwise":
                summaries.append(await points(PointwiseJudge(judge_spec, caller), concurrency))
            else:
                summaries.append(await score_pairs(
                    factory, experiment_id, PairwiseJudge(judge_spec, caller), concurrency=concurrency,
                    progress=progress, metrics=metrics, options=options,
                ))  # fmt: skip
        finally:
            await provider.aclose()
    return summaries


async def run_scoring(
    settings: Settings,
    experiment_name: str,
    *,
    scorer: str | None = None,
    concurrency: int = 8,
    progress: ProgressOf | None = None,
    metrics: ScoreMetrics | None = None,
    options: TaskOptions | None = None,
) -> list[RunSummary]:
    """`shadowlab score EXPERIMENT`: its own engine for one experiment."""
    engine = engine_from(settings)
    try:
        return await score_named(
            session_factory(engine), settings, experiment_name, scorer=scorer, concurrency=concurrency,
            progress=progress, metrics=metrics, options=options or TaskOptions(),
        )  # fmt: skip
    finally:
        engine.dispose()


async def score_named(
    factory: sessionmaker[Session],
    settings: Settings,
    experiment_name: str,
    *,
    scorer: str | None = None,
    concurrency: int = 8,
    progress: ProgressOf | None = None,
    metrics: ScoreMetrics | None = None,
    options: TaskOptions,
) -> list[RunSummary]:
    """Score one experiment: prices from its snapshot (else the price file), checked first; tasks leased for
    the experiment's `replay.lease_s`, like its replays."""
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
        calls = shared_judge_calls(factory, experiment_id, typed.limits, typed.replay, settings)
    prices.require([judge.model for judge in spec.judges])
    timeouts = {"stall_timeout_s": calls.replay.stall_timeout_s, "timeout_s": calls.replay.timeout_s}
    if metrics is not None:
        calls.limiter.on_wait = metrics.limiter_wait.observe

    def provider_for(judge: JudgeSpec) -> Provider:
        return create_provider(judge.provider, config_from_settings(judge.provider, settings, **timeouts))

    try:
        return await score_experiment(
            factory, experiment_id, spec, provider_for=provider_for, cost_of=prices.cost, budget=calls.budget,
            limiter=calls.limiter, concurrency=concurrency, progress=progress, metrics=metrics,
            options=dataclasses.replace(options, lease_s=typed.replay.lease_s),
        )  # fmt: skip
    finally:
        await calls.close()
