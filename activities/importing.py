"""The import's activities: one page of the changed-orders listing, or one slice of order ids, handed off.

Every order goes through `hand_off_order(if_new=True)`: an order the connector already knows (its workflow
runs or ran) is counted and left alone, so importing twice integrates nothing twice.
"""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import activity

from activities.failures import marketplace_failure
from activities.handoff import HandOffActivities
from connector.connections import Connection
from connector.importing import ImportPage, ImportPageResult, ImportRefusal
from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.listing import read_page
from connector.models import MarketplaceNotification
from connector.quarantine import quarantine
from connector.starter import Handoff

SOURCE = "import"
NOT_FOUND = "not found in the marketplace"


class ImportActivities(HandOffActivities):
    @activity.defn(name="import_changes_page")
    async def import_changes_page(self, page: ImportPage) -> ImportPageResult:
        """Hand off the orders of one listing page from `page.position`, up to `page.until`."""
        connection, adapter = self._connection(page.connection)
        assert page.position is not None and page.until is not None, "a range page names its position and end"
        try:
            listed = await read_page(adapter, page.position, page_size=page.page_size, previous_last=page.previous_last)
        except MarketplaceError as exc:
            raise marketplace_failure(exc) from None
        # Oldest first: the first change after the range's end ends the import.
        in_range = [change for change in listed.changes if change.updated_at <= page.until]
        refusals: list[ImportRefusal] = []
        notifications: list[MarketplaceNotification] = []
        for change in in_range:
            checked = await self._notification(connection, change.marketplace_order_id)
            if isinstance(checked, ImportRefusal):
                refusals.append(checked)
            else:
                notifications.append(checked)
        handed_off, already_known = await self._hand_off_all(connection, notifications)
        return ImportPageResult(
            seen=len(in_range),
            handed_off=handed_off,
            already_known=already_known,
            refusals=refusals,
            next=listed.next,
            last_change=listed.changes[-1] if listed.changes else page.previous_last,
            done=listed.last or len(in_range) < len(listed.changes),
        )

    @activity.defn(name="import_order_ids")
    async def import_order_ids(self, page: ImportPage) -> ImportPageResult:
        """Hand off the ids the marketplace has; refuse, with the reason, those it does not have or that
        are not order ids. Every id is looked up before any is handed off, so a marketplace outage retries
        the slice before it changed anything (and the counts stay right)."""
        connection, adapter = self._connection(page.connection)
        refusals: list[ImportRefusal] = []
        found: list[MarketplaceNotification] = []
        for raw_id in page.order_ids:
            checked = await self._notification(connection, raw_id)
            if isinstance(checked, ImportRefusal):
                refusals.append(checked)
                continue
            try:
                keyed = await adapter.order_key(checked)
                if keyed is not None:
                    await adapter.fetch_order(keyed.marketplace_order_id)
            except MarketplaceError as exc:
                if exc.transient:
                    raise marketplace_failure(exc) from None
                reason = NOT_FOUND if exc.status == 404 else f"the marketplace cannot give it: {exc}"
                refusals.append(ImportRefusal(marketplace_order_id=raw_id, reason=reason))
                continue
            found.append(checked)
        handed_off, already_known = await self._hand_off_all(connection, found)
        return ImportPageResult(
            seen=len(page.order_ids), handed_off=handed_off, already_known=already_known, refusals=refusals
        )

    async def _notification(self, connection: Connection, raw_id: str) -> MarketplaceNotification | ImportRefusal:
        try:
            return MarketplaceNotification(marketplace_order_id=raw_id, source=SOURCE)
        except ValidationError as exc:
            reason = f"not a valid order id: {exc.errors()[0]['msg']}"
            # Set aside visibly (log, metric, order log X17), as the poller and the webhook do.
            await quarantine(self._logbook, connection=connection.name, source=SOURCE, raw_id=raw_id, reason=reason)
            return ImportRefusal(marketplace_order_id=raw_id, reason=reason)

    async def _hand_off_all(
        self, connection: Connection, notifications: list[MarketplaceNotification]
    ) -> tuple[int, int]:
        """(handed off, already known)."""
        handed_off = already_known = 0
        for notification in notifications:
            outcome = await self._hand_off(connection, notification, if_new=True)
            if outcome is Handoff.ACCEPTED:
                handed_off += 1
            else:
                already_known += 1
        return handed_off, already_known
