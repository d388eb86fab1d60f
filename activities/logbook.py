"""Log lines for decisions the workflow takes itself: dead letter, canceled while queued, reprocess."""

from __future__ import annotations

from temporalio import activity

from connector.logbook import Logbook
from connector.models import WorkflowLogInput
from connector.store.models import LogStatus


class LogbookActivities:
    def __init__(self, logbook: Logbook) -> None:
        self._logbook = logbook

    @activity.defn(name="record_order_log")
    async def record_order_log(self, entry: WorkflowLogInput) -> None:
        await self._logbook.record(
            code=entry.code,
            operation="Order integration",
            direction="Connector",
            status=LogStatus(entry.status),
            business_message=entry.business_message,
            connection=entry.connection,
            marketplace_order_id=entry.marketplace_order_id,
            vtex_order_id=entry.vtex_order_id,
        )
