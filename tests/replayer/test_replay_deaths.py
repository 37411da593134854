"""What a worker killed with its calls out costs: real Postgres, the simulator over HTTP, real SDKs, a worker
process killed (-9) while the simulator holds every call it sent (the simulator's own count says when)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from replayer.arms import ArmRuntime, prepare_call
from shadowlab import store
from shadowlab.apis import api_shape
from shadowlab.budget import set_budget, worst_case_usd
from shadowlab.db import session_factory, session_scope
from shadowlab.models import BudgetLedger, BudgetReservation, CapturedRequest, WorkLease
from shadowlab.pricing import PriceTable
from simulator import Distribution
from tests.support.ledger import ledger_gaps
from tests.support.replay_lab import CANDIDATE_MODEL, CONTROL_MODEL, LAB_FAST, T0, Lab, capture
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

_USAGE_API = {CONTROL_MODEL: "anthropic.messages", CANDIDATE_MODEL: "openai.chat"}


def _worst_cases(lab: Lab, name: str) -> tuple[PriceTable, list[float]]:
    """The experiment's prices and each capture's worst case as a worker reserves it (`Worker.worst_case`)."""
    with session_scope(session_factory(lab.engine)) as session:
        experiment = store.experiments.by_name(name, session=session)
        prices = PriceTable.from_json(experiment.price_snapshot, "experiment price snapshot")
        arms = [ArmRuntime.of(arm) for arm in experiment.arms]
        bodies = session.execute(sa.select(CapturedRequest.api, CapturedRequest.request)).all()
        worst = [
            worst_case_usd([prepare_call(arm, api, body).arm_call(arm.model) for arm in arms], prices)
            for api, body in bodies
        ]
    return prices, worst


def _billed(records: Any, prices: PriceTable) -> float:
    """What the provider bills: every answered call at its usage, as the simulator recorded it."""
    answered = [r for r in records if r.status == 200]
    return sum(prices.cost(r.model, api_shape(_USAGE_API[r.model]).usage(r.usage)) for r in answered)


def test_a_killed_workers_sent_calls_stay_counted_and_the_budget_bounds_what_was_billed(
    lab_factory: Callable[..., Any],
) -> None:
    # Every answer at its cap (60 tokens), output dear and input cheap: a call costs close to its worst case,
    # so replaying the victim's requests a second time would bill about twice the budget's room.
    full = LAB_FAST.model_copy(update={"output_tokens": Distribution(median=60, low=60, high=60)})
    lab, simulator = lab_factory(full)
    prices_file = {model: {"input_cost_per_token": 1e-7, "output_cost_per_token": 1.2e-4}
                   for model in (CONTROL_MODEL, CANDIDATE_MODEL)}  # fmt: skip
    (lab.tmp / "prices.json").write_text(json.dumps(prices_file))
    lab.env["SHADOWLAB_PRICES_FILE"] = str(lab.tmp / "prices.json")
    n = 4
    lab.seed([capture(i, T0 + timedelta(seconds=i)) for i in range(n)])
    name = "deaths"
    lab.create_and_start(name, budget={"usd": 1e-6}, replay={"max_attempts": 3, "lease_s": 2.0})
    prices, worst = _worst_cases(lab, name)
    # Room for every request once and half of one more: a second replay of them all cannot fit.
    budget = sum(worst) + 1.5 * min(worst)
    with session_scope(session_factory(lab.engine)) as session:
        set_budget(session, store.experiments.by_name(name, session=session), budget)

    simulator.holds.start("*")  # every call waits in the simulator until released
    victim = lab.popen("replay", name, "--backfill", "--concurrency", str(n), "--no-progress")
    try:
        wait_for(lambda: victim.poll() is not None or simulator.holds.waiting() == 2 * n,
                 what="the victim's calls for every arm of every request to reach the simulator")  # fmt: skip
        assert victim.poll() is None, (lab.tmp / "worker-1.log").read_text()[-2000:]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    simulator.holds.end()  # the provider answers (and bills) the calls of a client that has gone
    wait_for(lambda: len(simulator.records()) == 2 * n, what="the victim's calls to be answered")
    billed_by_victim = _billed(simulator.records(), prices)
    assert lab.scalar(sa.select(sa.func.count()).where(WorkLease.done.is_(False))) == n

    survivor = lab.cli("replay", name, "--backfill", "--no-progress")

    billed = _billed(simulator.records(), prices)
    res = BudgetReservation
    with lab.engine.connect() as conn:
        ledger = conn.execute(sa.select(BudgetLedger.replay_usd, BudgetLedger.unsettled)).one()
        settled = conn.execute(sa.select(sa.func.sum(res.settled_usd))).scalar_one()
        undone = conn.execute(sa.select(sa.func.count()).where(WorkLease.done.is_(False))).scalar_one()
    figures = f"budget {budget:.6f}, billed {billed:.6f} (victim {billed_by_victim:.6f}), ledger {ledger}"
    # A hard budget bounds what the provider bills, and the ledger counts at least that.
    assert billed <= budget + 1e-12, figures
    assert ledger.replay_usd >= billed - 1e-12, figures
    # Every reservation settled, the ledger exactly their sum, no lease left.
    assert (ledger.unsettled, undone) == (0, 0), figures
    assert ledger.replay_usd == pytest.approx(settled, rel=1e-9), figures
    with lab.engine.connect() as conn:
        assert ledger_gaps(conn) == []
    # The room left paid for one request replayed again (both arms); the others are done with no replay,
    # and the command says so.
    assert len(lab.replay_keys()) == 2 and len(simulator.records()) == 2 * n + 2, figures
    said = f"{name}: {n} requests done (3 dropped for budget after a worker's death or stop: not replayed on"
    assert said in survivor.stdout, survivor.stdout
