"""`shadowlab.pg_async`'s lanes, and the rate limiter's NOTIFY listener, connect as the engine's pool does:
within SHADOWLAB_CONNECT_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import psycopg
import pytest
import sqlalchemy as sa

from shadowlab.db import create_engine, session_factory
from shadowlab.experiment import LimitSpec
from shadowlab.limits import RateLimiter
from shadowlab.pg_async import AsyncStatements

OLD_FIXED_TIMEOUT_S = 5  # what the lanes waited before, whatever the setting said


def test_a_lane_gives_up_after_the_configured_connect_timeout() -> None:
    """A server that never answers: the lane's statement fails with the connect timeout the engine was made
    with (2 s, psycopg's least), well before the lanes' old fixed 5 s would have ended it."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts, never answers
        url = f"postgresql+psycopg://shadowlab:pw@127.0.0.1:{silent.getsockname()[1]}/shadowlab"
        engine = create_engine(url, connect_timeout_s=2)  # `engine_from`: SHADOWLAB_CONNECT_TIMEOUT_S

        async def on_a_lane() -> None:
            lanes = AsyncStatements(engine)
            try:
                statement = lanes.rows("check", sa.text("SELECT 1"), {})
                await asyncio.wait_for(statement, OLD_FIXED_TIMEOUT_S - 0.5)
            finally:
                await lanes.aclose()

        with pytest.raises(psycopg.errors.ConnectionTimeout):  # not asyncio's TimeoutError of the wait
            asyncio.run(on_a_lane())
        engine.dispose()


def test_the_limiter_s_listener_gives_up_after_the_configured_connect_timeout() -> None:
    """A worker starting its rate limiter against a server that never answers: the start fails once the
    listener and the first heartbeat have each waited the engine's 2 s, not after psycopg's own 130 s that
    the listener waited before (the start waits for the listener's first LISTEN, or its failure)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql+psycopg://shadowlab:pw@127.0.0.1:{silent.getsockname()[1]}/shadowlab"
        engine = create_engine(url, connect_timeout_s=2)
        limit = LimitSpec(provider="anthropic", model="m", rpm=60)
        limiter = RateLimiter(session_factory(engine), (limit,), worker_id="w")

        async def start() -> None:
            try:
                await asyncio.wait_for(limiter.start(), 20)  # 2 s + 2 s of timeouts, and slack
            finally:
                with contextlib.suppress(sa.exc.OperationalError):  # giving the grants back: 2 s more
                    await limiter.close()

        try:
            with pytest.raises(sa.exc.OperationalError, match="timeout"):  # the heartbeat's; not the wait's
                asyncio.run(start())
        finally:
            engine.dispose()
