"""What a scorer sees and what it writes: every row written is idempotent (ON CONFLICT DO NOTHING).

A replay is pending for a scorer version while it has no `scores` row for it; a (request, control, candidate,
order) is pending while it has no `preferences` row. `scoring.tasks` leases pending items and reads them
here (`point_items`, `pair_items`), a batch at a time; results are written as they arrive (`write`: what one
group commit gathered, one statement per table), so a crashed run loses at most the calls in flight and the
next run does only the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scoring.base import PairSubject, ScoreResult, ScoringError, Subject
from scoring.pairwise import ORDERS, Canonical, Order
from shadowlab import store
from shadowlab.apis import normalize_request_body
from shadowlab.apis.internal import NormalizedRequest, TextBlock, ToolResultBlock, ToolUseBlock
from shadowlab.models import Arm, CapturedRequest, Preference, Replay

# fmt: off
__all__ = [
    "PairItem", "PairWritten", "PointItem", "PointWritten", "Written", "claimed_point_items",
    "claiming_points", "control_and_candidates", "pair_items", "pending_pairs", "point_items",
    "render_prompt", "result_rows", "write",
]
# fmt: on


@dataclass(frozen=True)
class PointItem:
    replay_id: int
    subject: Subject
    captured_request_id: int | None = None
    task_id: int = 0  # its score task (`scoring.tasks`)


@dataclass(frozen=True)
class PairItem:
    """One order of one control/candidate pair; `subject` already shows the answers in `order`."""

    captured_request_id: int
    arm_a_id: int  # control
    arm_b_id: int  # candidate
    order: Order
    subject: PairSubject
    task_id: int = 0  # its score task (`scoring.tasks`)


@dataclass(frozen=True)
class PointWritten:
    """A score to store for one replay, and the task it finishes."""

    task_id: int
    replay_id: int
    result: ScoreResult


@dataclass(frozen=True)
class PairWritten:
    """A preference to store (canonical: arm A = control), and the task it finishes."""

    task_id: int
    item: PairItem
    result: Canonical
    rationale: str | None


Written = PointWritten | PairWritten


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


# What a subject is made of, read as columns (not entities: a claim reads a batch of them at every wave).
_ANSWERED = (Replay.id, Replay.arm_id, Replay.captured_request_id, Replay.answer_text, Replay.tool_calls,
             CapturedRequest.api, CapturedRequest.request, CapturedRequest.response)  # fmt: skip


def _answered(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Replays with their capture's request and response (`_ANSWERED`), as rows."""
    return (
        sa.select(*_ANSWERED)
        .join(CapturedRequest, CapturedRequest.id == Replay.captured_request_id)
        .where(*where)
    )


def _subject(row: Any, asked: dict[int, Subject] | None = None) -> Subject:
    """The subject of one `_answered` row (or a named tuple of its columns); `asked` keeps what its capture
    asked (prompt, reference, tools) by capture id, so the arms of one capture in a batch normalise its
    request once."""
    question = None if asked is None else asked.get(row.captured_request_id)
    if question is None:
        request = normalize_request_body(row.api, row.request)
        reference = (row.response or {}).get("text")
        question = Subject(
            prompt=render_prompt(request),
            answer="",
            reference=reference if isinstance(reference, str) else None,
            tools=tuple({"name": t.name, "input_schema": t.input_schema} for t in request.tools),
        )
        if asked is not None:
            asked[row.captured_request_id] = question
    tool_calls = tuple(call for call in row.tool_calls or () if isinstance(call, Mapping))
    return dataclasses.replace(question, answer=row.answer_text or "", tool_calls=tool_calls)


def point_items(session: Session, tasks: Sequence[tuple[int, int]]) -> list[PointItem]:
    """The items of (task id, replay id) pairs, with their subjects, in task order."""
    rows = session.execute(_answered(Replay.id.in_([replay_id for _, replay_id in tasks]))).all()
    found, asked = {row.id: row for row in rows}, dict[int, Subject]()
    return [
        PointItem(replay_id, _subject(found[replay_id], asked), found[replay_id].captured_request_id, task)
        for task, replay_id in tasks
        if replay_id in found
    ]


def claiming_points(claim: sa.Update) -> sa.Select[Any]:
    """One statement that runs `claim` (an UPDATE of score tasks RETURNING their `id` and `replay_id`) and
    reads the claimed items' rows (Postgres: a data-modifying CTE), for `claimed_point_items`."""
    claimed = claim.cte("claimed")
    return (
        _answered()
        .add_columns(claimed.c.id.label("task_id"))
        .join(claimed, claimed.c.replay_id == Replay.id)
        .order_by(claimed.c.id)
    )


