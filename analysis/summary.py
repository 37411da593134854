"""The verdict in plain words: a one-sentence headline and the deciding reasons, built from the results
table's rows, so a product manager reads "Quality drops 1.12 points with haiku (allowed 0.50 points)"
where the decision rule says `guardrail:quality`; the rule's own sentences stay for engineers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analysis import display
from analysis.decision import CHANCE_OF_DECISION
from analysis.results import ResultRow, block, dicts, num, result_rows

_HEALTH_NAMES = {
    "aa_noise_floor": "A/A check: the control agrees with a copy of itself",
    "error_imbalance": "Failures are even across arms",
    "minimum_n": "Enough complete prompts",
    "judge_consistency": "The judge gives the same verdict when the answers swap places",
}
_HEALTH_MEANING = {
    "aa_noise_floor": "the A/A copy of the control disagrees with the control, so the setup is broken",
    "completeness": "replays or scores are missing more often in some arms than in others",
    "error_imbalance": "replays fail more often in some arms than in others",
}


@dataclass(frozen=True)
class Results:
    verdict: str | None
    recommended: str | None
    headline: str
    reasons: tuple[str, ...]  # plain sentences
    rule_reasons: tuple[str, ...]  # the decision rule's own sentences, for engineers
    rows: tuple[ResultRow, ...]
    statuses: tuple[tuple[str, str], ...]  # (candidate, pass / fail / pending or ""), in the rows' order


def moved(row: ResultRow) -> str:
    """'Quality drops 1.12 points', 'Cost per request rises 12 %', 'Preferred over control in only 31 % of
    prompts': the row's change as words."""
    if row.kind == "preference":
        return f"{row.name} in {'only ' if row.worse else ''}{row.value} of prompts"
    relative = row.kind in ("cost", "latency") and row.change_pct != display.MISSING
    amount = (row.change_pct if relative else row.change).lstrip("+-")
    if row.change.startswith("-"):
        return f"{row.name} drops {amount}"
    if row.change.startswith("+"):
        return f"{row.name} rises {amount}"
    return f"{row.name}: {row.change}"


def _size(allowed: str) -> str:
    return allowed.lstrip("+-")


def sentence(row: ResultRow) -> str:
    """One row as a sentence for a product manager."""
    who = f"{row.candidate}: "
    interval = row.interval if row.interval.startswith(("no ", "not ")) else f"interval {row.interval}"
    if row.role == "goal":
        said = f"{row.name} {row.change}" + (
            f" ({row.change_pct})" if row.change_pct != display.MISSING else ""
        )
        tail = {"pass": "clearly better", "fail": "clearly worse", "pending": "not yet clearly better"}
        return f"{who}{said}, {tail.get(row.status, 'no decision yet')} ({interval})"
    if row.status == "fail" and row.kind == "preference":
        return f"{who}{moved(row)}, below the {row.allowed.removesuffix(' or more')} allowed ({interval})"
    if row.status == "fail":
        return f"{who}{moved(row)}, more than the {_size(row.allowed)} allowed ({interval})"
    if row.status == "pending":
        return f"{who}{moved(row)}; not yet shown to stay within {_size(row.allowed)} ({interval})"
    return f"{who}{moved(row)}, within the allowed {_size(row.allowed)} ({interval})"


def health_name(name: str) -> str:
    """A health check for people: `completeness:quality` → Nothing missing more in one arm (Quality)."""
    family, _, metric = name.partition(":")
    if family == "completeness":
        return f"Nothing missing more in one arm ({display.metric_name(metric)})"
    return _HEALTH_NAMES.get(name, name)


def health_sentences(doc: Mapping[str, Any], rule_reasons: Sequence[str] = ()) -> list[str]:
    """Each failed health check in plain words, with the rule's advice on what to fix."""
    out = []
    for check in dicts(block(doc, "health").get("checks")):
        name = str(check.get("name", "?"))
        if check.get("passed") is not False or name == "minimum_n":
            continue
        family, _, metric = name.partition(":")
        meaning = _HEALTH_MEANING.get(family, f"the health check {name} failed")
        if metric:
            meaning += f" ({display.metric_name(metric)})"
        said = next((r for r in rule_reasons if r.startswith(f"health check {name} failed")), "")
        fix = said.rsplit("; ", 1)[1] if "; " in said else ""
        out.append(meaning[:1].upper() + meaning[1:] + (f". What to do: {fix}" if fix else ""))
    return out


def _ship_headline(pick: str, rows: Sequence[ResultRow]) -> str:
    goal = next((r for r in rows if r.candidate == pick and r.role == "goal"), None)
    if goal is None:
        return f"Switch to {pick}: it meets every condition of the plan."
    gain = f"{goal.name} {goal.change}"
    if goal.kind in ("cost", "latency") and goal.change_pct.startswith("-"):
        gain = f"{goal.change_pct.lstrip('-')} {'cheaper' if goal.kind == 'cost' else 'faster'}"
    guards = [r for r in rows if r.candidate == pick and r.role == "guardrail"]
    kept = ", ".join(f"{r.name.lower()} {r.change} (allowed {_size(r.allowed)})" for r in guards[:2])
    return f"Switch to {pick}: {gain}" + (f"; {kept}" if kept else "") + "."


