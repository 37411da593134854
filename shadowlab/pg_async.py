"""Postgres: hot statements of a busy event loop (a scorer's claim, budget batch and group commit of results;
a replay worker's write of finished requests) run on that loop, each on its own psycopg `AsyncConnection` in
autocommit, instead of on an executor thread.

On a thread, every return from a wait on the server (the send, the poll, the read) needs the GIL back from
the event loop, which sends calls without pause at 0 ms TTFT: the thread waits up to a switch interval (5 ms)
each time, a group commit took several, and the items whose results it carried held their places among the
calls in flight meanwhile (scoring, sampled: all 16 places held by results waiting for their commit, no call
in flight, for a tenth of a run). On the loop a statement waits for the server only; the loop works meanwhile.

One connection per lane (a lane is one kind of statement: a scorer's `claim`, `finish`, `budget`; a replay
worker's `write`), so they overlap as they did on threads; a lock keeps each connection to one statement at a
time. A connection that breaks is dropped (the statement fails as it would on a thread) and the lane connects
anew on its next statement.
Statements are compiled once and prepared on the server, as `shadowlab.db.driver_rows` does for the threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row

from shadowlab.db import CONNECT_TIMEOUT_OPTION, psycopg_conninfo

__all__ = ["AsyncStatements", "Transaction", "is_postgres"]

DEFAULT_CONNECT_TIMEOUT_S = 5  # an engine not made by `shadowlab.db.create_engine` (its default)


async def connect(engine: sa.Engine) -> psycopg.AsyncConnection[Any]:
    """An autocommit async connection to `engine`'s database: its hosts as the engine reads them (several, a
    socket), within SHADOWLAB_CONNECT_TIMEOUT_S as the engine's pool has it (psycopg's own default: 130 s)."""
    timeout = engine.get_execution_options().get(CONNECT_TIMEOUT_OPTION, DEFAULT_CONNECT_TIMEOUT_S)
    conninfo = psycopg_conninfo(engine.url)
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=timeout)


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


@functools.lru_cache(maxsize=64)  # statements are module constants, or built once per queue (a claim)
def _compiled(statement: sa.ClauseElement, dialect: sa.Dialect) -> tuple[str, Mapping[str, Any]]:
    compiled = statement.compile(dialect=dialect)
    return compiled.string, compiled.params


class Transaction:
    """The statements of one `AsyncStatements.transaction`; each is compiled anew (built per call: values
    bound in it, `IN` lists rendered)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], dialect: sa.Dialect) -> None:
        self._conn, self._dialect = conn, dialect

    async def rows(self, statement: sa.ClauseElement, params: Mapping[str, Any] | None = None) -> list[Any]:
        compiled = statement.compile(dialect=self._dialect, compile_kwargs={"render_postcompile": True})
        cursor = self._conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(compiled.string, {**compiled.params, **(params or {})})
        return await cursor.fetchall() if cursor.description is not None else []


class AsyncStatements:
    """The lanes of one owner (a task queue, a budget) on `engine`'s database; `aclose()` at its end."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connections: dict[str, psycopg.AsyncConnection[Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def rows(self, lane: str, statement: sa.ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """`statement` (with the values it binds itself and `params`) as one transaction on `lane`'s
        connection: its rows as named tuples (JSON parsed by psycopg), [] when it returns none."""
        sql, bound = _compiled(statement, self._engine.dialect)
        async with self._lane(lane) as conn:
            cursor = conn.cursor(row_factory=namedtuple_row)
            await cursor.execute(sql, {**bound, **params}, prepare=True)
            return await cursor.fetchall() if cursor.description is not None else []

    @contextlib.asynccontextmanager
    async def transaction(self, lane: str) -> AsyncIterator[Transaction]:
        """Several statements as one transaction on `lane`'s connection (committed at the end, rolled back
        by an exception); the lane is held meanwhile."""
        async with self._lane(lane) as conn, conn.transaction():
            yield Transaction(conn, self._engine.dialect)

    @contextlib.asynccontextmanager
    async def _lane(self, lane: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """`lane`'s connection (connected on first use, or anew after one broke), held meanwhile; dropped when
        what ran on it fails and leaves it broken or inside a transaction (a failed statement in autocommit
        leaves it clean)."""
        async with self._locks.setdefault(lane, asyncio.Lock()):
            conn = self._connections.get(lane)
            if conn is None or conn.closed:
                conn = self._connections[lane] = await self._connect()
            try:
                yield conn
            except BaseException:
                if conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    del self._connections[lane]
                    await conn.close()
                raise

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await connect(self._engine)

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()
