"""What a stopping worker does with the arms it is replaying: waiting ones stop at once, sent ones soon.

A stop must not wait for work that may never come: a call waiting on a provider's outage pause, a rate limit
or a retry's backoff could wait `replay.outage.max_s` (900 s) or the call timeout, and `docker stop` kills a
worker after 10 s. So on a stop every arm that is not waiting for an answer is cancelled at once, and so is
each arm whose call ends and would wait or send again; a call already sent gets `STOP_GRACE_S` to answer,
then its arm is cancelled too (the provider may bill it, as a kill would: `ArmTracker.cut`, whose worst case
the request's reservation keeps). The worker gives the requests of cancelled arms back (`writes.give_back`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["STOP_GRACE_S", "ArmTracker", "Stopped"]

STOP_GRACE_S = 5.0  # on a stop, how long calls already sent get to answer (docker stop waits 10 s)


class Stopped(Exception):
    """An attempt not sent because the worker is stopping."""


class ArmTracker:
    """The arms a worker is replaying, and which of them have a call out."""

    def __init__(self, stopping: asyncio.Event, grace_s: float = STOP_GRACE_S) -> None:
        self.stopping, self.grace_s = stopping, grace_s
        self.arms: set[asyncio.Task[Any]] = set()
        self._sending: dict[asyncio.Task[Any], Callable[[], float]] = {}  # each with its call's worst case
        self._send_ended = asyncio.Event()
        self.cut: dict[asyncio.Task[Any], float] = {}  # arms cancelled with a call out (the provider may bill
        # it), with the worst case of that call

    @contextlib.contextmanager
    def replaying(self, arms: Iterable[asyncio.Task[Any]]) -> Iterator[None]:
        tasks = set(arms)
        self.arms |= tasks
        try:
            yield
        finally:
            self.arms -= tasks

    @contextlib.contextmanager
    def sending(self, worst_usd: Callable[[], float] = lambda: 0.0) -> Iterator[None]:
        """Around one attempt's call (`worst_usd`: what it may cost); `Stopped` instead once stopping (no
        retry, no late call goes out)."""
        if self.stopping.is_set():
            raise Stopped
        task = asyncio.current_task()
        assert task is not None
        self._sending[task] = worst_usd
        try:
            yield
        finally:
            self._sending.pop(task, None)
            self._send_ended.set()

    async def cancel_on_stop(self) -> None:
        """Once stopping: cancel every arm not waiting for an answer, again each time a call ends, and every
        arm left after the grace."""
        await self.stopping.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_s
        while True:
            for task in self.arms - self._sending.keys():
                task.cancel()
            if not self._sending or loop.time() >= deadline:
                break
            self._send_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send_ended.wait(), deadline - loop.time())
        self.cut.update({task: self._sending[task]() for task in self.arms & self._sending.keys()})
        for task in self.arms:
            task.cancel()
