"""The pre-registered decision rule: from an Analysis and its plan to a verdict with readable reasons.

Per candidate: the primary metric must be superior (Holm across candidates), every guardrail
non-inferior within its margin, and no other metric significantly harmed (Holm across metrics). A
sequential plan reads always-valid confidence sequences at every look; a fixed-horizon plan decides
only at its planned n, on the fixed-horizon intervals. Among passing candidates the cheaper wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis.analyze import Analysis
from analysis.conditions import (
    Check,
    Interval,
    Status,
    decision_interval,
    guardrail_check,
    harm_check,
    p_values_holm,
    primary_check,
)
from analysis.plan import DecisionPlan, Guardrail, MetricRef, resolve_metric
from analysis.stats.sequential import (
    SequentialComparison,
    n_for_half_width,
    n_for_power,
    sequential_comparison,
)
from analysis.verdict_names import VERDICTS, VerdictName

# "≈N more prompts" is the sample at which every pending condition clears its boundary with this chance if
# the effects are exactly what they are now. The estimates are noisy, so the chance actually delivered is
# lower: 79-86 % of simulated runs settle (bench/bench_projection.py). At ½ (the old rule: interval
# half-width = today's gap) only 60-68 % settled.
PROJECTION_POWER = 0.85
# The chance every text promises (verdict reasons, summary, dashboard): what PROJECTION_POWER delivers in
# those simulations, not PROJECTION_POWER itself. tests/analysis/test_projection_promise.py checks that it
# is kept; change the two together.
PROMISED_CHANCE = 0.80


def _chance_words(chance: float) -> str:
    percent = round(100 * chance)
    article = "an" if str(percent).startswith("8") or percent in (11, 18) else "a"
    return f"about {article} {percent} % chance of a decision"


# "about an 80 % chance of a decision": the one wording of PROMISED_CHANCE.
CHANCE_OF_DECISION = _chance_words(PROMISED_CHANCE)

# Health checks that gate a verdict; minimum n is the plan's min_sample and keeps the experiment running.
_NOT_GATING = ("minimum_n",)
# What a failed health check means and what to do about it, in the words a product manager reads.
_HEALTH_FIXES = {
    "aa_noise_floor": (
        "the A/A arm (the control replayed twice) disagrees with itself, so the measurement is noisier than "
        "the statistics assume: check that both copies replay the same requests with the same settings, "
        "and that repeated prompts are counted once (the prompt fingerprint)"
    ),
    "completeness": (
        "some arms are missing more replays or scores than others, so the comparison is not like for "
        "like: finish or retry the missing replays (`shadowlab replay`) and scores (`shadowlab score`)"
    ),
    "judge_consistency": (
        "the pairwise judge mostly follows the position an answer is shown in, not the answer, so its "
        "preferences are noise: use a stronger judge model or a clearer rubric, then score again"
    ),
    "error_imbalance": (
        "replays fail more often in some arms than in others (rate limits, a provider outage, timeouts): "
        "look at the errors on the Side by side page, raise the limits or retry the failed replays"
    ),
}


@dataclass(frozen=True)
class CandidateDecision:
    arm: str
    status: Status
    n: int
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    more_prompts: int | None
    cost_per_request: float | None


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictName
    recommended: str | None
    reasons: tuple[str, ...]
    more_prompts: int | None
    design: str
    n: int
    candidates: tuple[CandidateDecision, ...]
    sequential: tuple[tuple[str, str, SequentialComparison], ...]


def sequential_results(analysis: Analysis, plan: DecisionPlan) -> dict[tuple[str, str], SequentialComparison]:
    """Always-valid intervals for every comparison, at the analysis' alpha and the plan's N*."""
    return {
        (c.metric, c.candidate): sequential_comparison(c.result, n_star=plan.n_star, alpha=analysis.alpha)
        for c in analysis.comparisons
    }


def decide(analysis: Analysis, plan: DecisionPlan) -> Verdict:
    """Apply the plan to the analysis: a verdict, its reasons, and every candidate's checks."""
    seq = sequential_results(analysis, plan)
    kinds = {c.metric: c.result.kind for c in analysis.comparisons}
    primary_ref = resolve_metric(plan.primary_metric, kinds)
    guard_refs = [(g, resolve_metric(g.metric, kinds)) for g in plan.guardrails]
    candidates = judge_candidates(analysis, plan, seq, primary_ref, guard_refs)
    flat = tuple((metric, cand, s) for (metric, cand), s in seq.items())
    return overall_verdict(analysis, plan, candidates, flat)


