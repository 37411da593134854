"""A fake clock for code that reads wall time and monotonic time (limits, grants): the test moves it."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """Wall and monotonic time, moved together by `advance`."""

    def __init__(self, now: datetime, mono: float = 1000.0) -> None:
        self.now = now
        self.mono = mono

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds
