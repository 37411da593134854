"""The heaviest reads of a stored experiment's analysis, started before the command has imported anything.

`shadowlab analyze|report|route|gate EXP` on Postgres spends ~0.8 s importing Typer, SQLAlchemy, pydantic,
numpy and pyarrow before its first query, while Postgres idles; Postgres then needs ~1.8 s of its CPU for the
experiment's replays, captured requests and scores. So the entry point (`cli.entry`) calls `start_from_argv`
first: a thread connects with psycopg alone, opens a read-only REPEATABLE READ transaction, exports its
snapshot and reads the experiment's arms; then that connection reads the replays while a second one, under
the same snapshot, reads the captured requests (when they fill their id range densely) and a third the
scores. All in the forms `analysis.fetch` decodes (one row of concatenated binary values).

`load_experiment` takes them (`take`): its session imports the same snapshot first, so everything else it
reads sees exactly the data these reads saw. When anything differs or fails (another database, no such
experiment, an older schema), the prefetch is dropped and the command reads as before: a prefetch never
reports an error of its own, the command's usual checks do. One exception: a refused connection (a wrong
password, a server down) is the command's error as its check would word it (`refusal`), not a second try.
This module and its SQL (`analysis.prefetch_sql`) import only the standard library and core modules built on
it alone (`shadowlab.db_errors` with `shadowlab.errors`, `shadowlab.scorer_versions`; psycopg inside the
thread): starting costs ~1 ms.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from analysis.prefetch_sql import (
    SNAPSHOT_ID,
    Head,
    captures_sql,
    dense_span,
    head_of,
    one_row,
    replays_sql,
    scores_chain,
    tune,
)
from shadowlab.db_errors import PASSING  # refusals that pass by themselves: the command's connect tries again

COMMANDS = frozenset({"analyze", "report", "route", "gate"})  # the commands that load one stored experiment
APPLICATION_NAME = "shadowlab-prefetch"  # its connections in pg_stat_activity
_started: Prefetch | None = None


class PrefetchFailed(Exception):
    """A prefetched read failed or was dropped: the caller reads for itself."""


class _Result:
    """One read's row, set once by its thread."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._row: tuple[Any, ...] | None = None
        self._error: BaseException | None = None

    def set(self, row: tuple[Any, ...] | None, error: BaseException | None = None) -> None:
        self._row, self._error = row, error
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def get(self) -> tuple[Any, ...] | None:
        """The row (None: nothing was read, e.g. no dense id range), handed over once: the caller decodes it
        and the raw bytes (~100 MB at a million replays) are not kept here meanwhile. `PrefetchFailed` when
        the read failed, or on a second call."""
        self._done.wait()
        if self._error is not None:
            raise PrefetchFailed(str(self._error))
        row, self._row, self._error = self._row, None, PrefetchFailed("handed over already")
        return row


