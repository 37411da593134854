"""The Side by side page on a seeded Postgres: a hostile capture shown as literal text, the order, counts and
word diff of the pairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from shadowlab.db import create_engine
from tests.support.dashboard_seed import no_exception

pytestmark = pytest.mark.postgres


def test_side_by_side_shows_hostile_capture_as_literal_text(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    at.selectbox(key="sbs_order").set_value("request").run()
    no_exception(at)
    code_blocks = [c.value for c in at.code]
    prompt = f"[user]\n{seeded.hostile}"
    assert prompt in code_blocks  # the prompt
    assert code_blocks.count(seeded.hostile) == 1  # the judge's rationale
    # the candidate's answer, formatted: Markdown without HTML, links or images
    answers = [h.proto.body for h in at.get("html")]
    shown = next(a for a in answers if "alert" in a)
    assert "&lt;script&gt;alert('xss')&lt;/script&gt;" in shown and "<script" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown and "<img" not in shown
    assert "![tracker](http://evil.example/pixel.png)" in shown and "<a" not in shown
    assert "<strong>bold</strong>" in shown  # the Markdown itself is formatted
    markdown = " ".join(m.value for m in at.markdown) + " ".join(
        e.value for e in [*at.error, *at.warning, *at.info, *at.success]
    )
    for fragment in ("<script>", "onerror", "![tracker]", "evil.example"):
        assert fragment not in markdown
    assert any("request req-0000" in t.value for t in at.text)

    at.segmented_control(key="sbs_view").set_value("plain").run()
    assert [c.value for c in at.code].count(seeded.hostile) == 2  # the answer as typed, and the rationale


def _first_pair(at: AppTest) -> tuple[str, str]:
    control = next(t.value for t in at.text if t.value.startswith("Control: ctrl"))
    candidate = next(t.value for t in at.text if t.value.startswith("Candidate: cand"))
    return control, candidate


def test_side_by_side_orders_worst_regressions_first_by_default(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    no_exception(at)
    assert at.selectbox(key="sbs_order").value == "worst_regression"
    control, candidate = _first_pair(at)
    # candidate errors where the control succeeded come first
    assert candidate.startswith("Candidate: cand · error") and control.startswith("Control: ctrl · ok")
    at.selectbox(key="sbs_order").set_value("best_improvement").run()
    control, candidate = _first_pair(at)
    assert control.startswith("Control: ctrl · error") and candidate.startswith("Candidate: cand · ok")


def test_side_by_side_counts_improved_same_and_regressed(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    engine = create_engine(seeded.url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.captured_request_id, a.role, s.value FROM replays r JOIN arms a ON a.id = r.arm_id "
                "LEFT JOIN scores s ON s.replay_id = r.id"
            )
        ).all()
    engine.dispose()
    by_request: dict[int, dict[str, float | None]] = {}
    for request, role, value in rows:
        by_request.setdefault(request, {})[role] = value
    diffs = [
        None if (control := s.get("control")) is None or (candidate := s.get("candidate")) is None
        else candidate - control
        for s in by_request.values()
    ]  # fmt: skip
    at = app_test("views/side_by_side.py")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Improved"] == f"{sum(d is not None and d > 0 for d in diffs):,}"
    assert shown["Same score"] == f"{sum(d == 0 for d in diffs):,}"
    assert shown["Regressed"] == f"{sum(d is not None and d < 0 for d in diffs):,}"
    assert shown["Not scored"] == f"{sum(d is None for d in diffs):,}"


def test_side_by_side_word_diff_marks_what_each_side_has_alone(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    at.selectbox(key="sbs_order").set_value("request").run()
    at.segmented_control(key="sbs_view").set_value("diff").run()
    no_exception(at)
    bodies = [h.proto.body for h in at.get("html")]
    # request 1: "Answer 1 from ctrl" vs "Answer 1 from cand"
    pair = next(i for i, b in enumerate(bodies) if "Answer 1 from" in b)
    assert ">ctrl</del>" in bodies[pair] and "<ins" not in bodies[pair]
    assert ">cand</ins>" in bodies[pair + 1] and "<del" not in bodies[pair + 1]
