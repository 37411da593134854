"""One computation on the machine's other core: a forked child computes it while this process goes on.

numpy's group-bys (`bincount`, fancy indexing) hold the GIL, so a thread does not run beside them; a child
process forked after the experiment is loaded shares its arrays (copy on write, nothing serialised on the way
in) and sends back only its small result (pickled). Used where a command has independent work of similar
size left (the segments of some dimensions beside the rest of the analysis: `analysis.segments`).

Forking is only done where it is safe: a POSIX system, no other thread alive in this process (a lock another
thread holds would stay held in the child; a server such as the dashboard's runs the work inline), and
the child never returns into the caller's code (`os._exit`: no atexit handler, no flush of the parent's
buffers, no connection closed). Anything that goes wrong in the child (an exception, a crash, a kill)
makes the parent compute the work itself: the answer is the same, only later.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Forked", "can_fork"]


def can_fork() -> bool:
    """Whether a child can be forked safely here (POSIX, this thread the only one)."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Forked(Generic[T]):
    """`work()` computed in a forked child when `fork` and `can_fork()`, else by `result()` itself.

    A context manager: leaving it without `result()` (an error in the meantime) kills the child."""

    def __init__(self, work: Callable[[], T], *, fork: bool = True) -> None:
        self._work = work
        self._pid: int | None = None
        self._read: int | None = None
        if fork and can_fork():
            self._start()

    def _start(self) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, leave without running anything of the parent's
            status = 1
            try:
                os.close(read)
                payload = pickle.dumps(self._work(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as out:
                    out.write(payload)
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        self._pid, self._read = pid, read

    @property
    def forked(self) -> bool:
        """Whether a child is computing the work."""
        return self._pid is not None

    @property
    def child(self) -> int | None:
        """The child's process id while it computes the work (None without one)."""
        return self._pid

    def result(self) -> T:
        """The work's result: the child's, or computed here when there is no child or it failed."""
        if self._pid is None or self._read is None:
            return self._work()
        with os.fdopen(self._read, "rb") as pipe:
            self._read = None
            payload = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if status != 0 or not payload:
            return self._work()
        value: T = pickle.loads(payload)
        return value

    def close(self) -> None:
        """Kill and reap a child whose result is not wanted."""
        if self._read is not None:
            os.close(self._read)
            self._read = None
        if self._pid is not None:
            with suppress(ProcessLookupError):
                os.kill(self._pid, 9)
            os.waitpid(self._pid, 0)
            self._pid = None

    def __enter__(self) -> Forked[T]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
