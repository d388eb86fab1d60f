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
