"""Budget reservations: worst case before, real cost after, never above the budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.budget import (
    ArmCall,
    BudgetError,
    committed_usd,
    lock_experiment,
    reserve,
    set_budget,
    settle,
    worst_case_usd,
)
from shadowlab.budget_judges import (
    JudgeHold,
    JudgeRef,
    judge_spend_usd,
    reserve_judge,
    reserve_judges,
    reserve_judges_alone,
    settle_and_reserve_judges,
    settle_judge,
    settle_judges,
)
from shadowlab.db import session_scope
from shadowlab.models import JudgeCall
from shadowlab.pricing import PriceTable
from tests.support.ledger import budget_db


@pytest.fixture
def factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    """SQLite, or a migrated Postgres where a test asks for it (`indirect` "postgres": its own statements)."""
    postgres = getattr(request, "param", "sqlite") == "postgres"
    yield from budget_db(tmp_path, request, postgres=postgres, captures=5)


def test_worst_case_uses_the_output_cap_and_the_dearest_input_rate() -> None:
    prices = PriceTable.from_json(
        {
            "m": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 1e-5,
                "cache_creation_input_token_cost": 2e-6,
            }
        }
    )
    cost = worst_case_usd([ArmCall("m", 1000, 100), ArmCall("m", 1000, 100)], prices, judge_usd=0.5)
    assert cost == pytest.approx(0.5 + 2 * (1000 * 2e-6 + 100 * 1e-5))


def test_worst_case_takes_the_dearest_rate_of_every_long_context_tier() -> None:
    entry = {
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 1e-5,
        "input_cost_per_token_above_128k_tokens": 3e-6,
        "cache_creation_input_token_cost_above_200k_tokens": 4e-6,  # the dearest input rate
        "output_cost_per_token_above_128k_tokens": 2e-5,
        "output_cost_per_token_above_272k_tokens": 3e-5,
    }
    prices = PriceTable.from_json({"m": entry})
    cost = worst_case_usd([ArmCall("m", 1000, 100)], prices)
    assert cost == pytest.approx(1000 * 4e-6 + 100 * 3e-5)


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_reserve_waits_while_work_is_in_flight_then_exhausts(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert [reserve(session, experiment, i, 0.4) for i in (1, 2, 3)] == ["reserved", "reserved", "wait"]
        assert committed_usd(session, 1) == pytest.approx(0.8)
    with session_scope(factory) as session:
        settle(session, 1, 1, 0.1)
        settle(session, 1, 2, 0.35)
        experiment = lock_experiment(session, 1)
        assert reserve(session, experiment, 3, 0.4) == "reserved"
        assert reserve(session, experiment, 4, 0.4) == "wait"
        settle(session, 1, 3, 0.5)
        assert reserve(session, experiment, 4, 0.4) == "exhausted"
        assert experiment.status == "budget_exhausted"
        assert committed_usd(session, 1) == pytest.approx(0.95) and committed_usd(session, 1) <= 1.0


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_a_spent_budget_raised_then_resumed_reserves_again_never_below_what_is_committed(
    factory: sessionmaker[Session],
) -> None:
    from shadowlab import store

    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert [reserve(session, experiment, i, 0.5) for i in (1, 2)] == ["reserved", "reserved"]
        settle(session, 1, 1, 0.5)
        settle(session, 1, 2, 0.5)
        assert reserve(session, experiment, 3, 0.5) == "exhausted"
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        with pytest.raises(BudgetError, match=r"at least the \$1\.0000"):
            set_budget(session, experiment, 0.75)  # below the $1 spent
        with pytest.raises(BudgetError, match="positive"):
            set_budget(session, experiment, float("nan"))
        assert set_budget(session, experiment, 1.5, reason=" more prompts ") == 1.0
        assert experiment.spec["budget"]["usd"] == 1.5 and experiment.status == "budget_exhausted"
        store.experiments.transition("e", "resume", by="ana", session=session)
        with pytest.raises(BudgetError, match="pause it before lowering"):
            set_budget(session, experiment, 1.25)  # a reservation under 1.5 could land after the check
        assert reserve(session, experiment, 3, 0.5) == "reserved"
        assert reserve(session, experiment, 4, 0.5) == "wait"  # 1.5 committed: the new budget holds
        assert committed_usd(session, 1) == pytest.approx(1.5)
    with factory() as session:  # the trail, newest first: a refused change leaves none
        trail = [
            (c.field, c.before, c.after, c.changed_by, c.reason)
            for c in store.changes.history(1, session=session)
        ]
    assert trail == [
        ("status", "budget_exhausted", "running", "ana", None),
        ("budget", "1.0", "1.5", "local", "more prompts"),
        (
            "status",
            "running",
            "budget_exhausted",
            "shadowlab",
            "the budget is spent: nothing more fits in it",
        ),
    ]


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_judge_spend_draws_on_the_holdback_first_then_counts(factory: sessionmaker[Session]) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert reserve(session, experiment, 1, 0.5, judge_usd=0.2) == "reserved"
        settle(session, 1, 1, 0.3 + 0.2)  # replays cost 0.3; the judge holdback stays set aside
        ref = JudgeRef(1, "quality", "v1", captured_request_id=1)
        outcome, first = reserve_judge(session, experiment, ref, "m", 0.15, soon)
        assert outcome == "reserved" and first is not None
        assert committed_usd(session, 1) == pytest.approx(0.5)  # inside the holdback: nothing more
        settle_judge(session, first, 0.1)
        outcome, second = reserve_judge(session, experiment, ref, "m", 0.3, soon)
        assert outcome == "reserved" and second is not None
        assert committed_usd(session, 1) == pytest.approx(0.3 + 0.1 + 0.3)  # beyond it: all judge spend
        settle_judge(session, second, 0.25)
        assert judge_spend_usd(session, 1) == pytest.approx(0.35)
        assert committed_usd(session, 1) == pytest.approx(0.65)
        assert reserve_judge(session, experiment, ref, "m", 0.4, soon) == ("exhausted", None)
        assert experiment.status == "budget_exhausted" and committed_usd(session, 1) <= 1.0


def test_a_dead_scorers_call_counts_at_worst_case_without_blocking(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        ref = JudgeRef(1, "quality", "v1")
        past = datetime.now(UTC) - timedelta(seconds=1)
        assert reserve_judge(session, experiment, ref, "m", 0.7, past)[0] == "reserved"  # never settled
        assert committed_usd(session, 1) == pytest.approx(0.7)
        # Nothing that can still settle is in flight: the next call that does not fit exhausts, not waits.
        assert reserve(session, experiment, 2, 0.4) == "exhausted"


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_a_batch_of_judge_calls_reserves_what_fits_in_one_move_and_settles_by_difference(
    factory: sessionmaker[Session],
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        holds = [JudgeHold(JudgeRef(1, "quality", "v1", replay_id=None), "m", 0.3, soon) for _ in range(4)]
        ids, rest = reserve_judges(session, experiment, holds)
        assert len(ids) == 3 and rest == "wait"  # the fourth does not fit while three are in flight
        assert committed_usd(session, 1) == pytest.approx(0.9)
        settle_judges(session, {ids[0]: 0.1, ids[1]: 0.2, ids[2]: 0.0})
        settle_judges(session, {ids[0]: 0.3})  # settled already: stays as it is
        assert committed_usd(session, 1) == pytest.approx(0.3) == judge_spend_usd(session, 1, "quality")
        rows = session.query(JudgeCall).order_by(JudgeCall.id).all()
        assert [(r.reserved_usd, r.settled_usd) for r in rows] == [(0.3, 0.1), (0.3, 0.2), (0.3, 0.0)]
        ids, rest = reserve_judges(session, experiment, holds[:3])
        assert len(ids) == 2 and committed_usd(session, 1) == pytest.approx(0.9)
        settle_judges(session, dict.fromkeys(ids, 0.35))
        assert reserve_judges(session, experiment, holds[:1]) == ([], "exhausted")
        assert experiment.status == "budget_exhausted" and committed_usd(session, 1) == pytest.approx(1.0)


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_judge_call_ids_come_back_in_the_order_of_the_holds(factory: sessionmaker[Session]) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    point, pair = (1, "quality", "v1"), (1, "pref", "v2")
    refs = [JudgeRef(*point, captured_request_id=1), JudgeRef(*pair, 2, order_shown="ba"),
            JudgeRef(*point, captured_request_id=3), JudgeRef(*pair, 4, order_shown="ab")]  # fmt: skip
    holds = [JudgeHold(r, f"m{i}", 0.1 * (i + 1), soon + timedelta(seconds=i)) for i, r in enumerate(refs)]

    def calls(session: Session, ids: list[int]) -> list[JudgeCall]:
        rows = {row.id: row for row in session.query(JudgeCall).populate_existing()}
        return [rows[i] for i in ids]

    with session_scope(factory) as session:
        ids, rest = reserve_judges(session, lock_experiment(session, 1), holds)
        assert rest == "reserved" and len(ids) == 4
        assert [(c.scorer_name, c.scorer_version, c.captured_request_id, c.order_shown, c.model,
                 c.reserved_usd, c.deadline.replace(tzinfo=UTC)) for c in calls(session, ids)] == [
            (r.scorer_name, r.scorer_version, r.captured_request_id, r.order_shown, h.model, h.amount_usd,
             h.deadline) for r, h in zip(refs, holds, strict=True)
        ]  # fmt: skip
        settle_judges(session, {ids[3]: 0.05, ids[1]: 0.0})
        assert [c.settled_usd for c in calls(session, ids)] == [None, 0.0, None, 0.05]
        assert committed_usd(session, 1) == pytest.approx(0.1 + 0.3 + 0.05)


@pytest.mark.parametrize("factory", ["sqlite", "postgres"], indirect=True)
def test_a_batch_gets_what_the_settlements_before_it_give_back_and_waits_for_the_rest(
    factory: sessionmaker[Session],
) -> None:
    hold = JudgeHold(JudgeRef(1, "quality", "v1"), "m", 0.3, datetime.now(UTC) + timedelta(minutes=5))
    with session_scope(factory) as session:
        first, rest = settle_and_reserve_judges(session, 1, {}, [hold] * 3)
    assert len(first) == 3 and rest == "reserved"
    with session_scope(factory) as session:  # 3 more fit only once the first settle, and then only 2
        second, rest = settle_and_reserve_judges(session, 1, dict.fromkeys(first, 0.1), [hold] * 3)
    assert len(second) == 2 and rest == "wait"  # the third waits for the two in flight
    with session_scope(factory) as session:
        calls = {call.id: (call.reserved_usd, call.settled_usd) for call in session.query(JudgeCall)}
        assert committed_usd(session, 1) == pytest.approx(0.3 + 0.6)
        assert settle_and_reserve_judges(session, 1, dict.fromkeys(second, 0.35), []) == ([], "reserved")
        assert committed_usd(session, 1) == pytest.approx(1.0)
    assert calls == dict.fromkeys(first, (0.3, 0.1)) | dict.fromkeys(second, (0.3, None))


@pytest.mark.parametrize("factory", ["postgres"], indirect=True)
def test_a_batch_alone_is_settled_and_reserved_in_one_statement_only_when_all_of_it_fits(
    factory: sessionmaker[Session],
) -> None:
    hold = JudgeHold(JudgeRef(1, "quality", "v1"), "m", 0.3, datetime.now(UTC) + timedelta(minutes=5))
    with session_scope(factory) as session:  # the ledger's first move
        first, _ = settle_and_reserve_judges(session, 1, {}, [hold] * 3)
    alone = factory.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
    settles = dict.fromkeys(first, 0.1)

    with alone.connect() as conn:  # 0.3 settled + 0.9 more: over the budget of 1, so nothing changes
        assert reserve_judges_alone(conn, 1, settles, [hold] * 3) == []
    with session_scope(factory) as session:
        assert committed_usd(session, 1) == pytest.approx(0.9)
        assert {call.settled_usd for call in session.query(JudgeCall)} == {None}
    with alone.connect() as conn:  # 0.3 settled + 0.6 more fits
        second = reserve_judges_alone(conn, 1, settles, [hold] * 2)

    assert len(second) == 2 and second == sorted(second) and min(second) > max(first)
    with session_scope(factory) as session:
        calls = {call.id: (call.reserved_usd, call.settled_usd) for call in session.query(JudgeCall)}
        assert committed_usd(session, 1) == pytest.approx(0.9)
    assert calls == dict.fromkeys(first, (0.3, 0.1)) | dict.fromkeys(second, (0.3, None))


@pytest.mark.parametrize("factory", ["postgres"], indirect=True)
def test_a_batch_alone_has_no_limit_without_a_budget(factory: sessionmaker[Session]) -> None:
    hold = JudgeHold(JudgeRef(1, "quality", "v1"), "m", 5.0, datetime.now(UTC) + timedelta(minutes=5))
    with session_scope(factory) as session:
        lock_experiment(session, 1).budget_usd = None
        first, _ = settle_and_reserve_judges(session, 1, {}, [hold] * 2)  # the ledger's first move
    with factory.kw["bind"].execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        second = reserve_judges_alone(conn, 1, dict.fromkeys(first, 1.0), [hold] * 3)
    with session_scope(factory) as session:
        assert len(second) == 3 and committed_usd(session, 1) == pytest.approx(2 * 1.0 + 3 * 5.0)
