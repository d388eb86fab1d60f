"""Signal-with-start of an order workflow: the one way every source (webhook, poller, CLI) hands in an order.

`USE_EXISTING` sends a notification for a running order to that workflow instead of starting another.
`ALLOW_DUPLICATE_FAILED_ONLY` lets an order whose workflow was terminated, failed or timed out be handed
off again (the new run meets its existing VTEX order: placing is idempotent), while an order whose
workflow completed (its after-sale window passed) is refused: that event is logged at error level for an
operator, never acknowledged silently.

Every hand-off is noted in the store's hand-off record just before the signal, so the poller can tell an
order whose workflow is about to read the marketplace anyway from one it must signal (activities/polling.py).
`if_new` (`connector import`) starts a workflow only for an order the connector does not know yet, and
signals none.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from connector.connections import Connection
from connector.logbook import Logbook
from connector.models import MarketplaceNotification, OrderStatus, OrderWorkflowInput, order_workflow_id
from connector.store.base import OrderStore
from connector.store.models import LogStatus
from workflows.order import OrderLifecycle
from workflows.support import CONNECTION, MARKETPLACE_ORDER_ID, ORDER_STATUS

log = logging.getLogger(__name__)


class Handoff(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_FINISHED = "already-finished"
    # Only with if_new: a workflow for the order exists (running, or closed after its after-sale window).
    ALREADY_KNOWN = "already-known"


# The connector's order-log code for an event that came after the order's workflow closed.
LATE_EVENT_CODE = "X16"


async def hand_off_order(
    client: Client,
    *,
    task_queue: str,
    connection: Connection,
    notification: MarketplaceNotification,
    logbook: Logbook | None = None,
    ledger: OrderStore | None = None,
    if_new: bool = False,
) -> tuple[str, Handoff]:
    workflow_id = order_workflow_id(connection.name, notification.marketplace_order_id)
    if ledger is not None and not if_new:
        # Before the signal: a read the workflow begins after it is then always later than this note.
        await ledger.note_handoff(connection.name, notification.marketplace_order_id, datetime.now(UTC))
    try:
        await client.start_workflow(
            OrderLifecycle.run,
            OrderWorkflowInput(
                connection=connection.name,
                marketplace_order_id=notification.marketplace_order_id,
                affiliate_id=connection.affiliate_id,
                sales_channel=connection.sales_channel,
                price_divergence_allowance_rate=connection.price_divergence_allowance_rate,
                policy=connection.policy,
                accept_unpaid_orders=connection.accept_unpaid_orders,
                payment_window_seconds=connection.payment_window_seconds,
                vtex_task_queue=connection.vtex_task_queue,
                after_sale_window_seconds=connection.after_sale_window_seconds,
                unknown_placement_window_seconds=connection.unknown_placement_window_seconds,
                continue_as_new_after_events=connection.continue_as_new_after_events,
                lean_history=True,
                local_integration=True,
                vtex_flow=connection.vtex_flow,
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL if if_new else WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            # The server refuses signal-with-start with the FAIL policy: with if_new the workflow is started
            # plainly (it reads the order when it starts, signal or not).
            start_signal=None if if_new else "notify",
            start_signal_args=[] if if_new else [notification],
            # Given at start, search attributes cost no extra history event.
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(MARKETPLACE_ORDER_ID, notification.marketplace_order_id),
                    SearchAttributePair(CONNECTION, connection.name),
                    SearchAttributePair(ORDER_STATUS, OrderStatus.RECEIVED.value),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        if if_new:
            return workflow_id, Handoff.ALREADY_KNOWN
        log.error(
            "order %s (%s): %s notification after its workflow closed (after-sale window passed); "
            "nothing was done: act on it in VTEX and the marketplace by hand",
            notification.marketplace_order_id,
            connection.name,
            notification.source,
        )
        if logbook is not None:
            await logbook.record(
                code=LATE_EVENT_CODE,
                operation="Order notification",
                direction="Marketplace to connector",
                status=LogStatus.ALERT,
                business_message=(
                    f"A {notification.source} notification for the order {notification.marketplace_order_id} "
                    "arrived after its after-sale window closed; the connector did nothing. Check the order in "
                    "the marketplace and in VTEX and act there by hand."
                ),
                connection=connection.name,
                marketplace_order_id=notification.marketplace_order_id,
            )
        return workflow_id, Handoff.ALREADY_FINISHED
    if ledger is not None and if_new:
        # After the start, so an order that was already known is not taken for one owed a read. A read
        # that began in between looks owed for a poll or two: the poller only waits on such an order.
        await ledger.note_handoff(connection.name, notification.marketplace_order_id, datetime.now(UTC))
    return workflow_id, Handoff.ACCEPTED
