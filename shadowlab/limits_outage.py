"""Provider outages: a provider that answers nothing pauses, its calls wait and go again once it is back.

Without this, a vendor outage became the arm's outcome: every call failed with `connection` after its
retries, the leases were completed as failures and the candidate's error-rate guardrail paid for the
vendor's bad hour (issue 20, defect 11). The rule, per provider, in each worker (docs/experiments.md):

- An *outage failure* is an attempt the provider did not answer: a connection error, no response head in
  time (`timeout`), a 5xx (`server_error`, `overloaded`: 500-504, 529). A 429, a 4xx refusal, a mid-stream
  error or a stall is an answer: the provider is up, and such a result ends a streak.
- The provider is *down* once `failures` outage failures in a row (no answer from it between them) came
  from at least `requests` distinct calls. Occasional 5xx (a 5 % 529 storm) almost never line up ten in a
  row; one request that always makes the provider fail is one call, never an outage.
- While down no call goes out; every `probe_s` one call (the probe) goes: answered, the provider is up and
  every waiting call goes; failed, the pause starts again. Attempts that fail while it is down are not the
  arm's: they do not count against `max_attempts`, the call waits for the provider. A call that would give up
  on an outage failure while a streak is open but undecided gets another attempt, so a streak always ends in
  a verdict before a call records it. The pause reaches every worker through the `outage:<provider>` row of
  `rate_limit_keys` (NOTIFY on Postgres; see `limits.RateLimiter.pause_everywhere`).
- Down for longer than `max_s`: `ProviderOutageError` in every waiting call, and the run stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shadowlab.errors import ServiceUnavailableError
from shadowlab.experiment import OutageSettings
from shadowlab.providers import ProviderResult
from shadowlab.providers.base import ErrorCode

__all__ = ["OUTAGE_ERRORS", "OutageGuard", "ProviderGate", "ProviderOutageError", "is_outage_failure",
           "outage_key"]  # fmt: skip

log = logging.getLogger("shadowlab.limits")
OUTAGE_ERRORS: frozenset[ErrorCode] = frozenset({"connection", "timeout", "server_error", "overloaded"})


class ProviderOutageError(ServiceUnavailableError):
    """A provider stayed down longer than the experiment's `replay.outage.max_s`."""


def is_outage_failure(result: ProviderResult) -> bool:
    """The provider did not answer this attempt (connection, timeout, 5xx)."""
    return result.error_code in OUTAGE_ERRORS


def outage_key(provider: str) -> str:
    """The `rate_limit_keys` row whose `blocked_until` pauses `provider` for every worker."""
    return f"outage:{provider}"


@dataclass(eq=False)
class ProviderGate:
    """One provider's streak and pause in this worker; every call to it goes through `admit` and `observe`."""

    provider: str
    settings: OutageSettings
    monotonic: Callable[[], float]
    publish: Callable[[str, float], None]  # (provider, seconds): pause it for every worker
    on_change: Callable[[str, bool], None]  # (provider, down)
    streak: int = 0
    callers: set[object] = field(default_factory=set)
    down_since: float | None = None
    paused_until: float = -math.inf
    probing: bool = False
    last_error: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def undecided(self) -> bool:
        """A streak is open, too short for a verdict: a call should not record its failure yet."""
        return self.down_since is None and 0 < self.streak < self.settings.failures

    async def admit(self) -> bool:
        """Wait while the provider is down; True when this call is the probe (report it to `observe`)."""
        while self.down_since is not None:
            now = self.monotonic()
            give_up_at = self.down_since + self.settings.max_s
            if now >= give_up_at:
                raise ProviderOutageError(
                    f"provider {self.provider}: down for {now - self.down_since:.0f} s, longer than "
                    f"replay.outage.max_s ({self.settings.max_s:g} s; last error: {self.last_error}); the "
                    "run stops with its requests not done: replay again once the provider is back"
                )
            if now >= self.paused_until and not self.probing:
                self.probing = True
                return True
            wait = give_up_at - now if self.probing else min(self.paused_until, give_up_at) - now
            changed = self.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(wait, 1e-3))
        return False

    def observe(self, caller: object, result: ProviderResult, *, probe: bool) -> bool:
        """Count one attempt's result; True when it failed because the provider is down (retry, uncounted)."""
        if probe:
            self.probing = False
        if not is_outage_failure(result):
            self.streak = 0
            self.callers.clear()
            if self.down_since is not None:
                self._up()
            return False
        self.streak += 1
        self.callers.add(caller)
        self.last_error = f"{result.error_code}: {(result.error_detail or '')[:200]}"
        if self.down_since is not None:
            if probe:
                self._pause()
            return True
        if self.streak >= self.settings.failures and len(self.callers) >= self.settings.requests:
            self.down_since = self.monotonic()
            log.warning(
                "provider %s is down: %d attempts in a row failed (%s) from %d calls; its calls wait, one "
                "is tried every %g s, the run stops after %g s down", self.provider, self.streak,
                self.last_error, len(self.callers), self.settings.probe_s, self.settings.max_s,
                extra={"provider": self.provider, "outage": "down", "failures": self.streak},
            )  # fmt: skip
            self.on_change(self.provider, True)
            self._pause()
            return True
        return False

    def abandon(self, probe: bool) -> None:
        """A call admitted by `admit` ended without a result (cancelled): another call may probe."""
        if probe:
            self.probing = False
            self._notify()

    def paused_elsewhere(self, seconds: float) -> None:
        """Another worker found the provider down (its pause, `seconds` from now): wait with it."""
        if seconds <= 0:
            return
        now = self.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.warning("provider %s is down (seen by another worker): its calls wait", self.provider,
                        extra={"provider": self.provider, "outage": "down"})  # fmt: skip
            self.on_change(self.provider, True)
        self.paused_until = max(self.paused_until, now + seconds)
        self._notify()

    def _pause(self) -> None:
        self.paused_until = self.monotonic() + self.settings.probe_s
        self.publish(self.provider, self.settings.probe_s)
        self._notify()

    def _up(self) -> None:
        assert self.down_since is not None
        log.warning("provider %s is back after %.1f s down; its calls go again", self.provider,
                    self.monotonic() - self.down_since,
                    extra={"provider": self.provider, "outage": "up"})  # fmt: skip
        self.down_since, self.paused_until = None, -math.inf
        self.on_change(self.provider, False)
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class OutageGuard:
    """The gates of every provider one worker calls."""

    def __init__(
        self,
        settings: OutageSettings,
        *,
        publish: Callable[[str, float], None] = lambda provider, seconds: None,
        on_change: Callable[[str, bool], None] = lambda provider, down: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self._monotonic = settings, monotonic
        self._publish, self._on_change = publish, on_change
        self._gates: dict[str, ProviderGate] = {}

    def gate(self, provider: str) -> ProviderGate:
        gate = self._gates.get(provider)
        if gate is None:
            gate = self._gates[provider] = ProviderGate(
                provider, self.settings, self._monotonic, self._publish, self._on_change
            )
        return gate

    def on_notice(self, key: str, seconds: float) -> bool:
        """A pause of `key` from another worker; False when `key` is not an outage key."""
        prefix, _, provider = key.partition(":")
        if prefix != "outage" or not provider:
            return False
        self.gate(provider).paused_elsewhere(seconds)
        return True
