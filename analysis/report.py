"""`shadowlab report`: gather one experiment's evidence into a document, and write it as JSON or Markdown.

The document is the analyze document plus `segments`, `routing`, `experiment` (name, status, price
snapshot), `scorers` (name → versions seen) and `decisions` (the decision history, oldest first).
The HTML form is in `analysis/report_html.py` and reads the same document.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis import display
from analysis.experiment_analysis import ExperimentReport, analyze_experiment
from analysis.results import no_difference, no_difference_text, no_events, no_events_text
from analysis.routing import RoutingRule
from analysis.routing_text import risk_sentences, route_rows
from analysis.routing_text import saving_sentence as routing_saving
from analysis.rule_mde import mde_words
from analysis.segments import segment_dimensions
from analysis.summary import Results, health_name, results
from shadowlab import store
from shadowlab.models import CapturedRequest

ReportFormat = Literal["md", "html", "json"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("md", "html", "json")


def _scorers(session: Session, experiment_id: int) -> dict[str, list[str]]:
    """Scorer name → the versions that wrote scores or preferences in this experiment, sorted."""
    out: dict[str, list[str]] = {}
    for v in store.scorers.versions(experiment_id, session=session):
        out.setdefault(v.name, []).append(v.version)
    return out


def _decisions(session: Session, experiment_id: int) -> list[dict[str, Any]]:
    rows = sorted(store.decisions.history(experiment_id, session=session), key=lambda d: d.decided_at)
    return [
        {
            "decided_at": d.decided_at.isoformat(),
            "verdict": d.verdict,
            "winner_arm": d.winner_arm,
            "computed_verdict": d.computed_verdict,
            "is_override": d.is_override,
            "decided_by": d.decided_by,
            "reason": d.reason,
        }
        for d in rows
    ]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(v.get("text") if isinstance(v, dict) else v) for v in value)
    return ""


def _answer(response: Any) -> str:
    """The answer text of a captured response (`text`, Anthropic `content` or OpenAI `choices[0].message`)."""
    if not isinstance(response, dict):
        return ""
    body = response.get("body", response)
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("text"), str):  # the capture client's normalised form
        return str(body["text"])
    if "choices" in body and body["choices"]:
        first = body["choices"][0]
        return _text(first.get("message", {}).get("content")) if isinstance(first, dict) else ""
    return _text(body.get("content"))


def _examples(session: Session, report: ExperimentReport, limit: int = 300) -> list[dict[str, str]]:
    """One captured request per routing segment: its last prompt and the production answer (shortened)."""
    if report.routing is None:
        return []
    dims = {d.name: d for d in segment_dimensions(report.data.facts)}
    dimension = dims[report.routing.dimension]
    codes, positions = np.unique(dimension.codes, return_index=True)
    first = {
        dimension.segments[int(code)]: report.data.table.request_ids[int(position)]
        for code, position in zip(codes, positions, strict=True)
    }
    rows = session.execute(
        sa.select(CapturedRequest.request_id, CapturedRequest.request, CapturedRequest.response).where(
            CapturedRequest.request_id.in_(list(first.values()))
        )
    ).all()
    found = {r.request_id: r for r in rows}
    out = []
    for label, request_id in sorted(first.items()):
        row = found.get(request_id)
        if row is None:
            continue
        messages = (row.request or {}).get("messages") or [{}]
        prompt = _text(messages[-1].get("content")) if isinstance(messages[-1], dict) else ""
        out.append({"segment": label, "request_id": request_id, "prompt": prompt[:limit],
                    "answer": _answer(row.response)[:limit]})  # fmt: skip
    return out


def report_document(session: Session, name: str, rule: RoutingRule | None = None) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready mapping (no snapshot is stored)."""
    report = analyze_experiment(session, name, store=False, rule=rule)
    experiment = store.experiments.by_id(report.data.experiment_id, session=session)
    return {
        "experiment": {
            "name": experiment.name,
            "status": experiment.status,
            "description": str(experiment.spec.get("description", "")) if experiment.spec else "",
            "price_snapshot": experiment.price_snapshot or {},
            "arms": [{"arm": a, "provider": p, "model": m} for a, p, m in report.data.arm_models],
        },
        **report.snapshot_document,
        "scorers": _scorers(session, experiment.id),
        "decisions": _decisions(session, experiment.id),
        "examples": _examples(session, report),
    }


