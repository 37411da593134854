"""`shadowlab replay`: one worker in this process, or N worker processes, with a progress line from the DB."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn, TextIO

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from replayer.follow import replay_all
from replayer.leases import selection_filter
from replayer.metrics import WorkerMetrics, serve_metrics
from replayer.worker import Mode, WorkerConfig, run_worker
from shadowlab import store
from shadowlab.budget import committed_usd
from shadowlab.config import Settings
from shadowlab.errors import ConfigError, ShadowlabError
from shadowlab.limits_outage import outage_key
from shadowlab.logs import configure_logging
from shadowlab.models import Arm, CapturedRequest, RateLimitKey, Replay, WorkLease, utcnow
from shadowlab.progress import ProgressLine
from shadowlab.providers import ProviderConfig, create_provider, provider_names

__all__ = ["Progress", "ReplayOptions", "dropped_of", "progress_of", "run_replay", "run_replay_all"]

log = logging.getLogger("replayer")


@dataclass(frozen=True)
class ReplayOptions:
    experiment: str
    workers: int
    mode: Mode
    concurrency: int = 64
    metrics_port: int | None = None
    worker_index: int | None = None  # set in a child process
    progress: bool = True
    metrics_host: str = "127.0.0.1"
    every: bool = False  # --all: every running experiment (`experiment` unused)
    follow: bool = False  # --follow: and those started later, until stopped
    analyze_every_s: float | None = None  # --analyze-every (with --follow)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    spent_usd: float
    budget_usd: float | None
    status: str
    paused: tuple[str, ...] = ()  # providers down right now (an outage): their calls wait
    dropped: int = 0  # of `done`, not replayed on every arm (`dropped_of`; counted at the end only)

    def note(self) -> str:
        """Spend against the budget and the experiment's status, after the counts."""
        budget = f"/{self.budget_usd:.2f}" if self.budget_usd is not None else ""
        down = "".join(f" [{provider} down: its calls wait]" for provider in self.paused)
        return f"spend ${self.spent_usd:.4f}{budget} [{self.status}]{down}{self.dropped_note()}"

    def dropped_note(self) -> str:
        """What `done` counts but was not replayed on every arm, said (empty: none)."""
        if not self.dropped:
            return ""
        return (f" ({self.dropped} dropped for budget after a worker's death or stop: not replayed on "
                "every arm; comparisons pair only requests with both arms)")  # fmt: skip


def dropped_of(factory: sessionmaker[Session], name: str) -> int:
    """Requests done without a replay on every arm: dropped for budget after a worker's death (a take-over
    the budget cannot pay for, `shadowlab.budget_recovery`); a probe of the replays' index per done lease."""
    with factory() as session:
        experiment = store.experiments.by_name(name, session=session)
        wl, rp = WorkLease, Replay
        arms = sa.select(sa.func.count()).where(Arm.experiment_id == experiment.id).scalar_subquery()
        replayed = (
            sa.select(sa.func.count())
            .where(rp.experiment_id == experiment.id, rp.captured_request_id == wl.captured_request_id)
            .scalar_subquery()
        )
        return int(session.execute(
            sa.select(sa.func.count()).where(wl.experiment_id == experiment.id, wl.done.is_(True),
                                             replayed < arms)
        ).scalar_one())  # fmt: skip


def progress_of(factory: sessionmaker[Session], name: str, live: bool) -> Progress:
    with factory() as session:
        experiment = store.experiments.by_name(name, session=session)
        spec = store.experiments.spec_of(experiment)
        done = session.execute(
            sa.select(sa.func.count()).where(
                WorkLease.experiment_id == experiment.id, WorkLease.done.is_(True)
            )
        ).scalar_one()
        total: int | None = None
        if not live:
            total = int(
                session.execute(
                    sa.select(sa.func.count())
                    .select_from(CapturedRequest)
                    .where(*selection_filter(spec.traffic))
                ).scalar_one()
            )
            if spec.traffic.max_requests is not None:
                total = min(total, spec.traffic.max_requests)
        keys = {outage_key(arm.provider): arm.provider for arm in experiment.arms}
        rlk = RateLimitKey
        paused = session.execute(
            sa.select(rlk.key).where(rlk.key.in_(keys), rlk.blocked_until > utcnow())
        ).scalars()
        return Progress(int(done), total, committed_usd(session, experiment.id), experiment.budget_usd,
                        experiment.status, tuple(sorted(keys[key] for key in paused)))  # fmt: skip


