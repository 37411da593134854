"""Repeated prompts as the unit of analysis: A/A false positives and CI coverage by clustering choice.

Traffic is the demo's own generator (`demo.traffic`: conversations, multi-turn, prompts repeated
across conversations), fingerprinted with `shadowlab.fingerprint`. Both arms are one model served with the
simulator's `repeat_identical` (temperature 0): each arm's answer to a prompt is drawn once (hidden quality
~ N(mean by route difficulty, 0.1) clipped to [0, 1], as `plan_answer` draws it) and repeated for every
capture of that prompt; the judge scores it 1 + 9·quality, rounded. A second scenario adds a shared
component per conversation to the candidate's scores (SD 1 point), so that both dimensions matter. Each
run goes through `analysis.analyze.analyze_table`. `bench/bench_clustering.py` runs 2,000 runs per row;
tests/analysis/test_clustering.py a 400-run version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, IntArray, MetricColumn
from demo.traffic import TrafficSpec, generate
from shadowlab.fingerprint import body_fingerprint

CLUSTERINGS = ("two-way", "fingerprint", "conversation", "none")
TRAFFIC_SEEDS = tuple(range(1, 11))
CAPTURES = 1000
SHIFT = 0.3  # judge points added to the candidate's every answer in the coverage runs


@dataclass(frozen=True)
class Traffic:
    conversation: IntArray
    fingerprint: IntArray
    hard: np.ndarray


@cache
def demo_traffic(seed: int, n: int = CAPTURES) -> Traffic:
    """Conversation and fingerprint codes, and route difficulty, of the demo traffic's valid captures."""
    conversations: dict[str, int] = {}
    fingerprints: dict[str, int] = {}
    rows = []
    for raw in generate(TrafficSpec(n_captures=n, seed=seed)):
        try:
            capture = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(capture, dict) or "source" not in capture or "api" not in capture:
            continue  # the generator's malformed messages
        source = capture["source"]
        prompt = body_fingerprint(capture["api"], capture["request"])
        rows.append(
            (
                conversations.setdefault(source["conversation_id"], len(conversations)),
                fingerprints.setdefault(prompt, len(fingerprints)),
                source["tags"]["difficulty"] == "hard",
            )
        )
    conversation, fingerprint, hard = (np.array(column) for column in zip(*rows, strict=True))
    return Traffic(conversation.astype(np.int64), fingerprint.astype(np.int64), hard.astype(bool))


def frozen_experiment(
    rng: np.random.Generator,
    traffic: Traffic,
    clusters: str,
    *,
    shift: float = 0.0,
    conversation_sd: float = 0.0,
) -> ExperimentTable:
    """Control and candidate, both one model with `repeat_identical`; the candidate's scores + `shift`
    (+ a per-conversation component of SD `conversation_sd`)."""
    prompts = int(traffic.fingerprint.max()) + 1
    conversations = int(traffic.conversation.max()) + 1
    mean = np.where(traffic.hard, 0.55, 0.8)
    scores = []
    for added in (0.0, shift):
        quality = np.clip(mean + rng.normal(0, 0.1, prompts)[traffic.fingerprint], 0.0, 1.0)
        scores.append(np.clip(np.round(1 + 9 * quality), 1, 10) + added)
    if conversation_sd:
        scores[1] = scores[1] + rng.normal(0, conversation_sd, conversations)[traffic.conversation]
    labels = {
        "two-way": np.column_stack([traffic.conversation, traffic.fingerprint]),
        "fingerprint": traffic.fingerprint,
        "conversation": traffic.conversation,
        "none": None,
    }[clusters]
    metric = MetricColumn("judge_score", "mean", np.column_stack(scores))
    ids = tuple(f"r{i}" for i in range(traffic.conversation.size))
    return ExperimentTable(ids, ("control", "candidate"), (metric,), labels, None)


@dataclass(frozen=True)
class Rates:
    scenario: str
    clusters: str
    runs: int
    rejected_05: float  # A/A: share of runs with p < 0.05
    rejected_001: float  # A/A: p < 0.001, the A/A health check's threshold
    coverage: float | None  # share of 95 % intervals holding SHIFT under the shifted candidate


def _primary(table: ExperimentTable) -> tuple[float, float | None, float | None]:
    result = analyze_table(table, control="control", alpha=0.05, adjust="none").comparisons[0].result.primary
    return (1.0 if result.p_value is None else result.p_value), result.ci_low, result.ci_high


SCENARIOS = {"prompts repeat": 0.0, "prompts repeat + conversation effect": 1.0}


def rates(
    clusters: str, runs: int, *, scenario: str = "prompts repeat", seed: int = 27, coverage: bool = True
) -> Rates:
    """A/A rejection rates and, with `coverage`, CI coverage under SHIFT, over `runs` seeded runs each."""
    aa_rng, effect_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    conversation_sd = SCENARIOS[scenario]
    p_values, covered = [], []
    for run in range(runs):
        traffic = demo_traffic(TRAFFIC_SEEDS[run % len(TRAFFIC_SEEDS)])
        table = frozen_experiment(aa_rng, traffic, clusters, conversation_sd=conversation_sd)
        p_values.append(_primary(table)[0])
        if coverage:
            table = frozen_experiment(
                effect_rng, traffic, clusters, shift=SHIFT, conversation_sd=conversation_sd
            )
            _, low, high = _primary(table)
            covered.append(low is not None and high is not None and low <= SHIFT <= high)
    p = np.array(p_values)
    hit = float(np.mean(covered)) if covered else None
    return Rates(scenario, clusters, runs, float(np.mean(p < 0.05)), float(np.mean(p < 0.001)), hit)
