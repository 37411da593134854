"""One worker's share of one provider+model key, enforced in process: no database round trip per call.

A sliding-window log with running totals. A call counts from admission until its response head (while in
flight it counts in every window, whatever its admission time; once its head came it counts as sent then,
the latest moment it can have reached the provider), so the bound holds on arrivals, not only on
admissions. A log is exact for "any window of `window_s`", which a token bucket is not (a bucket lets 2×
its rate through around a window edge), and it keeps its memory when the share changes, which a bucket
rebuilt with a new rate loses; neither aiolimiter nor pyrate-limiter can move a call's timestamp to its
response head. Admission is O(log n); the sorted scan for how long to wait runs only when a limit binds.

While a heartbeat computes the next share (`begin_beat` … `end_beat`) admissions go on within a cap: what
the window held when the beat began plus what was admitted since the beat before (a beat lasts less than a
heartbeat interval), at most half of what the share leaves unused. The beat reports that cap as this
worker's use, so whatever share comes back, what was admitted meanwhile counts (as `extra` beyond a smaller
share, until the next beat reports the window as it is): a beat of 40–500 ms on a loaded machine no longer
stops the worker's calls, and a worker that admitted nothing lately holds nothing back from the others.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "KeyWindow", "Share", "WindowUse"]


@dataclass(frozen=True)
class Share:
    """What one worker may use of one key per window (None: that dimension is not limited)."""

    rpm: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class WindowUse:
    """This worker's requests and tokens in the window (calls in flight included) and calls in flight."""

    requests: int
    input_tokens: int
    output_tokens: int
    in_flight: int


@dataclass(eq=False)
class Admission:
    """One admitted call, in flight until `KeyWindow.release`."""

    sent_at: float
    input_tokens: int
    output_tokens: int


class KeyWindow:
    """The share of one key and the calls counted against it; `changed` wakes waiting admissions."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self._clock = clock
        self.share: Share | None = None  # None until the first grant: nothing is sent
        self.valid_until = -math.inf  # the grant lapses unless heartbeats renew it (self-fencing)
        self.paused_until = -math.inf  # a retry-after, for every worker
        self._beat_cap: Share | None = None  # while a heartbeat computes the next share: what may be admitted
        self._in_flight: set[Admission] = set()
        self._done: list[tuple[float, int, int, int]] = []  # heap of (counted at, seq, input, output)
        self._seq = itertools.count()
        self._requests = self._input = self._output = 0
        self._recent = [0, 0, 0]  # requests, input and output tokens admitted since the last beat began
        self.changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiting admission (they check again)."""
        self.changed.set()
        self.changed = asyncio.Event()

    def set_share(self, share: Share, valid_until: float) -> None:
        self.share, self.valid_until = share, valid_until
        self.notify()

    def pause(self, until: float) -> None:
        if until > self.paused_until:
            self.paused_until = until
            self.notify()

    def use(self) -> WindowUse:
        self._expire(self._clock())
        return WindowUse(self._requests, self._input, self._output, len(self._in_flight))

    def begin_beat(self) -> WindowUse:
        """A heartbeat starts: from now until `end_beat`, admissions stay within the use it reports (the use
        now plus what was admitted since the last beat began, at most half of what the share leaves)."""
        use, share, (requests, input_tokens, output_tokens) = self.use(), self.share, self._recent
        self._recent = [0, 0, 0]
        if share is None:
            return use
        cap = Share(
            _cap(share.rpm, use.requests, requests), _cap(share.input_tpm, use.input_tokens, input_tokens),
            _cap(share.output_tpm, use.output_tokens, output_tokens),
            _cap(share.concurrency, use.in_flight, requests),
        )  # fmt: skip
        self._beat_cap = cap
        return WindowUse(
            use.requests if cap.rpm is None else cap.rpm,
            use.input_tokens if cap.input_tpm is None else cap.input_tpm,
            use.output_tokens if cap.output_tpm is None else cap.output_tpm,
            use.in_flight if cap.concurrency is None else cap.concurrency,
        )

    def end_beat(self) -> None:
        """The heartbeat ended (its new share applied, or it failed): the share alone admits again."""
        self._beat_cap = None
        self.notify()

    def try_admit(self, input_tokens: int, output_tokens: int) -> Admission | float:
        """Admit one call now, or the seconds to wait (`math.inf`: until something changes)."""
        now = self._clock()
        if now < self.paused_until:
            return self.paused_until - now
        share, capped = self._beat_cap or self.share, self._beat_cap is not None
        if share is None or now >= self.valid_until:
            return math.inf
        if share.concurrency is not None and len(self._in_flight) >= share.concurrency:
            return math.inf
        self._expire(now)
        one = not capped  # a first call above a token share: never within a beat's cap (it reported less)
        wait = max(
            self._wait_for(share.rpm, 1, lambda _i, _o: 1, self._requests, always_one=False),
            self._wait_for(share.input_tpm, input_tokens, lambda i, _o: i, self._input, always_one=one),
            self._wait_for(share.output_tpm, output_tokens, lambda _i, o: o, self._output, always_one=one),
        )
        if wait > 0:
            return math.inf if capped else wait  # the beat's end wakes it (`end_beat`)
        admission = Admission(now, input_tokens, output_tokens)
        self._in_flight.add(admission)
        self._requests += 1
        self._input += input_tokens
        self._output += output_tokens
        recent = self._recent
        recent[0] += 1
        recent[1] += input_tokens
        recent[2] += output_tokens
        return admission

    def release(self, admission: Admission, head_at: float, input_tokens: int, output_tokens: int) -> None:
        """The call ended; it counts as sent at `head_at` (its response head) with its real token counts."""
        self._in_flight.discard(admission)
        self._input += input_tokens - admission.input_tokens
        self._output += output_tokens - admission.output_tokens
        at = max(head_at, admission.sent_at)
        heapq.heappush(self._done, (at, next(self._seq), input_tokens, output_tokens))
        self._expire(self._clock())
        self.notify()

    def _expire(self, now: float) -> None:
        edge = now - self.window_s
        while self._done and self._done[0][0] <= edge:
            _, _, used_in, used_out = heapq.heappop(self._done)
            self._requests -= 1
            self._input -= used_in
            self._output -= used_out

    def _wait_for(
        self,
        limit: int | None,
        amount: int,
        size: Callable[[int, int], int],
        total: int,
        *,
        always_one: bool = True,
    ) -> float:
        """Seconds until `amount` more fits under `limit`: until enough of the oldest finished calls leave
        the window. A first call in an empty window always fits a token limit (else it never would)."""
        if limit is None or total + amount <= limit or (always_one and limit > 0 and self._requests == 0):
            return 0.0
        if limit == 0:
            return math.inf  # no share of this key (yet): wait for a grant
        excess, remaining = total + amount - limit, self._requests
        for at, _, used_in, used_out in sorted(self._done):
            excess, remaining = excess - size(used_in, used_out), remaining - 1
            if excess <= 0 or (always_one and remaining == 0):
                return max(at + self.window_s - self._clock(), 1e-3)
        return math.inf  # calls in flight hold the rest: wait for a release


def _cap(limit: int | None, used: int, recent: int) -> int | None:
    """What a beat's cap allows of one dimension: `used` plus `recent`, at most half of what `limit` leaves
    (None: no limit)."""
    return None if limit is None else used + min(recent, max(0, limit - used) // 2)
