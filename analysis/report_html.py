"""The report as one self-contained HTML file: inline CSS, inline SVG forest plots, no script, no fetch.

Every string that comes from the data (captured text, names, reasons) goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from analysis import display
from analysis.glossary import TERMS, metric_meanings
from analysis.report import (
    NO_CHECKS,
    NO_CLEAR_SEGMENT,
    NO_COMPARISONS,
    NO_DECISION,
    NO_PRICES,
    NO_ROUTED_SEGMENT,
    NO_TESTED_SEGMENT,
    NOTHING_SCORED,
    Rows,
    decision_rows,
    example_rows,
    health_rows,
    metric_rows,
    no_result,
    power_sentence,
    price_rows,
    report_results,
    result_table,
    routing_rows,
    saving_sentence,
    scorer_rows,
    segment_rows,
    too_small,
)
from analysis.results import lower_is_better, plan_of, tone
from analysis.routing_text import mix_rows, risk_sentences
from analysis.summary import Results

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}
.verdict{font-size:1.6em;font-weight:bold;padding:.4em .8em;display:inline-block;margin:0}
.headline{font-size:1.15em;margin:.6em 0}
.ship{background:#d8f5d8}.dont_ship{background:#f8d7d7}.keep_running,.inconclusive{background:#fff3c4}.invalid{background:#e4e4e4}
.small{color:#777}svg{display:block;margin-bottom:1em}summary{cursor:pointer;color:#555;margin:.5em 0}
.plots{display:flex;flex-wrap:wrap;gap:0 24px}
nav{font-size:14px;margin:.4em 0 1em}
nav{color:#999}nav a{color:#0969da;text-decoration:none;white-space:nowrap}
td.pass{background:#e6f4ea;color:#1a7f37}td.fail{background:#fbe4e4;color:#cf222e;font-weight:bold}
td.pass::before{content:"✓ "}td.fail::before{content:"✗ "}
#examples td:nth-child(-n+2){white-space:nowrap}
dl{font-size:14px;max-width:900px}dt{font-weight:bold;margin-top:.7em}dd{margin:0 0 0 1.2em}
"""
# The glossary's terms a reader of the report meets (the dashboard shows them as tooltips).
_REPORT_TERMS = ("Verdict", "Control and candidate", "Goal", "Guardrail", "Margin", "Interval (95 %)",
                 "Always-valid interval", "p-value", "Holm", "Benjamini–Hochberg", "A/A check (noise floor)",
                 "Health checks", "Minimum detectable effect (MDE)", "Preference", "Judge", "Routing",
                 "Segment")  # fmt: skip
_STATUS = {"pass": "pass", "passed": "pass", "fail": "fail", "failed": "fail"}
_TONES = {"better": "#1a7f37", "worse": "#cf222e", "no clear difference": "#6e7781"}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    """A table cell; a status (pass, fail, passed, failed) marked and coloured as on the Overview, so a
    failing row stands out."""
    status = _STATUS.get(str(value))
    return f"<td class='{status}'>{esc(value)}</td>" if status else f"<td>{esc(value)}</td>"


def _bullets(items: Sequence[str], attributes: str = "") -> str:
    """A list of escaped sentences, or nothing: an empty list would be a bare gap where words belong."""
    if not items:
        return ""
    return f"<ul{attributes}>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


def _table(header: list[str], rows: list[list[Any]], table_id: str = "", *, empty: str) -> str:
    """A table of `rows`, or, without any, the sentence `empty`: a header over no rows reads as a fault."""
    if not rows:
        return f"<p class='none'>{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table{f' id={esc(table_id)!r}' if table_id else ''}><tr>{head}</tr>{body}</table>"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [low, high]."""
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


class ForestRow(NamedTuple):
    """One candidate in a forest plot, in the axis' unit; `text` is the estimate as people read it."""

    label: str
    estimate: float
    low: float
    high: float
    tone: str
    text: str


