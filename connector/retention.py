"""Order-log retention: the worker purges old log messages (and hand-off records nobody reads any more)
once an hour.

Success messages go after LOG_RETENTION_DAYS (30), every other status (Error, Alert, Pending: what an
operator may still be chasing) after LOG_ERROR_RETENTION_DAYS (180); 0 keeps that kind forever. Each
statement deletes a bounded batch (connector/store/sql.py), so a first purge of a years-old log holds no
long lock. Every worker purges: the deletes are idempotent, and a second worker finds nothing left.

Hand-off records (connector/redundancy.py) are read for the orders a poll lists, i.e. orders changed in
the poll's window, and by a step of an order whose workflow is running; a record neither handed off nor
read for longer than both the error retention and the after-sale window (120 days: every workflow of such
an order has ended) can decide neither. Without it the poller would treat a later change of that order as
one it never heard of: it waits the webhook grace, then hands it off, as it would anyway for a change newer
than the record.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.store.base import OrderStore

PURGE_INTERVAL = timedelta(hours=1)
# Not at the very start: a restarting worker has orders to pick up first.
FIRST_PURGE_DELAY = timedelta(minutes=1)

log = logging.getLogger(__name__)


def _before(now: datetime, days: float) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


@dataclass(frozen=True)
class Retention:
    """LOG_RETENTION_DAYS, LOG_ERROR_RETENTION_DAYS and AFTER_SALE_WINDOW_DAYS (connector/settings.py)."""

    success_days: float
    error_days: float
    after_sale_days: float


async def purge_once(store: OrderStore, retention: Retention, *, now: datetime | None = None) -> dict[str, int]:
    """One purge; the rows removed by kind (OrderStore.purge), logged in one line."""
    now = now or datetime.now(UTC)
    error_days = retention.error_days
    removed = await store.purge(
        successes_before=_before(now, retention.success_days),
        others_before=_before(now, error_days),
        handoffs_before=_before(now, max(error_days, retention.after_sale_days)) if error_days > 0 else None,
    )
    log.info(
        "order-log retention: removed %d success and %d other log messages and %d hand-off records",
        removed["successes"],
        removed["others"],
        removed["handoffs"],
    )
    return removed


async def purge_periodically(
    store: OrderStore,
    retention: Retention,
    *,
    first_delay: timedelta = FIRST_PURGE_DELAY,
    interval: timedelta = PURGE_INTERVAL,
) -> None:
    """Until cancelled; a failed purge is logged and tried again at the next interval."""
    await asyncio.sleep(first_delay.total_seconds())
    while True:
        try:
            await purge_once(store, retention)
        except Exception as exc:  # any store outage (sqlite3, psycopg): the next hour tries again
            log.warning("order-log retention: the purge failed (%s); trying again in %s", exc, interval)
        await asyncio.sleep(interval.total_seconds())
