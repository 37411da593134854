"""Blind human labels: pairwise items with the A/B order randomised per item, and judge–human agreement.

An item is one (request, control, candidate) pair. Its display order is drawn from a hash of the request,
the arms and the labeller, so it is random across items, stable if the page reloads, and stored with the
label. Labels are stored in canonical terms like preferences (arm A = control; result names the arm).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scoring.agreement import Kappa, kappa
from scoring.pairwise import Canonical, Order, combine, to_canonical
from scoring.results import pair_results, scorer_versions
from scoring.store import pending_pairs
from shadowlab.models import Arm, Label

__all__ = ["Choice", "LabelItem", "judge_human_agreement", "next_label_item", "record_label"]

Choice = Literal["first", "second", "tie"]
_COMBINED: dict[float, Canonical] = {0.0: "a", 0.5: "tie", 1.0: "b"}


@dataclass(frozen=True)
class LabelItem:
    """What a labeller sees: the prompt and two answers, arms hidden; `order` is kept for storing."""

    captured_request_id: int
    arm_a_id: int
    arm_b_id: int
    order: Order
    prompt: str
    first: str
    second: str


def _order(request_id: int, arm_a: int, arm_b: int, labeler: str) -> Order:
    digest = hashlib.sha256(f"{request_id}:{arm_a}:{arm_b}:{labeler}".encode()).digest()
    return "ab" if digest[0] % 2 == 0 else "ba"


def next_label_item(session: Session, experiment_id: int, labeler: str) -> LabelItem | None:
    """The next control-vs-candidate pair this labeller has not labelled (None when all are done). The A/A
    copy of the control is never offered: a person's time goes to the comparisons the verdict rests on."""
    aa_copies = set(
        session.scalars(sa.select(Arm.id).where(Arm.experiment_id == experiment_id, Arm.role == "aa"))
    )
    labelled = {
        (request, arm_b)
        for request, arm_b in session.execute(
            sa.select(Label.captured_request_id, Label.arm_b_id).where(
                Label.experiment_id == experiment_id, Label.labeler == labeler
            )
        )
    }
    for item in pending_pairs(session, experiment_id, f"human:{labeler}", "blind"):
        if (item.captured_request_id, item.arm_b_id) in labelled or item.arm_b_id in aa_copies:
            continue
        order = _order(item.captured_request_id, item.arm_a_id, item.arm_b_id, labeler)
        if item.order != order:
            continue  # pending_pairs yields both orders; show the one drawn for this item
        subject = item.subject
        return LabelItem(
            item.captured_request_id,
            item.arm_a_id,
            item.arm_b_id,
            order,
            subject.prompt,
            subject.first,
            subject.second,
        )
    return None


def record_label(
    session: Session,
    experiment_id: int,
    item: LabelItem,
    labeler: str,
    choice: Choice,
    comment: str | None = None,
) -> None:
    """Store one label with the order shown and the time (a repeated label is ignored, the first stays)."""
    exists = session.scalar(
        sa.select(Label.id).where(
            Label.captured_request_id == item.captured_request_id,
            Label.arm_a_id == item.arm_a_id,
            Label.arm_b_id == item.arm_b_id,
            Label.labeler == labeler,
        )
    )
    if exists is None:
        session.add(
            Label(
                experiment_id=experiment_id,
                captured_request_id=item.captured_request_id,
                arm_a_id=item.arm_a_id,
                arm_b_id=item.arm_b_id,
                labeler=labeler,
                order_shown=item.order,
                result=to_canonical(choice, item.order),
                comment=comment,
            )
        )


def judge_human_agreement(session: Session, experiment_id: int, scorer_name: str) -> dict[str, Kappa]:
    """Cohen's kappa between human labels and the judge's order-combined verdict, for each judge version.

    Categories a (control better) / tie / b (candidate better); every human label on a prompt counts once."""
    labels = session.execute(
        sa.select(Label.captured_request_id, Label.arm_b_id, Label.result).where(
            Label.experiment_id == experiment_id
        )
    ).all()
    out: dict[str, Kappa] = {}
    for version in scorer_versions(session, experiment_id, scorer_name):
        human: list[str] = []
        judge: list[str] = []
        cache: dict[int, dict[int, tuple[Canonical, Canonical]]] = {}
        for request_id, arm_b, result in labels:
            if arm_b not in cache:
                cache[arm_b] = pair_results(session, experiment_id, scorer_name, arm_b, version.version)
            verdicts = cache[arm_b].get(request_id)
            if verdicts is not None:
                human.append(result)
                judge.append(_COMBINED[combine(*verdicts)])
        if human:
            out[version.version] = kappa(human, judge, ["a", "tie", "b"])
    return out