class Prefetch:
    """The reads of experiment `name` on the database at `url`, running (see the module). `close()` ends them
    (a running query is cancelled) and lets each thread close its own connection; it is idempotent.

    Each connection is closed only by the thread that reads on it (psycopg's `close` frees the libpq
    connection at once, even while another thread is inside libpq on it: a crash, seen on Ctrl-C). The
    leader's connection, whose transaction exported the snapshot, stays open until `close()`: the command's
    session imports the snapshot while that transaction lives."""

    def __init__(self, url: str, name: str, conninfo: str, connect_timeout_s: float) -> None:
        self.url, self.name = url, name
        self.snapshot: str | None = None
        self.head: Head | None = None
        self.refused: BaseException | None = None  # the server's answer to the leader's connect, if it failed
        self._conninfo, self._timeout = conninfo, max(1, round(connect_timeout_s))
        self._ready = threading.Event()  # snapshot and head known (or the start failed)
        self._release = threading.Event()  # set by close(): the leader may end its transaction
        self._replays, self._captures, self._scores = _Result(), _Result(), _Result()
        self._changed = threading.Condition()  # guards the lists below and `_closed`
        self._connections: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._run)

    def ready(self) -> bool:
        """Waits until the snapshot is exported and the experiment's arms are read; False when that failed."""
        self._ready.wait()
        return self.snapshot is not None and self.head is not None

    def replays(self) -> tuple[Any, ...] | None:
        """The replays' row (`replays_sql`), once; `PrefetchFailed` when its read failed."""
        return self._replays.get()

    def captures(self) -> tuple[Any, ...] | None:
        """The captures' row (`captures_sql`) and the id range read, or None when the requests do not fill
        their id range densely (then they are read by id later); `PrefetchFailed` when the read failed."""
        return self._captures.get()

    def scores(self) -> tuple[Any, ...] | None:
        """The experiment's replay id span (`shadowlab.store.scorers.ReplaySpan`), each pointwise scorer's
        latest version (`shadowlab.scorer_versions`) and the row of their scores (`scores_chain`; None without
        any); `PrefetchFailed` when a read failed."""
        return self._scores.get()

    def close(self, *, wait_s: float = 10.0) -> None:
        """Cancel what runs, until every thread has closed its connection (at most `wait_s`), then wait for
        the threads to end. A thread still connecting closes its connection itself once it has one."""
        from psycopg.pq import TransactionStatus

        with self._changed:
            if self._closed:
                return
            self._closed = True
        self._release.set()
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self._connections and time.monotonic() < deadline:
                for connection in self._connections:  # a query still running stops now
                    if connection.info.transaction_status == TransactionStatus.ACTIVE:
                        with suppress(Exception):  # ended meanwhile: nothing to stop
                            connection.cancel_safe(timeout=1.0)
                self._changed.wait(timeout=0.05)
            threads = list(self._threads)
        ends = min(deadline, time.monotonic() + 1.0)  # a thread still connecting is not waited for
        for thread in threads:  # the others return right after closing their connections
            thread.join(timeout=max(0.0, ends - time.monotonic()))
        for result in (self._replays, self._captures, self._scores):
            if not result.done():
                result.set(None, PrefetchFailed("closed"))
        self._ready.set()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="shadowlab-prefetch", daemon=True)
        with self._changed:
            if self._closed:
                return
            self._threads.append(thread)
        thread.start()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.types.string import ByteaBinaryLoader

        connection = psycopg.connect(
            self._conninfo, connect_timeout=self._timeout, autocommit=False, application_name=APPLICATION_NAME
        )
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        connection.adapters.register_loader("text", ByteaBinaryLoader)  # strings arrive as their bytes
        with self._changed:
            if not self._closed:
                self._connections.append(connection)
                return connection
        connection.close()
        raise PrefetchFailed("closed")

    def _drop(self, connection: Any) -> None:
        """Close a connection of this thread's (the only thread that reads on it)."""
        with self._changed:
            self._connections.remove(connection)
            connection.close()
            self._changed.notify_all()

    def _run(self) -> None:
        leader = None
        try:
            leader = self._connect()
            tune(leader)
            self.snapshot = one_row(leader, "SELECT pg_export_snapshot()")[0].decode()
            self.head = head_of(leader, self.name)
        except Exception as exc:  # noqa: BLE001 - the command's own checks report what is wrong
            import psycopg

            self.snapshot = self.head = None
            if leader is None and isinstance(exc, psycopg.OperationalError):
                self.refused = exc
        finally:
            self._ready.set()
        head = self.head
        if head is None or not head.used:
            for result in (self._replays, self._captures, self._scores):
                result.set(None)
        else:
            self._start(self._read_captures, head)
            self._start(self._read_scores, head)
            sql, params = replays_sql([arm for arm, _ in head.arms])
            _into(self._replays, lambda: one_row(leader, sql, [*params, head.experiment_id]))
        self._release.wait()  # the command's session may still import the snapshot of this transaction
        if leader is not None:
            self._drop(leader)

    def _on_helper(self, read: Callable[[Any], tuple[Any, ...] | None]) -> tuple[Any, ...] | None:
        """`read(connection)` on a connection of its own under the snapshot, closed after."""
        connection = self._connect()
        try:
            connection.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
            tune(connection)
            return read(connection)
        finally:
            self._drop(connection)

    def _read_scores(self, head: Head) -> None:
        _into(self._scores, lambda: self._on_helper(lambda c: scores_chain(c, head.experiment_id)))

    def _read_captures(self, head: Head) -> None:
        def read(connection: Any) -> tuple[Any, ...] | None:
            span = dense_span(connection, head)
            if span is None:
                return None
            return (*one_row(connection, captures_sql(), list(span)), span)

        _into(self._captures, lambda: self._on_helper(read) if head.utf8 else None)


