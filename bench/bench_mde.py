"""Is the MDE the pages show the effect the plan's decision rule detects with 80 % power? Simulated.

Each run draws a paired experiment's noise, reads the MDE the analysis document shows (`mde` at n, or
`mde_planned` for the planned sample), adds a true effect of exactly that size (a constant shift leaves the
paired SE unchanged) and lets `analysis.decision.decide` judge it: the goal must pass, a guardrail pass
(true change = margin − MDE), an unnamed metric's no-harm check fail (true change = practical margin + MDE).
Cases: sequential and fixed plans, α 0.05 and 0.01, N* 1,000 and 5,000, looks at N*/4 and N*, a mean score
and a latency ratio. The last column is the same run with the two-sided fixed-horizon MDE the pages showed
before (goal cases only). Goal: every share within 0.8 ± 3 binomial SDs.

`.venv/bin/python bench/bench_mde.py [RUNS]` (default 2000 per case).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.analyze import analyze_table  # noqa: E402
from analysis.csv_input import ExperimentTable, MetricColumn  # noqa: E402
from analysis.decision import decide  # noqa: E402
from analysis.document import analysis_document  # noqa: E402
from analysis.plan import DecisionPlan  # noqa: E402
from analysis.rule_mde import MDE_POWER  # noqa: E402
from analysis.stats.results import MetricKind  # noqa: E402

GUARD_MARGIN = 0.5  # judge points
HARM_MARGIN = 0.25  # the practical margin of a mean score


def _plan(design: str, alpha: float, n_star: int, role: str, metric: str) -> DecisionPlan:
    plan: dict[str, Any] = {"primary_metric": metric, "design": design, "alpha": alpha, "min_sample": 100,
                            "max_sample": n_star, "planned_sample": n_star}  # fmt: skip
    if metric == "latency_ms":
        plan["primary_direction"] = "lower_is_better"
    if role != "goal":
        plan["primary_metric"] = "cost_usd"
        plan["primary_direction"] = "lower_is_better"
    if role == "guardrail":
        plan["guardrails"] = [{"metric": metric, "margin": GUARD_MARGIN, "relative": False,
                               "direction": "higher_is_better"}]  # fmt: skip
    return DecisionPlan.from_dict(plan)


def _table(
    metric: str, control: np.ndarray, candidate: np.ndarray, rng: np.random.Generator
) -> ExperimentTable:
    n = len(control)
    kind: MetricKind = "latency" if metric == "latency_ms" else "mean"
    cost = np.column_stack([0.003 * np.exp(rng.normal(0, 0.1, n)), 0.002 * np.exp(rng.normal(0, 0.1, n))])
    metrics = (
        MetricColumn(metric, kind, np.column_stack([control, candidate])),
        MetricColumn("cost_usd", "cost", cost),
    )
    return ExperimentTable(tuple(f"r{i}" for i in range(n)), ("control", "cand"), metrics, None, None)


def _analyse(table: ExperimentTable, plan: DecisionPlan) -> Any:
    return analyze_table(table, control="control", alpha=plan.alpha, adjust="holm")


def run_case(design: str, alpha: float, n_star: int, look: int, role: str, metric: str, *, planned: bool,
             runs: int, seed: int) -> tuple[float, float | None, float]:  # fmt: skip
    """(share detected at the shown MDE, share at the old two-sided MDE or None, mean shown MDE)."""
    plan = _plan(design, alpha, n_star, role, metric)
    rng = np.random.default_rng(seed)
    size = n_star if planned else look
    condition = {"goal": f"primary:{metric}", "guardrail": f"guardrail:{metric}", "harm": "no_harm"}[role]
    wanted = "fail" if role == "harm" else "pass"
    hits, old_hits, shown = 0, 0, []
    for _ in range(runs):
        prompt = rng.normal(6.0, 1.0, size)
        control, noise = prompt + rng.normal(0, 1.0, size), prompt + rng.normal(0, 1.0, size)
        if metric == "latency_ms":
            control, noise = np.exp(control), np.exp(noise)
        early = _table(metric, control[:look], noise[:look], rng)
        analysis = _analyse(early, plan)
        doc, _ = analysis_document(analysis, plan, None)
        row = next(c for c in doc["comparisons"] if c["metric"] == metric)
        mde = row["mde_planned"] if planned else row["mde"]
        old = next(c.result.mde for c in analysis.comparisons if c.metric == metric)
        shown.append(mde)
        for value, is_old in ((mde, False), (old, True)):
            if is_old and (role != "goal" or planned):
                continue
            if metric == "latency_ms":  # a ratio: the candidate is faster by the MDE's factor
                candidate = noise / value
            else:
                effect = {"goal": value, "guardrail": -(GUARD_MARGIN - value), "harm": -(HARM_MARGIN + value)}
                candidate = noise + effect[role]
            verdict = decide(_analyse(_table(metric, control, candidate, rng), plan), plan)
            status = next(c for c in verdict.candidates[0].checks if c.name == condition).status
            if is_old:
                old_hits += status == wanted
            else:
                hits += status == wanted
    old_share = old_hits / runs if role == "goal" and not planned else None
    return hits / runs, old_share, float(np.mean(shown))


CASES = [
    # design, alpha, N*, look, role, metric, planned
    ("sequential", 0.05, 1000, 250, "goal", "judge_score", False),
    ("sequential", 0.05, 1000, 1000, "goal", "judge_score", False),
    ("sequential", 0.05, 1000, 250, "goal", "judge_score", True),
    ("sequential", 0.01, 1000, 250, "goal", "judge_score", False),
    ("sequential", 0.05, 5000, 1250, "goal", "judge_score", False),
    ("sequential", 0.05, 5000, 1250, "goal", "judge_score", True),
    ("sequential", 0.05, 1000, 250, "goal", "latency_ms", False),
    ("sequential", 0.05, 1000, 250, "guardrail", "judge_score", False),
    ("sequential", 0.05, 1000, 250, "harm", "judge_score", False),
    ("fixed", 0.05, 1000, 1000, "goal", "judge_score", False),
    ("fixed", 0.05, 1000, 250, "goal", "judge_score", True),
    ("fixed", 0.01, 1000, 1000, "goal", "judge_score", False),
    ("fixed", 0.05, 1000, 1000, "guardrail", "judge_score", False),
    ("fixed", 0.05, 1000, 1000, "harm", "judge_score", False),
]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    band = 3 * math.sqrt(MDE_POWER * (1 - MDE_POWER) / runs)
    print(f"{runs} runs per case; goal {MDE_POWER:.2f} ± {band:.3f} (3 binomial SDs)")
    print(f"{'design':<11}{'alpha':>6}{'N*':>6}{'look':>6}  {'role':<10}{'metric':<12}{'at':<9}"
          f"{'detected':>9}{'old MDE':>9}{'mean MDE':>10}{'CPU s':>7}")  # fmt: skip
    bad = 0
    for seed, (design, alpha, n_star, look, role, metric, planned) in enumerate(CASES, start=1):
        started = time.process_time()
        share, old, mde = run_case(design, alpha, n_star, look, role, metric, planned=planned, runs=runs,
                                   seed=seed)  # fmt: skip
        ok = abs(share - MDE_POWER) <= band
        bad += not ok
        at = f"N*={n_star}" if planned else "look"
        print(f"{design:<11}{alpha:>6}{n_star:>6}{look:>6}  {role:<10}{metric:<12}{at:<9}{share:>9.3f}"
              f"{'' if old is None else f'{old:.3f}':>9}{mde:>10.4g}{time.process_time() - started:>7.1f}"
              f"{'' if ok else '  OUTSIDE'}")  # fmt: skip
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
