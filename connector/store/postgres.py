"""The PostgreSQL order store: psycopg 3 async with a small connection pool.

Nothing connects until the first call, since `open_store` is synchronous; that first call creates the
schema on its own connection, so a wrong host or password surfaces as a StoreError naming the cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from connector.store.base import StoreError
from connector.store.rows import SqlStore

CONNECT_TIMEOUT_SECONDS = 10
POOL_MAX_SIZE = 8
# Any constant: it keeps two processes starting at once from racing on CREATE TABLE IF NOT EXISTS.
SCHEMA_LOCK_KEY = 0x0C0FFEE

# `id` sorts bytewise (COLLATE "C") so that ORDER BY created_at, id matches SQLite's order.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS order_logs (
        id text COLLATE "C" PRIMARY KEY,
        code text NOT NULL,
        operation text NOT NULL,
        direction text NOT NULL,
        content_source text NOT NULL,
        content_translated text NOT NULL,
        content_destination text NOT NULL,
        business_message text NOT NULL,
        status text NOT NULL,
        account text NOT NULL,
        connection text NOT NULL,
        marketplace_order_id text NOT NULL,
        vtex_order_id text,
        created_at timestamptz NOT NULL,
        created_day date NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS order_logs_by_day ON order_logs (account, created_day, created_at, id)",
    "CREATE INDEX IF NOT EXISTS order_logs_by_order ON order_logs (marketplace_order_id)",
    """CREATE TABLE IF NOT EXISTS order_ids (
        connection text NOT NULL,
        marketplace_order_id text NOT NULL,
        vtex_order_id text NOT NULL,
        PRIMARY KEY (connection, marketplace_order_id)
    )""",
    "CREATE INDEX IF NOT EXISTS order_ids_by_vtex ON order_ids (connection, vtex_order_id)",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        connection text NOT NULL,
        delivery_id text NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (connection, delivery_id)
    )""",
    """CREATE TABLE IF NOT EXISTS order_handoffs (
        connection text NOT NULL,
        marketplace_order_id text NOT NULL,
        notified_at timestamptz,
        read_at timestamptz,
        version timestamptz,
        PRIMARY KEY (connection, marketplace_order_id)
    )""",
    "CREATE TABLE IF NOT EXISTS rate_slots (key text PRIMARY KEY, next_at double precision NOT NULL)",
    """CREATE TABLE IF NOT EXISTS handoff_queue (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        connection text NOT NULL,
        notification text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        due_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS handoff_queue_by_due ON handoff_queue (due_at, id)",
)


class PostgresStore(SqlStore):
    def __init__(self, url: str) -> None:
        super().__init__("%s")
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            # libpq quotes the whole URL, password included.
            reason = str(exc).replace(url, "<url>")
            raise StoreError(f"malformed PostgreSQL store URL: {reason}") from None
        # Without a timeout an unreachable host would hang the first call for minutes.
        timeout = params.get("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        self._conninfo = make_conninfo(url, connect_timeout=timeout)
        host, port, dbname = (params.get(key, "") for key in ("host", "port", "dbname"))
        self._where = f"{host or 'localhost'}:{port or 5432}/{dbname}"  # never the password
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()

    async def _ready_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    await self._create_schema()
                    pool = AsyncConnectionPool(
                        self._conninfo,
                        open=False,
                        min_size=1,
                        max_size=POOL_MAX_SIZE,
                        kwargs={"autocommit": True},
                        check=AsyncConnectionPool.check_connection,  # survives a database restart
                    )
                    await pool.open()
                    self._pool = pool
        return self._pool

    async def _create_schema(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self._conninfo) as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                for statement in SCHEMA:
                    await conn.execute(statement)
        except psycopg.Error as exc:
            raise StoreError(f"cannot use the PostgreSQL store at {self._where}: {exc}") from exc

    async def _execute(self, sql: str, params: Sequence[object]) -> None:
        pool = await self._ready_pool()
        async with pool.connection() as conn:
            await conn.execute(sql, params)

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        pool = await self._ready_pool()
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return list(await cursor.fetchall())

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
