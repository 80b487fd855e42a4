"""The daemon's writes per probe to a SQLite file (its row's three, the alert states its
verdict moves), each transaction one trip to a thread of their own.

Through the async engine a probe's write cost five to six hops between the event loop and
aiosqlite's thread (cursor, execute, fetch, close, commit, and the pool's rollback when the
connection goes back), each a queue put, a thread wake-up and a wake-up of the loop. Here the
whole transaction (BEGIN, the statement, COMMIT) runs in one call on one thread with a
synchronous connection of its own: half the CPU of a probe's record (bench/store_writes.py:
2.3 → 1.2 ms for a probe's three writes). The caller still waits for the COMMIT: a probe's row
is committed before its canary leaves, as before, and a kill -9 loses no write it awaited.

Only for files: an in-memory database would be another database on another connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import CursorResult, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.adapters.quickread import sqlite_path

_T = TypeVar("_T")
# Work done inside one transaction, given its (synchronous) connection.
Work = Callable[[Connection], _T]


class Written:
    """What a write did: rows it matched and the first column of the row it returned."""

    __slots__ = ("returned", "rowcount")

    def __init__(self, rowcount: int, returned: Any) -> None:
        self.rowcount = rowcount
        self.returned = returned


def written(result: CursorResult[Any]) -> Written:
    returned = result.scalar_one_or_none() if result.returns_rows else None
    return Written(result.rowcount, returned)


class FileWriter:
    """One thread and one synchronous connection to the SQLite file behind `engine`."""

    def __init__(self, engine: AsyncEngine, on_connect: Any) -> None:
        self._engine: Engine = create_engine(engine.url.set(drivername="sqlite+pysqlite"))
        event.listen(self._engine, "connect", on_connect)
        # One thread: SQLite has one writer, and the connection never changes threads.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mailcanary-writes")

    @classmethod
    def for_engine(cls, engine: AsyncEngine, on_connect: Any) -> FileWriter | None:
        url = engine.url
        if url.get_backend_name() != "sqlite":
            return None
        if sqlite_path(url.render_as_string(hide_password=False)) is None:
            return None
        return cls(engine, on_connect)

    async def transaction(self, work: Work[_T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    def _run(self, work: Work[_T]) -> _T:
        with self._engine.begin() as connection:
            return work(connection)

    async def close(self) -> None:
        # Disposed on its own thread: the connection was made there.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=True)


async def transaction_async(engine: AsyncEngine, work: Work[_T]) -> _T:
    """The same through the async engine (PostgreSQL, in-memory SQLite)."""
    async with engine.begin() as connection:
        return await connection.run_sync(work)
