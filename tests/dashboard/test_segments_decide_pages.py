"""The Segments and Decide pages on a seeded Postgres: per-segment numbers, the routing in plain words, the
decision form preset to the analysis, and the decision history as sentences."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from analysis.routing_text import route_rows, saving_sentence
from analysis.summary import results
from dashboard.decisions import AGREEING, DecisionRecord
from dashboard.snapshot import VERDICT_LABELS
from dashboard.views.common import md_escape
from dashboard.views.decide import history_frame
from tests.support.analysis_documents import ROUTING
from tests.support.dashboard_seed import PLAN, no_exception, store_snapshot

pytestmark = pytest.mark.postgres


def test_segments_page_shows_per_segment_numbers(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/segments.py")
    no_exception(at)
    frame = at.dataframe[0].value
    assert int(frame["replays"].sum()) == seeded.replays
    assert set(frame["service"]) == {"support", "sales"}


def test_segments_page_shows_the_routing_in_plain_words(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    segment = {"dimension": "route", "segment": "/faq", "metric": "judge_score", "candidate": "cand",
               "n_requests": 60, "n": 60, "status": "tested", "kind": "mean", "estimate": -0.123456789,
               "ci_low": -0.4, "ci_high": 0.15, "p_value": 0.3, "p_adjusted": 0.000123}  # fmt: skip
    store_snapshot(
        seeded.url, seeded.experiment_id, {**seeded.analysis, "routing": ROUTING, "segments": [segment]}
    )
    at = app_test("views/segments.py")
    no_exception(at)
    assert [s.value for s in at.success] == [md_escape(saving_sentence(ROUTING) or "")]
    # a static table, so 'why' wraps instead of being cut at the right edge; its cells are escaped Markdown
    routes = at.table[0].value
    assert list(routes.columns) == ["segment", "share", "arm", "status", "p (adjusted)", "why"]
    assert list(routes["arm"]) == ["cand", "ctrl", "ctrl"]
    assert list(routes["share"]) == [md_escape(share) for share in ("28 %", "16 %", "2.7 %")]
    assert list(routes["why"]) == [md_escape(r.why) for r in route_rows(ROUTING)]
    effects = at.dataframe[1].value
    assert list(effects["change"]) == ["-0.12 points"] and list(effects["p (BH)"]) == ["< 0.001"]
    assert list(effects["95 % interval"]) == ["-0.40 to +0.15 points"]
    money = " ".join(str(v) for frame in [*at.dataframe, *at.table] for v in frame.value.to_numpy().ravel())
    assert not re.search(r"\d\.\d{6,}", money)  # no raw floats anywhere
    # With tested segments the descriptive per-arm scan runs only when asked for.
    assert len(at.dataframe) == 2
    at.toggle(key="seg_descriptive").set_value(True).run()
    no_exception(at)
    assert int(at.dataframe[2].value["replays"].sum()) == seeded.replays


@pytest.mark.parametrize(
    ("computed", "recommended"),
    [("ship", "cand"), ("dont_ship", None), ("inconclusive", None), ("invalid", None)],
)
def test_decide_form_is_preset_to_what_the_analysis_says(
    computed: str, recommended: str | None, seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    doc = copy.deepcopy(seeded.analysis)
    doc["verdict"] |= {"verdict": computed, "recommended": recommended}
    store_snapshot(seeded.url, seeded.experiment_id, doc)
    at = app_test("views/decide.py")
    no_exception(at)
    # one option per declaration, the winning arm part of Ship's: Don't ship never comes with a winner
    # (the page's module is run afresh by the app, so its Choice is compared by value)
    preset = (AGREEING[computed], recommended)
    choice = at.radio[0].value
    assert choice is not None and (choice.verdict, choice.winner) == preset
    labels = {
        ("ship", "cand"): "Ship cand",
        ("dont_ship", None): "Don't ship",
        ("keep_running", None): "Keep running",
    }
    recommendation = " (the analysis' recommendation)"
    assert at.radio[0].options == [
        label + (recommendation if c == preset else "") for c, label in labels.items()
    ]
    assert not [s for s in at.selectbox if "Winning arm" in s.label]
    assert at.checkbox[0].value is True  # a Ship or Don't ship declaration concludes the experiment
    res = results(doc, PLAN)
    boxes = [e.value for e in [*at.success, *at.error, *at.info, *at.warning]]
    assert f"**{VERDICT_LABELS[computed]}**  \n{md_escape(res.headline)}" in boxes
    invalid_note = [b for b in boxes if b.startswith("The analysis is invalid")]
    assert bool(invalid_note) == (computed == "invalid")


def test_the_decision_history_reads_as_sentences_not_eleven_columns() -> None:
    first = DecisionRecord(1, 7, "keep_running", None, "keep_running", False, "erin",
                           datetime(2026, 12, 7, 9, 2), "need more data", None, 11, None, {})  # fmt: skip
    second = replace(first, id=2, verdict="ship", winner_arm="haiku", is_override=True, reason="cost matters",
                     override_reason="quality is fine for us", supersedes_id=1)  # fmt: skip
    frame = history_frame([second, first])
    assert list(frame.columns) == [
        "decision",
        "when",
        "by",
        "declared",
        "the analysis said",
        "reason",
        "evidence",
    ]
    assert list(frame.iloc[0]) == [md_escape(cell) for cell in (
        "#2", "07 Dec 2026 09:02 UTC", "erin", "Ship haiku", "Keep running (overridden)",
        "cost matters Override: quality is fine for us", "analysis #11, supersedes #1")]  # fmt: skip
    assert frame.iloc[1]["declared"] == md_escape("Keep running")
