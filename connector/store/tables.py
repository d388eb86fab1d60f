"""The store's tables, once for both backends (SQLAlchemy Core): the statements in connector/store/sql.py
are built on them. The schema itself is made by the migrations (connector/store/migrations/), which must
leave the database exactly as described here.

SQLite keeps times as fixed-width ISO text in UTC (text order is time order) and days as ISO dates;
PostgreSQL as timestamptz and date. Log ids sort bytewise on both (PostgreSQL: COLLATE "C"), so the logs
query's ORDER BY created_at, id gives one order everywhere.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

UTC_TIME = DateTime(timezone=True).with_variant(Text(), "sqlite")
DAY = Date().with_variant(Text(), "sqlite")
BYTEWISE_TEXT = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

order_logs = Table(
    "order_logs",
    metadata,
    Column("id", BYTEWISE_TEXT, primary_key=True),
    Column("code", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("content_source", Text, nullable=False),
    Column("content_translated", Text, nullable=False),
    Column("content_destination", Text, nullable=False),
    Column("business_message", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("account", Text, nullable=False),
    Column("connection", Text, nullable=False),
    Column("marketplace_order_id", Text, nullable=False),
    Column("vtex_order_id", Text),
    Column("created_at", UTC_TIME, nullable=False),
    # The UTC date of created_at, stored so that the (account, day) index serves the logs query.
    Column("created_day", DAY, nullable=False),
    Index("order_logs_by_day", "account", "created_day", "created_at", "id"),
    Index("order_logs_by_order", "marketplace_order_id"),
    # Revision 0002: the retention purge walks one status's oldest rows.
    Index("order_logs_by_status_age", "status", "created_at"),
)

order_ids = Table(
    "order_ids",
    metadata,
    Column("connection", Text, nullable=False),
    Column("marketplace_order_id", Text, nullable=False),
    Column("vtex_order_id", Text, nullable=False),
    PrimaryKeyConstraint("connection", "marketplace_order_id"),
    Index("order_ids_by_vtex", "connection", "vtex_order_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("connection", Text, nullable=False),
    Column("delivery_id", Text, nullable=False),
    Column("received_at", UTC_TIME, nullable=False),
    PrimaryKeyConstraint("connection", "delivery_id"),
)

order_handoffs = Table(
    "order_handoffs",
    metadata,
    Column("connection", Text, nullable=False),
    Column("marketplace_order_id", Text, nullable=False),
    Column("notified_at", UTC_TIME),
    Column("read_at", UTC_TIME),
    Column("version", UTC_TIME),
    PrimaryKeyConstraint("connection", "marketplace_order_id"),
)

rate_slots = Table(
    "rate_slots",
    metadata,
    Column("key", Text, primary_key=True),
    Column("next_at", Float(precision=53), nullable=False),  # epoch seconds
)

handoff_queue = Table(
    "handoff_queue",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        Identity(always=True),
        primary_key=True,
    ),
    Column("connection", Text, nullable=False),
    Column("notification", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("due_at", Float(precision=53), nullable=False),  # epoch seconds
    Index("handoff_queue_by_due", "due_at", "id"),
    sqlite_autoincrement=True,
)

# Revision 0003: which connector order (one workflow, one VTEX order) each marketplace order belongs to, for
# marketplaces whose carts hold several orders (Mercado Libre's packs). The first writer of an order's row
# wins; the rows are never purged (connector/marketplaces/base.py, CartStore).
marketplace_carts = Table(
    "marketplace_carts",
    metadata,
    Column("connection", Text, nullable=False),
    Column("marketplace_order_id", BYTEWISE_TEXT, nullable=False),
    Column("cart_key", Text, nullable=False),
    Column("joined_at", UTC_TIME, nullable=False),
    PrimaryKeyConstraint("connection", "marketplace_order_id"),
    Index("marketplace_carts_by_cart", "connection", "cart_key", "joined_at"),
)

# Revision 0003: a connection's OAuth tokens (Mercado Libre's), one row per connection, shared by every worker.
# Both tokens are sealed (AES-256-GCM under the payload keys, connector/codec.py SecretSealer) with the key
# named by key_id: the store never holds a token in the clear. `version` grows by one on every change of the
# tokens or of their state, each written only over the version its writer read (compare-and-set), so a
# stale writer never replaces a newer rotated refresh token. The lease (owner, until) lets one worker at a
# time refresh. broken_reason / broken_at: the marketplace refused the authorization (invalid_grant) and a
# person must reconnect the account. Never purged.
marketplace_tokens = Table(
    "marketplace_tokens",
    metadata,
    Column("connection", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("sealed_refresh_token", Text, nullable=False),
    Column("sealed_access_token", Text),
    Column("access_expires_at", UTC_TIME),
    Column("lease_owner", Text),
    Column("lease_until", UTC_TIME),
    Column("broken_reason", Text),
    Column("broken_at", UTC_TIME),
    Column("updated_at", UTC_TIME, nullable=False),
)
