"""The one retry policy of every stage that calls a model or waits out an outage (replay, scoring, ingest).

Which failures are retried (408/409/429/5xx/529, connection errors, stalls, mid-stream errors; never a
4xx refusal), and how long to wait: full-jitter exponential backoff, never shorter than `retry-after`.
The tee keeps its own standard-library copy (it installs alone in production apps).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shadowlab.providers import ProviderResult

__all__ = ["RetryPolicy", "backoff_delay", "should_retry"]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def should_retry(result: ProviderResult) -> bool:
    """Retry 408/409/429/5xx/529, connection errors, stalls and mid-stream errors; never a 4xx refusal."""
    if result.ok:
        return False
    return result.retryable or (result.status_code in _RETRY_STATUS)


def backoff_delay(
    attempt: int, base_s: float, max_s: float, retry_after_s: float | None, rng: random.Random
) -> float:
    """Full-jitter exponential backoff after `attempt` failures, never shorter than `retry-after`."""
    jittered = rng.uniform(0, min(max_s, base_s * 2 ** max(attempt - 1, 0)))
    return max(jittered, retry_after_s or 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried (an experiment's `replay` settings; ingest's outages)."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random | None, retry_after_s: float | None = None) -> float:
        """The wait after `attempt` failures (see `backoff_delay`); without `rng`, the backoff's cap itself
        (base × 2^(attempt−1), at most `backoff_max_s`): one process waiting out an outage needs no jitter."""
        if rng is None:
            cap: float = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(attempt - 1, 0))
            return max(cap, retry_after_s or 0.0)
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, retry_after_s, rng)

    def gives_up(self, attempt: int) -> bool:
        """True once `attempt` attempts were made and no more are allowed (0 or less: never give up)."""
        return 0 < self.max_attempts <= attempt
