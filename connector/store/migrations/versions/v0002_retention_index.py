"""The retention purge's index: one status's oldest log messages, (status, created_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Inside the migration's transaction: on PostgreSQL this blocks writes to order_logs while the index
    # is built (seconds per million rows; README, "Upgrading").
    op.create_index("order_logs_by_status_age", "order_logs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("order_logs_by_status_age", table_name="order_logs")
