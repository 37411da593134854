"""`shadowlab.pg_async`'s lanes connect as the engine's pool does: within SHADOWLAB_CONNECT_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import socket

import psycopg
import pytest
import sqlalchemy as sa

from shadowlab.db import create_engine
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
