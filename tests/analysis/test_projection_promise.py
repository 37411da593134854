""" "≈N more prompts give about an 80 % chance of a decision": the chance every text promises is the one
constant PROMISED_CHANCE, and simulated experiments keep it (bench/bench_projection.py, smaller)."""

from __future__ import annotations

import numpy as np

from analysis.decision import CHANCE_OF_DECISION, PROMISED_CHANCE
from analysis.summary import headline
from tests.support.projection import look, stream

STREAM = 40_000


def test_the_promised_chance_is_what_simulated_experiments_deliver() -> None:
    """Looked at early, an experiment told to keep running for N more prompts is looked at again after
    them: about PROMISED_CHANCE of those must then be decided (200 runs: a binomial SD of ~3 points)."""
    asked = settled = 0
    for effect, first_look in ((0.15, 300), (0.25, 150)):
        rng = np.random.default_rng(int(effect * 1000))
        for _ in range(100):
            data = stream(rng, STREAM, effect)
            first = look(data, first_look)
            if first.verdict != "keep_running" or first.more_prompts is None:
                continue
            asked += 1
            settled += look(data, min(first_look + first.more_prompts, STREAM)).verdict != "keep_running"
    assert asked >= 150
    assert settled / asked >= PROMISED_CHANCE - 0.06, (settled, asked)


def test_every_text_states_the_promised_chance() -> None:
    """The verdict's reason and the summary's headline say the chance in the same words, from the constant."""
    assert f"about an {round(100 * PROMISED_CHANCE)} % chance of a decision" == CHANCE_OF_DECISION
    verdict = look(stream(np.random.default_rng(7), STREAM, 0.15), 300)
    assert verdict.verdict == "keep_running"
    assert verdict.more_prompts is not None
    assert verdict.reasons[-1].startswith(f"≈{verdict.more_prompts} more prompts give {CHANCE_OF_DECISION} (")
    doc = {"verdict": {"verdict": "keep_running", "plan": {"min_sample": 100}, "n": 300,
                       "more_prompts": verdict.more_prompts}}  # fmt: skip
    said = headline(doc, (), ())
    assert said.endswith(f"more prompts give {CHANCE_OF_DECISION}.")
