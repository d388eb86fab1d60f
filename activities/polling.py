"""The poller's one activity: walk what changed in the marketplace, a page at a time, and hand each order off.

A poll reads at most `max_pages` pages and returns where its walk stands, so a backlog of thousands of
changes is worked through in a few polls with the progress visible in the poller's `status` query. After
every page it heartbeats a checkpoint (PollProgress): a worker that dies mid-poll is noticed within the
heartbeat timeout, and the retry goes on from the last page instead of the first. Orders on the page that
was being handed off when it died are not signaled twice: their hand-off record says they are owed a read
(connector/redundancy.py); on such a retry an order owed a read whose workflow does not exist (the poll
died between noting its hand-off and signaling it) is handed off. Changes that must wait (owed a read, or
new and younger than the webhook grace) are carried to the next poll in `deferred` and checked again there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from activities.failures import marketplace_failure
from activities.handoff import HandOffActivities
from connector.connections import Connection
from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.listing import walk_changes
from connector.models import (
    ListingPosition,
    MarketplaceNotification,
    OrderChange,
    PollProgress,
    PollRequest,
    order_workflow_id,
)
from connector.quarantine import quarantine
from connector.redundancy import Verdict, verdict

# Changes waiting to be checked again are kept in the poller's state, this many at most. Past it, a change
# owed a read is left to that read, and a new one is handed off at once (a bounded state matters more
# than the webhook's head start).
MAX_DEFERRED = 500
# The seen-set travels in every poll's result and heartbeat: past this many keys (a burst of changes inside
# one overlap window) the oldest are dropped, and the hand-off record keeps those from a second signal.
MAX_SEEN = 1000
HEARTBEAT_EVERY = 10


def change_key(change: OrderChange) -> str:
    return f"{change.marketplace_order_id}@{change.updated_at.isoformat()}"


def _key_time(key: str) -> datetime:
    return datetime.fromisoformat(key.rpartition("@")[2])


class PollingActivities(HandOffActivities):
    @activity.defn(name="poll_marketplace")
    async def poll_marketplace(self, request: PollRequest) -> PollProgress:
        """Hand off every order changed since the cursor, minus the overlap window, or from where an
        unfinished walk stands.

        Re-reading the overlap catches an order whose change became visible late at the boundary; `seen`
        keeps those already handed off from being signaled again. Signal-with-start is idempotent, so a
        retry after a partial page is harmless even without the hand-off record.
        """
        connection, adapter = self._connection(request.connection)
        overlap = timedelta(seconds=request.overlap_seconds)
        grace = timedelta(seconds=request.webhook_grace_seconds)
        progress = self._resumed(request)
        if not progress.deferred_checked:
            await self._recheck_deferred(connection, progress, grace=grace)
        start = progress.walk or ListingPosition(since=request.cursor - overlap if request.cursor is not None else None)
        pages_now = 0
        try:
            async for page in walk_changes(adapter, start, page_size=request.page_size):
                await self._hand_off_page(connection, page.changes, progress, grace=grace)
                progress.pages += 1
                progress.listed += len(page.changes)
                if page.changes:
                    newest = page.changes[-1].updated_at
                    progress.cursor = newest if progress.cursor is None else max(progress.cursor, newest)
                progress.walk = None if page.last else page.next
                progress.seen = _within(progress.seen, progress.cursor, overlap)
                _checkpoint(progress)
                pages_now += 1
                if progress.walk is not None and pages_now >= request.max_pages:
                    break
        except MarketplaceError as exc:
            raise marketplace_failure(exc) from None
        return progress

    def _resumed(self, request: PollRequest) -> PollProgress:
        """The last page's checkpoint when this is a retry after a crash; else a fresh start."""
        details = activity.info().heartbeat_details
        if details:
            return PollProgress.model_validate(details[0])
        return PollProgress(
            cursor=request.cursor, seen=list(request.seen), walk=request.walk, deferred=list(request.deferred)
        )

    async def _recheck_deferred(self, connection: Connection, progress: PollProgress, *, grace: timedelta) -> None:
        waiting, progress.deferred = progress.deferred, []
        await self._hand_off_page(connection, waiting, progress, grace=grace, recheck=True)
        progress.deferred_checked = True
        _checkpoint(progress)

    async def _exists(self, connection: Connection, change: OrderChange) -> bool:
        """Whether the listed order's workflow exists: its cart's, for an order keyed to one (a pack)."""
        order_id = change.marketplace_order_id
        key = await self._ledger.cart_key(connection.name, order_id) or order_id
        workflow_id = order_workflow_id(connection.name, key)
        try:
            await activity.client().get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _hand_off_page(
        self,
        connection: Connection,
        changes: list[OrderChange],
        progress: PollProgress,
        *,
        grace: timedelta,
        recheck: bool = False,
    ) -> None:
        records = await self._ledger.handoffs(connection.name, {change.marketplace_order_id for change in changes})
        now = datetime.now(UTC)
        seen = set(progress.seen)
        for change in changes:
            key = change_key(change)
            if key in seen and not recheck:
                continue
            seen.add(key)
            decision = verdict(change, records.get(change.marketplace_order_id), now, webhook_grace=grace)
            if decision is Verdict.OWED and activity.info().attempt > 1 and not await self._exists(connection, change):
                # The poll before this retry died between noting the hand-off and signaling it.
                decision = Verdict.HAND_OFF
            if decision is Verdict.COVERED:
                progress.skipped += 1
                continue
            if decision in (Verdict.OWED, Verdict.NEW):
                if len(progress.deferred) < MAX_DEFERRED:
                    if change not in progress.deferred:  # met again in the overlap after the seen-set's cap
                        progress.deferred.append(change)
                    continue
                if decision is Verdict.OWED:
                    # No room to check it again: the read its workflow owes will see this change anyway.
                    progress.skipped += 1
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
                progress.quarantined += 1
                continue
            await self._hand_off(connection, notification)
            progress.handed_off += 1
            if progress.handed_off % HEARTBEAT_EVERY == 0:
                # A page of hand-offs takes a while: keep the heartbeat going, with what is done so far.
                _checkpoint(progress, seen=sorted(seen))
        progress.seen = sorted(seen)


def _checkpoint(progress: PollProgress, *, seen: list[str] | None = None) -> None:
    # A copy: the SDK encodes heartbeat details later, and the poll goes on changing `progress` meanwhile.
    update = {} if seen is None else {"seen": seen}
    activity.heartbeat(progress.model_copy(update=update, deep=True))


def _within(seen: list[str], cursor: datetime | None, overlap: timedelta) -> list[str]:
    """The keys the next overlap re-read can meet again; older ones only cost state."""
    if cursor is None:
        return seen[-MAX_SEEN:]
    recent = sorted((_key_time(key), key) for key in seen if _key_time(key) >= cursor - overlap)
    return sorted(key for _, key in recent[-MAX_SEEN:])
