"""Acceptance 1: asking the judge in both orders cancels its position bias; one order does not.

2,000 prompts go through the real pairwise judge (prompt building, verdict parsing, order combination) with
the simulator's judge logic in process; `test_score_over_http` in test_runner.py proves the HTTP path.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from scoring.base import PairSubject
from scoring.judge import JudgeSpec, PairwiseJudge
from scoring.judge_calls import JudgeCaller
from scoring.pairwise import Canonical, PairwiseSummary, summarize, to_canonical
from simulator.judge import JudgeProfile, QualityMemory
from tests.support.judge_calls import RetryLimiter, Unlimited
from tests.support.simjudge import SimJudgeProvider, served_answer

N_PROMPTS = 2_000
BIAS = 0.1  # in quality units, as large as the judge's noise: a strongly position-biased judge
NOISE = 0.1


def _judge_all(bias: float, memory: QualityMemory, pairs: list[tuple[str, str]]) -> PairwiseSummary:
    provider = SimJudgeProvider(memory, JudgeProfile(noise=NOISE, position_bias=bias))
    caller = JudgeCaller(
        provider,
        "sim-judge",
        limiter=RetryLimiter(concurrency=64),
        budget=Unlimited(),
        cost_of=lambda model, usage: 0.0,
    )
    judge = PairwiseJudge(JudgeSpec(name="pref", kind="pairwise", model="sim-judge"), caller)

    async def one(control: str, candidate: str) -> tuple[Canonical, Canonical]:
        ab = await judge.compare(PairSubject("prompt", control, candidate))
        ba = await judge.compare(PairSubject("prompt", candidate, control))
        assert ab.winner is not None and ba.winner is not None
        return to_canonical(ab.winner, "ab"), to_canonical(ba.winner, "ba")

    async def run() -> list[tuple[Canonical, Canonical]]:
        return list(await asyncio.gather(*(one(c, k) for c, k in pairs)))

    results = asyncio.run(run())
    assert provider.calls == 2 * N_PROMPTS
    return summarize(results)


@pytest.mark.slow
def test_order_averaged_preference_cancels_position_bias() -> None:
    rng = random.Random(11)
    memory = QualityMemory()
    pairs = []
    # candidate 0.75 vs control 0.70 mean hidden quality, sd 0.1 (the simulator default)
    for i in range(N_PROMPTS):
        control = served_answer(2 * i, min(max(rng.gauss(0.70, 0.1), 0.0), 1.0))
        candidate = served_answer(2 * i + 1, min(max(rng.gauss(0.75, 0.1), 0.0), 1.0))
        memory.remember(control)
        memory.remember(candidate)
        pairs.append((control.full_text, candidate.full_text))

    fair = _judge_all(0.0, memory, pairs)
    biased = _judge_all(BIAS, memory, pairs)

    assert fair.preference > 0.55  # the better candidate is recovered
    # Both orders, combined per prompt: within ±0.03 of the same judge without bias.
    assert abs(biased.preference - fair.preference) <= 0.03
    # One order only: far off, in the direction of the position the candidate was shown in.
    assert biased.preference_ba - fair.preference_ba > 0.1  # candidate shown first: inflated
    assert fair.preference_ab - biased.preference_ab > 0.1  # candidate shown second: deflated
    # The bias is visible as order disagreement.
    assert biased.position_bias > fair.position_bias + 0.1