def forest_svg(title: str, axis: str, rows: Sequence[ForestRow], null: float) -> str:
    """One metric: a row per candidate, a dashed no-effect line, and a labelled x axis with ticks in the
    metric's unit."""
    values = [v for r in rows for v in (r.estimate, r.low, r.high)] + [null]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(null), 1.0) * 0.1
    low, high = low - pad, high + pad
    width, left, right, row_h, top = 520, 110, 20, 26, 26
    plot_bottom = top + row_h * len(rows)
    height = plot_bottom + 46

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - right)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}"><text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{left}" y1="{plot_bottom}" x2="{width - right}" y2="{plot_bottom}" stroke="#888"/>',
    ]
    for tick in _ticks(low, high):
        label = f"{round(tick, 10):g}"
        at = f"{x(tick):.1f}"
        parts.append(
            f'<line x1="{at}" y1="{plot_bottom}" x2="{at}" y2="{plot_bottom + 4}" stroke="#888"/>'
            f'<text x="{at}" y="{plot_bottom + 16}" font-size="11" text-anchor="middle" fill="#555">'
            f"{esc(label)}</text>"
        )
    middle = (left + width - right) / 2
    parts.append(
        f'<text x="{middle:.1f}" y="{plot_bottom + 36}" font-size="12" text-anchor="middle" '
        f'fill="#333" class="axis-title">{esc(axis)}</text>'
        f'<line x1="{x(null):.1f}" y1="{top - 4}" x2="{x(null):.1f}" y2="{plot_bottom}" stroke="#444" '
        'stroke-dasharray="4 3"/>'
    )
    for i, r in enumerate(rows):
        y = f"{top + row_h * i + row_h / 2:.1f}"
        colour = _TONES.get(r.tone, "#333")
        parts.append(
            f'<text x="4" y="{float(y) + 4:.1f}" font-size="12">{esc(r.label)}</text>'
            f'<line x1="{x(r.low):.1f}" y1="{y}" x2="{x(r.high):.1f}" y2="{y}" stroke="{colour}" '
            f'stroke-width="3"/><circle cx="{x(r.estimate):.1f}" cy="{y}" r="4.5" fill="{colour}">'
            f"<title>{esc(r.text)}</title></circle>"
        )
    return "".join(parts) + "</svg>"


def _metric_plots(doc: dict[str, Any]) -> str:
    """A forest plot per metric, in the metric's unit, coloured better / worse / no clear difference."""
    plan = plan_of(doc)
    plots = []
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for c in doc["comparisons"]:
        if c.get("estimate") is not None:
            by_metric.setdefault(c["metric"], []).append(c)
    for metric, comparisons in by_metric.items():
        kind = comparisons[0].get("kind", "mean")
        null = display.change_number(kind, comparisons[0].get("null_value") or 0.0) or 0.0
        lower = lower_is_better(metric, kind, plan)
        rows = []
        for c in comparisons:
            est = display.change_number(kind, c["estimate"]) or 0.0
            lo = (
                display.change_number(kind, c["ci_low"] if c.get("ci_low") is not None else c["estimate"])
                or est
            )
            hi = (
                display.change_number(kind, c["ci_high"] if c.get("ci_high") is not None else c["estimate"])
                or est
            )
            text = display.change_text(kind, c["estimate"])
            rows.append(ForestRow(c["candidate"], est, lo, hi, tone(est, lo, hi, null, lower), text))
        axis = display.CHANGE_UNITS.get(kind, "change")
        plots.append(forest_svg(display.metric_name(metric), axis, rows, null))
    legend = (
        '<p class="small">Green: clearly better; red: clearly worse; grey: no clear difference (the interval '
        "crosses the dashed no-effect line). Fixed-horizon 95 % intervals.</p>"
    )
    return f'{legend}<div class="plots">{"".join(plots)}</div>'


def _verdict(res: Results) -> str:
    if res.verdict is None:
        return '<p id="verdict" class="verdict">No verdict (no decision plan)</p>'
    pick = f" — recommended: {esc(res.recommended)}" if res.recommended else ""
    label = esc(display.verdict_label(res.verdict))
    reasons = _bullets(res.reasons, ' id="reasons"')
    return (
        f'<p id="verdict" class="verdict {esc(res.verdict)}">{label}{pick}</p>'
        f'<p class="headline" id="headline">{esc(res.headline)}</p>{reasons}'
        + _details("The decision rule's exact reasons (for engineers)", res.rule_reasons)
    )


def _results(res: Results) -> str:
    lead = (
        '<p class="small">Each candidate against the control on the same prompts. <b>interval</b>: where the '
        "true change lies, the one the decision rule judged; <b>allowed</b>: what the plan accepts; "
        "<b>status</b>: pass, fail or not yet (too little data to tell). The words are explained at the "
        "<a href='#words'>end</a>.</p>"
    )
    return lead + "".join(
        f"<h3>{esc(candidate)} vs the control</h3>"
        + _table(*result_table(res, candidate), empty=no_result(candidate))
        for candidate, _ in res.statuses
    )


def _segments(doc: dict[str, Any]) -> str:
    if not doc.get("segments"):
        return ""
    (header, top), rest = segment_rows(doc)
    small = _bullets(too_small(doc), ' class="small" id="too-small"')
    out = f'<p class="small">Too small to test:</p>{small}' if small else ""
    if not top and not rest[1]:
        return f"<p class='none'>{NO_TESTED_SEGMENT}</p>{out}"
    rows = f" ({len(top)} rows)" if top else ""
    lead = (
        "<p>The segments that matter: significant differences after Benjamini–Hochberg "
        f"across segments (per metric × candidate) and the segments the routing moves{rows}.</p>"
    )
    others = (
        f"<details id='all-segments'><summary>The other {display.count(len(rest[1]))} segment "
        f"{'row' if len(rest[1]) == 1 else 'rows'}</summary>"
        f"{_table(*rest, empty='')}{out}</details>"
        if rest[1]
        else out
    )
    return lead + _table(header, top, "top-segments", empty=NO_CLEAR_SEGMENT) + others


