"""Marketplace carts (which connector order each marketplace order belongs to) and marketplace OAuth tokens
(sealed, one row per connection, compare-and-set by version, a refresh lease, the broken authorization).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # The types as connector/store/tables.py spells them at this revision (written out: a released revision
    # never changes with tables.py). SQLite keeps times as fixed-width ISO text in UTC; PostgreSQL as
    # timestamptz, and order ids bytewise (COLLATE "C") so that a cart's orders come in one order everywhere.
    sqlite = op.get_context().dialect.name == "sqlite"
    moment: sa.types.TypeEngine[Any] = sa.Text() if sqlite else sa.DateTime(timezone=True)
    order_id: sa.types.TypeEngine[Any] = sa.Text() if sqlite else postgresql.TEXT(collation="C")
    op.create_table(
        "marketplace_carts",
        sa.Column("connection", sa.Text(), nullable=False),
        sa.Column("marketplace_order_id", order_id, nullable=False),
        sa.Column("cart_key", sa.Text(), nullable=False),
        sa.Column("joined_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("connection", "marketplace_order_id"),
    )
    op.create_index("marketplace_carts_by_cart", "marketplace_carts", ["connection", "cart_key", "joined_at"])
    op.create_table(
        "marketplace_tokens",
        sa.Column("connection", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("sealed_refresh_token", sa.Text(), nullable=False),
        sa.Column("sealed_access_token", sa.Text()),
        sa.Column("access_expires_at", moment),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_until", moment),
        sa.Column("broken_reason", sa.Text()),
        sa.Column("broken_at", moment),
        sa.Column("updated_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("connection"),
    )


def downgrade() -> None:
    # The tokens go with the table: after a downgrade every Mercado Libre connection must be connected again.
    op.drop_table("marketplace_tokens")
    op.drop_index("marketplace_carts_by_cart", table_name="marketplace_carts")
    op.drop_table("marketplace_carts")
