"""Blind labels: order randomised per item and stored; judge–human agreement by judge version."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from scoring.labels import Choice, judge_human_agreement, next_label_item, record_label
from scoring.registry import scoring_spec
from scoring.results import pair_results
from scoring.service import score_experiment
from shadowlab.db import session_scope
from shadowlab.models import Arm, Label, Replay
from tests.support.judge_calls import RetryLimiter, Unlimited
from tests.support.replayed_arms import N_REQUESTS, Seeded, sim_provider

pytestmark = pytest.mark.postgres
PREF = {"scoring": {"judges": [{"name": "pref", "kind": "pairwise", "model": "sim-judge"}]}}


def test_labels_are_blind_randomised_and_agree_with_the_judge(seeded: Seeded) -> None:
    asyncio.run(
        score_experiment(
            seeded.factory, seeded.experiment_id, scoring_spec(PREF),
            provider_for=lambda judge: sim_provider(seeded.sim), cost_of=lambda m, u: 0.0,
            budget=Unlimited(), limiter=RetryLimiter(concurrency=8),
        )
    )  # fmt: skip
    with seeded.factory() as session:
        verdicts = pair_results(session, seeded.experiment_id, "pref", seeded.candidate_id)
    orders = set()
    for _ in range(N_REQUESTS):
        with session_scope(seeded.factory) as session:
            item = next_label_item(session, seeded.experiment_id, "ann")
            assert item is not None and item.arm_a_id == seeded.control_id
            orders.add(item.order)
            # The labeller sees answers only; this one agrees with the judge's first order.
            candidate_first = item.order == "ba"
            judged = verdicts[item.captured_request_id][0]
            choice: Choice = (
                "tie" if judged == "tie" else ("first" if (judged == "b") == candidate_first else "second")
            )
            choice = "tie" if item.captured_request_id % 4 == 0 else choice  # this labeller hesitates
            record_label(session, seeded.experiment_id, item, "ann", choice)
    with seeded.factory() as session:
        assert next_label_item(session, seeded.experiment_id, "ann") is None
        labels = session.scalars(sa.select(Label)).all()
        assert len(labels) == N_REQUESTS and {lab.order_shown for lab in labels} == {"ab", "ba"} == orders
        assert all(
            lab.result
            == ("tie" if lab.captured_request_id % 4 == 0 else verdicts[lab.captured_request_id][0])
            for lab in labels
        )
        assert all(lab.created_at is not None and lab.labeler == "ann" for lab in labels)
        agreement = judge_human_agreement(session, seeded.experiment_id, "pref")
    ((version, result),) = agreement.items()
    assert result.n == N_REQUESTS and result.ci_low <= result.kappa <= result.ci_high


def test_the_a_a_copy_of_the_control_is_never_offered_for_labelling(seeded: Seeded) -> None:
    with session_scope(seeded.factory) as session:
        copy = Arm(
            experiment_id=seeded.experiment_id, name="control-aa", role="aa", provider="anthropic",
            model="ctrl-model",
        )  # fmt: skip
        session.add(copy)
        session.flush()
        for replay in session.scalars(sa.select(Replay).where(Replay.arm_id == seeded.control_id)).all():
            session.add(
                Replay(experiment_id=seeded.experiment_id, arm_id=copy.id, status="ok",
                       captured_request_id=replay.captured_request_id, answer_text=replay.answer_text,
                       tool_calls=[], cost_usd=0.001)
            )  # fmt: skip
    offered = []
    while True:
        with session_scope(seeded.factory) as session:
            item = next_label_item(session, seeded.experiment_id, "bob")
            if item is None:
                break
            offered.append(item.arm_b_id)
            record_label(session, seeded.experiment_id, item, "bob", "tie")
    assert offered and set(offered) == {seeded.candidate_id} and len(offered) == N_REQUESTS
