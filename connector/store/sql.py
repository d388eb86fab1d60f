"""The OrderStore operations, written once as SQLAlchemy Core statements over connector/store/tables.py.

A backend is a `Driver`: the SQLAlchemy dialect its statements are compiled for, and how to run compiled
text on its own database driver (sqlite3 on one thread with a group commit, psycopg's async pool).
Statements of a fixed shape are compiled once, when the store is made; only their parameters change per
call, so the hot paths (a log line, a claim, a rate slot) cost no SQLAlchemy work beyond building the
parameter dict.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Integer, bindparam, case, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

from connector.store.models import (
    HandoffRecord,
    IdMapping,
    LogMessage,
    LogStatus,
    QueuedHandoff,
    StoredToken,
    TokenWrite,
)
from connector.store.tables import (
    handoff_queue,
    marketplace_carts,
    marketplace_tokens,
    order_handoffs,
    order_ids,
    order_logs,
    rate_slots,
    webhook_deliveries,
)

DELIVERY_MEMORY = timedelta(days=7)
DELIVERY_PRUNE_EVERY = 1000
HANDOFF_LOOKUP_CHUNK = 500
# Rows one purge statement deletes: a few milliseconds of write lock, however old the backlog.
PURGE_BATCH = 1000

LOG_COLUMNS = (
    "id",
    "code",
    "operation",
    "direction",
    "content_source",
    "content_translated",
    "content_destination",
    "business_message",
    "status",
    "account",
    "connection",
    "marketplace_order_id",
    "vtex_order_id",
    "created_at",
)
_ID_COLUMNS = ("connection", "marketplace_order_id", "vtex_order_id")
# The columns a token write sets (models.TokenWrite), and the whole row (models.StoredToken).
_TOKEN_WRITE_COLUMNS = tuple(TokenWrite.model_fields)
_TOKEN_COLUMNS = ("connection", "version", *_TOKEN_WRITE_COLUMNS, "lease_owner", "lease_until", "updated_at")
_TOKEN_TIMES = frozenset({"access_expires_at", "broken_at", "lease_until", "updated_at"})


class Driver(Protocol):
    """How one backend runs statements; only SqlStore uses it."""

    dialect: Dialect

    def moment(self, value: datetime) -> object:
        """A UTC time as this backend binds it."""
        ...

    def day(self, value: date) -> object:
        """A date as this backend binds it."""
        ...

    async def prepare(self, *, migrate: bool) -> tuple[str | None, str]:
        """Bring the schema to the newest revision (`migrate`) or raise StoreError unless it is there;
        (revision before, revision after), None before: no revision (a new or a pre-migration database)."""
        ...

    async def execute(self, sql: str, params: Mapping[str, object]) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def fetch(self, sql: str, params: Mapping[str, object]) -> list[Sequence[Any]]: ...

    async def aclose(self) -> None: ...


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so every stored time and every `day` is in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment(value: datetime | str | None) -> datetime | None:
    """A stored time (SQLite gives ISO text, PostgreSQL a datetime) as an aware UTC datetime."""
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def log_from_row(row: Sequence[Any]) -> LogMessage:
    message = LogMessage.model_validate(dict(zip(LOG_COLUMNS, row, strict=True)))
    return message.model_copy(update={"created_at": as_utc(message.created_at)})


class Statement:
    """A statement compiled for one dialect: its text, and its parameters from the values of a call."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, *, values_inline: bool = False) -> None:
        # values_inline (a statement built for one call, its values in it): IN lists become one parameter
        # per element in the text itself.
        compile_kwargs = {"render_postcompile": True} if values_inline else {}
        compiled = statement.compile(dialect=dialect, compile_kwargs=compile_kwargs)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self.sql = self._compiled.string

        # The values the statement holds itself (the 1 of `attempts + 1`, an inline IN list): merged with a
        # call's values, which is all construct_params would do here, at a fraction of its cost.
        if values_inline:
            self._own: dict[str, object] = dict(self._compiled.construct_params())
        else:
            self._own = {
                name: bind.effective_value for bind, name in self._compiled.bind_names.items() if not bind.required
            }

    def params(self, values: Mapping[str, object] | None = None) -> Mapping[str, object]:
        if not values:
            return self._own
        if not self._own:
            return values  # the hot path (a log line): nothing to merge, nothing to copy
        return {**self._own, **values}


