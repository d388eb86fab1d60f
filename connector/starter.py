"""Signal-with-start of an order workflow: the one way every source (webhook, poller, CLI) hands in an order.

`USE_EXISTING` sends a notification for a running order to that workflow instead of starting another;
`REJECT_DUPLICATE` keeps an order that already finished from being integrated a second time.
"""

from __future__ import annotations

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
from connector.models import MarketplaceNotification, OrderStatus, OrderWorkflowInput, order_workflow_id
from workflows.order import OrderWorkflow
from workflows.support import CONNECTION, MARKETPLACE_ORDER_ID, ORDER_STATUS


class Handoff(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_FINISHED = "already-finished"


async def hand_off_order(
    client: Client, *, task_queue: str, connection: Connection, notification: MarketplaceNotification
) -> tuple[str, Handoff]:
    workflow_id = order_workflow_id(connection.name, notification.marketplace_order_id)
    try:
        await client.start_workflow(
            OrderWorkflow.run,
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
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal="notify",
            start_signal_args=[notification],
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
        return workflow_id, Handoff.ALREADY_FINISHED
    return workflow_id, Handoff.ACCEPTED
