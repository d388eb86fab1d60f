"""The poller's one activity: list what changed in the marketplace and hand each order off."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import marketplace_failure
from connector.connections import Connection
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.marketplaces.listing import walk_changes
from connector.models import ListingPosition, MarketplaceNotification, OrderChange, PollRequest, PollResult
from connector.quarantine import quarantine
from connector.starter import hand_off_order
from connector.store.base import OrderStore


def change_key(change: OrderChange) -> str:
    return f"{change.marketplace_order_id}@{change.updated_at.isoformat()}"


class PollingActivities:
    def __init__(
        self,
        connections: Mapping[str, Connection],
        adapters: Mapping[str, MarketplaceAdapter],
        *,
        task_queue: str,
        logbook: Logbook,
        ledger: OrderStore,
    ) -> None:
        self._connections = connections
        self._adapters = adapters
        self._task_queue = task_queue
        self._logbook = logbook
        self._ledger = ledger

    @activity.defn(name="poll_marketplace")
    async def poll_marketplace(self, request: PollRequest) -> PollResult:
        """Hand off every order changed since the cursor, minus the overlap window.

        Re-reading the overlap catches an order whose change became visible late at the boundary;
        `seen` keeps those already handed off from being signaled again. Signal-with-start is
        idempotent, so a retry after a partial run is harmless.
        """
        connection = self._connections.get(request.connection)
        adapter = self._adapters.get(request.connection)
        if connection is None or adapter is None:
            raise ApplicationError(f"connection {request.connection!r} is not configured", non_retryable=True)
        overlap = timedelta(seconds=request.overlap_seconds)
        since = request.cursor - overlap if request.cursor is not None else None
        latest: dict[str, OrderChange] = {}
        try:
            async for page in walk_changes(adapter, ListingPosition(since=since), page_size=100):
                latest.update((change.marketplace_order_id, change) for change in page.changes)
        except MarketplaceError as exc:
            raise marketplace_failure(exc) from None
        changes = sorted(latest.values(), key=lambda change: (change.updated_at, change.marketplace_order_id))
        seen = set(request.seen)
        handed_off = 0
        for change in changes:
            if change_key(change) in seen:
                continue
            try:
                notification = MarketplaceNotification(marketplace_order_id=change.marketplace_order_id, source="poll")
            except ValidationError as exc:
                # One bad order must not stall the poller: set it aside, visibly, and go on.
                await quarantine(
                    self._logbook,
                    connection=connection.name,
                    source="poll",
                    raw_id=change.marketplace_order_id,
                    reason=f"order id {exc.errors()[0]['msg']}",
                )
                seen.add(change_key(change))
                continue
            await hand_off_order(
                activity.client(),
                task_queue=self._task_queue,
                connection=connection,
                notification=notification,
                logbook=self._logbook,
                ledger=self._ledger,
            )
            seen.add(change_key(change))
            handed_off += 1
        times = [change.updated_at for change in changes]
        if request.cursor is not None:
            times.append(request.cursor)
        if not times:
            return PollResult(cursor=None, seen=[], handed_off=0)
        cursor = max(times)
        keep = {change_key(c) for c in changes if c.updated_at >= cursor - overlap}
        return PollResult(cursor=cursor, seen=sorted(keep), handed_off=handed_off)
