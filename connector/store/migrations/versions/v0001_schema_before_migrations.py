"""The schema the connector created before it had migrations (CREATE ... IF NOT EXISTS: adopts a database
made by that code as it is).

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Times are fixed-width ISO text in UTC, so text order is time order.
SQLITE = (
    """CREATE TABLE IF NOT EXISTS order_logs (
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
)""",
    "CREATE INDEX IF NOT EXISTS order_logs_by_day ON order_logs (account, created_day, created_at, id)",
    "CREATE INDEX IF NOT EXISTS order_logs_by_order ON order_logs (marketplace_order_id)",
    """CREATE TABLE IF NOT EXISTS order_ids (
    connection TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    vtex_order_id TEXT NOT NULL,
    PRIMARY KEY (connection, marketplace_order_id)
)""",
    "CREATE INDEX IF NOT EXISTS order_ids_by_vtex ON order_ids (connection, vtex_order_id)",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
    connection TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (connection, delivery_id)
)""",
    """CREATE TABLE IF NOT EXISTS order_handoffs (
    connection TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    notified_at TEXT,
    read_at TEXT,
    version TEXT,
    PRIMARY KEY (connection, marketplace_order_id)
)""",
    """CREATE TABLE IF NOT EXISTS rate_slots (
    key TEXT PRIMARY KEY,
    next_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS handoff_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS handoff_queue_by_due ON handoff_queue (due_at, id)",
)

# `id` sorts bytewise (COLLATE "C") so that ORDER BY created_at, id matches SQLite's order.
POSTGRES = (
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


def upgrade() -> None:
    for statement in SQLITE if op.get_context().dialect.name == "sqlite" else POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
