"""One progress display for the long commands (`replay`, `score`): a rich progress bar redrawn in place on a
terminal; elsewhere (CI, a log file, a container) one plain line at most every `interval_s`, plus the last,
so logs stay readable. Always on stderr: stdout stays for results. When the logs are JSON
(`SHADOWLAB_LOG_FORMAT=json`, `shadowlab.logs`), the plain lines are log records of `shadowlab.progress`
instead, so stderr holds only JSON."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from shadowlab.logs import json_logging

__all__ = ["ProgressLine", "progress_text"]

log = logging.getLogger("shadowlab.progress")


def progress_text(label: str, done: int, total: int | None, elapsed_s: float, note: str = "") -> str:
    """`label: 120/400 (3.2/s, ETA 88s) note` — the plain form, also the last line on a terminal."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    shown_total = "?" if total is None else str(total)
    eta = f"{max(total - done, 0) / rate:.0f}s" if total is not None and rate > 0 else "-"
    tail = f" {note}" if note else ""
    return f"{label}: {done}/{shown_total} ({rate:.1f}/s, ETA {eta}){tail}"


class ProgressLine:
    """`update(done, total, note)` as work advances, `close()` at the end (it prints the final line)."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        live: bool | None = None,
    ) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._as_log = stream is None and json_logging()
        self._interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self._last_shown: float | None = None
        self._state: tuple[int, int | None, str] = (0, None, "")
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if live if live is not None else self._stream.isatty() and not self._as_log:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=self._stream),
                transient=True,
            )
            self._task = self._bar.add_task(label, total=None, note="")
            self._bar.start()

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        self._state = (done, total, note)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total, note=note)
            return
        now = self._clock()
        if self._last_shown is not None and now - self._last_shown < self._interval_s:
            return
        self._last_shown = now
        self._write()

    def close(self) -> None:
        """Stop redrawing and print the final state as one plain line."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._write()

    def _write(self) -> None:
        done, total, note = self._state
        text = progress_text(self.label, done, total, self._clock() - self._started, note)
        if self._as_log:
            log.info(text, extra={"progress": self.label, "done": done, "total": total})
            return
        self._stream.write(text + "\n")
        self._stream.flush()
