"""The SQLite order store: one file, WAL mode, every call on one worker thread off the event loop,
statements queued meanwhile committed together.

One connection on one thread serialises this process's coroutines; WAL plus a busy timeout lets a
second process (another worker, the `connector logs` command) read and write the same file meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from connector.store.base import StoreError
from connector.store.rows import SqlStore

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30.0

# Times are fixed-width ISO text in UTC, so text order is time order.
SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS order_logs (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    operation TEXT NOT NULL,
    direction TEXT NOT NULL,
    content_source TEXT NOT NULL,
    content_translated TEXT NOT NULL,
    content_destination TEXT NOT NULL,
    business_message TEXT NOT NULL,
    status TEXT NOT NULL,
    account TEXT NOT NULL,
    connection TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    vtex_order_id TEXT,
    created_at TEXT NOT NULL,
    created_day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS order_logs_by_day ON order_logs (account, created_day, created_at, id);
CREATE INDEX IF NOT EXISTS order_logs_by_order ON order_logs (marketplace_order_id);
CREATE TABLE IF NOT EXISTS order_ids (
    connection TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    vtex_order_id TEXT NOT NULL,
    PRIMARY KEY (connection, marketplace_order_id)
);
CREATE INDEX IF NOT EXISTS order_ids_by_vtex ON order_ids (connection, vtex_order_id);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    connection TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (connection, delivery_id)
);
CREATE TABLE IF NOT EXISTS order_handoffs (
    connection TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    notified_at TEXT,
    read_at TEXT,
    version TEXT,
    PRIMARY KEY (connection, marketplace_order_id)
);
CREATE TABLE IF NOT EXISTS rate_slots (
    key TEXT PRIMARY KEY,
    next_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS handoff_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS handoff_queue_by_due ON handoff_queue (due_at, id);
COMMIT;
"""


def _bind(value: object) -> object:
    # sqlite3's own date adapters are deprecated since Python 3.12; ISO text is explicit and sortable.
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


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
        db.executescript(SCHEMA)
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(f"cannot use the SQLite store {path!r}: {exc}") from exc
    return db


class SqliteStore(SqlStore):
    """Statements queued while one batch runs go together in the next: one transaction and one trip to
    the store's thread for all of them (group commit). Each caller still returns only once its own
    statement is committed, so nothing a step logged is lost when the process dies after the step."""

    def __init__(self, path: str) -> None:
        super().__init__("?")
        self._db = _connect(path)
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

    async def _execute(self, sql: str, params: Sequence[object]) -> None:
        bound = [_bind(value) for value in params]
        await self._run(lambda: self._db.execute(sql, bound).close())

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        bound = [_bind(value) for value in params]
        return await self._run(lambda: self._db.execute(sql, bound).fetchall())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._run(lambda: None)  # after everything queued before
        await asyncio.get_running_loop().run_in_executor(self._worker, self._db.close)
        self._worker.shutdown()


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