def report_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _md(text: Any) -> str:
    """Captured text in a Markdown table cell: no pipes, no line breaks, no raw HTML."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("|", "\\|").replace("\n", " ")
    )  # fmt: skip


# What a section says instead of a table without rows (the Markdown and the HTML report alike).
NO_PRICES = "No prices recorded: an experiment's price table is recorded when it starts."
NO_CHECKS = "The analysis recorded no health checks."
NOTHING_SCORED = "Nothing was scored yet."
NO_DECISION = "No decision recorded yet."
NO_COMPARISONS = "No comparisons yet (no metric with complete pairs)."
NO_CLEAR_SEGMENT = "No segment differs clearly."
NO_TESTED_SEGMENT = "No segment has enough requests to test."
NO_ROUTED_SEGMENT = "No segment to route."


def no_result(candidate: str) -> str:
    return f"No result for {candidate} yet."


def _table(header: list[str], rows: list[list[Any]], *, empty: str) -> list[str]:
    if not rows:
        return [empty, ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


Rows = tuple[list[str], list[list[Any]]]


def metric_rows(doc: dict[str, Any]) -> Rows:
    """Every comparison with its fixed-horizon and always-valid interval, in the metric's unit."""
    seq = {(q["metric"], q["candidate"]): q for q in (doc.get("verdict") or {}).get("sequential") or []}
    header = ["metric", "candidate", "pairs", "change", "interval", "p (adj.)", "always-valid interval",
              "always-valid p", "MDE"]  # fmt: skip
    rows = []
    for c in doc["comparisons"]:
        s = seq.get((c["metric"], c["candidate"]), {})
        kind = c.get("kind", "mean")
        change, fixed, valid = display.change_text(kind, c["estimate"]), _span(kind, c), _span(kind, s)
        if no_events(kind, c.get("control_value"), c.get("candidate_value")):
            change, fixed = "no change", no_events_text(c["metric"], c["n"])
            valid = fixed
        rows.append([display.metric_name(c["metric"]), c["candidate"], display.count(c["n"]), change, fixed,
                     display.p_value(c["p_adjusted"]), valid, display.p_value(s.get("p_value")),
                     display.change_text(kind, c.get("mde"))])  # fmt: skip
    return header, rows


def _span(kind: str, item: dict[str, Any]) -> str:
    low, high = item.get("ci_low"), item.get("ci_high")
    if low is None or high is None:
        return "n/a"
    return display.span(display.change_text(kind, low), display.change_text(kind, high))


def result_table(res: Results, candidate: str) -> Rows:
    """One candidate's results rows (the dashboard's Overview table)."""
    header = ["metric", "status", "control", candidate, "change", "interval", "allowed"]
    return header, [
        [
            f"{r.name}{'' if r.role == 'no harm' else f' ({r.role})'}",
            r.status_label,
            r.control,
            r.value,
            r.change if r.change_pct == display.MISSING else f"{r.change} ({r.change_pct})",
            r.interval,
            r.allowed,
        ]
        for r in res.rows
        if r.candidate == candidate
    ]


def health_rows(doc: dict[str, Any]) -> Rows:
    mark = {True: "passed", False: "FAILED", None: "n/a"}
    return ["check", "result", "detail"], [
        [health_name(h["name"]), mark[h["passed"]], h["detail"]] for h in doc["health"]["checks"]
    ]


def _segment_row(s: dict[str, Any]) -> list[Any]:
    kind = s.get("kind", "mean")
    if no_difference(kind, s["estimate"], s.get("ci_low")):
        return [s["dimension"], s["segment"], display.metric_name(s["metric"]), s["candidate"],
                display.count(s["n"]), "no change", no_difference_text(s["n"]), "—"]  # fmt: skip
    return [
        s["dimension"],
        s["segment"],
        display.metric_name(s["metric"]),
        s["candidate"],
        display.count(s["n"]),
        display.change_text(kind, s["estimate"]),
        _span(kind, s),
        display.p_value(s["p_adjusted"]),
    ]


