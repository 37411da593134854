"""report.html (and, where they share a rule, the Markdown report) on constructed documents (fast;
tests/analysis/test_report.py renders the demo's in Chromium): what a reader without the dashboard's tooltips
needs, and captured names kept as text."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

from analysis.glossary import KINDS
from analysis.report import report_markdown
from analysis.report_html import report_html
from tests.support.analysis_documents import ROUTING

HOSTILE = "<img src=x onerror=alert(1)>"


def _doc(routing: dict[str, Any]) -> dict[str, Any]:
    metrics = (("quality", "mean"), ("pref_preference", "preference"), (HOSTILE, "binary"))
    return {
        "experiment": {"name": "exp", "description": "", "price_snapshot": {}},
        "comparisons": [
            {"metric": m, "kind": k, "candidate": "cand", "estimate": 0.5, "n": 1000, "p_adjusted": 0.5}
            for m, k in metrics
        ],
        "decisions": [],
        "health": {"checks": []},
        "scorers": {},
        "n_requests": 1000,
        "routing": routing,
    }


def test_the_routed_mix_is_shown_only_when_a_segment_moves() -> None:
    assert "the routed mix against the control" in report_html(_doc(ROUTING))
    stays = copy.deepcopy(ROUTING)
    for segment in stays["segments"]:
        segment.update(status="control", arm=stays["control"])
    page = report_html(_doc(stays))
    assert "No segment moves off the control" in page
    assert "the routed mix against the control" not in page  # a table of zeros would only raise questions


def test_when_no_segment_moves_the_report_says_so_in_words_and_lists_nothing_empty() -> None:
    stays = copy.deepcopy(ROUTING)
    for segment in stays["segments"]:
        segment.update(status="control", arm=stays["control"])
    page = report_html(_doc(stays))
    routing = page[page.index("<h2 id='routing'>") : page.index("<h2 id='prices'>")]
    assert page.count("No segment moves off the control") == 1
    assert "<p id='saving'>No segment moves off the control: all traffic stays on it" in routing
    assert not re.search(r"<ul[^>]*>\s*</ul>|<details><summary>[^<]*</summary>\s*</details>", page), routing


def test_the_words_are_explained_under_the_names_the_tables_use_and_every_link_has_its_section() -> None:
    page = report_html(_doc(ROUTING))
    words = page[page.index("<h2 id='words'>") :]
    assert (
        f"<dt>Quality</dt><dd>{html.escape(KINDS['mean'])}</dd>" in words
    )  # the judge's name, not 'Judge score'
    assert f"<dt>Preferred over control</dt><dd>{html.escape(KINDS['preference'])}</dd>" in words
    assert "&lt;img src=x onerror=alert(1)&gt;" in words and HOSTILE not in page
    anchors = re.findall(r"<a href='#([\w-]+)'>", page)
    assert "words" in anchors and all(f"id='{anchor}'" in page for anchor in anchors)


def _section(page: str, anchor: str) -> str:
    start = page.index(f"<h2 id='{anchor}'>")
    return page[start : page.find("<h2 ", start + 1)]


# A document with nothing to show in most sections (no checks, prices, scorers, decisions; one segment too
# small to test) and what each report says there: (report.html's anchor, the Markdown heading, the sentence).
_SMALL = {"dimension": "route", "segment": "chat", "n_requests": 12, "status": "too_small"}
_EMPTY_SECTIONS = (
    ("health", "Health", "The analysis recorded no health checks."),
    (
        "prices",
        "Price snapshot",
        "No prices recorded: an experiment's price table is recorded when it starts.",
    ),
    ("scorers", "Scorer versions", "Nothing was scored yet."),
    ("decisions", "Decision history", "No decision recorded yet."),
)


def test_a_section_with_nothing_to_show_says_so_in_a_sentence_not_with_an_empty_table() -> None:
    page = report_html(_doc(ROUTING) | {"segments": [_SMALL]})
    tables = re.findall(r"<table[^>]*>.*?</table>", page, re.S)
    headers_only = [table for table in tables if table.count("<tr>") < 2]
    assert tables and not headers_only, headers_only
    for anchor, sentence in (
        *((anchor, sentence) for anchor, _, sentence in _EMPTY_SECTIONS),
        ("segments", "No segment has enough requests to test."),
    ):
        assert f"<p class='none'>{html.escape(sentence)}</p>" in _section(page, anchor), anchor
    assert "route = chat (12 requests)" in _section(page, "segments")  # still listed as too small to test
    assert "all-segments" not in page  # no fold over zero other rows


def test_the_markdown_report_says_so_in_a_sentence_too() -> None:
    text = report_markdown(_doc(ROUTING) | {"segments": [_SMALL]})
    sections = dict(re.findall(r"^## ([^\n]+)\n\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    tables = [part for part in re.split(r"\n\n", text) if part.startswith("|")]
    headers_only = [table for table in tables if len(table.splitlines()) < 3]  # header, rule, no row
    assert tables and not headers_only, headers_only
    for _, title, sentence in _EMPTY_SECTIONS:
        assert sections[title].strip() == sentence, title
    segments = next(body for title, body in sections.items() if title.startswith("Segments"))
    assert segments.startswith("No segment has enough requests to test.")
    assert "route = chat (12 requests)" in segments and "0 more segment rows" not in segments


def test_segments_that_do_not_differ_are_counted_in_words_that_fit() -> None:
    tested = {"dimension": "service", "segment": "chat", "metric": "quality", "candidate": "cand",
              "n_requests": 500, "n": 500, "status": "tested", "estimate": 0.01, "ci_low": -0.1,
              "ci_high": 0.12, "p_value": 0.8, "p_adjusted": 0.8}  # fmt: skip
    doc = _doc(ROUTING) | {"routing": None, "segments": [tested]}
    text = report_markdown(doc)
    assert (
        "No segment differs clearly.\n\n1 segment row with no clear difference is in the JSON report." in text
    )
    assert " more segment" not in text
    page = _section(report_html(doc), "segments")
    assert "(0 rows)" not in page and "The other 1 segment row</summary>" in page
