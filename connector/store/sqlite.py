"""The SQLite order store: one file, WAL mode, every call on one worker thread off the event loop.

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
    def __init__(self, path: str) -> None:
        super().__init__("?")
        self._db = _connect(path)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._closed = False

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, call)

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
        await self._run(self._db.close)
        self._worker.shutdown()