def judge_candidates(
    analysis: Analysis,
    plan: DecisionPlan,
    seq: Mapping[tuple[str, str], SequentialComparison],
    primary_ref: MetricRef,
    guard_refs: list[tuple[Guardrail, MetricRef]],
) -> tuple[CandidateDecision, ...]:
    """Judge every candidate against the control; Holm across candidates for the primary metric."""
    sequential = plan.design == "sequential"
    by_key = {(c.metric, c.candidate): c for c in analysis.comparisons}
    names = list(dict.fromkeys(c.candidate for c in analysis.comparisons))
    primary: dict[str, tuple[Interval, bool]] = {}
    for name in names:
        comparison = by_key[(primary_ref.column, name)]
        interval, _ = decision_interval(
            comparison, seq[(comparison.metric, name)], primary_ref, relative=False, sequential=sequential
        )
        primary[name] = (interval, interval.log_scale)
    adjusted = p_values_holm({name: primary[name][0].p_value for name in names})
    scope = ("always-valid" if sequential else "fixed-horizon") + (
        ", Holm across candidates" if len(names) > 1 else ""
    )
    excluded = {primary_ref.column, *(ref.column for _, ref in guard_refs)}
    decisions = []
    for name in names:
        interval, percent = primary[name]
        checks: list[Check] = []
        gaps: list[tuple[float | None, float | None]] = []
        check, gap = primary_check(plan, name, interval, adjusted[name], percent, scope)
        checks.append(check)
        if check.status == "pending":
            gaps.append((interval.sigma, gap))
        for guard, ref in guard_refs:
            found = by_key.get((ref.column, name))
            if found is None:
                checks.append(
                    Check(f"guardrail:{guard.metric}", "pending", f"{name}: no {guard.metric} data")
                )
                gaps.append((None, None))
                continue
            g_interval, level = decision_interval(
                found, seq[(ref.column, name)], ref, relative=guard.relative, sequential=sequential
            )
            cost_relative = guard.relative and found.result.kind == "cost" and ref.quantile is None
            check, gap = guardrail_check(
                guard, g_interval, level, name, g_interval.log_scale or cost_relative
            )
            checks.append(check)
            if check.status == "pending":
                gaps.append((g_interval.sigma, gap))
        checks.append(harm_check(analysis, plan, name, excluded, name))
        statuses = {c.status for c in checks}
        status: Status = "fail" if "fail" in statuses else ("pending" if "pending" in statuses else "pass")
        reasons = tuple(
            c.detail for c in checks if c.status == status or (status == "pass" and c.name != "no_harm")
        )
        n = interval.n or by_key[(primary_ref.column, name)].result.primary.n
        more = _more(plan, n, gaps) if status == "pending" else None
        decisions.append(
            CandidateDecision(name, status, n, tuple(checks), reasons, more, _cost(analysis, name))
        )
    return tuple(decisions)


def _more(plan: DecisionPlan, n: int, gaps: list[tuple[float | None, float | None]]) -> int | None:
    """≈ prompts still needed for every pending condition to clear its boundary with PROJECTION_POWER,
    at today's variance and estimates."""
    needed = []
    for sigma, gap in gaps:
        if sigma is None or gap is None:
            return None
        total = n_for_power(sigma, gap, n_star=plan.n_star, alpha=plan.alpha, power=PROJECTION_POWER)
        if total is None:
            return None
        needed.append(total)
    return max(max(needed, default=n) - n, 1)


def _cost(analysis: Analysis, candidate: str) -> float | None:
    costs = [c for c in analysis.comparisons if c.candidate == candidate and c.result.kind == "cost"]
    costs.sort(key=lambda c: c.metric != "cost_usd")
    return costs[0].result.candidate_mean if costs else None


