"""The report as one self-contained HTML file: inline CSS, inline SVG forest plots, no script, no fetch.

Every string that comes from the data (captured text, names, reasons) goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
from typing import Any

from analysis.report import (
    decision_rows,
    example_rows,
    fmt,
    health_rows,
    metric_rows,
    power_sentence,
    price_rows,
    routing_rows,
    saving_sentence,
    scorer_rows,
    segment_rows,
    too_small,
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}.verdict{font-size:1.6em;font-weight:bold;padding:.4em .8em;display:inline-block}
.ship{background:#d8f5d8}.dont_ship{background:#f8d7d7}.keep_running,.inconclusive{background:#fff3c4}.invalid{background:#e4e4e4}
.small{color:#777}svg{display:block;margin-bottom:1em}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def forest_svg(
    title: str, rows: list[tuple[str, float | None, float | None, float | None]], null: float
) -> str:
    """A forest plot: one row per label with its estimate and interval, and a line at the null value."""
    values = [v for _, e, lo, hi in rows for v in (e, lo, hi) if v is not None and math.isfinite(v)] + [null]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 1.0
    low, high = low - pad, high + pad
    width, left, row_h = 640, 180, 22
    height = 30 + row_h * len(rows)

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - 20)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}"><text x="4" y="14" font-size="13" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{x(null):.1f}" y1="20" x2="{x(null):.1f}" y2="{height}" stroke="#999" '
        'stroke-dasharray="3"/>',
    ]
    for i, (label, est, lo, hi) in enumerate(rows):
        y = 32 + i * row_h
        parts.append(f'<text x="4" y="{y + 4}" font-size="12">{esc(label)}</text>')
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            parts.append(
                f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="#36c" stroke-width="2"/>'
            )
        if est is not None and math.isfinite(est):
            parts.append(f'<circle cx="{x(est):.1f}" cy="{y}" r="4" fill="#036"/>')
            parts.append(
                f'<text x="{width - 4}" y="{y + 4}" font-size="11" text-anchor="end">{esc(fmt(est))}</text>'
            )
    return "".join(parts) + "</svg>"


def _metric_plots(doc: dict[str, Any]) -> str:
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for c in doc["comparisons"]:
        by_metric.setdefault(c["metric"], []).append(c)
    return "".join(
        forest_svg(f"{metric} (candidate vs control)",
                   [(c["candidate"], c["estimate"], c["ci_low"], c["ci_high"]) for c in rows],
                   float(rows[0].get("null_value") or 0.0))
        for metric, rows in by_metric.items()
    )  # fmt: skip


def _verdict(doc: dict[str, Any]) -> str:
    verdict = doc.get("verdict")
    if not verdict:
        return '<p id="verdict" class="verdict">no verdict (no decision plan)</p>'
    pick = f" — recommended: {esc(verdict['recommended'])}" if verdict.get("recommended") else ""
    reasons = "".join(f"<li>{esc(r)}</li>" for r in verdict["reasons"])
    name = esc(verdict["verdict"])
    return f'<p id="verdict" class="verdict {name}">{name}{pick}</p><ul id="reasons">{reasons}</ul>'


def _segments(doc: dict[str, Any]) -> str:
    if not doc.get("segments"):
        return ""
    out = "<h2>Segments</h2><p>Benjamini–Hochberg across segments within each metric × candidate.</p>"
    out += _table(*segment_rows(doc))
    small = "".join(f"<li>{esc(s)}</li>" for s in too_small(doc))
    return out + (f'<p class="small">Too small to test:</p><ul class="small" id="too-small">{small}</ul>'
                  if small else "")  # fmt: skip


def _routing(doc: dict[str, Any]) -> str:
    routing = doc.get("routing")
    if not routing:
        return ""
    out = f"<h2>Routing recommendation (by {esc(routing['dimension'])})</h2>{_table(*routing_rows(routing))}"
    out += f"<p id='saving'>{esc(saving_sentence(routing) or 'No cost metric: no saving.')}</p>"
    return out + "<p>Quality risk:</p><ul>" + "".join(f"<li>{esc(r)}</li>" for r in routing["risk"]) + "</ul>"


def report_html(doc: dict[str, Any]) -> str:
    """One self-contained HTML page of the report document."""
    exp = doc["experiment"]
    decisions = _table(*decision_rows(doc)) if doc["decisions"] else "<p>No decision recorded yet.</p>"
    examples = doc.get("examples")
    sections = [
        f"<h1>Experiment {esc(exp['name'])}</h1><p>{esc(exp.get('description'))}</p>",
        f"<h2>Verdict</h2>{_verdict(doc)}",
        f"<h2>Metrics</h2>{_metric_plots(doc)}{_table(*metric_rows(doc))}",
        f"<h2>Health</h2>{_table(*health_rows(doc))}",
        f"<h2>Sample size and power</h2><p>{esc(power_sentence(doc))}</p>",
        _segments(doc),
        _routing(doc),
        f"<h2>Price snapshot</h2>{_table(*price_rows(doc))}",
        f"<h2>Scorer versions</h2>{_table(*scorer_rows(doc))}",
        f"<h2>Decision history</h2>{decisions}",
        f"<h2>Example requests per segment</h2>{_table(*example_rows(doc))}" if examples else "",
    ]
    head = f"<meta charset='utf-8'><title>shadowlab report: {esc(exp['name'])}</title><style>{_CSS}</style>"
    return f"<!DOCTYPE html><html lang='en'><head>{head}</head><body>{''.join(sections)}</body></html>\n"