def _refuse_sqlite_workers(factory: sessionmaker[Session], options: ReplayOptions) -> None:
    if options.workers > 1 and factory.kw["bind"].dialect.name == "sqlite":
        raise ConfigError(
            f"--workers {options.workers}: several workers need Postgres (SHADOWLAB_DATABASE_URL="
            "postgresql+psycopg://...); embedded SQLite is correct for one worker only"
        )


def run_replay_all(factory: sessionmaker[Session], settings: Settings, options: ReplayOptions) -> None:
    """`replay --all [--follow]`: every running experiment, in this process or in N worker processes."""
    configure_logging(settings.log_level, settings.log_format)
    _refuse_sqlite_workers(factory, options)
    if options.workers > 1:
        _run_children(factory, settings, options)
        return
    metrics = _metrics(options)
    asyncio.run(replay_all(factory, settings, worker_id=_worker_id(), concurrency=options.concurrency,
                           metrics=metrics, follow=options.follow,
                           analyze_every_s=options.analyze_every_s))  # fmt: skip


def _how_to_run(name: str, status: str) -> str:
    """What makes an experiment in `status` replay again (the transitions of `store.experiments`)."""
    if status == "draft":
        return f"start it first: shadowlab experiment start {name}"
    if status == "paused":
        return f"resume it first: shadowlab experiment resume {name}"
    if status == "budget_exhausted":
        return f"its budget is spent: raise it (shadowlab experiment budget {name} USD), then resume it"
    return "a concluded experiment replays no more; create a new one to replay its traffic again"


def run_replay(
    factory: sessionmaker[Session], settings: Settings, options: ReplayOptions, stream: TextIO | None = None
) -> Progress:
    """Run the workers until done, showing progress on `stream` (stderr); returns the final progress."""
    configure_logging(settings.log_level, settings.log_format)
    _refuse_sqlite_workers(factory, options)
    with factory() as session:
        experiment = store.experiments.by_name(options.experiment, session=session)
        if experiment.status != "running":
            raise ConfigError(
                f"experiment {options.experiment!r}: replay expects status running, found {experiment.status}"
                f" ({_how_to_run(options.experiment, experiment.status)})"
            )
    line = ProgressLine(f"replay {options.experiment}", stream=stream)
    stop = threading.Event()
    reporter = threading.Thread(
        target=_report, args=(factory, options, line, stop), daemon=True, name="shadowlab-progress"
    )
    start_reporting = reporter.start if options.progress else lambda: None
    try:
        if options.workers == 1:
            start_reporting()
            _run_here(factory, settings, options)
        else:  # the reporter's thread starts once the workers are forked (no thread crosses a fork)
            _run_children(factory, settings, options, forked=start_reporting)
    finally:
        stop.set()
        if reporter.is_alive():
            reporter.join()
    final = progress_of(factory, options.experiment, options.mode == "live")
    final = replace(final, dropped=dropped_of(factory, options.experiment))
    if options.progress:
        line.update(final.done, final.total, final.note())
        line.close()
    log.info(
        "replay of %s ended: %d requests done%s, status %s", options.experiment, final.done,
        final.dropped_note(), final.status,
        extra={"experiment": options.experiment, "worker_index": options.worker_index, "done": final.done,
               "dropped": final.dropped, "total": final.total, "status": final.status,
               "spent_usd": round(final.spent_usd, 6)},
    )  # fmt: skip
    return final