def _into(result: _Result, read: Callable[[], tuple[Any, ...] | None]) -> None:
    try:
        result.set(read())
    except Exception as exc:  # noqa: BLE001 - the caller reads for itself
        result.set(None, exc)


def libpq_conninfo(url: str) -> str | None:
    """A SQLAlchemy Postgres URL as a libpq URI (None for any other database, and for several hosts)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgresql+psycopg", "postgres"):
        return None
    where, _, query = rest.partition("?")
    hosts = where.partition("/")[0].rpartition("@")[2]
    named = [arg.partition("=")[2] for arg in query.split("&") if arg.startswith("host=")]
    if "," in hosts or len(named) > 1 or any(":" in host or "," in host for host in named):
        # SQLAlchemy gives every host the URL's port, or reads `?host=h:p` itself; libpq reads both otherwise
        # (its default port, a host named 'h:p'): its refusal would not be the command's. No prefetch.
        return None
    return f"postgresql://{rest}"


def _wanted(argv: Sequence[str]) -> str | None:
    """The experiment name of `COMMANDS EXP …` (None for anything else, or with --help)."""
    if len(argv) < 2 or argv[0] not in COMMANDS or argv[1].startswith("-"):
        return None
    if any(a in ("--help", "-h", "--from-csv") or a.startswith("--from-csv=") for a in argv):
        return None
    return argv[1]


def start_from_argv(argv: Sequence[str], environ: Mapping[str, str]) -> Prefetch | None:
    """Start the reads when the command line is `COMMANDS EXP …` on a Postgres SHADOWLAB_DATABASE_URL (read as
    the settings will read it; a bad value just means no prefetch); the started prefetch, for `take`."""
    global _started
    name = _wanted(argv)
    url = environ.get("SHADOWLAB_DATABASE_URL")
    conninfo = None if url is None else libpq_conninfo(url)
    if name is None or url is None or conninfo is None:
        return None
    try:
        timeout = float(environ.get("SHADOWLAB_CONNECT_TIMEOUT_S", "5"))
    except ValueError:
        return None
    if not timeout > 0:
        return None
    if _started is not None:
        _started.close()
    _started = Prefetch(url, name, conninfo, timeout)
    atexit.register(_started.close)
    return _started


def refusal(url: str) -> BaseException | None:
    """Why the prefetch started on `url` could not connect (psycopg's error), once its attempt has ended; None
    when it connected, or none was started on `url`. The command reports it rather than connecting again with
    the same settings: that would fail alike, after as long a wait, and a wrong password would be two failed
    logins in the server's log."""
    started = _started
    if started is None or started.url != url:
        return None
    started.ready()
    refused = started.refused
    if refused is not None and any(word in str(refused) for word in PASSING):
        return None  # may be over by the command's own connect: it tries once more
    return refused


def take(url: str, name: str) -> Prefetch | None:
    """The started prefetch of experiment `name` on `url`, ready (the caller's to close now), or None."""
    global _started
    started, _started = _started, None
    if started is None:
        return None
    if started.url != url or started.name != name or not started.ready():
        started.close()
        return None
    if started.snapshot is None or not SNAPSHOT_ID.fullmatch(started.snapshot):
        started.close()
        return None
    return started
