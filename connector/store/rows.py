"""What both SQL backends share: row ↔ model mapping, the statements and the operations.

SQLite and PostgreSQL accept the same DML here (ON CONFLICT DO NOTHING / DO UPDATE, `excluded`), so a
backend only supplies its parameter marker, its schema and how to run a statement.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.store.models import HandoffRecord, IdMapping, LogMessage, LogStatus, QueuedHandoff

DELIVERY_MEMORY = timedelta(days=7)
DELIVERY_PRUNE_EVERY = 1000
HANDOFF_LOOKUP_CHUNK = 500

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
# created_day (UTC date of created_at) is stored so that the (account, day) index serves the logs query.
_INSERT_COLUMNS = (*LOG_COLUMNS, "created_day")
_ID_COLUMNS = ("connection", "marketplace_order_id", "vtex_order_id")
_ID_LIST = ", ".join(_ID_COLUMNS)


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so every stored time and every `day` is in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment(value: datetime | str | None) -> datetime | None:
    """A stored time (SQLite gives ISO text, PostgreSQL a datetime) as an aware UTC datetime."""
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def log_params(message: LogMessage) -> tuple[object, ...]:
    values = message.model_dump()
    values["status"] = message.status.value
    values["created_at"] = created = as_utc(message.created_at)
    return (*(values[column] for column in LOG_COLUMNS), created.date())


def log_from_row(row: Sequence[Any]) -> LogMessage:
    message = LogMessage.model_validate(dict(zip(LOG_COLUMNS, row, strict=True)))
    return message.model_copy(update={"created_at": as_utc(message.created_at)})


class SqlStore(ABC):
    """The OrderStore operations, written once over `_execute` and `_fetch`."""

    def __init__(self, marker: str) -> None:
        m = marker
        self._marker = marker
        self._deliveries_seen = 0
        self._insert_log = (
            f"INSERT INTO order_logs ({', '.join(_INSERT_COLUMNS)}) "
            f"VALUES ({', '.join([m] * len(_INSERT_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
        )
        # The WHERE skips rewriting an unchanged row (PostgreSQL would write a new tuple version).
        self._upsert_ids = (
            f"INSERT INTO order_ids ({_ID_LIST}) VALUES ({m}, {m}, {m}) "
            "ON CONFLICT (connection, marketplace_order_id) "
            "DO UPDATE SET vtex_order_id = excluded.vtex_order_id "
            "WHERE order_ids.vtex_order_id <> excluded.vtex_order_id"
        )
        # A marketplace id match wins over a VTEX id match, should the two id spaces ever collide.
        self._resolve = (
            f"SELECT {_ID_LIST} FROM order_ids "
            f"WHERE connection = {m} AND (marketplace_order_id = {m} OR vtex_order_id = {m}) "
            f"ORDER BY marketplace_order_id = {m} DESC LIMIT 1"
        )

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[object]) -> None: ...

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    async def write_log(self, message: LogMessage) -> None:
        await self._execute(self._insert_log, log_params(message))

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
        m = self._marker
        where = [f"account = {m}", f"created_day = {m}"]
        params: list[object] = [account, day]
        if statuses is not None:
            if not statuses:
                return []  # PostgreSQL rejects an empty IN list
            wanted = sorted({LogStatus(status).value for status in statuses})
            where.append(f"status IN ({', '.join([m] * len(wanted))})")
            params.extend(wanted)
        for column, value in (("marketplace_order_id", marketplace_order_id), ("connection", connection)):
            if value is not None:
                where.append(f"{column} = {m}")
                params.append(value)
        sql = f"SELECT {', '.join(LOG_COLUMNS)} FROM order_logs WHERE {' AND '.join(where)} ORDER BY created_at, id"
        if limit is not None:
            sql += f" LIMIT {m} OFFSET {m}"
            params.extend([limit, offset])
        return [log_from_row(row) for row in await self._fetch(sql, params)]

    async def delivery_seen(self, connection: str, delivery_id: str) -> bool:
        m = self._marker
        rows = await self._fetch(
            f"SELECT 1 FROM webhook_deliveries WHERE connection = {m} AND delivery_id = {m}", (connection, delivery_id)
        )
        return bool(rows)

    async def remember_delivery(self, connection: str, delivery_id: str) -> None:
        m = self._marker
        now = datetime.now(UTC)
        self._deliveries_seen += 1
        if self._deliveries_seen % DELIVERY_PRUNE_EVERY == 0:
            # Marketplaces redeliver within hours, not weeks: old ids only cost space.
            await self._execute(f"DELETE FROM webhook_deliveries WHERE received_at < {m}", (now - DELIVERY_MEMORY,))
        await self._execute(
            f"INSERT INTO webhook_deliveries (connection, delivery_id, received_at) VALUES ({m}, {m}, {m}) "
            "ON CONFLICT (connection, delivery_id) DO NOTHING",
            (connection, delivery_id, now),
        )

    async def map_order(self, mapping: IdMapping) -> None:
        await self._execute(self._upsert_ids, (mapping.connection, mapping.marketplace_order_id, mapping.vtex_order_id))

    async def note_handoff(self, connection: str, marketplace_order_id: str, at: datetime) -> None:
        m = self._marker
        await self._execute(
            f"INSERT INTO order_handoffs (connection, marketplace_order_id, notified_at) VALUES ({m}, {m}, {m}) "
            "ON CONFLICT (connection, marketplace_order_id) DO UPDATE SET notified_at = excluded.notified_at",
            (connection, marketplace_order_id, as_utc(at)),
        )

    async def note_read(
        self, connection: str, marketplace_order_id: str, at: datetime, version: datetime | None
    ) -> None:
        m = self._marker
        await self._execute(
            "INSERT INTO order_handoffs (connection, marketplace_order_id, read_at, version) "
            f"VALUES ({m}, {m}, {m}, {m}) "
            "ON CONFLICT (connection, marketplace_order_id) DO UPDATE "
            "SET read_at = excluded.read_at, version = excluded.version "
            "WHERE order_handoffs.read_at IS NULL OR order_handoffs.read_at < excluded.read_at",
            (connection, marketplace_order_id, as_utc(at), None if version is None else as_utc(version)),
        )

    async def handoffs(self, connection: str, marketplace_order_ids: Collection[str]) -> dict[str, HandoffRecord]:
        m = self._marker
        wanted = sorted(set(marketplace_order_ids))
        found: dict[str, HandoffRecord] = {}
        # Bounded IN lists: SQLite allows 32,766 parameters, and a poll page is far smaller anyway.
        for start in range(0, len(wanted), HANDOFF_LOOKUP_CHUNK):
            chunk = wanted[start : start + HANDOFF_LOOKUP_CHUNK]
            rows = await self._fetch(
                "SELECT marketplace_order_id, notified_at, read_at, version FROM order_handoffs "
                f"WHERE connection = {m} AND marketplace_order_id IN ({', '.join([m] * len(chunk))})",
                (connection, *chunk),
            )
            for order_id, notified_at, read_at, version in rows:
                found[order_id] = HandoffRecord(
                    notified_at=_moment(notified_at), read_at=_moment(read_at), version=_moment(version)
                )
        return found

    async def queue_handoff(self, connection: str, notification: str) -> None:
        m = self._marker
        await self._execute(
            f"INSERT INTO handoff_queue (connection, notification, due_at) VALUES ({m}, {m}, {m})",
            (connection, notification, time.time()),
        )

    async def claim_handoffs(self, limit: int, lease_seconds: float) -> list[QueuedHandoff]:
        m = self._marker
        now = time.time()
        # The outer `due_at <= now` is re-checked on a row another process updated meanwhile (PostgreSQL
        # re-evaluates it on the new row version), so a row is never claimed twice.
        rows = await self._fetch(
            f"UPDATE handoff_queue SET due_at = {m}, attempts = attempts + 1 WHERE due_at <= {m} AND id IN "
            f"(SELECT id FROM handoff_queue WHERE due_at <= {m} ORDER BY id LIMIT {m}) "
            "RETURNING id, connection, notification, attempts",
            (now + lease_seconds, now, now, limit),
        )
        claimed = [QueuedHandoff(id=r[0], connection=r[1], notification=r[2], attempts=r[3]) for r in rows]
        return sorted(claimed, key=lambda entry: entry.id)

    async def handoff_done(self, entry_id: int) -> None:
        await self._execute(f"DELETE FROM handoff_queue WHERE id = {self._marker}", (entry_id,))

    async def handoff_later(self, entry_id: int, delay_seconds: float) -> None:
        m = self._marker
        await self._execute(
            f"UPDATE handoff_queue SET due_at = {m} WHERE id = {m}", (time.time() + delay_seconds, entry_id)
        )

    async def handoff_queue_depth(self) -> int:
        rows = await self._fetch("SELECT count(*) FROM handoff_queue", ())
        return int(rows[0][0])

    async def reserve_rate_slot(self, key: str, interval_seconds: float, within_seconds: float) -> float | None:
        m = self._marker
        now = time.time()  # epoch seconds: comparable across processes and machines (NTP)
        # One statement, so two workers can never take the same slot; the WHERE leaves a slot too far away
        # untaken (RETURNING then gives no row).
        rows = await self._fetch(
            f"INSERT INTO rate_slots (key, next_at) VALUES ({m}, {m}) ON CONFLICT (key) DO UPDATE "
            f"SET next_at = (CASE WHEN rate_slots.next_at > {m} THEN rate_slots.next_at ELSE {m} END) + {m} "
            f"WHERE rate_slots.next_at <= {m} RETURNING next_at",
            (key, now + interval_seconds, now, now, interval_seconds, now + within_seconds),
        )
        if not rows:
            return None
        return max(0.0, float(rows[0][0]) - interval_seconds - now)

    async def resolve(self, connection: str, order_id: str) -> IdMapping | None:
        rows = await self._fetch(self._resolve, (connection, order_id, order_id, order_id))
        if not rows:
            return None
        return IdMapping.model_validate(dict(zip(_ID_COLUMNS, rows[0], strict=True)))
