"""The outage rule of one provider (`shadowlab.limits_outage`, issue 20 defect 11), on a fake clock: what
counts as down, the probe, the limit, and retries that do not count while the provider is down."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from shadowlab.db import create_engine, session_factory
from shadowlab.experiment import OutageSettings
from shadowlab.limits import RateLimiter, RetryPolicy, call_with_retries
from shadowlab.limits_outage import OutageGuard, ProviderGate, ProviderOutageError
from shadowlab.providers import ProviderResult
from tests.support.clock import FakeClock

OK = ProviderResult("openai", "m", text="hi")
DOWN = ProviderResult("openai", "m", error_code="connection", error_detail="connection refused")
REFUSED = ProviderResult("openai", "m", error_code="bad_request", status_code=400)


class Gate:
    """A gate on a fake clock, with what it published and announced."""

    def __init__(self, **settings: float) -> None:
        self.clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.published: list[float] = []
        self.changes: list[bool] = []
        guard = OutageGuard(
            OutageSettings(**{"failures": 4, "requests": 2, "probe_s": 0.02, **settings}),
            publish=lambda provider, seconds: self.published.append(seconds),
            on_change=lambda provider, down: self.changes.append(down),
            monotonic=self.clock.monotonic,
        )
        self.gate: ProviderGate = guard.gate("openai")


def test_occasional_failures_and_one_call_that_always_fails_are_no_outage() -> None:
    g = Gate()
    a, b, c = object(), object(), object()
    for caller, result in [(a, DOWN), (b, DOWN), (c, DOWN), (a, REFUSED), (b, DOWN), (c, DOWN), (a, DOWN)]:
        assert not g.gate.observe(caller, result, probe=False)  # a refusal is an answer: the streak ends
    assert not g.gate.down and g.gate.undecided()
    g.gate.observe(a, OK, probe=False)
    poisoned = object()
    verdicts = [(g.gate.observe(poisoned, DOWN, probe=False), g.gate.undecided()) for _ in range(6)]
    # One call failing again and again is that call's failure: decided (not undecided) after 4, never down.
    assert verdicts == [(False, True)] * 3 + [(False, False)] * 3
    assert not g.gate.down and g.published == [] and g.changes == []


def test_failures_in_a_row_from_several_calls_pause_the_provider_until_a_probe_is_answered() -> None:
    g = Gate()
    a, b = object(), object()
    assert [g.gate.observe(c, DOWN, probe=False) for c in (a, b, a, b)] == [False, False, False, True]
    assert g.gate.down and g.changes == [True] and g.published == [0.02]

    async def scenario() -> None:
        waiting = [asyncio.create_task(g.gate.admit()) for _ in range(2)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)  # paused: nobody sends
        g.clock.advance(0.02)
        done, pending = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        (probe,), (other,) = done, pending
        assert probe.result() is True  # one call probes, the other waits for it
        assert g.gate.observe(a, DOWN, probe=True)  # the probe failed: paused again, for every worker
        await asyncio.sleep(0)
        assert g.published == [0.02, 0.02] and not other.done()
        g.clock.advance(0.02)
        assert await asyncio.wait_for(other, 5) is True  # the next probe
        assert not g.gate.observe(b, OK, probe=True)  # answered: up, every call goes
        assert await asyncio.wait_for(g.gate.admit(), 1) is False

    asyncio.run(scenario())
    assert not g.gate.down and g.changes == [True, False]


def test_a_provider_down_longer_than_max_s_stops_every_waiting_call() -> None:
    g = Gate(max_s=1.0)
    g.gate.paused_elsewhere(0.5)  # another worker found it down
    g.clock.advance(1.0)

    with pytest.raises(ProviderOutageError, match=r"provider openai: down for 1 s.*replay.outage.max_s"):
        asyncio.run(g.gate.admit())


def test_attempts_failed_while_the_provider_is_down_do_not_count() -> None:
    guard = OutageGuard(OutageSettings(failures=2, requests=1, probe_s=0.01))
    answers = iter([DOWN, DOWN, DOWN, OK])
    engine = create_engine("sqlite://")  # a limiter without limits never touches it
    limiter = RateLimiter(session_factory(engine), (), worker_id="w")

    async def send() -> ProviderResult:
        return next(answers)

    async def no_wait(seconds: float) -> None:
        return None

    async def scenario() -> tuple[ProviderResult, int]:
        return await call_with_retries(
            limiter, "openai/m", send, input_tokens=1, output_tokens=1, policy=RetryPolicy(max_attempts=1),
            rng=random.Random(0), sleep=no_wait, gate=guard.gate("openai"),
        )  # fmt: skip

    result, sent = asyncio.run(scenario())
    engine.dispose()
    # One attempt allowed. The first failure counted but was undecided (a streak of 1 of 2): one more; the
    # second made the provider down, the third was a failed probe (neither counted); the answer is kept.
    assert result.ok and sent == 4