def _health_reasons(analysis: Analysis) -> list[str]:
    """One reason per failed gating check: which check, what it saw, and what to fix."""
    reasons = []
    for check in analysis.health.checks:
        if check.passed is False and check.name not in _NOT_GATING:
            fix = _HEALTH_FIXES.get(check.name.split(":", 1)[0])
            reasons.append(f"health check {check.name} failed: {check.detail}" + (f"; {fix}" if fix else ""))
    return reasons


def overall_verdict(
    analysis: Analysis,
    plan: DecisionPlan,
    candidates: tuple[CandidateDecision, ...],
    seq: tuple[tuple[str, str, SequentialComparison], ...],
) -> Verdict:
    """Combine the candidates' outcomes into one verdict (with the cheaper of passing candidates)."""
    n = min((c.n for c in candidates), default=0)
    room = max(plan.max_sample - n, 0)

    def verdict(
        name: VerdictName, reasons: list[str], more: int | None = None, pick: str | None = None
    ) -> Verdict:
        return Verdict(name, pick, tuple(reasons), more, plan.design, n, candidates, seq)

    health = _health_reasons(analysis)
    if health:
        return verdict(
            "invalid",
            [*health, "the data cannot support a verdict either way: fix the problem above and analyse again "
             "(this says nothing about whether the candidates are better or worse)"],
        )  # fmt: skip
    if n < plan.min_sample:
        more = plan.min_sample - n
        return verdict(
            "keep_running",
            [f"{n} complete prompts so far; the plan needs at least {plan.min_sample} before any decision "
             f"(≈{more} more)"],
            more,
        )  # fmt: skip
    if plan.design == "fixed" and n < plan.n_star:
        more = plan.n_star - n
        return verdict(
            "keep_running",
            [f"pre-registered as fixed-horizon: it decides only at {plan.n_star} prompts, now {n} "
             f"(≈{more} more); the intervals shown are for information"],
            more,
        )  # fmt: skip
    passing = [c for c in candidates if c.status == "pass"]
    if passing:
        reasons = [r for c in passing for r in c.reasons]
        best = passing[0]
        if len(passing) > 1:
            priced = [c for c in passing if c.cost_per_request is not None]
            if priced:
                best = min(priced, key=lambda c: c.cost_per_request or 0.0)
                others = ", ".join(f"{c.arm} (${c.cost_per_request:.6g})" for c in priced if c is not best)
                reasons.append(
                    f"{len(passing)} candidates pass; recommending {best.arm}, the cheaper at "
                    f"${best.cost_per_request:.6g} per request (vs {others})"
                )
            else:
                reasons.append(f"{len(passing)} candidates pass; no cost metric, recommending {best.arm}")
        else:
            reasons.append(f"recommending {best.arm}: it meets every pre-registered condition")
        return verdict("ship", reasons, pick=best.arm)
    if all(c.status == "fail" for c in candidates):
        return verdict("dont_ship", [r for c in candidates for r in c.reasons])
    pending = [c for c in candidates if c.status == "pending"]
    reasons = [r for c in candidates for r in c.reasons]
    if plan.design == "fixed" or n >= plan.max_sample:
        return verdict(
            "inconclusive",
            [*reasons, f"the planned {'horizon' if plan.design == 'fixed' else 'maximum'} of "
             f"{plan.n_star if plan.design == 'fixed' else plan.max_sample} prompts is reached without a "
             "clear answer"],
        )  # fmt: skip
    estimates = [c.more_prompts for c in pending if c.more_prompts is not None]
    more = min(min(estimates), room) if estimates else room
    tail = (
        f"≈{more} more prompts give {CHANCE_OF_DECISION} (projected from today's effects and their variance)"
        if estimates
        else f"the estimates do not point to a decision yet; up to {room} more prompts (the plan's maximum)"
    )
    return verdict("keep_running", [*reasons, tail], more)


__all__ = [
    "CHANCE_OF_DECISION",
    "PROMISED_CHANCE",
    "VERDICTS",
    "CandidateDecision",
    "Check",
    "Verdict",
    "VerdictName",
    "decide",
    "n_for_half_width",
    "sequential_results",
]
