"""SQL for the side-by-side and segments pages: one page of answer pairs at a time, per-segment aggregates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

PairOrder = Literal["worst_regression", "best_improvement", "largest_difference", "request"]
# The candidate failing where the control answered is the worst regression there is (and the reverse the
# best improvement); then the score difference (candidate - control) decides.
_ERROR_FIRST = {
    "worst_regression": "CASE WHEN t.status = 'error' AND c.status = 'ok' THEN 0 ELSE 1 END",
    "best_improvement": "CASE WHEN c.status = 'error' AND t.status = 'ok' THEN 0 ELSE 1 END",
    "largest_difference": "CASE WHEN c.status <> t.status THEN 0 ELSE 1 END",
}
_BY_SCORE = {
    "worst_regression": "(st.value - sc.value) ASC NULLS LAST",
    "best_improvement": "(st.value - sc.value) DESC NULLS LAST",
    "largest_difference": "ABS(st.value - sc.value) DESC NULLS LAST",
}
_SCORES = (  # the chosen scorer's score of each side
    "LEFT JOIN scores sc ON sc.replay_id = c.id AND sc.scorer_name = :sname AND sc.scorer_version = :sver "
    "LEFT JOIN scores st ON st.replay_id = t.id AND st.scorer_name = :sname AND st.scorer_version = :sver "
)
_PAIRS = (
    "FROM replays c "
    "JOIN replays t ON t.captured_request_id = c.captured_request_id AND t.arm_id = :cand "
    "JOIN captured_requests cr ON cr.id = c.captured_request_id "
)


@dataclass(frozen=True)
class PairFilter:
    """What the side-by-side page asks for; `scorer` is (name, version) or None for no scores."""

    control_arm_id: int
    candidate_arm_id: int
    scorer: tuple[str, str] | None = None
    service: str | None = None
    route: str | None = None
    disagreement_only: bool = False
    min_score_gap: float = 2.0
    order: PairOrder = "worst_regression"
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class AnswerSide:
    status: str
    answer: str | None
    error_code: str | None
    score: float | None
    rationale: str | None
    latency_ms: float | None
    cost_usd: float | None


@dataclass(frozen=True)
class AnswerPair:
    request_id: str
    service: str
    route: str | None
    prompt: str
    control: AnswerSide
    candidate: AnswerSide


def segments(conn: sa.Connection, experiment_id: int) -> tuple[tuple[str, str], ...]:
    """(service, route) values seen among this experiment's requests."""
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT cr.service, COALESCE(cr.route, '') FROM captured_requests cr "
            "WHERE EXISTS (SELECT 1 FROM replays r WHERE r.captured_request_id = cr.id "
            "AND r.experiment_id = :eid) ORDER BY 1, 2 LIMIT 500"
        ),
        {"eid": experiment_id},
    )
    return tuple((str(s), str(r)) for s, r in rows)


def answer_pairs(conn: sa.Connection, f: PairFilter) -> tuple[AnswerPair, ...]:
    """One page of control/candidate answers to the same requests, filtered and ordered as asked."""
    params: dict[str, Any] = {
        "ctrl": f.control_arm_id,
        "cand": f.candidate_arm_id,
        "limit": f.limit,
        "offset": f.offset,
        "gap": f.min_score_gap,
    }
    score_cols = "NULL AS c_score, NULL AS c_rat, NULL AS t_score, NULL AS t_rat"
    score_join = ""
    if f.scorer is not None:
        params["sname"], params["sver"] = f.scorer
        score_cols = "sc.value AS c_score, sc.rationale AS c_rat, st.value AS t_score, st.rationale AS t_rat"
        score_join = _SCORES
    where = _segment_filter(f, params)
    if f.disagreement_only:
        gap = " OR ABS(sc.value - st.value) >= :gap" if f.scorer is not None else ""
        where.append(f"(c.status <> t.status{gap})")
    order = "cr.id"
    if f.order != "request":
        by_score = f"{_BY_SCORE[f.order]}, " if f.scorer is not None else ""
        order = f"{_ERROR_FIRST[f.order]}, {by_score}cr.id"
    sql = (
        "SELECT cr.request_id, cr.service, cr.route, cr.request, "
        "c.status AS c_status, c.answer_text AS c_answer, c.error_code AS c_err, c.latency_ms AS c_lat, "
        "c.cost_usd AS c_cost, t.status AS t_status, t.answer_text AS t_answer, t.error_code AS t_err, "
        f"t.latency_ms AS t_lat, t.cost_usd AS t_cost, {score_cols} "
        f"{_PAIRS}{score_join}WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit OFFSET :offset"
    )
    return tuple(
        AnswerPair(
            request_id=r.request_id,
            service=r.service,
            route=r.route,
            prompt=prompt_text(r.request),
            control=AnswerSide(r.c_status, r.c_answer, r.c_err, r.c_score, r.c_rat, r.c_lat, r.c_cost),
            candidate=AnswerSide(r.t_status, r.t_answer, r.t_err, r.t_score, r.t_rat, r.t_lat, r.t_cost),
        )
        for r in conn.execute(sa.text(sql), params)
    )


