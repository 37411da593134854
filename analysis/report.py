"""`shadowlab report`: gather one experiment's evidence into a document, and write it as JSON or Markdown.

The document is the analyze document plus `segments`, `routing`, `experiment` (name, status, price
snapshot), `scorers` (name → versions seen) and `decisions` (the decision history, oldest first).
The HTML form is in `analysis/report_html.py` and reads the same document.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.experiment_analysis import ExperimentReport, analyze_experiment
from analysis.routing import RoutingRule
from analysis.segments import segment_dimensions
from shadowlab.models import CapturedRequest, Decision, Experiment, Preference, Replay, Score

ReportFormat = Literal["md", "html", "json"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("md", "html", "json")


def _scorers(session: Session, experiment_id: int) -> dict[str, list[str]]:
    pointwise = session.execute(
        sa.select(Score.scorer_name, Score.scorer_version)
        .join(Replay, Replay.id == Score.replay_id)
        .where(Replay.experiment_id == experiment_id)
        .distinct()
    ).all()
    pairwise = session.execute(
        sa.select(Preference.scorer_name, Preference.scorer_version)
        .where(Preference.experiment_id == experiment_id)
        .distinct()
    ).all()
    out: dict[str, list[str]] = {}
    for name, version in [*pointwise, *pairwise]:
        out.setdefault(name, [])
        if version not in out[name]:
            out[name].append(version)
    return {name: sorted(versions) for name, versions in sorted(out.items())}


def _decisions(session: Session, experiment_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(Decision).where(Decision.experiment_id == experiment_id).order_by(Decision.decided_at)
    ).scalars()
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
    labels = dims[report.routing.dimension].labels
    first: dict[str, str] = {}
    for request_id, label in zip(report.data.table.request_ids, labels, strict=True):
        first.setdefault(label, request_id)
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
    experiment = session.get(Experiment, report.data.experiment_id)
    assert experiment is not None
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


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: n/a for missing, 4 significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _md(text: Any) -> str:
    """Captured text in a Markdown table cell: no pipes, no line breaks, no raw HTML."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("|", "\\|").replace("\n", " ")
    )  # fmt: skip


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


Rows = tuple[list[str], list[list[Any]]]


def metric_rows(doc: dict[str, Any]) -> Rows:
    """Every comparison with its fixed-horizon and always-valid interval (shared by md and html)."""
    seq = {(q["metric"], q["candidate"]): q for q in (doc.get("verdict") or {}).get("sequential") or []}
    header = ["metric", "candidate", "n", "estimate", "interval", "p (adj.)", "always-valid interval",
              "always-valid p", "MDE"]  # fmt: skip
    rows = []
    for c in doc["comparisons"]:
        s = seq.get((c["metric"], c["candidate"]), {})
        rows.append([c["metric"], c["candidate"], c["n"], fmt(c["estimate"]), _span(c), fmt(c["p_adjusted"]),
                     _span(s), fmt(s.get("p_value")), fmt(c.get("mde"))])  # fmt: skip
    return header, rows


def _span(item: dict[str, Any]) -> str:
    return f"{fmt(item.get('ci_low'))} to {fmt(item.get('ci_high'))}"


def health_rows(doc: dict[str, Any]) -> Rows:
    return ["check", "passed", "detail"], [
        [h["name"], h["passed"], h["detail"]] for h in doc["health"]["checks"]
    ]


def segment_rows(doc: dict[str, Any]) -> Rows:
    tested = [s for s in doc.get("segments") or [] if s["status"] == "tested"]
    header = ["dimension", "segment", "metric", "candidate", "n", "estimate", "interval", "p (BH)"]
    return header, [[s["dimension"], s["segment"], s["metric"], s["candidate"], s["n"], fmt(s["estimate"]),
                     _span(s), fmt(s["p_adjusted"])] for s in tested]  # fmt: skip


def too_small(doc: dict[str, Any]) -> list[str]:
    """Segments below the minimum n for some metric: listed, never tested or ranked."""
    found = {(s["dimension"], s["segment"], s["n_requests"]) for s in doc.get("segments") or []
             if s["status"] != "tested"}  # fmt: skip
    return [f"{d} = {s} ({n} requests)" for d, s, n in sorted(found)]