def _dont_ship_headline(rows: Sequence[ResultRow]) -> str:
    failed: dict[str, ResultRow] = {}
    for role in ("guardrail", "goal", "no harm"):
        for r in rows:
            if r.status == "fail" and r.role == role:
                failed.setdefault(r.candidate, r)
    if not failed:
        return "Don't switch: no candidate meets the plan."
    worst = list(failed.values())
    first = worst[0]
    moves = [moved(r).removeprefix(r.name).strip() for r in worst]
    verb = moves[0].split(" ")[0]
    if len({r.metric for r in worst}) == 1 and all(m.startswith(f"{verb} ") for m in moves):
        amounts = [
            f"{m.removeprefix(verb).strip()} with {r.candidate}" for m, r in zip(moves, worst, strict=True)
        ]
        joined = amounts[0] if len(amounts) == 1 else f"{', '.join(amounts[:-1])} and {amounts[-1]}"
        return f"Don't switch: {first.name} {verb} {joined} (allowed {_size(first.allowed)})."
    return (
        "Don't switch: "
        + "; ".join(f"{r.candidate}: {moved(r)} (allowed {_size(r.allowed)})" for r in worst)
        + "."
    )


def headline(doc: Mapping[str, Any], rows: Sequence[ResultRow], reasons: Sequence[str]) -> str:
    """The verdict in one sentence ("Don't switch: Quality drops 0.86 points with haiku (allowed 0.5)")."""
    verdict = block(doc, "verdict")
    if not verdict:
        return "No verdict: the analysis ran without a pre-registered plan, so it reports effects only."
    name = str(verdict.get("verdict"))
    plan = block(verdict, "plan")
    n, more = num(verdict.get("n")), num(verdict.get("more_prompts"))
    if name == "ship":
        return _ship_headline(str(verdict.get("recommended")), rows)
    if name == "dont_ship":
        return _dont_ship_headline(rows)
    if name == "invalid":
        first = reasons[0].split(". What to do")[0] if reasons else "a health check failed"
        return f"Invalid, fix the data first: {first[:1].lower() + first[1:]}."
    if name == "inconclusive":
        return (
            f"Inconclusive: the plan's maximum of {display.count(num(plan.get('max_sample')))} prompts is "
            "reached without a clear answer; any difference is smaller than this experiment can detect."
        )
    if name == "keep_running":
        minimum = num(plan.get("min_sample"))
        if n is not None and minimum is not None and n < minimum:
            need = display.count(minimum)
            return (
                f"Keep running: {display.count(n)} of the {need} prompts the plan needs before any decision."
            )
        if more:
            more_text = display.count(more)
            return f"Keep running: not clear yet; about {more_text} more prompts give {CHANCE_OF_DECISION}."
        return "Keep running: the estimates do not point to a decision yet."
    return f"{display.verdict_label(name)}."


def _reasons(verdict: Mapping[str, Any], rows: Sequence[ResultRow], statuses: Mapping[str, str]) -> list[str]:
    """The deciding rows as sentences: a failing candidate's failures, a pending one's open conditions, a
    passing one's goal and guardrails."""
    out = []
    for row in rows:
        status = statuses.get(row.candidate)
        deciding = row.status == status if status in ("fail", "pending") else row.role != "no harm"
        if deciding and row.status:
            out.append(sentence(row))
    out += [f"{cand}: no other metric got worse beyond its practical margin." for cand, s in statuses.items()
            if s == "pass"]  # fmt: skip
    if verdict.get("verdict") == "ship" and sum(s == "pass" for s in statuses.values()) > 1:
        out.append(f"More than one candidate passes; {verdict.get('recommended')} is the cheapest.")
    return out


def results(doc: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> Results:
    """The results table, the headline and the plain reasons of one analysis document."""
    rows = result_rows(doc, plan)
    verdict = block(doc, "verdict")
    rule_reasons = tuple(str(r) for r in verdict.get("reasons") or ())
    statuses = {str(c.get("arm")): str(c.get("status", "")) for c in dicts(verdict.get("candidates"))}
    name = str(verdict["verdict"]) if verdict.get("verdict") else None
    if name == "invalid":
        reasons = health_sentences(doc, rule_reasons)
        reasons.append("This says nothing about whether the candidates are better or worse.")
    else:
        reasons = _reasons(verdict, rows, statuses) if verdict else []
    recommended = verdict.get("recommended")
    order = dict.fromkeys(r.candidate for r in rows)
    return Results(
        name, None if recommended is None else str(recommended), headline(doc, rows, reasons), tuple(reasons),
        rule_reasons, rows, tuple((cand, statuses.get(cand, "")) for cand in order),
    )  # fmt: skip
