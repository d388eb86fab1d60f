"""What both ways into VTEX share (activities/vtex.py: fulfillment; activities/channel_orders.py: the Channel
Order API): finding an order VTEX already has, the unread-notification guard of local steps, and the
order-log line of a failed VTEX call."""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.failures import vtex_failure
from connector.failures import UNREAD_NOTIFICATION, VTEX_FAILURE_LOG_CODES
from connector.logbook import Logbook
from connector.models import vtex_order_id
from connector.redundancy import unread_notification
from connector.store.base import OrderStore
from connector.store.models import LogStatus
from connector.vtex.client import VtexClient
from connector.vtex.error_table import Handling, classify, seller_action
from connector.vtex.errors import VtexError

TO_VTEX = "Connector to VTEX"
# The code of a refusal by a retried attempt: the attempt before it may have reached VTEX.
UNREAD_AFTER_AN_ATTEMPT = "UNREAD_AFTER_AN_ATTEMPT"

log = logging.getLogger(__name__)


async def existing_order_id(
    vtex: VtexClient, store: OrderStore, connection: str, marketplace_order_id: str, affiliate_id: str
) -> str | None:
    """The VTEX id of an order placed before: from our id map, else VTEX's usual id, else OMS's list.
    The seller suffix is VTEX's choice, so the usual `-01` id is only a first guess."""
    mapping = await store.resolve(connection, marketplace_order_id)
    if mapping is not None and mapping.marketplace_order_id == marketplace_order_id:
        return mapping.vtex_order_id
    guess = await vtex.get_order(vtex_order_id(affiliate_id, marketplace_order_id))
    if guess is not None:
        return guess.order_id
    found = await vtex.find_order_ids(marketplace_order_id, affiliate_id=affiliate_id)
    return found[0] if found else None


async def refuse_if_unread_notification(store: OrderStore, connection: str, marketplace_order_id: str) -> None:
    """Act only if no notification (a cancel, a change) came in since the workflow read the order.
    A store that cannot say lets the step go on: the signal still reaches the workflow, which then
    cancels what this step did; this check only keeps that from happening in the first place."""
    try:
        records = await store.handoffs(connection, [marketplace_order_id])
    except Exception as exc:  # any store outage (sqlite3, psycopg): the check is advisory, see above
        log.warning("order %s: could not look for an unread notification (%s); going on", marketplace_order_id, exc)
        return
    if unread_notification(records.get(marketplace_order_id)):
        message = (
            f"a notification for the order {marketplace_order_id} came in after its marketplace read; "
            "it is read again first"
        )
        retried = activity.in_activity() and activity.info().attempt > 1
        raise ApplicationError(
            message,
            {"code": UNREAD_AFTER_AN_ATTEMPT if retried else UNREAD_NOTIFICATION, "action": message},
            type=UNREAD_NOTIFICATION,
            non_retryable=True,
            # Expected, not a fault: logged by the SDK at debug level, not as a warning with a traceback.
            category=ApplicationErrorCategory.BENIGN,
        )


async def vtex_call_failed(
    logbook: Logbook,
    *,
    connection: str,
    marketplace_order_id: str,
    vtex_id: str | None,
    operation: str,
    exc: VtexError,
    sales_channel: str,
    translated: Any = None,
) -> ApplicationError:
    """Write the failed VTEX call to the order log; the failure to raise, classified for the workflow."""
    handling = classify(exc.status, exc.code)
    code = VTEX_FAILURE_LOG_CODES[handling]
    if operation == "Cancel order" and handling is Handling.CREDENTIALS:
        code = "K"  # the guide's "not able to communicate with VTEX to cancel the order"
    await logbook.record(
        code=code,
        operation=operation,
        direction=TO_VTEX,
        status=LogStatus.ALERT if handling is Handling.CREDENTIALS else LogStatus.ERROR,
        business_message=seller_action(exc.status, exc.code, exc.message, sales_channel=sales_channel),
        connection=connection,
        marketplace_order_id=marketplace_order_id,
        vtex_order_id=vtex_id,
        translated=translated,
        destination={"status": exc.status, "code": exc.code, "message": exc.message},
    )
    return vtex_failure(exc, sales_channel=sales_channel)