def _metrics(options: ReplayOptions) -> WorkerMetrics:
    """This worker's metrics, served on --metrics-port + its index when asked."""
    metrics = WorkerMetrics.create()
    index = options.worker_index or 0
    if options.metrics_port is not None:
        serve_metrics(metrics, options.metrics_port + index, options.metrics_host)
        log.info("serving /metrics on %s:%d", options.metrics_host, options.metrics_port + index,
                 extra={"metrics_port": options.metrics_port + index})  # fmt: skip
    return metrics


def _worker_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _run_here(factory: sessionmaker[Session], settings: Settings, options: ReplayOptions) -> None:
    metrics = _metrics(options)
    config = WorkerConfig(options.experiment, _worker_id(), options.mode, options.concurrency)
    asyncio.run(run_worker(factory, settings, config, metrics))


def _run_children(
    factory: sessionmaker[Session],
    settings: Settings,
    options: ReplayOptions,
    forked: Callable[[], None] = lambda: None,
) -> None:
    """Fork the worker processes and wait for all of them; SIGTERM or SIGINT here stops them all.

    The workers are forked once this process has imported what they run (every built-in provider's SDK and
    what its clients load): each starts replaying at once instead of importing for ~2.7 s of CPU (four on
    two cores: ~5 s of wall, the first one replaying while the others still import). A stop is forwarded to
    every worker as SIGTERM: it stops claiming, finishes the requests it holds (so their leases end done,
    each once) and exits, and this process waits for that. Unhandled, SIGTERM (what `docker stop` sends)
    ended only this process, and the orphaned workers went on replaying and spending.
    """
    for name in provider_names():  # its SDK, and what a client loads when made (~0.08 s of CPU a worker)
        create_provider(name, ProviderConfig(api_key=SecretStr("warm-up")))
    factory.kw["bind"].dispose()  # no pooled connection crosses the fork
    gc.freeze()  # what is alive now stays shared with the workers (the collector never writes to it)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the workers would write what this process buffered once more each
    children: list[int] = []
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        _forward_stop(children)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(options.workers):
            pid = os.fork()
            if pid == 0:
                _child(factory, settings, options, index)
            children.append(pid)
        if stopping.is_set():  # the stop came while they were starting: the later ones must hear it too
            _forward_stop(children)
        forked()
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A worker stopped before it had set up its own handler ends by the signal: a stop, not a failure.
    failed = [
        i for i, code in enumerate(codes) if code != 0 and not (stopping.is_set() and code == -signal.SIGTERM)
    ]
    if failed:
        raise ConfigError(f"replay workers {failed} exited with codes {[codes[i] for i in failed]}")


def _child(
    factory: sessionmaker[Session], settings: Settings, options: ReplayOptions, index: int
) -> NoReturn:
    """A forked worker: one worker in this process until done, then exit (never back into the parent's
    stack). A failure is one `error:` line and its exit code, as the command's own."""
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):  # until the worker's loop takes them: a stop ends it
            signal.signal(sig, signal.SIG_DFL)
        factory.kw["bind"].dispose(close=False)  # the parent's connections are the parent's
        every = options.analyze_every_s if index == 0 else None  # one worker keeps the analysis fresh
        mine = replace(options, workers=1, worker_index=index, progress=False, analyze_every_s=every)
        if options.every:
            run_replay_all(factory, settings, mine)
        else:
            run_replay(factory, settings, mine)
    except ShadowlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _forward_stop(children: list[int]) -> None:
    """SIGTERM to every worker still running: each gives back what it will not finish and exits
    (`replayer.worker`)."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):  # ended already (a zombie still takes the signal)
            os.kill(pid, signal.SIGTERM)


def _report(
    factory: sessionmaker[Session],
    options: ReplayOptions,
    line: ProgressLine,
    stop: threading.Event,
) -> None:
    while not stop.wait(1.0):
        progress = progress_of(factory, options.experiment, options.mode == "live")
        line.update(progress.done, progress.total, progress.note())