SEGMENT_HEADER = ["dimension", "segment", "metric", "candidate", "pairs", "change", "interval", "p (BH)"]
TOP_SEGMENTS = 20


def segment_rows(doc: dict[str, Any]) -> tuple[Rows, Rows]:
    """The segment rows that matter (every metric of a segment the routing moves, for the arm it moves to;
    then significant after Benjamini–Hochberg, smallest p first), at most TOP_SEGMENTS; and the rest."""
    tested = [s for s in doc.get("segments") or [] if s["status"] == "tested"]
    alpha = float(doc.get("alpha") or 0.05)
    routing = doc.get("routing") or {}
    moved = {
        (routing.get("dimension"), r["segment"], r["arm"])
        for r in routing.get("segments") or []
        if r["status"] == "routed"
    }

    def routed(s: dict[str, Any]) -> bool:
        return (s["dimension"], s["segment"], s["candidate"]) in moved

    def matters(s: dict[str, Any]) -> bool:
        return routed(s) or (s["p_adjusted"] is not None and s["p_adjusted"] < alpha)

    def rank(s: dict[str, Any]) -> tuple[bool, float]:
        return not routed(s), 1.0 if s["p_adjusted"] is None else s["p_adjusted"]

    top = sorted((s for s in tested if matters(s)), key=rank)[:TOP_SEGMENTS]
    chosen = {id(s) for s in top}
    rest = [s for s in tested if id(s) not in chosen]
    return (SEGMENT_HEADER, [_segment_row(s) for s in top]), (SEGMENT_HEADER, [_segment_row(s) for s in rest])


def too_small(doc: dict[str, Any]) -> list[str]:
    """Segments below the minimum n for some metric: listed, never tested or ranked."""
    found = {(s["dimension"], s["segment"], s["n_requests"]) for s in doc.get("segments") or []
             if s["status"] != "tested"}  # fmt: skip
    return [f"{d} = {s} ({n} requests)" for d, s, n in sorted(found)]


def routing_rows(routing: dict[str, Any]) -> Rows:
    return ["segment", "share", "arm", "status", "p (adjusted)", "why"], [
        [r.segment, r.share, r.arm, r.status, r.p_adjusted, r.why] for r in route_rows(routing)
    ]


def saving_sentence(routing: dict[str, Any]) -> str | None:
    return routing_saving(routing)


def power_sentence(doc: dict[str, Any]) -> str:
    """The sample in the Overview's words (minimum, planned sample, prompts still needed); how the intervals
    were tuned (N*) stays in parentheses, for engineers."""
    verdict = doc.get("verdict") or {}
    plan = verdict.get("plan") or {}
    more = verdict.get("more_prompts")
    low, high, star = (display.count(plan.get(k)) for k in ("min_sample", "max_sample", "n_star"))
    looks = (
        f"It decides once, at {star} prompts (fixed horizon, N* = {star})"
        if verdict.get("design") == "fixed"
        else "The intervals stay valid however often the results are checked, and are narrowest at "
        f"{star} prompts (confidence sequences tuned for N* = {star})"
    )
    return (
        f"{display.count(doc['n_requests'])} requests, {display.count(verdict.get('n'))} complete prompts; "
        f"the plan gives no verdict before {low} prompts and ends at {high} (the planned sample). {looks}"
        + (f"; about {display.count(more)} more prompts expected to settle it" if more else "")
        + ". Metrics table: "
        + mde_words(next((c["mde_test"] for c in doc.get("comparisons") or [] if c.get("mde_test")), None))
    )


def _per_million(rate: Any) -> str:
    return "n/a" if not isinstance(rate, int | float) else f"{display.money(rate * 1e6)} per 1M tokens"


def price_rows(doc: dict[str, Any]) -> Rows:
    prices = doc["experiment"]["price_snapshot"]
    return ["model", "input", "output"], [
        [m, _per_million(p.get("input_cost_per_token")), _per_million(p.get("output_cost_per_token"))]
        for m, p in sorted(prices.items()) if isinstance(p, dict)
    ]  # fmt: skip