def claimed_point_items(rows: Sequence[Any]) -> list[PointItem]:
    """The items of the rows a `claiming_points` statement returned, with their subjects, in task order."""
    asked = dict[int, Subject]()
    return [PointItem(row.id, _subject(row, asked), row.captured_request_id, row.task_id) for row in rows]


def pair_items(
    session: Session, experiment_id: int, control_id: int, tasks: Sequence[tuple[int, int, int, str]]
) -> list[PairItem]:
    """The items of (task id, request id, candidate arm id, order) tuples, each shown in its order."""
    request_ids = {request_id for _, request_id, _, _ in tasks}
    rows = session.execute(
        _answered(Replay.experiment_id == experiment_id, Replay.captured_request_id.in_(request_ids),
                  Replay.arm_id.in_({control_id} | {arm for _, _, arm, _ in tasks}))
    ).all()  # fmt: skip
    answers = {(row.captured_request_id, row.arm_id): row for row in rows}
    items = []
    for task, request_id, arm_id, order in tasks:
        if (request_id, control_id) not in answers or (request_id, arm_id) not in answers:
            continue
        subject = _subject(answers[(request_id, control_id)])
        items.append(_pair_item(task, subject, answers[(request_id, arm_id)], order, control_id))
    return items


def _pair_item(
    task_id: int, subject: Subject, candidate: sa.Row[Any], order: str, control_id: int
) -> PairItem:
    answer = candidate.answer_text or ""
    first, second = (subject.answer, answer) if order == "ab" else (answer, subject.answer)
    shown = PairSubject(subject.prompt, first, second, subject.reference)
    shown_order: Order = "ab" if order == "ab" else "ba"
    return PairItem(candidate.captured_request_id, control_id, candidate.arm_id, shown_order, shown, task_id)


def control_and_candidates(session: Session, experiment_id: int) -> tuple[Arm, list[Arm]]:
    arms = store.arms.of_experiment(experiment_id, session=session)
    controls = [arm for arm in arms if arm.role == "control"]
    if not controls:
        raise ScoringError(
            f"experiment {experiment_id}: expected a control arm for pairwise judging, found none"
        )
    return controls[0], [arm for arm in arms if arm.id != controls[0].id]


def pending_pairs(session: Session, experiment_id: int, name: str, version: str) -> list[PairItem]:
    """(request, control, candidate, order) with both answers ok and no preference row from this version."""
    control, others = control_and_candidates(session, experiment_id)
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
        _answered(Replay.experiment_id == experiment_id, Replay.status == "ok").order_by(
            Replay.captured_request_id, Replay.arm_id
        )
    ).all()
    by_request: dict[int, dict[int, sa.Row[Any]]] = {}
    for row in replays:
        by_request.setdefault(row.captured_request_id, {})[row.arm_id] = row
    items: list[PairItem] = []
    for request_id, answers in by_request.items():
        if control.id not in answers:
            continue
        subject = _subject(answers[control.id])
        for arm in others:
            if arm.id not in answers:
                continue
            candidate = answers[arm.id].answer_text or ""
            for order in ORDERS:
                if (request_id, arm.id, order) in done:
                    continue
                first, second = (subject.answer, candidate) if order == "ab" else (candidate, subject.answer)
                shown = PairSubject(subject.prompt, first, second, subject.reference)
                items.append(PairItem(request_id, control.id, arm.id, order, shown))
    return items


def result_rows(
    experiment_id: int, name: str, version: str, written: Sequence[Written]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `scores` and `preferences` rows of results of this scorer version."""
    scores, preferences = [], []
    for one in written:
        if isinstance(one, PointWritten):
            result = one.result
            details = dict(result.details) | ({"failure": result.failure} if result.failure else {})
            scores.append({"replay_id": one.replay_id, "scorer_name": name, "scorer_version": version,
                           "value": result.value, "rationale": result.rationale,
                           "details": details})  # fmt: skip
        else:
            item = one.item
            preferences.append(
                {"experiment_id": experiment_id, "captured_request_id": item.captured_request_id,
                 "arm_a_id": item.arm_a_id, "arm_b_id": item.arm_b_id, "scorer_name": name,
                 "scorer_version": version, "order_shown": item.order, "result": one.result,
                 "rationale": one.rationale}
            )  # fmt: skip
    return scores, preferences


def write(session: Session, experiment_id: int, name: str, version: str, written: Sequence[Written]) -> None:
    """Store results of this scorer version, scores and preferences one statement each (a row that exists
    already stays)."""
    scores, preferences = result_rows(experiment_id, name, version, written)
    store.scores.add_many(scores, session=session)
    store.scores.add_preferences(preferences, session=session)
