"""Reading what to score and writing scores: every write is one idempotent row (ON CONFLICT DO NOTHING).

A replay is pending for a scorer version while it has no `scores` row for it; a (request, control, candidate,
order) is pending while it has no `preferences` row. Rows are written as results arrive, so a crashed run
loses at most the calls in flight and the next run does only the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scoring.base import PairSubject, ScoreResult, ScoringError, Subject
from scoring.pairwise import ORDERS, Canonical, Order
from shadowlab import store
from shadowlab.apis import normalize_request_body
from shadowlab.apis.internal import NormalizedRequest, TextBlock, ToolResultBlock, ToolUseBlock
from shadowlab.models import Arm, CapturedRequest, Preference, Replay, Score

__all__ = [
    "PairItem",
    "PointItem",
    "pending_pairs",
    "pending_points",
    "render_prompt",
    "write_preference",
    "write_score",
]


@dataclass(frozen=True)
class PointItem:
    replay_id: int
    subject: Subject
    captured_request_id: int | None = None


@dataclass(frozen=True)
class PairItem:
    """One order of one control/candidate pair; `subject` already shows the answers in `order`."""

    captured_request_id: int
    arm_a_id: int  # control
    arm_b_id: int  # candidate
    order: Order
    subject: PairSubject


def render_prompt(request: NormalizedRequest) -> str:
    """The conversation as plain text for a judge: system, then each turn; tool traffic as compact JSON."""
    parts = [f"[system]\n{request.system}"] if request.system else []
    for message in request.messages:
        texts: list[str] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                texts.append(f"(tool call {block.name} {block.input})")
            elif isinstance(block, ToolResultBlock):
                result = " ".join(b.text for b in block.content if isinstance(b, TextBlock))
                texts.append(f"(tool result {result})")
            else:
                texts.append(f"({block.type})")
        parts.append(f"[{message.role}]\n" + "\n".join(texts))
    return "\n\n".join(parts)


def _subject(capture: CapturedRequest, replay: Replay) -> Subject:
    request = normalize_request_body(capture.api, capture.request)
    reference = (capture.response or {}).get("text")
    return Subject(
        prompt=render_prompt(request),
        answer=replay.answer_text or "",
        tool_calls=tuple(call for call in replay.tool_calls or () if isinstance(call, Mapping)),
        reference=reference if isinstance(reference, str) else None,
        tools=tuple({"name": t.name, "input_schema": t.input_schema} for t in request.tools),
    )


def pending_points(session: Session, experiment_id: int, name: str, version: str) -> list[PointItem]:
    """Successful replays of the experiment with no score from this scorer version."""
    scored = sa.exists().where(
        Score.replay_id == Replay.id, Score.scorer_name == name, Score.scorer_version == version
    )
    rows = session.execute(
        sa.select(Replay, CapturedRequest)
        .join(CapturedRequest, CapturedRequest.id == Replay.captured_request_id)
        .where(Replay.experiment_id == experiment_id, Replay.status == "ok", ~scored)
        .order_by(Replay.id)
    ).all()
    return [PointItem(replay.id, _subject(capture, replay), capture.id) for replay, capture in rows]


def _control_and_candidates(session: Session, experiment_id: int) -> tuple[Arm, list[Arm]]:
    arms = store.arms.of_experiment(experiment_id, session=session)
    controls = [arm for arm in arms if arm.role == "control"]
    if not controls:
        raise ScoringError(
            f"experiment {experiment_id}: expected a control arm for pairwise judging, found none"
        )
    return controls[0], [arm for arm in arms if arm.id != controls[0].id]


def pending_pairs(session: Session, experiment_id: int, name: str, version: str) -> list[PairItem]:
    """(request, control, candidate, order) with both answers ok and no preference row from this version."""
    control, others = _control_and_candidates(session, experiment_id)
    done = {
        (row.captured_request_id, row.arm_b_id, row.order_shown)
        for row in session.execute(
            sa.select(Preference.captured_request_id, Preference.arm_b_id, Preference.order_shown).where(
                Preference.experiment_id == experiment_id,
                Preference.scorer_name == name,
                Preference.scorer_version == version,
                Preference.arm_a_id == control.id,
            )
        )
    }
    replays = session.execute(
        sa.select(Replay, CapturedRequest)
        .join(CapturedRequest, CapturedRequest.id == Replay.captured_request_id)
        .where(Replay.experiment_id == experiment_id, Replay.status == "ok")
        .order_by(Replay.captured_request_id, Replay.arm_id)
    ).all()
    by_request: dict[int, dict[int, tuple[Replay, CapturedRequest]]] = {}
    for replay, capture in replays:
        by_request.setdefault(capture.id, {})[replay.arm_id] = (replay, capture)
    items: list[PairItem] = []
    for request_id, answers in by_request.items():
        if control.id not in answers:
            continue
        base, capture = answers[control.id]
        subject = _subject(capture, base)
        for arm in others:
            if arm.id not in answers:
                continue
            candidate = answers[arm.id][0].answer_text or ""
            for order in ORDERS:
                if (request_id, arm.id, order) in done:
                    continue
                first, second = (subject.answer, candidate) if order == "ab" else (candidate, subject.answer)
                shown = PairSubject(subject.prompt, first, second, subject.reference)
                items.append(PairItem(request_id, control.id, arm.id, order, shown))
    return items


def write_score(session: Session, replay_id: int, name: str, version: str, result: ScoreResult) -> None:
    details = dict(result.details)
    if result.failure:
        details["failure"] = result.failure
    store.scores.add(
        replay_id=replay_id, scorer_name=name, scorer_version=version, value=result.value,
        rationale=result.rationale, details=details, session=session,
    )  # fmt: skip


def write_preference(
    session: Session,
    experiment_id: int,
    item: PairItem,
    name: str,
    version: str,
    result: Canonical,
    rationale: str | None,
) -> None:
    store.scores.add_preference(
        experiment_id=experiment_id, captured_request_id=item.captured_request_id, arm_a_id=item.arm_a_id,
        arm_b_id=item.arm_b_id, scorer_name=name, scorer_version=version, order_shown=item.order,
        result=result, rationale=rationale, session=session,
    )  # fmt: skip
