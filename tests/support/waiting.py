"""Waiting for a condition in tests that drive processes: poll it, fail with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool], what: str, timeout_s: float = 45.0, every_s: float = 0.05
) -> None:
    """Return once `condition()` holds; fail naming `what` after `timeout_s` (a bound, not an expectation)."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)