def _segment_filter(f: PairFilter, params: dict[str, Any]) -> list[str]:
    """The WHERE conditions of the control arm and the chosen segment (parameters added to `params`)."""
    where = ["c.arm_id = :ctrl"]
    if f.service:
        where.append("cr.service = :service")
        params["service"] = f.service
    if f.route:
        where.append("cr.route = :route")
        params["route"] = f.route
    return where


@dataclass(frozen=True)
class PairCounts:
    """The filtered pairs by how the candidate's score compares with the control's (as Braintrust counts)."""

    improved: int
    same: int
    regressed: int
    unscored: int  # a side failed or has no score from this scorer


def pair_counts(conn: sa.Connection, f: PairFilter) -> PairCounts:
    """How many pairs of the candidate and segment score higher, the same or lower than the control."""
    if f.scorer is None:
        return PairCounts(0, 0, 0, 0)
    params: dict[str, Any] = {"ctrl": f.control_arm_id, "cand": f.candidate_arm_id}
    params["sname"], params["sver"] = f.scorer
    where = _segment_filter(f, params)
    row = conn.execute(
        sa.text(
            "SELECT SUM(CASE WHEN st.value > sc.value THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN st.value = sc.value THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN st.value < sc.value THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN st.value IS NULL OR sc.value IS NULL THEN 1 ELSE 0 END) "
            f"{_PAIRS}{_SCORES}WHERE {' AND '.join(where)}"
        ),
        params,
    ).one()
    return PairCounts(*(int(value or 0) for value in row))


def prompt_text(request: Any) -> str:
    """The captured system prompt and messages as plain text (either API shape); JSON when unrecognised."""
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            return str(request)
    if not isinstance(request, dict):
        return json.dumps(request, ensure_ascii=False)
    parts: list[str] = []
    system = request.get("system")
    if system:
        parts.append(f"[system]\n{_content_text(system)}")
    for message in request.get("messages") or []:
        if isinstance(message, dict):
            parts.append(f"[{message.get('role', '?')}]\n{_content_text(message.get('content'))}")
    return "\n\n".join(parts) if parts else json.dumps(request, ensure_ascii=False, indent=2)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block, dict):
                texts.append(f"<{block.get('type', 'block')}>")
            else:
                texts.append(str(block))
        return "\n".join(texts)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


@dataclass(frozen=True)
class SegmentRow:
    service: str
    route: str
    arm: str
    replays: int
    error_rate: float
    mean_cost_usd: float | None
    mean_latency_ms: float | None


def segment_table(conn: sa.Connection, experiment_id: int, limit: int = 200) -> tuple[SegmentRow, ...]:
    """Per (service, route) and arm: replays, error rate, mean cost and latency (descriptive, not tests)."""
    rows = conn.execute(
        sa.text(
            "SELECT cr.service, COALESCE(cr.route, '') AS route, a.name AS arm, count(*) AS n, "
            "AVG(CASE WHEN r.status = 'error' THEN 1.0 ELSE 0.0 END) AS err, AVG(r.cost_usd) AS cost, "
            "AVG(r.latency_ms) AS lat "
            "FROM replays r JOIN arms a ON a.id = r.arm_id "
            "JOIN captured_requests cr ON cr.id = r.captured_request_id "
            "WHERE r.experiment_id = :eid GROUP BY cr.service, COALESCE(cr.route, ''), a.name "
            "ORDER BY cr.service, route, a.name LIMIT :limit"
        ),
        {"eid": experiment_id, "limit": limit},
    )
    return tuple(
        SegmentRow(
            r.service,
            r.route,
            r.arm,
            int(r.n),
            float(r.err),
            None if r.cost is None else float(r.cost),
            None if r.lat is None else float(r.lat),
        )
        for r in rows
    )
