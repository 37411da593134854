"""`analysis.prefetch`: the reads `shadowlab analyze|report|route|gate EXP` starts before its imports give the
same analysis as the loader's own reads, under one snapshot with everything else the load reads."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.experiment_analysis import analyze_experiment
from analysis.load_start import start_in_session
from analysis.prefetch import APPLICATION_NAME, PrefetchFailed, libpq_conninfo, start_from_argv
from analysis.prefetch_sql import head_of, one_row, scores_chain
from shadowlab.db import create_engine
from tests.support.analysis_seed import seed_experiment
from tests.support.net import CountingProxy, free_port


def _prefetch_connections(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
            return int(conn.execute(count, {"name": APPLICATION_NAME}).scalar_one())
    finally:
        engine.dispose()


def _execute(url: str, statement: str) -> None:
    """One statement, committed, on its own engine."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _add_scores(url: str, name: str, version: str, value: str, written: str, where: str = "") -> None:
    """A score by (`name`, `version`) on each replay (`where` them): `value` and `written` are SQL."""
    columns = "replay_id, scorer_name, scorer_version, value, details, created_at"
    rows = f"SELECT id, '{name}', '{version}', {value}, '{{}}', {written} FROM replays {where}"
    _execute(url, f"INSERT INTO scores ({columns}) {rows}")


