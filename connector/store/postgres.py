"""The PostgreSQL driver of the order store: psycopg 3 async with a small connection pool.

Nothing connects until the first call, since `open_store` is synchronous; that first call migrates (or
checks) the schema on its own connection, so a wrong host or password surfaces as a StoreError naming
the cause.

The statements are SQLAlchemy Core compiled once for PostgreSQL (connector/store/sql.py) and run on
psycopg's own async pool rather than through SQLAlchemy's async engine: that engine would bring greenlet
and a greenlet switch per statement for nothing the store needs, while this pool already checks a
connection before lending it (a database restart is survived) and both drivers keep one execution path:
compiled text plus a dict of parameters. The migrations use a sync SQLAlchemy connection over psycopg,
made from the same connection string, in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from connector.store import migrations
from connector.store.base import StoreError

CONNECT_TIMEOUT_SECONDS = 10
POOL_MAX_SIZE = 8


class PostgresDriver:
    def __init__(self, url: str) -> None:
        # postgresql+psycopg:// is SQLAlchemy's spelling; libpq knows postgresql:// and postgres://.
        url = url.replace("postgresql+psycopg://", "postgresql://", 1)
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
        conninfo = self._conninfo
        # The migrations' engine: one connection per migration, made from the very connection string.
        self._engine = create_engine(
            "postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo), poolclass=NullPool
        )
        self.dialect: Dialect = self._engine.dialect
        self._pool: AsyncConnectionPool | None = None

    async def prepare(self, *, migrate: bool) -> tuple[str | None, str]:
        try:
            revisions = await asyncio.to_thread(self._prepare, migrate)
        except DBAPIError as exc:
            raise StoreError(f"cannot use the PostgreSQL store at {self._where}: {exc.orig}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot use the PostgreSQL store at {self._where}: {exc}") from exc
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
        return revisions

    def _prepare(self, migrate: bool) -> tuple[str | None, str]:
        with self._engine.connect() as connection:
            return migrations.upgrade(connection) if migrate else migrations.check(connection)

    def moment(self, value: datetime) -> object:
        return value  # timestamptz

    def day(self, value: date) -> object:
        return value

    def _ready_pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "SqlStore prepares the driver before its first statement"
        return self._pool

    async def execute(self, sql: str, params: Mapping[str, object]) -> int:
        async with self._ready_pool().connection() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def fetch(self, sql: str, params: Mapping[str, object]) -> list[Sequence[Any]]:
        async with self._ready_pool().connection() as conn:
            cursor = await conn.execute(sql, params)
            return list(await cursor.fetchall())

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        self._engine.dispose()
