"""Orders that cannot be handed off (an id outside the accepted pattern, an unusable notification): logged
at error level with the raw id and the reason, counted, written to the order log (code X17), and then
left behind so the poll or the webhook moves on. Nothing stalls on one bad order, and nothing is dropped
without a trace."""

from __future__ import annotations

import logging

from connector.logbook import Logbook
from connector.metrics import QUARANTINED
from connector.store.models import LogStatus

QUARANTINE_CODE = "X17"
# Raw ids are shown as Python literals, cut to this length: whatever the marketplace sent, the log stays
# one readable line.
MAX_RAW_ID = 120

log = logging.getLogger(__name__)


def shown(raw_id: object) -> str:
    text = repr(raw_id)
    return text if len(text) <= MAX_RAW_ID else text[:MAX_RAW_ID] + "…"


async def quarantine(logbook: Logbook | None, *, connection: str, source: str, raw_id: object, reason: str) -> None:
    QUARANTINED.labels(connection=connection, source=source).inc()
    log.error("quarantined order %s (from the %s) for connection %s: %s", shown(raw_id), source, connection, reason)
    if logbook is None:
        return
    await logbook.record(
        code=QUARANTINE_CODE,
        operation="Order notification",
        direction="Marketplace to connector",
        status=LogStatus.ERROR,
        business_message=(
            f"The {source} order {shown(raw_id)} could not be handed off ({reason}); it was set aside and "
            "the connector moved on. Check the order in the marketplace."
        ),
        connection=connection,
        marketplace_order_id=str(raw_id)[:MAX_RAW_ID],
    )
