"""The Label page: blind pairs (arms hidden), labelled items skipped, progress over control-vs-candidate
pairs, agreement with the judge after 30 labels or at the end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from dashboard.answer_text import markdown_html
from dashboard.views.label import AGREEMENT_AFTER
from scoring.labels import next_label_item
from scoring.pairwise import to_canonical
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import Arm, CapturedRequest, Label, Preference, Replay
from tests.support.dashboard_seed import add_experiment

pytestmark = pytest.mark.postgres
N = 3
AGREEMENT = "Agreement with the judge"


def _seed_pairs(url: str) -> int:
    """Three requests answered by both arms, and a pairwise judge that prefers the candidate on each."""
    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        experiment, control, candidate = add_experiment(session, "label-me")
        for i in range(N):
            message = {"role": "user", "content": f"prompt number {i}"}
            capture = CapturedRequest(
                request_id=f"lab-{i}", captured_at=datetime.now(UTC), service="support",
                api="anthropic.messages", model="model-a",
                request={"model": "model-a", "max_tokens": 64, "messages": [message]},
            )  # fmt: skip
            session.add(capture)
            session.flush()
            for arm, text in ((control, f"plain answer {i}"), (candidate, f"other answer {i}")):
                session.add(
                    Replay(experiment_id=experiment.id, arm_id=arm.id, captured_request_id=capture.id,
                           status="ok", answer_text=text)
                )  # fmt: skip
            for order in ("ab", "ba"):
                session.add(
                    Preference(experiment_id=experiment.id, captured_request_id=capture.id,
                               arm_a_id=control.id, arm_b_id=candidate.id, scorer_name="pairjudge",
                               scorer_version="1", order_shown=order, result="b")
                )  # fmt: skip
        experiment_id = experiment.id
    engine.dispose()
    return experiment_id


def _shown(at: AppTest) -> list[str]:
    """The prompt (literal text) and the two answers (formatted HTML) the page shows."""
    return [c.value for c in at.code] + [h.proto.body for h in at.get("html")]


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def test_label_page_is_blind_skips_done_items_and_shows_agreement_last(
    migrated: str, app_test: Callable[..., AppTest]
) -> None:
    experiment_id = _seed_pairs(migrated)
    at = app_test("views/label.py", experiment_id=experiment_id)
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("progress")[0].proto.text == f"0 of {N} pairs labelled by you"
    assert not any(s.value == AGREEMENT for s in at.subheader)
    shown = _shown(at)
    assert not any(name in " ".join(shown) for name in ("ctrl", "cand", "model-a", "model-b"))

    engine = create_engine(migrated)
    try:
        for done in range(N):
            with session_scope(session_factory(engine)) as session:
                item = next_label_item(session, experiment_id, "local")
            assert item is not None
            # the page shows the same next item: the prompt as typed, the answers formatted
            assert shown == [item.prompt, markdown_html(item.first), markdown_html(item.second)]
            at = _click(at, "Answer 1 is better")
            with session_scope(session_factory(engine)) as session:
                labels = session.scalars(sa.select(Label).order_by(Label.id)).all()
                assert len(labels) == done + 1
                assert (labels[-1].captured_request_id, labels[-1].order_shown) == (
                    item.captured_request_id, item.order,
                )  # fmt: skip
                assert labels[-1].result == to_canonical("first", item.order)
            shown = _shown(at)
            if done < N - 1:
                assert not any(s.value == AGREEMENT for s in at.subheader)
    finally:
        engine.dispose()
    assert at.get("progress")[0].proto.text == f"{N} of {N} pairs labelled by you"
    assert [s.value for s in at.success] == [
        f"You have labelled all {N} pairs of this experiment. Thank you."
    ]
    assert any(s.value == AGREEMENT for s in at.subheader)
    table = at.dataframe[0].value
    assert list(table["judge"]) == ["pairjudge"] and list(table["labels compared"]) == [N]


def test_progress_leaves_out_the_aa_copy_and_agreement_shows_after_30_labels(
    migrated: str, app_test: Callable[..., AppTest]
) -> None:
    n = AGREEMENT_AFTER + 5
    engine = create_engine(migrated)
    with session_scope(session_factory(engine)) as session:
        experiment, control, candidate = add_experiment(session, "label-many")
        aa = Arm(name="ctrl-aa", role="aa", provider="sim", model="model-a")
        experiment.arms.append(aa)
        session.flush()
        for i in range(n):
            message = {"role": "user", "content": f"prompt {i}"}
            capture = CapturedRequest(
                request_id=f"many-{i}", captured_at=datetime.now(UTC), service="support",
                api="anthropic.messages", model="model-a",
                request={"model": "model-a", "max_tokens": 64, "messages": [message]},
            )  # fmt: skip
            session.add(capture)
            session.flush()
            for arm in (control, candidate, aa):
                session.add(
                    Replay(experiment_id=experiment.id, arm_id=arm.id, captured_request_id=capture.id,
                           status="ok", answer_text=f"{arm.name} {i}")
                )  # fmt: skip
            for order in ("ab", "ba"):
                session.add(
                    Preference(experiment_id=experiment.id, captured_request_id=capture.id,
                               arm_a_id=control.id, arm_b_id=candidate.id, scorer_name="pairjudge",
                               scorer_version="1", order_shown=order, result="b" if i % 3 else "a")
                )  # fmt: skip
            if i < AGREEMENT_AFTER:  # this person labelled 30 candidate pairs (and one A/A pair)
                session.add(
                    Label(experiment_id=experiment.id, captured_request_id=capture.id, arm_a_id=control.id,
                          arm_b_id=candidate.id, labeler="local", order_shown="ab",
                          result="b" if i % 2 else "a")
                )  # fmt: skip
            if i == 0:
                session.add(
                    Label(experiment_id=experiment.id, captured_request_id=capture.id, arm_a_id=control.id,
                          arm_b_id=aa.id, labeler="local", order_shown="ab", result="tie")
                )  # fmt: skip
        experiment_id = experiment.id
    engine.dispose()
    at = app_test("views/label.py", experiment_id=experiment_id)
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("progress")[0].proto.text == f"{AGREEMENT_AFTER} of {n} pairs labelled by you"
    assert len(_shown(at)) == 3  # pairs remain to label
    assert any(s.value == AGREEMENT for s in at.subheader)
    table = at.dataframe[0].value
    assert list(table["judge"]) == ["pairjudge"] and list(table["labels compared"]) == [AGREEMENT_AFTER]
    assert all(len(k) <= 9 for k in table["kappa"])
