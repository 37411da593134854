"""`shadowlab score --metrics-port`: per-scorer items, judge calls, spend and failures on /metrics."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scoring.metrics import ScoreMetrics
from scoring.registry import scoring_spec
from scoring.service import score_experiment, shared_judge_calls
from scoring.tally import RunSummary
from shadowlab.experiment import LimitSpec, ReplaySettings
from shadowlab.metrics import serve_metrics
from tests.support.net import free_port
from tests.support.replayed_arms import N_REQUESTS, Seeded, sim_provider

pytestmark = pytest.mark.postgres

LIMITS = (LimitSpec(provider="anthropic", model="sim-judge", rpm=100_000, concurrency=6),)
REPLAY = ReplaySettings(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05)
JUDGES = [{"name": "quality", "kind": "pointwise", "model": "sim-judge"},
          {"name": "pref", "kind": "pairwise", "model": "sim-judge"}]  # fmt: skip


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_score_metrics_count_items_calls_spend_and_failures_per_scorer(seeded: Seeded) -> None:
    metrics = ScoreMetrics()
    port = free_port()
    serve_metrics(metrics.registry, port)
    calls = shared_judge_calls(seeded.factory, seeded.experiment_id, LIMITS, REPLAY)

    async def run() -> list[RunSummary]:
        try:
            return await score_experiment(
                seeded.factory, seeded.experiment_id, scoring_spec({"scoring": {"judges": JUDGES}}),
                provider_for=lambda judge: sim_provider(seeded.sim), cost_of=lambda model, usage: 0.001,
                budget=calls.budget, limiter=calls.limiter, metrics=metrics,
            )  # fmt: skip
        finally:  # as `score_named` does: the last settlements, the budget's connection, the grants
            await calls.close()

    summaries = asyncio.run(run())
    got = scrape(port)
    by_name = {s.scorer: s for s in summaries}
    assert by_name["quality"].stored == 2 * N_REQUESTS and by_name["pref"].stored == 2 * N_REQUESTS
    for scorer, summary in by_name.items():
        assert got[("shadowlab_score_items_total", (("outcome", "stored"), ("scorer", scorer)))] == (
            summary.stored - summary.failed
        )
        made = got[("shadowlab_judge_calls_total", (("scorer", scorer),))]
        assert made == summary.stored + summary.pending
        assert got[("shadowlab_judge_spend_usd_total", (("scorer", scorer),))] == pytest.approx(
            summary.spent_usd
        )
        failures = sum(
            v for (name, labels), v in got.items()
            if name == "shadowlab_judge_failures_total" and ("scorer", scorer) in labels
        )  # fmt: skip
        assert failures == sum(summary.errors.values())
