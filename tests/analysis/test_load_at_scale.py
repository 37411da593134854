"""20,000 requests in Postgres: segment counts, pairs and routing against a hand computation over the rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.experiment_analysis import analyze_experiment
from shadowlab import migrate
from shadowlab.db import create_engine
from shadowlab.models import Arm, CapturedRequest, Experiment, Replay, Score

N = 20_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = {"primary_metric": "judge", "design": "fixed", "alpha": 0.05, "min_sample": 100, "max_sample": 100_000}
# the candidate's judge shift per route: as good or better on faq and chat, clearly worse on code
SHIFT = {"faq": 0.6, "code": -1.0, "chat": 0.6}


def _request(i: int) -> dict[str, Any]:
    """Request i as the test knows it: the facts are written down here, not computed by shadowlab."""
    turns = i % 4 + 1
    length = (40, 300, 1500, 4500)[i % 4 if i % 7 else 0]  # every bucket, some prompts short
    return {
        "service": ("app", "bot")[i % 2],
        "route": ("faq", "code", "chat")[i % 3],
        "language": "de" if i % 5 == 0 else "en",
        "turns": turns,
        "chars": length * turns,  # every user message holds `length` characters, nothing else has text
    }


def _body(fact: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in range(fact["turns"]):
        if turn:
            messages.append({"role": "assistant", "content": []})
        messages.append({"role": "user", "content": "x" * (fact["chars"] // fact["turns"])})
    return {"model": "m", "max_tokens": 16, "messages": messages}


def _seed(
    url: str,
) -> tuple[list[dict[str, Any]], dict[tuple[int, int], float], dict[tuple[int, int], float]]:
    engine = create_engine(url)
    migrate.upgrade(engine)
    rng = np.random.default_rng(11)
    facts = [_request(i) for i in range(N)]
    quality = np.round(rng.normal(6.0, 1.0, N), 2)
    judge: dict[tuple[int, int], float] = {}
    cost: dict[tuple[int, int], float] = {}
    with Session(engine) as session, session.begin():
        session.add(Experiment(id=1, name="scale", status="running", plan=PLAN))
        session.add_all([
            Arm(id=1, experiment_id=1, name="control", role="control", provider="sim", model="big"),
            Arm(id=2, experiment_id=1, name="cheap", role="candidate", provider="sim", model="small"),
        ])  # fmt: skip
        session.flush()
        # as ingest stores them; every tenth row as an older capture without the facts (read from its body)
        session.execute(sa.insert(CapturedRequest), [
            {"id": i + 1, "request_id": f"r{i}", "captured_at": T0, "service": f["service"],
             "route": f["route"], "tags": {"language": f["language"]}, "api": "anthropic.messages",
             "request": _body(f), "prompt_chars": None if i % 10 == 0 else f["chars"],
             "user_turn": None if i % 10 == 0 else f["turns"]}
            for i, f in enumerate(facts)
        ])  # fmt: skip
        replays, scores = [], []
        for i, f in enumerate(facts):
            for arm in (1, 2):
                failed = (i * 7 + arm) % 97 == 0
                cost[(i, arm)] = round((0.003 if arm == 1 else 0.001) * (1 + (i % 13) / 50), 6)
                replay_id = 2 * i + arm
                replays.append({
                    "id": replay_id, "experiment_id": 1, "arm_id": arm, "captured_request_id": i + 1,
                    "status": "error" if failed else "ok", "ttft_ms": None if failed else 200.0 + i % 50,
                    "latency_ms": None if failed else 900.0 + i % 70,
                    "cost_usd": None if failed else cost[(i, arm)],
                })  # fmt: skip
                if failed:
                    del cost[(i, arm)]
                    continue
                value = float(quality[i] + (SHIFT[f["route"]] if arm == 2 else 0.0) + rng.normal(0, 0.3))
                judge[(i, arm)] = value
                scores.append({"replay_id": replay_id, "scorer_name": "judge", "scorer_version": "1",
                               "value": value, "created_at": T0})  # fmt: skip
        session.execute(sa.insert(Replay), replays)
        session.execute(sa.insert(Score), scores)
    engine.dispose()
    return facts, judge, cost


def _bucket(chars: int) -> str:
    if chars < 200:
        return "chars 0-199"
    if chars < 1000:
        return "chars 200-999"
    if chars < 4000:
        return "chars 1000-3999"
    return "chars 4000+"


def _labels(f: dict[str, Any]) -> dict[str, str]:
    return {
        "service": f["service"],
        "route": f"{f['service']}/{f['route']}",
        "language": f["language"],
        "prompt_length": _bucket(f["chars"]),
        "turn": "turn 3+" if f["turns"] >= 3 else f"turn {f['turns']}",
    }


@pytest.mark.postgres
def test_segments_and_routing_match_a_hand_computation(pg_database: str) -> None:
    facts, judge, cost = _seed(pg_database)
    engine = create_engine(pg_database)
    with Session(engine) as session, session.begin():
        report = analyze_experiment(session, "scale", store=False)
    engine.dispose()

    labels = [_labels(f) for f in facts]
    expected_requests = {(dim, label): count for dim in labels[0]
                         for label, count in Counter(row[dim] for row in labels).items()}  # fmt: skip
    judged = {e.dimension: e for e in report.segments}
    assert set(judged) == {"service", "route", "language", "prompt_length", "turn"}
    found_requests = {(e.dimension, e.segment): e.n_requests for e in report.segments}
    assert found_requests == expected_requests
    # pairs per segment on the judge: both arms answered and scored
    for effect in (e for e in report.segments if e.metric == "judge"):
        members = [i for i, row in enumerate(labels) if row[effect.dimension] == effect.segment]
        pairs = [i for i in members if (i, 1) in judge and (i, 2) in judge]
        assert effect.n == len(pairs)
        assert effect.comparison is not None
        # a failed answer counts at the worst score any arm got in the segment (docs/analysis.md: failures)
        worst = min(judge[(i, arm)] for i in members for arm in (1, 2) if (i, arm) in judge)
        scored = [judge.get((i, 2), worst) - judge.get((i, 1), worst) for i in members]
        assert effect.comparison.result.primary.estimate == pytest.approx(sum(scored) / len(scored), abs=1e-9)

    routing = report.routing
    assert routing is not None and routing.dimension == "route"
    by_segment = {r.segment: r for r in routing.segments}
    assert set(by_segment) == {label for dim, label in expected_requests if dim == "route"}
    for segment, route in by_segment.items():
        members = [i for i, row in enumerate(labels) if row["route"] == segment]
        assert route.n_requests == len(members)
        assert route.share == pytest.approx(len(members) / N)
        # the rule's cost per request: the candidate's mean cost over the segment's complete cost pairs
        paired = [i for i in members if (i, 1) in cost and (i, 2) in cost]
        cheap = route.candidates[0]
        assert cheap.arm == "cheap"
        assert cheap.cost_per_request == pytest.approx(sum(cost[(i, 2)] for i in paired) / len(paired))
        # better or as good and cheaper on faq and chat: routed; clearly worse on code: stays
        worse = segment.endswith("/code")
        assert (route.arm, route.status) == (("control", "control") if worse else ("cheap", "routed"))
