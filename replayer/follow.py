"""`shadowlab replay --all [--follow]`: one worker per running experiment in this process, and with
`--follow` new experiments picked up as they start, until SIGTERM or SIGINT.

Every `poll_s` the running experiments are listed; each one without a worker here gets one, in its spec's
traffic mode (a backfill worker ends when its selection is done and is started again on a later scan,
finding nothing or what a dead worker left). A stop stops every worker (each gives back what it will not
finish: `replayer.worker`) and returns. A worker that ends on a provider down longer than
`replay.outage.max_s` does not end the follower: it says so and its experiment is served again from the next
scan (a fresh worker, which waits for the provider up to `max_s` again), the others go on. Without
`--follow`, one scan: the workers run until their experiments are done, and such an outage is the command's
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from replayer.metrics import WorkerMetrics
from replayer.worker import Mode, Worker, WorkerConfig
from shadowlab import store
from shadowlab.analysis_runs import PeriodicAnalysis
from shadowlab.config import Settings
from shadowlab.limits_outage import ProviderOutageError

__all__ = ["replay_all"]

log = logging.getLogger("replayer")


def _running(factory: sessionmaker[Session]) -> list[tuple[str, Mode]]:
    with factory() as session:
        return [(e.name, store.experiments.spec_of(e).traffic.mode)
                for e in store.experiments.list_all(session=session) if e.status == "running"]  # fmt: skip


async def replay_all(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    worker_id: str,
    concurrency: int,
    metrics: WorkerMetrics,
    follow: bool,
    poll_s: float = 2.0,
    analyze_every_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the running experiments (`follow`: and those started later) until done or stopped (SIGTERM,
    SIGINT, or `stop` set); with `analyze_every_s`, a fresh analysis snapshot of each that often
    (`PeriodicAnalysis`)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="shadowlab-db"))
    stop = asyncio.Event() if stop is None else stop
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    serving: dict[str, tuple[Worker, asyncio.Task[None]]] = {}
    log.info("replaying every running experiment%s", " until stopped" if follow else "",
             extra={"follow": follow})  # fmt: skip
    analyses = None if analyze_every_s is None else PeriodicAnalysis(factory, analyze_every_s)
    while not stop.is_set():
        running = await loop.run_in_executor(None, _running, factory)
        if analyses is not None:
            await loop.run_in_executor(None, analyses.tick, [name for name, _ in running])
        for name, mode in running:
            if name not in serving:
                worker = Worker(factory, settings, WorkerConfig(name, worker_id, mode, concurrency), metrics)
                serving[name] = (worker, asyncio.create_task(worker.run()))
                log.info("replaying %s (%s)", name, mode, extra={"experiment": name, "mode": mode})
        if not follow:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
        for name in [n for n, (_, task) in serving.items() if task.done()]:
            _ended(name, serving.pop(name)[1].exception(), follow)
    for worker, _ in serving.values():
        if stop.is_set():
            worker.stopping.set()
    ends = await asyncio.gather(*(task for _, task in serving.values()), return_exceptions=True)
    for name, end in zip(serving, ends, strict=True):
        _ended(name, end, follow)


def _ended(name: str, error: BaseException | None, follow: bool) -> None:
    """A worker's end. Following, a provider down past its `max_s` is said, and its experiment is served again
    from the next scan; any other failure is this process's failure."""
    if follow and isinstance(error, ProviderOutageError):
        log.warning("%s: %s; served again from the next scan", name, error, extra={"experiment": name})
    elif error is not None:
        raise error