def _analysed(url: str, name: str, *, prefetched: bool) -> dict[str, Any]:
    """The analysis document of `name`, its reads prefetched (as `cli.entry` starts them) or not."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            start_in_session(session, name, database_url=url if prefetched else None)
            return analyze_experiment(session, name, store=False).document
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_prefetched_reads_give_the_loaders_own_analysis(pg_database: str) -> None:
    seed_experiment(pg_database, "exp-p", n=150, seed=4)
    # a second pointwise scorer, on some replays: each score says whose it is
    _add_scores(pg_database, "length_ok", "1", "(id % 2)::float", "now()", "WHERE id % 3 > 0")
    expected = _analysed(pg_database, "exp-p", prefetched=False)
    assert "length_ok" in json.dumps(expected)  # a metric of the analysis
    started = start_from_argv(["analyze", "exp-p", "--json"], {"SHADOWLAB_DATABASE_URL": pg_database})
    assert started is not None
    assert _analysed(pg_database, "exp-p", prefetched=True) == expected
    for handed_over in (started.replays, started.captures, started.scores):  # the load took all three
        with pytest.raises(PrefetchFailed, match="handed over"):
            handed_over()
    assert _prefetch_connections(pg_database) == 0  # closed by the load


@pytest.mark.postgres
def test_an_older_version_and_a_gap_in_the_replay_ids_read_as_the_loader_reads_them(pg_database: str) -> None:
    """The prefetch reads every version's scores in one scan and keeps the latest: an older version (written
    before, other values) must not leak in; with replays deleted the experiment's ids leave gaps, so its
    scores are found through its replays rather than by their id range."""
    seed_experiment(pg_database, "exp-v", n=140, seed=7)
    _add_scores(pg_database, "judge_score", "v0", "0.0", "now() - interval '1 day'")
    expected = _analysed(pg_database, "exp-v", prefetched=False)
    assert start_from_argv(["analyze", "exp-v"], {"SHADOWLAB_DATABASE_URL": pg_database}) is not None
    assert _analysed(pg_database, "exp-v", prefetched=True) == expected
    _execute(pg_database, "DELETE FROM replays WHERE id % 7 = 3")
    gappy = _analysed(pg_database, "exp-v", prefetched=False)
    assert gappy != expected
    assert start_from_argv(["analyze", "exp-v"], {"SHADOWLAB_DATABASE_URL": pg_database}) is not None
    assert _analysed(pg_database, "exp-v", prefetched=True) == gappy
    # the span the scores' read finds from the index is the replays' own (smallest, largest id and count,
    # with an error replay among them), and the gaps make the scores be found through the replays
    with psycopg.connect(libpq_conninfo(pg_database) or "") as connection:
        head = head_of(connection, "exp-v")
        assert head is not None
        found = scores_chain(connection, head.experiment_id)
        scanned = one_row(
            connection,
            "SELECT min(id), max(id), count(*), count(*) FILTER (WHERE status = 'error') FROM replays "
            "WHERE experiment_id = %s",
            [head.experiment_id],
            binary=False,
        )
        assert found[0] == tuple(scanned[:3]) and scanned[3] > 0
        assert found[0][1] - found[0][0] + 1 > found[0][2]  # the gaps


@pytest.mark.postgres
def test_the_load_sees_what_the_prefetch_saw(pg_database: str) -> None:
    """Rows committed after the prefetch's snapshot are invisible to the whole load: a newer judge version
    written meanwhile (read by the loader's own sessions, not the prefetch) is not chosen."""
    seed_experiment(pg_database, "exp-s", n=120, seed=5)
    expected = _analysed(pg_database, "exp-s", prefetched=False)
    started = start_from_argv(["report", "exp-s"], {"SHADOWLAB_DATABASE_URL": pg_database})
    assert started is not None and started.ready()
    _add_scores(pg_database, "judge_score", "v9", "0.0", "now() + interval '1 day'")
    assert _analysed(pg_database, "exp-s", prefetched=True) == expected
    assert _analysed(pg_database, "exp-s", prefetched=False) != expected  # v9 counts from now on


@pytest.mark.postgres
def test_a_prefetch_of_another_experiment_is_dropped(pg_database: str) -> None:
    seed_experiment(pg_database, "exp-d", n=100, seed=6)
    expected = _analysed(pg_database, "exp-d", prefetched=False)
    other = start_from_argv(["route", "nosuch"], {"SHADOWLAB_DATABASE_URL": pg_database})
    assert other is not None and not other.ready()  # no such experiment
    assert _analysed(pg_database, "exp-d", prefetched=True) == expected
    assert _prefetch_connections(pg_database) == 0  # closed by the load that did not want it


def test_only_a_stored_experiment_on_postgres_is_prefetched() -> None:
    pg = {
        "SHADOWLAB_DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:1/db",
        "SHADOWLAB_CONNECT_TIMEOUT_S": "1",
    }
    for argv in (
        ["analyze", "--from-csv", "x.csv"],
        ["analyze", "e", "--help"],
        ["replay", "e"],
        ["analyze"],
    ):
        assert start_from_argv(argv, pg) is None, argv
    assert start_from_argv(["analyze", "e"], {"SHADOWLAB_DATABASE_URL": "sqlite:///x.db"}) is None
    assert start_from_argv(["analyze", "e"], pg | {"SHADOWLAB_CONNECT_TIMEOUT_S": "soon"}) is None
    assert libpq_conninfo("postgresql+psycopg://u:p%40x@h:5/db?sslmode=require") == (
        "postgresql://u:p%40x@h:5/db?sslmode=require"
    )
    for several in ("u:p@h1,h2:5/db", "u:p@/db?host=h1:5&host=h2:5", "u:p@/db?host=h1&host=h2"):
        # hosts SQLAlchemy and libpq read differently: the prefetch would not reach the command's servers
        assert libpq_conninfo(f"postgresql+psycopg://{several}") is None, several
    assert libpq_conninfo("postgresql+psycopg://u:p@/db?host=/run/postgresql") == (
        "postgresql://u:p@/db?host=/run/postgresql"
    )
    refused = start_from_argv(["gate", "e"], pg)  # nothing listens on port 1: the prefetch gives up quietly
    assert refused is not None and not refused.ready()
    refused.close()


def test_an_unreachable_database_is_still_one_error_line(cli: Callable[..., Any], tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:p@127.0.0.1:1/db"
    result = cli("analyze", "exp", "--json", env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "p@" not in result.stderr  # no password shown either


@pytest.mark.postgres
def test_several_hosts_reach_the_database_as_every_command_does(
    cli: Callable[..., Any], pg_migrated: str, tmp_path: Path
) -> None:
    """SQLAlchemy's `?host=h:p&host=h:p` (the server, then a closed port): the prefetch's own reading of it
    failed to resolve 'h:p', and the command reported that as its error, exit 3."""
    url = sa.engine.make_url(pg_migrated)
    hosts = (f"{url.host}:{url.port}", f"127.0.0.1:{free_port()}")
    several = url._replace(host=None, port=None).update_query_dict({"host": hosts})
    env = {"SHADOWLAB_DATABASE_URL": several.render_as_string(hide_password=False)}
    result = cli("analyze", "h5-none", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "h5-none" in result.stderr, result.stderr  # no such experiment there
    assert "unreachable" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("analyze", "exp", "--json"), ("report", "exp"), ("db", "upgrade")])
def test_a_wrong_password_is_one_login_and_one_error_line(
    cli: Callable[..., Any], postgres_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    real = sa.engine.make_url(postgres_url)
    with CountingProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        # no SSL: libpq's default (prefer) would try again without it on a server that has it, a second login
        wrong = real.set(port=proxy.port, password="not-the-password", query={"sslmode": "disable"})
        url = wrong.render_as_string(hide_password=False)
        result = cli(*command, env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path)
    assert proxy.accepted == 1, result.stderr  # the prefetch's refused login is the command's: no second one
    assert result.returncode == 2, result.stderr  # the server answered: a setting to fix, not a server away
    assert result.stderr.startswith("error: database ") and result.stderr.count("\n") == 1
    assert "refused the login: password authentication failed" in result.stderr
    assert "SHADOWLAB_DATABASE_URL" in result.stderr and "unreachable" not in result.stderr
    assert "not-the-password" not in result.stderr and "Traceback" not in result.stderr


def test_the_requests_facts_import_no_statistics() -> None:
    """The load places the requests' facts on a thread while the command imports the statistics: what that
    thread imports must not wait for them (scipy, `analysis.stats`)."""
    code = (
        "import sys, analysis.load_start, analysis.request_facts; "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('scipy', 'analysis.stats'))}))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]", imported.stdout


