"""Pooled Postgres connections are pinged before use only after they sat idle (`shadowlab.db`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shadowlab.db import create_engine
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres


def _backend(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _kill(postgres_url: str, pid: int) -> None:
    """Terminate one server process, as a restart or an idle timeout would, and wait until it is gone."""
    admin = sa.create_engine(postgres_url)
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()

    def gone() -> bool:
        with admin.connect() as conn:
            found = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
            return bool(found.scalar_one() == 0)

    wait_for(gone, f"backend {pid} to exit", timeout_s=10)
    admin.dispose()


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_when_dead(postgres_url: str) -> None:
    engine = create_engine(postgres_url, ping_after_idle_s=0.0)
    first = _backend(engine)
    _kill(postgres_url, first)
    assert _backend(engine) != first  # the ping found it dead: the caller never saw it
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_so_its_death_fails_one_statement(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, ping_after_idle_s=3600.0)
    first = _backend(engine)
    _kill(postgres_url, first)
    with pytest.raises(sa.exc.OperationalError) as failed:
        _backend(engine)  # no round trip before the statement: it meets the dead connection
    assert failed.value.connection_invalidated
    assert _backend(engine) != first  # the pool was invalidated: the next checkout connects anew
    engine.dispose()
