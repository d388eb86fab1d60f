"""The order store: VTEX order-log messages, the marketplace ↔ VTEX order id map, what was handed off, which
connector order each marketplace order belongs to (carts), and the marketplaces' OAuth tokens.

`open_store` picks the backend from a URL: SQLite for one machine (the default), PostgreSQL when several
workers share the log.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from connector.store.models import (
    HandoffRecord,
    IdMapping,
    LogMessage,
    LogStatus,
    QueuedHandoff,
    StoredToken,
    TokenWrite,
)

if TYPE_CHECKING:
    from connector.store.sql import SqlStore


class StoreError(Exception):
    """The store cannot be used as configured; the message is meant for the operator."""


class OrderStore(Protocol):
    """The one store interface; connector/store/sql.py implements it for SQLite and PostgreSQL."""

    async def ready(self) -> None:
        """Make the store usable: open with `migrate`, bring its schema to the newest revision (two
        processes at once are safe); otherwise raise StoreError, naming `connector migrate`, unless the
        schema is already the newest (an empty database is given it: nothing to lose). Every other
        operation does this first; idempotent."""
        ...

    async def write_log(self, message: LogMessage) -> None:
        """Idempotent: writing an id that is already stored keeps the first row."""
        ...

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
        """One account's messages whose created_at falls on `day` in UTC, by created_at then id; with
        `limit`, at most that many after skipping `offset`."""
        ...

    async def map_order(self, mapping: IdMapping) -> None:
        """Idempotent upsert keyed by (connection, marketplace_order_id)."""
        ...

    async def delivery_seen(self, connection: str, delivery_id: str) -> bool:
        """Whether a webhook delivery id was remembered (its notification is already queued)."""
        ...

    async def remember_delivery(self, connection: str, delivery_id: str) -> None:
        """Record a webhook delivery id, once its notification is queued; idempotent."""
        ...

    async def resolve(self, connection: str, order_id: str) -> IdMapping | None:
        """Find a mapping by either its marketplace order id or its VTEX order id."""
        ...

    async def note_handoff(self, connection: str, marketplace_order_id: str, at: datetime) -> None:
        """Record that the order was handed to its workflow at `at` (just before the signal)."""
        ...

    async def note_read(
        self, connection: str, marketplace_order_id: str, at: datetime, version: datetime | None
    ) -> None:
        """Record a marketplace read of the order that began at `at` and saw `version`; an older read
        finishing late never replaces a newer one."""
        ...

    async def handoffs(self, connection: str, marketplace_order_ids: Collection[str]) -> dict[str, HandoffRecord]:
        """The records of those of the orders the connector has handed off or read; an order keyed to a cart
        (join_cart) that has none of its own answers with its cart's."""
        ...

    async def queue_handoff(self, connection: str, notification: str) -> None:
        """Queue a notification (JSON) for hand-off, due at once."""
        ...

    async def claim_handoffs(self, limit: int, lease_seconds: float) -> list[QueuedHandoff]:
        """Up to `limit` due queued hand-offs, oldest first, each made due again only after `lease_seconds`
        (so a process that dies holding them leaves them to another); one statement, so two processes
        never claim the same entry."""
        ...

    async def handoff_done(self, entry_id: int) -> None:
        """Remove a queued hand-off that was handed off."""
        ...

    async def handoff_later(self, entry_id: int, delay_seconds: float) -> None:
        """Make a queued hand-off due again in `delay_seconds`."""
        ...

    async def handoff_queue_depth(self) -> int:
        """How many notifications are queued, due or not."""
        ...

    async def reserve_rate_slot(self, key: str, interval_seconds: float, within_seconds: float) -> float | None:
        """Take the next free slot of a rate shared by every process on this store (one slot every
        `interval_seconds`): the seconds to wait for it, or None when it is more than `within_seconds`
        away (nothing is taken then)."""
        ...

    async def purge(
        self,
        *,
        successes_before: datetime | None,
        others_before: datetime | None,
        handoffs_before: datetime | None = None,
    ) -> dict[str, int]:
        """Delete Success log messages created before `successes_before`, every other status's before
        `others_before`, and hand-off records neither handed off nor read since `handoffs_before` (None
        keeps that kind); a bounded batch per statement, so no lock is held long. The rows removed, by
        kind: {"successes": n, "others": n, "handoffs": n}. Carts and marketplace tokens are never purged."""
        ...

    # -- carts (connector/marketplaces/base.py, CartStore) -----------------------------------------------------

    async def cart_key(self, connection: str, marketplace_order_id: str) -> str | None:
        """The connector order of a marketplace order, None if not known yet."""
        ...

    async def join_cart(self, connection: str, cart_key: str, marketplace_order_ids: Collection[str]) -> dict[str, str]:
        """Put each order not known yet in `cart_key`'s cart (insert if absent: the first writer wins), then
        every given order's cart as stored, so concurrent callers agree."""
        ...

    async def cart_orders(self, connection: str, cart_key: str) -> list[str]:
        """The marketplace orders in a cart, in the order they joined it (then by id)."""
        ...

    # -- marketplace tokens (connector/marketplaces/mercadolibre/tokens.py only) -------------------------------
    #
    # One row per connection. Every change of the tokens or of their state is a compare-and-set on the
    # version its writer read, so a writer that read an older row (a refresh racing another, a reconnect)
    # changes nothing and learns it (None). The lease is apart from the version: taking or releasing it
    # changes no token.

    async def marketplace_token(self, connection: str) -> StoredToken | None:
        """The connection's token row, None when it has none (never connected)."""
        ...

    async def create_marketplace_token(self, connection: str, write: TokenWrite) -> StoredToken | None:
        """The connection's first row (version 1), unless it has one already (None: nothing written)."""
        ...

    async def replace_marketplace_token(
        self, connection: str, expected_version: int, write: TokenWrite
    ) -> StoredToken | None:
        """Compare-and-set: `write` becomes the row (its version one more) only while the row is still at
        `expected_version`; the new row, or None (the row changed meanwhile, or there is none)."""
        ...

    async def lease_marketplace_token(self, connection: str, owner: str, seconds: float) -> StoredToken | None:
        """Take the refresh lease for `seconds` when it is free, expired or already `owner`'s: the row as it is
        now (read in the same statement), or None when another owner holds it (or there is no row)."""
        ...

    async def release_marketplace_token(self, connection: str, owner: str) -> None:
        """Give the lease back, if `owner` still holds it."""
        ...

    async def aclose(self) -> None: ...


