"""Fresh analysis snapshots without anyone typing a command: `shadowlab analyze NAME` as a process of its own.

The dashboard's Refresh starts one and shows how long it has been running; `replay --all --follow` and
`score --all --follow` start one per running experiment every `--analyze-every` (`PeriodicAnalysis`). A
process of its own keeps the analysis' memory (hundreds of MB at a million replays) and CPU out of the
dashboard's server and out of the replayer's event loop, whose timings are measurements; it stores its
snapshot as `shadowlab analyze` does, so decisions keep pointing at the snapshot they used.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO

from sqlalchemy.orm import Session, sessionmaker

from shadowlab import store
from shadowlab.errors import ConfigError, NotFoundError

__all__ = [
    "DEFAULT_EVERY",
    "AnalysisRun",
    "PeriodicAnalysis",
    "analyze_every",
    "parse_interval",
    "start_analysis",
]

log = logging.getLogger("shadowlab.analysis_runs")
_UNITS = {"s": 1, "m": 60, "h": 3600}
DEFAULT_EVERY = "5m"  # with --follow
ANALYZE_EVERY_HELP = (
    "With --follow: store a fresh analysis of each running experiment this often (5m, 90s, off)."
)
CHECK_AT_MOST_S = 60.0  # how often an experiment's freshness is looked up, at most (two small queries)


def parse_interval(text: str, option: str = "--analyze-every") -> float | None:
    """`5m`, `90s`, `1h` into seconds; `off` (or `0`) into None."""
    if text.strip().lower() in ("off", "0"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*", text)
    if not match or float(match.group(1)) == 0:
        raise ConfigError(f"{option}: expected an interval like 5m, 90s or 1h, or off, found {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def analyze_every(text: str | None, follow: bool) -> float | None:
    """`--analyze-every` of `replay`/`score --all`: seconds between analyses (DEFAULT_EVERY with --follow), or
    None for none; only --follow runs long enough for it."""
    if text is None:
        return parse_interval(DEFAULT_EVERY) if follow else None
    every_s = parse_interval(text)
    if every_s is not None and not follow:
        raise ConfigError("--analyze-every: expected --follow with it (a single pass ends before it is due)")
    return every_s


@dataclass
class AnalysisRun:
    """One `shadowlab analyze NAME` process: when it started, whether it ended, and how."""

    experiment: str
    started_at: datetime
    process: subprocess.Popen[bytes]
    _stderr: IO[bytes] = field(repr=False)
    _error: str | None = field(default=None, init=False)

    def done(self) -> bool:
        """Whether it has ended (its stderr is then read and closed)."""
        if self.process.poll() is None:
            return False
        if not self._stderr.closed:
            self._error = self._failure()
            self._stderr.close()
        return True

    def wait(self, timeout_s: float | None = None) -> None:
        self.process.wait(timeout_s)
        self.done()

    def error(self) -> str | None:
        """Its `error:` message (or last stderr line) when it failed; None while running or after success."""
        return self._error if self.done() else None

    def _failure(self) -> str | None:
        if self.process.returncode == 0:
            return None
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        found = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
        return (found or lines[-1:] or [f"`shadowlab analyze` exited with {self.process.returncode}"])[0]


def start_analysis(experiment: str, now: datetime | None = None) -> AnalysisRun:
    """Start `shadowlab analyze EXPERIMENT` (it stores a snapshot) with this process' settings; no wait."""
    # a file, not a pipe: nobody has to drain it while the analysis runs; it lives as long as the run
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "shadowlab", "analyze", experiment],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
    )  # fmt: skip
    return AnalysisRun(experiment, now or datetime.now(UTC), process, stderr)


@dataclass
class PeriodicAnalysis:
    """Keeps each running experiment's latest snapshot at most about `every_s` old while replays, scores or
    preferences arrive: `tick(names)` (called by the follow loops every pass, cheap: an experiment is looked
    up at most every minute) starts an analysis of an experiment whose latest snapshot is older than
    `every_s` when something arrived since; one at a time per experiment. Several processes may tick: the
    snapshot one of them stores makes the others wait."""

    factory: sessionmaker[Session]
    every_s: float
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    start: Callable[[str], AnalysisRun] = start_analysis
    running: dict[str, AnalysisRun] = field(default_factory=dict, init=False)
    _next_check: dict[str, datetime] = field(default_factory=dict, init=False)

    def tick(self, names: Iterable[str]) -> None:
        self._reap()
        now = self.now()
        for name in names:
            # first looked at `every_s` after it is seen: processes starting together do not all analyse
            first = self._next_check.setdefault(name, now + timedelta(seconds=self.every_s))
            if name in self.running or now < first:
                continue
            self._next_check[name] = now + timedelta(seconds=min(self.every_s, CHECK_AT_MOST_S))
            if self._due(name, now):
                log.info("analysing %s (every %.0f s)", name, self.every_s, extra={"experiment": name})
                self.running[name] = self.start(name)

    def _due(self, name: str, now: datetime) -> bool:
        with self.factory() as session:
            try:
                experiment = store.experiments.by_name(name, session=session)
            except NotFoundError:  # deleted since it was listed
                return False
            latest = store.snapshots.latest(experiment.id, session=session)
            since = datetime.min.replace(tzinfo=UTC) if latest is None else _aware(latest.computed_at)
            if now - since < timedelta(seconds=self.every_s):
                return False
            return store.snapshots.new_since(experiment.id, since, session=session).any

    def _reap(self) -> None:
        for name, run in list(self.running.items()):
            if run.done():
                del self.running[name]
                if (error := run.error()) is not None:
                    log.error("analysis of %s failed: %s", name, error, extra={"experiment": name})

    def close(self, timeout_s: float = 60.0) -> None:
        """Wait for the analyses still running (they would finish on their own; this reports how)."""
        for run in self.running.values():
            try:
                run.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("analysis of %s still running; left to finish", run.experiment)
        self._reap()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