def _insert(dialect: Dialect) -> Any:
    """The dialect's INSERT, the one with ON CONFLICT."""
    return postgresql.insert if dialect.name == "postgresql" else sqlite.insert


class SqlStore:
    """The OrderStore on SQLite or PostgreSQL, depending on its driver.

    With `migrate`, the first call brings the schema to the newest revision; without, it raises StoreError
    (run `connector migrate`) unless the schema is already there or the database is empty (then it makes
    it). `ready()` does that first step at once.
    """

    def __init__(self, driver: Driver, *, migrate: bool) -> None:
        self._driver = driver
        self._migrate = migrate
        self._ready = False
        self._readying = asyncio.Lock()
        # (revision before, revision after) once ready: what `connector migrate` reports.
        self.schema_change: tuple[str | None, str] | None = None
        self._deliveries_seen = 0
        d = driver.dialect
        insert = _insert(d)
        self._insert_log = Statement(insert(order_logs).on_conflict_do_nothing(index_elements=["id"]), d)
        excluded_ids = insert(order_ids).excluded
        # The WHERE skips rewriting an unchanged row (PostgreSQL would write a new tuple version).
        self._upsert_ids = Statement(
            insert(order_ids).on_conflict_do_update(
                index_elements=["connection", "marketplace_order_id"],
                set_={"vtex_order_id": excluded_ids.vtex_order_id},
                where=order_ids.c.vtex_order_id != excluded_ids.vtex_order_id,
            ),
            d,
        )
        # A marketplace id match wins over a VTEX id match, should the two id spaces ever collide.
        order_id: BindParameter[str] = bindparam("order_id")
        self._resolve = Statement(
            select(*(order_ids.c[column] for column in _ID_COLUMNS))
            .where(
                order_ids.c.connection == bindparam("connection"),
                (order_ids.c.marketplace_order_id == order_id) | (order_ids.c.vtex_order_id == order_id),
            )
            .order_by((order_ids.c.marketplace_order_id == order_id).desc())
            .limit(1),
            d,
        )
        self._delivery_seen = Statement(
            select(1).where(
                webhook_deliveries.c.connection == bindparam("connection"),
                webhook_deliveries.c.delivery_id == bindparam("delivery_id"),
            ),
            d,
        )
        self._forget_deliveries = Statement(
            delete(webhook_deliveries).where(webhook_deliveries.c.received_at < bindparam("before")), d
        )
        self._remember_delivery = Statement(
            insert(webhook_deliveries).on_conflict_do_nothing(index_elements=["connection", "delivery_id"]), d
        )
        excluded_handoff = insert(order_handoffs).excluded
        self._note_handoff = Statement(
            insert(order_handoffs)
            .values(
                connection=bindparam("connection"),
                marketplace_order_id=bindparam("marketplace_order_id"),
                notified_at=bindparam("notified_at"),
            )
            .on_conflict_do_update(
                index_elements=["connection", "marketplace_order_id"],
                set_={"notified_at": excluded_handoff.notified_at},
            ),
            d,
        )
        self._note_read = Statement(
            insert(order_handoffs)
            .values(
                connection=bindparam("connection"),
                marketplace_order_id=bindparam("marketplace_order_id"),
                read_at=bindparam("read_at"),
                version=bindparam("version"),
            )
            .on_conflict_do_update(
                index_elements=["connection", "marketplace_order_id"],
                set_={"read_at": excluded_handoff.read_at, "version": excluded_handoff.version},
                where=order_handoffs.c.read_at.is_(None) | (order_handoffs.c.read_at < excluded_handoff.read_at),
            ),
            d,
        )
        self._queue_handoff = Statement(
            handoff_queue.insert().values(
                connection=bindparam("connection"), notification=bindparam("notification"), due_at=bindparam("due_at")
            ),
            d,
        )
        # One statement: the outer `due_at <= now` is re-checked on a row another process updated meanwhile
        # (PostgreSQL re-evaluates it on the new row version), so a row is never claimed twice.
        now: BindParameter[float] = bindparam("now")
        due = (
            select(handoff_queue.c.id)
            .where(handoff_queue.c.due_at <= now)
            .order_by(handoff_queue.c.id)
            .limit(bindparam("limit", type_=Integer))
        )
        self._claim = Statement(
            update(handoff_queue)
            .where(handoff_queue.c.due_at <= now, handoff_queue.c.id.in_(due))
            .values(due_at=bindparam("until"), attempts=handoff_queue.c.attempts + 1)
            .returning(
                handoff_queue.c.id, handoff_queue.c.connection, handoff_queue.c.notification, handoff_queue.c.attempts
            ),
            d,
        )
        self._handoff_done = Statement(delete(handoff_queue).where(handoff_queue.c.id == bindparam("entry_id")), d)
        self._handoff_later = Statement(
            update(handoff_queue).where(handoff_queue.c.id == bindparam("entry_id")).values(due_at=bindparam("due_at")),
            d,
        )
        self._queue_depth = Statement(select(func.count()).select_from(handoff_queue), d)
        # One statement, so two workers can never take the same slot; the WHERE leaves a slot too far away
        # untaken (RETURNING then gives no row).
        self._reserve_slot = Statement(
            insert(rate_slots)
            .values(key=bindparam("key"), next_at=bindparam("first_at"))
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "next_at": case((rate_slots.c.next_at > now, rate_slots.c.next_at), else_=now)
                    + bindparam("interval")
                },
                where=rate_slots.c.next_at <= bindparam("limit_at"),
            )
            .returning(rate_slots.c.next_at),
            d,
        )
        # The retention purge: one status's oldest rows, a bounded batch per statement, by the
        # (status, created_at) index of revision 0002.
        self._purge_logs = Statement(
            delete(order_logs).where(
                order_logs.c.id.in_(
                    select(order_logs.c.id)
                    .where(order_logs.c.status == bindparam("status"), order_logs.c.created_at < bindparam("before"))
                    .limit(bindparam("batch", type_=Integer))
                )
            ),
            d,
        )
        # A hand-off record untouched since `before` (neither handed off nor read): see purge().
        stale = (order_handoffs.c.notified_at.is_(None) | (order_handoffs.c.notified_at < bindparam("before"))) & (
            order_handoffs.c.read_at.is_(None) | (order_handoffs.c.read_at < bindparam("before"))
        )
        handoff_key = tuple_(order_handoffs.c.connection, order_handoffs.c.marketplace_order_id)
        self._purge_handoffs = Statement(
            delete(order_handoffs).where(
                handoff_key.in_(
                    select(order_handoffs.c.connection, order_handoffs.c.marketplace_order_id)
                    .where(stale)
                    .limit(bindparam("batch", type_=Integer))
                )
            ),
            d,
        )

        # Carts: an order's row is written once (the first writer wins), read by its cart in join order.
        self._cart_key = Statement(
            select(marketplace_carts.c.cart_key).where(
                marketplace_carts.c.connection == bindparam("connection"),
                marketplace_carts.c.marketplace_order_id == bindparam("marketplace_order_id"),
            ),
            d,
        )
        self._cart_orders = Statement(
            select(marketplace_carts.c.marketplace_order_id)
            .where(
                marketplace_carts.c.connection == bindparam("connection"),
                marketplace_carts.c.cart_key == bindparam("cart_key"),
            )
            .order_by(marketplace_carts.c.joined_at, marketplace_carts.c.marketplace_order_id),
            d,
        )
        # Marketplace tokens: every write of the tokens is a compare-and-set on `version` (one statement, so of
        # two writers that read the same version exactly one succeeds; PostgreSQL re-checks the WHERE on the
        # row the other committed). Bind names differ from the column names (SQLAlchemy reserves those).
        tokens = marketplace_tokens.c
        token_row = [tokens[column] for column in _TOKEN_COLUMNS]
        written: dict[str, BindParameter[Any]] = {column: bindparam(f"new_{column}") for column in _TOKEN_WRITE_COLUMNS}
        this_connection = tokens.connection == bindparam("token_connection")
        self._token = Statement(select(*token_row).where(this_connection), d)
        self._create_token = Statement(
            insert(marketplace_tokens)
            .values(
                connection=bindparam("token_connection"), version=1, updated_at=bindparam("new_updated_at"), **written
            )
            .on_conflict_do_nothing(index_elements=["connection"])
            .returning(*token_row),
            d,
        )
        self._replace_token = Statement(
            update(marketplace_tokens)
            .where(this_connection, tokens.version == bindparam("expected_version"))
            .values(version=tokens.version + 1, updated_at=bindparam("new_updated_at"), **written)
            .returning(*token_row),
            d,
        )
        lease_owner: BindParameter[str] = bindparam("lease_owner_is")
        self._lease_token = Statement(
            update(marketplace_tokens)
            .where(
                this_connection,
                tokens.lease_owner.is_(None)
                | (tokens.lease_until <= bindparam("now"))
                | (tokens.lease_owner == lease_owner),
            )
            .values(lease_owner=lease_owner, lease_until=bindparam("lease_until_is"))
            .returning(*token_row),
            d,
        )
        self._release_token = Statement(
            update(marketplace_tokens)
            .where(this_connection, tokens.lease_owner == lease_owner)
            .values(lease_owner=None, lease_until=None),
            d,
        )

    def _moment(self, value: datetime) -> object:
        return self._driver.moment(as_utc(value))

    async def ready(self) -> None:
        if self._ready:
            return
        async with self._readying:
            if not self._ready:
                self.schema_change = await self._driver.prepare(migrate=self._migrate)
                self._ready = True

    async def _execute(self, statement: Statement, values: Mapping[str, object] | None = None) -> int:
        if not self._ready:
            await self.ready()
        return await self._driver.execute(statement.sql, statement.params(values))

    async def _fetch(self, statement: Statement, values: Mapping[str, object] | None = None) -> list[Sequence[Any]]:
        if not self._ready:
            await self.ready()
        return await self._driver.fetch(statement.sql, statement.params(values))

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def write_log(self, message: LogMessage) -> None:
        values = message.model_dump()
        values["status"] = message.status.value
        created = as_utc(message.created_at)
        values["created_at"] = self._driver.moment(created)
        values["created_day"] = self._driver.day(created.date())
        await self._execute(self._insert_log, values)

    async def logs(
        self,
        *,
        account: str,
        day: date,
        statuses: Collection[LogStatus] | None = None,
        marketplace_order_id: str | None = None,
        connection: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[LogMessage]:
        query = select(*(order_logs.c[column] for column in LOG_COLUMNS)).where(
            order_logs.c.account == account, order_logs.c.created_day == self._driver.day(day)
        )
        if statuses is not None:
            if not statuses:
                return []  # PostgreSQL rejects an empty IN list
            query = query.where(order_logs.c.status.in_(sorted({LogStatus(status).value for status in statuses})))
        if marketplace_order_id is not None:
            query = query.where(order_logs.c.marketplace_order_id == marketplace_order_id)
        if connection is not None:
            query = query.where(order_logs.c.connection == connection)
        query = query.order_by(order_logs.c.created_at, order_logs.c.id)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        rows = await self._fetch(Statement(query, self._driver.dialect, values_inline=True))
        return [log_from_row(row) for row in rows]

    async def delivery_seen(self, connection: str, delivery_id: str) -> bool:
        rows = await self._fetch(self._delivery_seen, {"connection": connection, "delivery_id": delivery_id})
        return bool(rows)

    async def remember_delivery(self, connection: str, delivery_id: str) -> None:
        now = datetime.now(UTC)
        self._deliveries_seen += 1
        if self._deliveries_seen % DELIVERY_PRUNE_EVERY == 0:
            # Marketplaces redeliver within hours, not weeks: old ids only cost space.
            await self._execute(self._forget_deliveries, {"before": self._driver.moment(now - DELIVERY_MEMORY)})
        await self._execute(
            self._remember_delivery,
            {"connection": connection, "delivery_id": delivery_id, "received_at": self._driver.moment(now)},
        )

    async def map_order(self, mapping: IdMapping) -> None:
        await self._execute(self._upsert_ids, mapping.model_dump())

    async def note_handoff(self, connection: str, marketplace_order_id: str, at: datetime) -> None:
        await self._execute(
            self._note_handoff,
            {"connection": connection, "marketplace_order_id": marketplace_order_id, "notified_at": self._moment(at)},
        )

    async def note_read(
        self, connection: str, marketplace_order_id: str, at: datetime, version: datetime | None
    ) -> None:
        await self._execute(
            self._note_read,
            {
                "connection": connection,
                "marketplace_order_id": marketplace_order_id,
                "read_at": self._moment(at),
                "version": None if version is None else self._moment(version),
            },
        )

    async def handoffs(self, connection: str, marketplace_order_ids: Collection[str]) -> dict[str, HandoffRecord]:
        found = await self._handoff_records(connection, set(marketplace_order_ids), through_carts=False)
        # A Mercado Libre order of a pack is handed off and read as its cart: the cart's record is the order's.
        found |= await self._handoff_records(connection, set(marketplace_order_ids) - found.keys(), through_carts=True)
        return found

    async def _handoff_records(
        self, connection: str, marketplace_order_ids: Collection[str], *, through_carts: bool
    ) -> dict[str, HandoffRecord]:
        wanted = sorted(marketplace_order_ids)
        found: dict[str, HandoffRecord] = {}
        records = (order_handoffs.c[name] for name in ("notified_at", "read_at", "version"))
        if through_carts:
            ids = marketplace_carts.c.marketplace_order_id
            query = (
                select(ids, *records)
                .join_from(
                    marketplace_carts,
                    order_handoffs,
                    (order_handoffs.c.connection == marketplace_carts.c.connection)
                    & (order_handoffs.c.marketplace_order_id == marketplace_carts.c.cart_key),
                )
                .where(marketplace_carts.c.connection == connection)
            )
        else:
            ids = order_handoffs.c.marketplace_order_id
            query = select(ids, *records).where(order_handoffs.c.connection == connection)
        # Bounded IN lists: SQLite allows 32,766 parameters, and a poll page is far smaller anyway.
        for start in range(0, len(wanted), HANDOFF_LOOKUP_CHUNK):
            statement = query.where(ids.in_(wanted[start : start + HANDOFF_LOOKUP_CHUNK]))
            for order_id, notified_at, read_at, version in await self._fetch(
                Statement(statement, self._driver.dialect, values_inline=True)
            ):
                found[order_id] = HandoffRecord(
                    notified_at=_moment(notified_at), read_at=_moment(read_at), version=_moment(version)
                )
        return found

    async def queue_handoff(self, connection: str, notification: str) -> None:
        await self._execute(
            self._queue_handoff, {"connection": connection, "notification": notification, "due_at": time.time()}
        )

    async def claim_handoffs(self, limit: int, lease_seconds: float) -> list[QueuedHandoff]:
        now = time.time()
        rows = await self._fetch(self._claim, {"now": now, "until": now + lease_seconds, "limit": limit})
        claimed = [QueuedHandoff(id=r[0], connection=r[1], notification=r[2], attempts=r[3]) for r in rows]
        return sorted(claimed, key=lambda entry: entry.id)

    async def handoff_done(self, entry_id: int) -> None:
        await self._execute(self._handoff_done, {"entry_id": entry_id})

    async def handoff_later(self, entry_id: int, delay_seconds: float) -> None:
        await self._execute(self._handoff_later, {"entry_id": entry_id, "due_at": time.time() + delay_seconds})

    async def handoff_queue_depth(self) -> int:
        rows = await self._fetch(self._queue_depth)
        return int(rows[0][0])

    async def reserve_rate_slot(self, key: str, interval_seconds: float, within_seconds: float) -> float | None:
        now = time.time()  # epoch seconds: comparable across processes and machines (NTP)
        rows = await self._fetch(
            self._reserve_slot,
            {
                "key": key,
                "first_at": now + interval_seconds,
                "now": now,
                "interval": interval_seconds,
                "limit_at": now + within_seconds,
            },
        )
        if not rows:
            return None
        return max(0.0, float(rows[0][0]) - interval_seconds - now)

    async def resolve(self, connection: str, order_id: str) -> IdMapping | None:
        rows = await self._fetch(self._resolve, {"connection": connection, "order_id": order_id})
        if not rows:
            return None
        return IdMapping.model_validate(dict(zip(_ID_COLUMNS, rows[0], strict=True)))

    # -- carts --------------------------------------------------------------------------------------------------

    async def cart_key(self, connection: str, marketplace_order_id: str) -> str | None:
        rows = await self._fetch(
            self._cart_key, {"connection": connection, "marketplace_order_id": marketplace_order_id}
        )
        return str(rows[0][0]) if rows else None

    async def join_cart(self, connection: str, cart_key: str, marketplace_order_ids: Collection[str]) -> dict[str, str]:
        # Sorted: two statements inserting overlapping orders take their keys in one order (no deadlock on
        # PostgreSQL, where each waits for the other's uncommitted row).
        wanted = sorted(set(marketplace_order_ids))
        joined_at = self._moment(datetime.now(UTC))
        insert = _insert(self._driver.dialect)
        for start in range(0, len(wanted), HANDOFF_LOOKUP_CHUNK):
            rows = [
                {
                    "connection": connection,
                    "marketplace_order_id": order_id,
                    "cart_key": cart_key,
                    "joined_at": joined_at,
                }
                for order_id in wanted[start : start + HANDOFF_LOOKUP_CHUNK]
            ]
            statement = (
                insert(marketplace_carts)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["connection", "marketplace_order_id"])
            )
            await self._execute(Statement(statement, self._driver.dialect, values_inline=True))
        # Read back, whoever wrote them: every caller answers with the stored carts.
        found: dict[str, str] = {}
        query = select(marketplace_carts.c.marketplace_order_id, marketplace_carts.c.cart_key)
        for start in range(0, len(wanted), HANDOFF_LOOKUP_CHUNK):
            chunk = wanted[start : start + HANDOFF_LOOKUP_CHUNK]
            statement = query.where(
                marketplace_carts.c.connection == connection, marketplace_carts.c.marketplace_order_id.in_(chunk)
            )
            for order_id, key in await self._fetch(Statement(statement, self._driver.dialect, values_inline=True)):
                found[str(order_id)] = str(key)
        return found

    async def cart_orders(self, connection: str, cart_key: str) -> list[str]:
        rows = await self._fetch(self._cart_orders, {"connection": connection, "cart_key": cart_key})
        return [str(row[0]) for row in rows]

    # -- marketplace tokens -------------------------------------------------------------------------------------

    def _token_values(self, write: TokenWrite) -> dict[str, object]:
        values: dict[str, object] = {}
        for column in _TOKEN_WRITE_COLUMNS:
            value = getattr(write, column)
            values[f"new_{column}"] = self._moment(value) if isinstance(value, datetime) else value
        values["new_updated_at"] = self._moment(datetime.now(UTC))
        return values

    @staticmethod
    def _token_row(rows: list[Sequence[Any]]) -> StoredToken | None:
        if not rows:
            return None
        values = dict(zip(_TOKEN_COLUMNS, rows[0], strict=True))
        for column in _TOKEN_TIMES:
            values[column] = _moment(values[column])
        return StoredToken.model_validate(values)

    async def marketplace_token(self, connection: str) -> StoredToken | None:
        return self._token_row(await self._fetch(self._token, {"token_connection": connection}))

    async def create_marketplace_token(self, connection: str, write: TokenWrite) -> StoredToken | None:
        values = {"token_connection": connection, **self._token_values(write)}
        return self._token_row(await self._fetch(self._create_token, values))

    async def replace_marketplace_token(
        self, connection: str, expected_version: int, write: TokenWrite
    ) -> StoredToken | None:
        values = {"token_connection": connection, "expected_version": expected_version, **self._token_values(write)}
        return self._token_row(await self._fetch(self._replace_token, values))

    async def lease_marketplace_token(self, connection: str, owner: str, seconds: float) -> StoredToken | None:
        now = datetime.now(UTC)
        values = {
            "token_connection": connection,
            "lease_owner_is": owner,
            "now": self._moment(now),
            "lease_until_is": self._moment(now + timedelta(seconds=seconds)),
        }
        return self._token_row(await self._fetch(self._lease_token, values))

    async def release_marketplace_token(self, connection: str, owner: str) -> None:
        await self._execute(self._release_token, {"token_connection": connection, "lease_owner_is": owner})

    async def purge(
        self,
        *,
        successes_before: datetime | None,
        others_before: datetime | None,
        handoffs_before: datetime | None = None,
        batch: int = PURGE_BATCH,
    ) -> dict[str, int]:
        removed = {"successes": 0, "others": 0, "handoffs": 0}
        targets: list[tuple[str, Statement, datetime | None, Mapping[str, object]]] = []
        for status in LogStatus:
            success = status is LogStatus.SUCCESS
            kind, before = ("successes", successes_before) if success else ("others", others_before)
            targets.append((kind, self._purge_logs, before, {"status": status.value}))
        targets.append(("handoffs", self._purge_handoffs, handoffs_before, {}))
        for kind, statement, before, values in targets:
            if before is None:
                continue
            while True:
                count = await self._execute(statement, {**values, "before": self._moment(before), "batch": batch})
                removed[kind] += count
                if count < batch:
                    break
                await asyncio.sleep(0)  # between batches, the other callers' statements go first
        return removed