def scorer_rows(doc: dict[str, Any]) -> Rows:
    return ["scorer", "versions"], [[n, ", ".join(v)] for n, v in doc["scorers"].items()]


def decision_rows(doc: dict[str, Any]) -> Rows:
    header = ["decided at", "decision", "winner", "the analysis said", "override", "by", "reason"]
    return header, [[d["decided_at"], display.verdict_label(d["verdict"]), d["winner_arm"] or "",
                     display.verdict_label(d["computed_verdict"]), "yes" if d["is_override"] else "no",
                     d["decided_by"], d["reason"]] for d in doc["decisions"]]  # fmt: skip


def example_rows(doc: dict[str, Any]) -> Rows:
    return ["segment", "request", "prompt", "production answer"], [
        [e["segment"], e["request_id"], e["prompt"], e["answer"]] for e in doc.get("examples") or []
    ]


def report_results(doc: dict[str, Any]) -> Results:
    """The verdict in plain words and the results table, as the dashboard's Overview shows them."""
    return results(doc)


def _rest_sentence(n: int, *, more: bool) -> str:
    rows = (
        "segment row with no clear difference is" if n == 1 else "segment rows with no clear difference are"
    )
    return f"{n} {'more ' if more else ''}{rows} in the JSON report."


def report_markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown: verdict first, then the evidence."""
    exp, res = doc["experiment"], report_results(doc)
    out = [f"# Experiment {_md(exp['name'])}", "", _md(exp.get("description", "")), "", "## Verdict", ""]
    if res.verdict:
        out += [f"**{display.verdict_label(res.verdict)}**: {_md(res.headline)}", ""]
        out += [*(f"- {_md(r)}" for r in res.reasons), "", "The decision rule's exact reasons:", ""]
        out += [*(f"- {_md(r)}" for r in res.rule_reasons), ""]
    else:
        out += ["No decision plan: no verdict.", ""]
    out += ["## Results per candidate", ""]
    for candidate, _ in res.statuses:
        out += _table(*result_table(res, candidate), empty=no_result(candidate))
    out += ["## Metrics", "", *_table(*metric_rows(doc), empty=NO_COMPARISONS)]
    out += ["## Health", "", *_table(*health_rows(doc), empty=NO_CHECKS)]
    out += ["## Sample size and power", "", power_sentence(doc), ""]
    if doc.get("segments"):
        (header, top), (_, rest) = segment_rows(doc)
        out += ["## Segments that matter (Benjamini–Hochberg across segments per metric × candidate)", ""]
        if top or rest:
            out += _table(header, top, empty=NO_CLEAR_SEGMENT)
            out += [_rest_sentence(len(rest), more=bool(top)), ""] if rest else []
        else:
            out += [NO_TESTED_SEGMENT, ""]
        small = too_small(doc)
        if small:
            out += [
                "Too small to test (fewer pairs than the minimum):",
                "",
                *(f"- {_md(s)}" for s in small),
                "",
            ]
    routing = doc.get("routing")
    if routing:
        out += [
            f"## Routing recommendation (by {_md(routing['dimension'])})",
            "",
            *_table(*routing_rows(routing), empty=NO_ROUTED_SEGMENT),
        ]
        out += [saving_sentence(routing) or "No cost metric: no saving.", ""]
        risk = risk_sentences(routing)  # none when nothing moves: the sentence above says so
        out += ["Quality risk:", "", *(f"- {_md(r)}" for r in risk), ""] if risk else []
    out += ["## Price snapshot", "", *_table(*price_rows(doc), empty=NO_PRICES), "## Scorer versions", ""]
    out += [*_table(*scorer_rows(doc), empty=NOTHING_SCORED), "## Decision history", ""]
    out += _table(*decision_rows(doc), empty=NO_DECISION)
    if doc.get("examples"):
        out += ["## Example requests per segment", "", *_table(*example_rows(doc), empty="")]
    return "\n".join(out)
