"""The SQLite driver of the order store: one file, WAL mode, every call on one worker thread off the
event loop, statements queued meanwhile committed together.

One connection on one thread serialises this process's coroutines; WAL plus a busy timeout lets a
second process (another worker, the `connector logs` command) read and write the same file meanwhile.

The statements are SQLAlchemy Core compiled once for SQLite (connector/store/sql.py) and run on the raw
sqlite3 connection: the same insert through SQLAlchemy's Connection.execute costs about 21 µs of CPU per
log line, the compiled text on sqlite3 7.5 µs, so bench/store_writes.py's 2,000 concurrent writes would
cost about 26 ms more than their 36 (docs/benchmarks.md). The migrations do run through SQLAlchemy, on
this very connection (an in-memory database has no other).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from connector.store import migrations
from connector.store.base import StoreError

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30.0


def _connect(path: str) -> sqlite3.Connection:
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction, so a writer waits on the busy timeout
        # instead of failing on a read-to-write lock upgrade. The worker thread is the only user.
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the SQLite store {path!r}: {exc}") from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # As the dev server's own file (connector/devserver.py): a killed process loses nothing, only an OS
        # crash can lose the last commits; the hot path no longer waits on a disk sync per log line.
        db.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(f"cannot use the SQLite store {path!r}: {exc}") from exc
    return db


class SqliteDriver:
    """Statements queued while one batch runs go together in the next: one transaction and one trip to
    the store's thread for all of them (group commit). Each caller still returns only once its own
    statement is committed, so nothing a step logged is lost when the process dies after the step."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._db = _connect(path)
        db = self._db
        # Only the migrations use the engine, through this one connection (StaticPool, never closed by it);
        # named parameters: the store binds a dict.
        self._engine = create_engine("sqlite://", creator=lambda: db, poolclass=StaticPool, paramstyle="named")
        self.dialect: Dialect = self._engine.dialect
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._closed = False
        self._queued: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._batch_running = False

    async def _run(self, call: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((call, future))
        self._next_batch()
        return await future

    def _next_batch(self) -> None:
        if self._batch_running or not self._queued:
            return
        batch, self._queued = self._queued, []
        self._batch_running = True
        running = asyncio.get_running_loop().run_in_executor(self._worker, _run_batch, self._db, [c for c, _ in batch])
        running.add_done_callback(lambda done: self._settle(batch, done))

    def _settle(self, batch: list[tuple[Callable[[], Any], asyncio.Future[Any]]], done: asyncio.Future[Any]) -> None:
        self._batch_running = False
        error = done.exception()
        outcomes: list[tuple[bool, Any]] = [(False, error)] * len(batch) if error else done.result()
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._next_batch()

    async def prepare(self, *, migrate: bool) -> tuple[str | None, str]:
        """On the store's thread, before any statement (SqlStore awaits it first)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, self._prepare, migrate)
        except DBAPIError as exc:  # sqlite3's error, as SQLAlchemy (the migrations) wraps it
            raise StoreError(f"cannot use the SQLite store {self._path!r}: {exc.orig}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the SQLite store {self._path!r}: {exc}") from exc

    def _prepare(self, migrate: bool) -> tuple[str | None, str]:
        with self._engine.connect() as connection:
            return migrations.upgrade(connection) if migrate else migrations.check(connection)

    # sqlite3's own date adapters are deprecated since Python 3.12; ISO text is explicit, and sortable: times
    # are always UTC with microseconds, fixed width, so text order is time order.
    def moment(self, value: datetime) -> object:
        return value.isoformat(timespec="microseconds")

    def day(self, value: date) -> object:
        return value.isoformat()

    async def execute(self, sql: str, params: Mapping[str, object]) -> int:
        return await self._run(lambda: _rowcount(self._db.execute(sql, params)))

    async def fetch(self, sql: str, params: Mapping[str, object]) -> list[Sequence[Any]]:
        return await self._run(lambda: self._db.execute(sql, params).fetchall())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._run(lambda: None)  # after everything queued before
        await asyncio.get_running_loop().run_in_executor(self._worker, self._db.close)
        self._worker.shutdown()


def _rowcount(cursor: sqlite3.Cursor) -> int:
    count = cursor.rowcount
    cursor.close()
    return count


def _run_batch(db: sqlite3.Connection, calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """On the store's thread: each call's (succeeded, result or exception), all in one transaction."""
    if len(calls) == 1:
        return [_outcome(calls[0])]  # autocommit, as a single statement always was
    # IMMEDIATE: the write lock up front, waited for on the busy timeout (a deferred transaction that
    # reads first could fail at once when it upgrades to write while another process writes).
    db.execute("BEGIN IMMEDIATE")
    outcomes = []
    for call in calls:
        outcomes.append(_outcome(call))
        if not db.in_transaction:
            # A failure SQLite answers by rolling the whole transaction back (disk full, I/O): nothing
            # of this batch was kept, so every caller gets the error.
            error = outcomes[-1][1]
            return [(False, error)] * len(calls)
    try:
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        return [(False, exc)] * len(calls)
    return outcomes


def _outcome(call: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, call()
    except Exception as exc:  # handed to the caller of this one statement, as a call of its own would
        return False, exc