# Prefetch.close while its reads run: it ends them before their connections are closed. psycopg's
# `Connection.close` frees the libpq connection at once, while another thread may be inside libpq on it (its
# C generators hold the raw pointer with the GIL released): a use after free, seen on a million replays as
# SIGSEGV at the exit of `shadowlab gate EXP --fail-on bogus`, and as SIGSEGV or SIGABRT on Ctrl-C in `route`.
_TRIES = 12  # each ~0.1 s; a trial of the defect shows it about one time in three
_WAITING = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'"
)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait for `condition()` (polled), failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _new_threads(before: set[threading.Thread]) -> list[str]:
    return sorted(t.name for t in set(threading.enumerate()) - before if t.is_alive())


def _none_new(before: set[threading.Thread]) -> bool:
    return not _new_threads(before)


@pytest.mark.postgres
def test_close_ends_the_reads_before_closing_their_connections(pg_migrated: str) -> None:
    seed_experiment(pg_migrated, "exp-c", n=60, seed=7)
    engine = create_engine(pg_migrated)
    left: list[list[str]] = []
    try:
        with engine.connect() as locker, engine.connect() as watcher:
            # The captures' and the scores' reads wait on these locks: both are running when close() comes.
            locker.execute(sa.text("LOCK TABLE captured_requests, scores IN ACCESS EXCLUSIVE MODE"))

            def both_waiting() -> bool:
                waiting = watcher.execute(_WAITING, {"name": APPLICATION_NAME}).scalar_one()
                watcher.rollback()
                return int(waiting) == 2

            for _ in range(_TRIES):  # how long a cancelled read takes to notice varies: try a few times
                before = set(threading.enumerate())
                started = start_from_argv(["analyze", "exp-c"], {"SHADOWLAB_DATABASE_URL": pg_migrated})
                assert started is not None and started.ready()
                _until(both_waiting, "the captures' and scores' reads to wait on the lock")
                interval = sys.getswitchinterval()
                sys.setswitchinterval(1.0)  # the reads get the GIL only when close() waits (as it should)
                try:
                    started.close()
                finally:
                    sys.setswitchinterval(interval)
                left.append(_new_threads(before))
                _until(functools.partial(_none_new, before), "the cancelled reads to end")
            locker.rollback()
    finally:
        engine.dispose()
    assert left == [[]] * _TRIES, f"close() returned, its reads still running on closed connections: {left}"
