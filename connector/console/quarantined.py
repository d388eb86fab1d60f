"""Notifications the connector set aside (code X17: an id it cannot take, an unusable notification): they
never became an order workflow, so visibility does not list them; the store's order log does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.quarantine import QUARANTINE_CODE
from connector.store.base import OrderStore
from connector.store.models import LogMessage, LogStatus

DAYS_SHOWN = 7
PER_DAY = 200


async def recent_quarantined(store: OrderStore, *, account: str, connection: str | None) -> list[LogMessage]:
    """The last week's quarantined notifications, newest first."""
    today = datetime.now(UTC).date()
    found: list[LogMessage] = []
    for back in range(DAYS_SHOWN):
        lines = await store.logs(
            account=account,
            day=today - timedelta(days=back),
            statuses=[LogStatus.ERROR],
            connection=connection,
            limit=PER_DAY,
        )
        found += [line for line in lines if line.code == QUARANTINE_CODE]
    return sorted(found, key=lambda line: line.created_at, reverse=True)
