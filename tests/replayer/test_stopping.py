"""A stopping worker's arms (`replayer.stopping`): waiting ones end at once, sent ones get the grace."""

from __future__ import annotations

import asyncio

import pytest

from replayer.stopping import ArmTracker, Stopped


async def _stop_with_four_arms() -> None:
    stopping, answer, never = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tracker = ArmTracker(stopping, grace_s=0.5)
    sent = [asyncio.Event() for _ in range(3)]

    async def waiting() -> str:  # an outage pause, a rate limit: no call out
        await never.wait()
        return "waited"

    async def sending(index: int, then_wait: bool) -> str:
        with tracker.sending():
            sent[index].set()
            await answer.wait()
        if then_wait:  # its retry's backoff, the outage pause again
            await never.wait()
        return "answered"

    async def stuck() -> str:  # sent, never answered
        with tracker.sending():
            sent[2].set()
            await never.wait()
        return "answered"

    arms = [asyncio.create_task(waiting()), asyncio.create_task(sending(0, False)),
            asyncio.create_task(sending(1, True)), asyncio.create_task(stuck())]  # fmt: skip
    with tracker.replaying(arms):
        watcher = asyncio.create_task(tracker.cancel_on_stop())
        for event in sent:
            await event.wait()
        stopping.set()
        await asyncio.wait([arms[0]])
        assert arms[0].cancelled() and not any(arm.done() for arm in arms[1:])

        answer.set()  # the calls out answer within the grace: one is kept, the other would wait again
        assert await arms[1] == "answered"
        await asyncio.wait([arms[2]])
        assert arms[2].cancelled() and not watcher.done() and not arms[3].done()

        await watcher  # the grace is over: the call never answered is given up too
        await asyncio.wait([arms[3]])
        assert arms[3].cancelled()
    assert not tracker.arms
    with pytest.raises(Stopped), tracker.sending():  # nothing new goes out after a stop
        pass


def test_a_stop_cancels_waiting_arms_at_once_and_sent_calls_after_their_answer_or_the_grace() -> None:
    asyncio.run(asyncio.wait_for(_stop_with_four_arms(), 10))  # a stop that does not happen fails, not hangs