def routing_rows(routing: dict[str, Any]) -> Rows:
    return ["segment", "share", "arm", "status", "reason"], [
        [s["segment"], f"{s['share']:.1%}", s["arm"], s["status"], s["reason"]] for s in routing["segments"]
    ]


def saving_sentence(routing: dict[str, Any]) -> str | None:
    saving = routing.get("saving")
    if not saving:
        return None
    rel = saving.get("relative") or {}
    return (
        f"Projected saving over the captured traffic mix: ${fmt(saving['per_request_usd'])} per request "
        f"(interval {fmt(saving['ci_low'])} to {fmt(saving['ci_high'])}); cost change "
        f"{fmt(rel.get('estimate'))} relative ({fmt(rel.get('ci_low'))} to {fmt(rel.get('ci_high'))})."
    )


def power_sentence(doc: dict[str, Any]) -> str:
    verdict = doc.get("verdict") or {}
    plan = verdict.get("plan") or {}
    more = verdict.get("more_prompts")
    return (
        f"{doc['n_requests']} requests, {verdict.get('n', 'n/a')} complete prompts; plan minimum "
        f"{plan.get('min_sample', 'n/a')}, maximum {plan.get('max_sample', 'n/a')}, confidence sequences "
        f"tuned for N* = {plan.get('n_star', 'n/a')}"
        + (f"; ≈{more} more prompts expected to settle it" if more else "")
        + ". The MDE at 80 % power of each metric is in the metrics table."
    )


def price_rows(doc: dict[str, Any]) -> Rows:
    prices = doc["experiment"]["price_snapshot"]
    return ["model", "input USD/token", "output USD/token"], [
        [m, fmt(p.get("input_cost_per_token")), fmt(p.get("output_cost_per_token"))]
        for m, p in sorted(prices.items()) if isinstance(p, dict)
    ]  # fmt: skip


def scorer_rows(doc: dict[str, Any]) -> Rows:
    return ["scorer", "versions"], [[n, ", ".join(v)] for n, v in doc["scorers"].items()]


def decision_rows(doc: dict[str, Any]) -> Rows:
    header = ["decided at", "verdict", "winner", "computed", "override", "by", "reason"]
    return header, [[d["decided_at"], d["verdict"], d["winner_arm"], d["computed_verdict"], d["is_override"],
                     d["decided_by"], d["reason"]] for d in doc["decisions"]]  # fmt: skip


def example_rows(doc: dict[str, Any]) -> Rows:
    return ["segment", "request", "prompt", "production answer"], [
        [e["segment"], e["request_id"], e["prompt"], e["answer"]] for e in doc.get("examples") or []
    ]


def report_markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown: verdict first, then the evidence."""
    exp, verdict = doc["experiment"], doc.get("verdict")
    out = [f"# Experiment {_md(exp['name'])}", "", _md(exp.get("description", "")), "", "## Verdict", ""]
    if verdict:
        pick = f" (recommended: {_md(verdict['recommended'])})" if verdict.get("recommended") else ""
        out += [f"**{verdict['verdict']}**{pick}", "", *(f"- {_md(r)}" for r in verdict["reasons"]), ""]
    else:
        out += ["No decision plan: no verdict.", ""]
    out += ["## Metrics", "", *_table(*metric_rows(doc)), "## Health", "", *_table(*health_rows(doc))]
    out += ["## Sample size and power", "", power_sentence(doc), ""]
    if doc.get("segments"):
        out += ["## Segments (Benjamini–Hochberg across segments per metric × candidate)", ""]
        out += _table(*segment_rows(doc))
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
            *_table(*routing_rows(routing)),
        ]
        out += [saving_sentence(routing) or "No cost metric: no saving.", "", "Quality risk:", ""]
        out += [*(f"- {_md(r)}" for r in routing["risk"]), ""]
    out += ["## Price snapshot", "", *_table(*price_rows(doc)), "## Scorer versions", ""]
    out += [*_table(*scorer_rows(doc)), "## Decision history", ""]
    out += _table(*decision_rows(doc)) if doc["decisions"] else ["No decision recorded yet.", ""]
    if doc.get("examples"):
        out += ["## Example requests per segment", "", *_table(*example_rows(doc))]
    return "\n".join(out)