def _mix(doc: dict[str, Any]) -> Rows:
    return ["metric", "status", "change", "interval", "allowed"], [
        [r.name, r.status_label, r.change, r.interval, r.allowed] for r in mix_rows(doc)
    ]


def _routing(doc: dict[str, Any]) -> str:
    routing = doc.get("routing")
    if not routing:
        return ""
    out = f"<p id='saving'>{esc(saving_sentence(routing) or 'No cost metric: no saving.')}</p>"
    # When nothing moves, the sentence above says so and there is no risk to list (as `shadowlab route`).
    out += _bullets(risk_sentences(routing))
    header, rows = routing_rows(routing)
    out += _table(header, rows, empty=NO_ROUTED_SEGMENT)
    # When nothing moves the routed mix is the control itself: a table of zeros (and "not yet" for quantiles
    # no test can settle) would only raise questions (the dashboard's Segments page leaves it out too).
    if any(row[header.index("status")] == "moves" for row in rows):
        mix = _table(*_mix(doc), empty="No metric to check the routed mix on.")
        out += f"<p>Over all traffic, the routed mix against the control:</p>{mix}"
    return out + _details("The routing rule's exact words", routing.get("risk") or [])


def _details(summary: str, sentences: Sequence[str]) -> str:
    """Sentences folded under `summary` for engineers; nothing when there are none."""
    return f"<details><summary>{esc(summary)}</summary>{_bullets(sentences)}</details>" if sentences else ""


def _words(doc: dict[str, Any]) -> str:
    """The glossary for a reader without the dashboard's tooltips: this report's metrics under the names its
    tables use, then the terms."""
    metrics = metric_meanings(dict.fromkeys((c["metric"], c.get("kind", "mean")) for c in doc["comparisons"]))
    terms = {term: TERMS[term] for term in _REPORT_TERMS}
    return "".join(
        f"<h3>{heading}</h3><dl>"
        + "".join(f"<dt>{esc(word)}</dt><dd>{esc(meaning)}</dd>" for word, meaning in words.items())
        + "</dl>"
        for heading, words in (("Metrics", metrics), ("Terms", terms))
    )


def report_html(doc: dict[str, Any]) -> str:
    """One self-contained HTML page of the report document."""
    exp = doc["experiment"]
    res = report_results(doc)
    decisions = _table(*decision_rows(doc), empty=NO_DECISION)
    examples = _table(*example_rows(doc), "examples", empty="") if doc.get("examples") else ""  # left out
    routing = doc.get("routing")
    effects = _table(*metric_rows(doc), empty=NO_COMPARISONS)
    effects = f"{_metric_plots(doc)}{effects}" if doc["comparisons"] else effects
    sections = [  # (anchor, link, title, body): a section without a body is left out
        ("verdict-section", "Verdict", "Verdict", _verdict(res)),
        ("results", "Results", "Results per candidate", _results(res)),
        ("effects", "Effects", "Effects with 95 % intervals", effects),
        ("health", "Health", "Health", _table(*health_rows(doc), empty=NO_CHECKS)),
        ("power", "Sample size", "Sample size and power", f"<p>{esc(power_sentence(doc))}</p>"),
        ("routing", "Routing", f"Routing recommendation (by {routing['dimension']})" if routing else "",
         _routing(doc)),
        ("segments", "Segments", "Segments", _segments(doc)),
        ("prices", "Prices", "Price snapshot", _table(*price_rows(doc), empty=NO_PRICES)),
        ("scorers", "Scorers", "Scorer versions", _table(*scorer_rows(doc), empty=NOTHING_SCORED)),
        ("decisions", "Decisions", "Decision history", decisions),
        ("examples-section", "Examples", "Example requests per segment", examples),
        ("words", "What the words mean", "What the words mean", _words(doc)),
    ]  # fmt: skip
    shown = [section for section in sections if section[3]]
    nav = " · ".join(f"<a href='#{anchor}'>{esc(link)}</a>" for anchor, link, _, _ in shown)
    body = "".join(f"<h2 id='{anchor}'>{esc(title)}</h2>{text}" for anchor, _, title, text in shown)
    top = f"<h1>Experiment {esc(exp['name'])}</h1><p>{esc(exp.get('description'))}</p><nav>{nav}</nav>"
    head = f"<meta charset='utf-8'><title>shadowlab report: {esc(exp['name'])}</title><style>{_CSS}</style>"
    return f"<!DOCTYPE html><html lang='en'><head>{head}</head><body>{top}{body}</body></html>\n"