def open_store(url: str, *, migrate: bool = True) -> OrderStore:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` or `postgresql://...`.

    With `migrate` the store brings its schema to the newest revision on first use; without, it refuses
    an older schema (StoreError: run `connector migrate`) and creates only a new one, in an empty
    database. The schema is made or checked on first use."""
    return _sql_store(url, migrate=migrate)


async def migrate_store(url: str) -> tuple[str | None, str]:
    """`connector migrate`: bring the store's schema to the newest revision; (revision before, revision
    after), before None when the database had no revision (new, or made before migrations existed)."""
    store = _sql_store(url, migrate=True)
    try:
        await store.ready()
        assert store.schema_change is not None
        return store.schema_change
    finally:
        await store.aclose()


def _sql_store(url: str, *, migrate: bool) -> SqlStore:
    scheme, _, rest = url.partition("://")
    # Imported here because both backends import StoreError from this module.
    from connector.store.sql import SqlStore

    if scheme == "sqlite":
        from connector.store.sqlite import SqliteDriver

        path = rest.removeprefix("/")
        if rest[:1] != "/" or not path:
            raise StoreError(f"store URL {url!r} names no file: use sqlite:///path/to/file.db")
        return SqlStore(SqliteDriver(path), migrate=migrate)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from connector.store.postgres import PostgresDriver

        return SqlStore(PostgresDriver(url), migrate=migrate)
    # Only the scheme is echoed: the rest of the URL may hold a password.
    raise StoreError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///path/to/file.db "
        "or postgresql://user:password@host:port/database"
    )
