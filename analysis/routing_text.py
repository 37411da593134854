"""The routing recommendation in plain words: where traffic would go, what it saves, what it risks.

Reads the `routing` block of an analysis document (`analysis/routing.py` writes it) and formats it with
`analysis.display`: "$0.00029 per request (18 % of the control's cost)", a row per segment with the arm it
goes to and why in a few words, and the routing's guardrails over all traffic as result rows. Shared by the
dashboard's Segments page and the HTML report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from analysis import display
from analysis.results import ResultRow, block, check_rows, dicts, num

ROUTE_STATUS = {"routed": "moves", "control": "stays", "too_small": "too small to judge"}
_CHECK_WORDS = {"fail": "fails", "pending": "not yet clear"}


@dataclass(frozen=True)
class RouteRow:
    segment: str
    share: str
    prompts: str
    arm: str
    status: str
    why: str
    p_adjusted: str  # the chosen candidate's (or the best candidate's) Holm-adjusted p
    reason: str  # the rule's own sentence, for engineers


def nothing_moves(routing: Mapping[str, Any]) -> str | None:
    """The one sentence saying that no traffic moves and why (None when some does): the routing section's
    headline then, so the quality-risk bullets (`risk_sentences`) leave it out."""
    control = routing.get("control")
    segments = dicts(routing.get("segments"))
    if any(s.get("status") == "routed" and s.get("arm") != control for s in segments):
        return None
    if segments and all(s.get("status") == "too_small" for s in segments):
        least = display.count(num(block(routing, "rule").get("min_n")))
        return (f"No routing: each segment has fewer than {least} prompts to judge on, so all traffic stays "
                "on the control; users see no change and nothing is saved.")  # fmt: skip
    return ("No segment moves off the control: all traffic stays on it, so users see no change and nothing "
            "is saved.")  # fmt: skip


def saving_sentence(routing: Mapping[str, Any]) -> str | None:
    """'Saves $0.00029 per request ($291 per million requests; 18 % of the control's cost), interval …';
    when nothing moves, `nothing_moves`' sentence; None without a cost metric."""
    stays = nothing_moves(routing)
    if stays is not None:
        return stays
    saving = block(routing, "saving")
    if not saving:
        return None
    usd = num(saving.get("per_request_usd"))
    relative = num(block(saving, "relative").get("estimate"))
    per_million = display.money(None if usd is None else usd * 1e6)
    share = f"; {display.percent(-relative)} of the control's cost" if relative is not None else ""
    low, high = display.money(num(saving.get("ci_low"))), display.money(num(saving.get("ci_high")))
    method = (
        "measured on prompts the routing was not chosen on (cross-fitted)"
        if saving.get("method") == "cross-fitted"
        else "measured on the same prompts that chose the routing, so it may be optimistic"
    )
    return (
        f"Projected saving: {display.per_request(usd)} ({per_million} per million requests{share}); "
        f"95 % interval {low} to {high}, {method}."
    )


def _metric_of(check: Mapping[str, Any]) -> str:
    return display.metric_name(str(check.get("name")).partition(":")[2])


def _why(route: Mapping[str, Any]) -> str:
    """A few words per candidate: which conditions fail or are not yet shown in this segment."""
    if route.get("status") == "too_small":
        return f"fewer prompts than the minimum to judge ({display.count(num(route.get('n_requests')))})"
    if route.get("status") == "routed":
        return f"{route.get('arm')} holds every guardrail here and is the cheapest that does"
    parts = []
    for cand in dicts(route.get("candidates")):
        problems = [
            f"{_metric_of(c)} {_CHECK_WORDS[str(c.get('status'))]}"
            for c in dicts(cand.get("checks"))
            if c.get("status") in _CHECK_WORDS
        ]
        if problems:
            parts.append(f"{cand.get('arm')}: {', '.join(problems[:2])}")
        elif not cand.get("qualifies"):
            parts.append(f"{cand.get('arm')}: not clear once many segments are tested at once")
    return "; ".join(parts) or "no candidate holds every condition here"


def route_rows(routing: Mapping[str, Any]) -> tuple[RouteRow, ...]:
    rows = []
    for r in dicts(routing.get("segments")):
        candidates = dicts(r.get("candidates"))
        chosen = next((c for c in candidates if c.get("arm") == r.get("arm")), None)
        best = chosen or min(candidates, key=lambda c: num(c.get("p_adjusted")) or 1.0, default=None)
        p = display.p_value(num(best.get("p_adjusted"))) if best else display.MISSING
        status = ROUTE_STATUS.get(str(r.get("status")), str(r.get("status")))
        share, prompts = display.percent(num(r.get("share"))), display.count(num(r.get("n_requests")))
        rows.append(
            RouteRow(str(r.get("segment")), share, prompts, str(r.get("arm")), status, _why(r), p,
                     str(r.get("reason", "")))
        )  # fmt: skip
    return tuple(rows)


def mix_rows(doc: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> tuple[ResultRow, ...]:
    """The routing's conditions over all traffic (its guardrails and the primary's non-inferiority)."""
    routing = block(doc, "routing")
    n = num(block(routing, "saving").get("n")) or num(doc.get("n_requests")) or 0
    rows = check_rows(doc, plan, dicts(routing.get("mix_checks")), label="routing", n=int(n))
    primary = str(
        block(block(doc, "verdict"), "plan").get("primary_metric") or (plan or {}).get("primary_metric")
    )
    return tuple(replace(r, allowed="no worse than the control") if r.metric == primary else r for r in rows)


def risk_sentences(routing: Mapping[str, Any]) -> list[str]:
    """What moves, what is too small to judge, and how the segments were protected from luck; nothing when no
    traffic moves (`saving_sentence` says so, once)."""
    if nothing_moves(routing) is not None:
        return []
    segments = dicts(routing.get("segments"))
    moved = [r for r in segments if r.get("status") == "routed"]
    share = sum(num(r.get("share")) or 0.0 for r in moved)
    names = ", ".join(f"{r.get('segment')} → {r.get('arm')}" for r in moved)
    out = [
        f"{display.percent(share)} of the captured traffic moves ({names}); the rest stays on the control."
    ]
    small = [str(r.get("segment")) for r in segments if r.get("status") == "too_small"]
    if small:
        out.append(f"Too small to judge, kept on the control: {', '.join(small)}.")
    out.append(
        "A segment moves only when its evidence holds after adjusting for testing every segment at once, "
        "so a segment that is only just acceptable rarely moves by chance."
    )
    return out
