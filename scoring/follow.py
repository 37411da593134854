"""`shadowlab score --all [--follow]`: score every running experiment, and with `--follow` keep doing so,
picking up experiments started later and replays that arrive, until SIGTERM or SIGINT.

Each pass scores each running experiment once (`scoring.service.score_named`); items other processes hold
are left to them (a dead one's are taken on a later pass, after its lease). One experiment that cannot be
scored (no price for its judge, no control arm) is logged and skipped; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from scoring.metrics import ScoreMetrics
from scoring.runner import RunSummary, TaskOptions
from scoring.service import score_named
from shadowlab import store
from shadowlab.analysis_runs import PeriodicAnalysis
from shadowlab.config import Settings
from shadowlab.db import engine_from, session_factory
from shadowlab.errors import ShadowlabError

__all__ = ["score_all"]

log = logging.getLogger("scoring")
Report = Callable[[str, list[RunSummary]], None]


async def score_all(
    settings: Settings,
    *,
    follow: bool,
    concurrency: int,
    options: TaskOptions,
    metrics: ScoreMetrics | None = None,
    report: Report | None = None,
    poll_s: float = 2.0,
    analyze_every_s: float | None = None,
) -> None:
    """One pass over the running experiments, or (`follow`) passes until `options.stop` is set; with
    `analyze_every_s`, a fresh analysis snapshot of each that often (`PeriodicAnalysis`)."""
    engine = engine_from(settings)
    factory = session_factory(engine)
    analyses = None if analyze_every_s is None else PeriodicAnalysis(factory, analyze_every_s)
    options = TaskOptions(options.worker_id, options.lease_s, not follow, options.poll_s, options.stop)
    until = " until stopped" if follow else ""
    log.info("scoring every running experiment%s", until, extra={"follow": follow})
    try:
        while not options.stopped():
            with factory() as session:
                names = [e.name for e in store.experiments.list_all(session=session) if e.status == "running"]
            if analyses is not None:
                await asyncio.to_thread(analyses.tick, names)
            for name in names:
                if options.stopped():
                    break
                try:
                    summaries = await score_named(factory, settings, name, concurrency=concurrency,
                                                  metrics=metrics, options=options)  # fmt: skip
                except ShadowlabError as exc:
                    log.error("cannot score %s: %s", name, exc, extra={"experiment": name})
                    continue
                if report is not None and any(s.total for s in summaries):
                    report(name, summaries)
            if not follow:
                break
            if options.stop is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(options.stop.wait(), poll_s)
            else:
                await asyncio.sleep(poll_s)
    finally:
        engine.dispose()
