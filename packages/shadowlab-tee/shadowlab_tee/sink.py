"""The bounded queue and background worker every sink shares; counters, flush, close and fork safety."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shadowlab_tee.record import PendingCapture, TeeConfigError

log = logging.getLogger("shadowlab_tee")

_LIVE_SINKS: Final[weakref.WeakSet[Sink]] = weakref.WeakSet()
_RETRY_MIN_S: Final = 0.5
_RETRY_MAX_S: Final = 30.0
# The worker encodes a few captures per turn, then sleeps briefly: a sleeping thread hands the GIL
# to the application's threads at once (a mere sleep(0) may take it straight back), so a caller
# waits at most one short turn for the tee.
_BATCH: Final = 8
_YIELD_S: Final = 0.0002


@dataclass(frozen=True, slots=True)
class TeeStats:
    """Counters of one sink since it was created (or since the fork that created this process).

    offered = sent + dropped + failed + pending. `dropped`: queue full, or still queued at close;
    `failed`: an error while encoding or delivering; `sampled_out`: calls the tee chose not to capture.
    """

    offered: int
    sent: int
    dropped: int
    failed: int
    sampled_out: int
    last_error: str | None

    @property
    def pending(self) -> int:
        return self.offered - self.sent - self.dropped - self.failed


class _Tally:
    """Counters one application thread updates without a lock (each thread owns its own)."""

    __slots__ = ("offered", "dropped", "failed", "sampled_out")

    def __init__(self) -> None:
        self.offered = self.dropped = self.failed = self.sampled_out = 0


class Sink(ABC):
    """Captures go onto a bounded in-memory queue; one daemon thread per process drains it.

    `offer` never blocks and never raises: a full queue drops the capture and counts it. The
    production path takes no lock (a lock held by a descheduled thread would make every caller wait
    for it): it appends to a deque and bumps counters owned by the calling thread. The worker polls
    the queue every `max_delay_s` and yields the GIL between small batches.
    """

    def __init__(self, *, queue_size: int = 10_000, max_delay_s: float = 0.05, name: str = "sink") -> None:
        if not isinstance(queue_size, int) or queue_size < 1:
            raise TeeConfigError(f"queue_size must be an int >= 1, got {queue_size!r}")
        if not 0 < max_delay_s <= 10:
            raise TeeConfigError(f"max_delay_s must be in (0, 10] seconds, got {max_delay_s!r}")
        self._queue_size = queue_size
        self._max_delay_s = max_delay_s
        self._name = name
        self._closed = False
        self._reset()
        _LIVE_SINKS.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks, worker and counters (at creation, and in the child after a fork)."""
        self._lock = threading.Lock()  # worker side and stats only, never the production path
        self._settled = threading.Condition(self._lock)
        self._items: deque[PendingCapture] = deque()
        self._local = threading.local()
        self._tallies: list[_Tally] = []
        self._kick = threading.Event()
        self._stop_requested = threading.Event()
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._sent = self._failed = self._dropped_at_close = 0
        self._lost_at_last_flush = 0
        self._last_error: str | None = None

    # ---- production path -------------------------------------------------------------------------

    def _tally(self) -> _Tally:
        try:
            tally: _Tally = self._local.tally
        except AttributeError:
            tally = self._local.tally = _Tally()
            self._tallies.append(tally)  # list.append is atomic
        return tally

    def offer(self, capture: PendingCapture) -> bool:
        """Queue a capture; False (and counted as dropped) when the queue is full or the sink closed."""
        tally = self._tally()
        tally.offered += 1
        if self._closed or len(self._items) >= self._queue_size:
            tally.dropped += 1
            return False
        self._items.append(capture)
        if self._worker is None:
            self._start_worker()
        return True

    def count_sampled_out(self) -> None:
        self._tally().sampled_out += 1

    def count_internal_failure(self, exc: BaseException) -> None:
        """The tee itself failed to build a capture: counted as offered and failed, never raised."""
        tally = self._tally()
        tally.offered += 1
        tally.failed += 1
        self._last_error = f"tee: {type(exc).__name__}: {exc}"

    # ---- observation and shutdown ----------------------------------------------------------------

    def stats(self) -> TeeStats:
        with self._lock:
            return self._stats_locked()

    def _stats_locked(self) -> TeeStats:
        tallies = list(self._tallies)
        return TeeStats(
            offered=sum(t.offered for t in tallies),
            sent=self._sent,
            dropped=sum(t.dropped for t in tallies) + self._dropped_at_close,
            failed=sum(t.failed for t in tallies) + self._failed,
            sampled_out=sum(t.sampled_out for t in tallies),
            last_error=self._last_error,
        )

    @property
    def sent(self) -> int:
        return self.stats().sent

    @property
    def dropped(self) -> int:
        return self.stats().dropped

    @property
    def failed(self) -> int:
        return self.stats().failed

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for queued captures to be delivered.

        True when nothing is pending and nothing was dropped or failed since the previous flush.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        self._kick.set()
        with self._settled:
            while (stats := self._stats_locked()).pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._kick.set()
                self._settled.wait(min(remaining, 0.05))
            lost = stats.dropped + stats.failed
            ok = stats.pending == 0 and lost == self._lost_at_last_flush
            self._lost_at_last_flush = lost
            return ok

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (up to `timeout` s), then stop; captures left over count as dropped."""
        deadline = time.monotonic() + max(timeout, 0.0)
        self._closed = True
        ok = self.flush(timeout)
        with self._lock:
            self._stopping = True
            worker = self._worker
            leftover = 0
            while self._items:
                self._items.popleft()
                leftover += 1
            self._dropped_at_close += leftover
        self._stop_requested.set()
        self._kick.set()
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(deadline - time.monotonic(), 0.0))
        _LIVE_SINKS.discard(self)
        return ok and leftover == 0

    # ---- worker thread ---------------------------------------------------------------------------

    def _start_worker(self) -> None:
        with self._lock:  # once per process: the first capture starts the worker
            if self._worker is None and not self._stopping:
                self._worker = threading.Thread(
                    target=self._run, name=f"shadowlab-tee-{self._name}", daemon=True
                )
                self._worker.start()

    def _run(self) -> None:
        retry_s = _RETRY_MIN_S
        opened = False
        while True:
            if not self._items and not self._stopping:
                self._kick.wait(self._max_delay_s)
                self._kick.clear()
            if not opened:
                try:
                    self._open()
                except Exception as exc:  # the sink is unreachable: keep the queue, retry later
                    self._note_error(f"open: {type(exc).__name__}: {exc}")
                    log.warning(
                        "shadowlab tee %s unavailable, retrying in %.1fs: %s", self._name, retry_s, exc
                    )
                    if self._stopping:
                        return
                    self._stop_requested.wait(retry_s)
                    retry_s = min(retry_s * 2, _RETRY_MAX_S)
                    continue
                opened, retry_s = True, _RETRY_MIN_S
            self._drain()
            if self._stopping:
                self._close_quietly()
                return

    def _drain(self) -> None:
        items = self._items
        while True:
            with self._lock:
                if not items:
                    return
                batch = [items.popleft() for _ in range(min(len(items), _BATCH))]
            records: list[tuple[bytes, bytes]] = []
            for capture in batch:
                try:
                    records.append(capture.encode())
                except Exception as exc:
                    self._settle(failed=1, error=f"encode: {type(exc).__name__}: {exc}")
            if not records:
                continue
            try:
                self._write_batch(records)
            except Exception as exc:
                self._settle(failed=len(records), error=f"write: {type(exc).__name__}: {exc}")
            if items:
                time.sleep(_YIELD_S)

    def _settle(self, *, sent: int = 0, failed: int = 0, error: str | None = None) -> None:
        with self._settled:
            self._sent += sent
            self._failed += failed
            if error is not None:
                self._last_error = error
            self._settled.notify_all()

    def _note_error(self, error: str) -> None:
        with self._lock:
            self._last_error = error

    def _close_quietly(self) -> None:
        try:
            self._close_resource()
        except Exception as exc:
            self._note_error(f"close: {type(exc).__name__}: {exc}")

    # ---- what a sink implements (all on the worker thread) --------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Connect or open the destination; an exception means "retry later"."""

    @abstractmethod
    def _write_batch(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Deliver (key, value) records, settling each exactly once (now or from a callback).

        Raising before settling any record fails the whole batch.
        """

    @abstractmethod
    def _close_resource(self) -> None:
        """Flush and release the destination."""

    def _abandon_after_fork(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing to abandon
        """In a forked child: forget the parent's connection without flushing or closing it."""

    def _after_fork_in_child(self) -> None:
        self._abandon_after_fork()
        self._reset()


def _reset_sinks_in_child() -> None:
    for sink in list(_LIVE_SINKS):
        sink._after_fork_in_child()


def _close_sinks_at_exit() -> None:
    for sink in list(_LIVE_SINKS):
        sink.close(timeout=2.0)


os.register_at_fork(after_in_child=_reset_sinks_in_child)
atexit.register(_close_sinks_at_exit)
