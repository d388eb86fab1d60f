"""Temporal cost: billable actions per order, counted from the order workflow's history.

Billable (Temporal Cloud, /work/shared/reference/temporal.md §3.1): the workflow start (a signal-with-start
that starts it is one action with its signal), each activity scheduled plus each retry (the last
ActivityTaskStarted carries the attempt), the local activities of one workflow task together (their
markers between two WorkflowTaskCompleted events), each timer started, each signal received, each
search-attribute upsert. Queries are billable too but leave no history: nothing here queries, it waits on `describe`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandboxes.seller import invoice_notification
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from bench.harness import CONNECTION, Cluster
from connector.models import OrderStatus, order_workflow_id

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SIMULATION = "/api/checkout/pub/orderForms/simulation"
# Temporal Cloud's pay-as-you-go price per action.
DOLLARS_PER_ACTION = 50 / 1_000_000
SETTLE_SECONDS = 30.0
# The marker sdk-core records for a local activity's result.
LOCAL_ACTIVITY_MARKER = "core_local_activity"


@dataclass(frozen=True)
class Actions:
    start: int = 0
    activities: int = 0
    local_activities: int = 0
    retries: int = 0
    timers: int = 0
    signals: int = 0
    upserts: int = 0

    @property
    def total(self) -> int:
        return (
            self.start
            + self.activities
            + self.local_activities
            + self.retries
            + self.timers
            + self.signals
            + self.upserts
        )

    @property
    def dollars_per_1000_orders(self) -> float:
        return 1000 * self.total * DOLLARS_PER_ACTION


def count_actions(history: WorkflowHistory) -> Actions:
    counts = dict.fromkeys(("start", "activities", "local_activities", "retries", "timers", "signals", "upserts"), 0)
    events = history.events
    local_in_this_task = False
    for index, event in enumerate(events):
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            local_in_this_task = False
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            local = event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
            if local and not local_in_this_task:
                counts["local_activities"] += 1
            local_in_this_task = local_in_this_task or local
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            counts["start"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            # The signal of the signal-with-start that created the run comes right after the start.
            started_with_it = index == 1 and events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
            counts["signals"] += 0 if started_with_it else 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            counts["activities"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            counts["retries"] += event.activity_task_started_event_attributes.attempt - 1
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            counts["timers"] += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            counts["upserts"] += 1
    return Actions(**counts)


async def _settled(cluster: Cluster, order_id: str, ready: Callable[[str | None, bool], bool]) -> None:
    """Wait until the workflow has nothing pending and `ready(OrderStatus, closed)` holds."""
    handle = cluster.client.get_workflow_handle(order_workflow_id(CONNECTION, order_id))
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        try:
            description = await handle.describe()
        except RPCError:  # not started yet: the webhook hands off asynchronously
            await asyncio.sleep(0.1)
            continue
        raw = description.raw_description
        idle = not raw.pending_activities and not raw.HasField("pending_workflow_task")
        closed = description.status is WorkflowExecutionStatus.COMPLETED
        if idle and ready(description.typed_search_attributes.get(ORDER_STATUS), closed):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"order {order_id} did not settle within {SETTLE_SECONDS:.0f} s")


def _status_is(status: OrderStatus) -> Callable[[str | None, bool], bool]:
    return lambda current, closed: current == status.value


async def _order(cluster: Cluster, *, status: str = "paid") -> str:
    (order_id,) = await cluster.create_orders(1, status=status, items=[{"sku": "1", "quantity": 1}])
    await cluster.send_webhook(order_id, delivery_id=f"cost-{order_id}")
    return order_id


async def settled_paid(cluster: Cluster, order_id: str) -> None:
    """Wait until a paid order is dispatch authorized and its workflow has nothing pending."""
    await _settled(cluster, order_id, _status_is(OrderStatus.DISPATCH_AUTHORIZED))


async def paid(cluster: Cluster) -> str:
    order_id = await _order(cluster)
    await settled_paid(cluster, order_id)
    return order_id


async def one_transient_retry(cluster: Cluster) -> str:
    await cluster.add_fault({"method": "POST", "path_contains": SIMULATION, "status": 503, "times": 1})
    return await paid(cluster)


async def unpaid_then_paid(cluster: Cluster) -> str:
    """Needs ACCEPT_UNPAID_ORDERS=true: placed at once, dispatch authorized once paid."""
    order_id = await _order(cluster, status="payment_pending")
    await _settled(cluster, order_id, _status_is(OrderStatus.AWAITING_PAYMENT))
    await cluster.marketplace_action(order_id, "pay")  # the marketplace notifies the webhook
    await _settled(cluster, order_id, _status_is(OrderStatus.DISPATCH_AUTHORIZED))
    return order_id


async def canceled_after_dispatch(cluster: Cluster) -> str:
    """Paid, dispatched, then canceled in the marketplace: canceled in VTEX too; the workflow then waits out
    its after-sale window (120 days by default) on one timer, or has ended."""
    order_id = await paid(cluster)
    await cluster.marketplace_action(order_id, "cancel")
    await _settled(cluster, order_id, lambda status, closed: closed or status == OrderStatus.CANCELED.value)
    return order_id


def invoice_with_tracking(
    oms_order: Mapping[str, Any], *, number: str, tracking: str, issued: datetime
) -> dict[str, Any]:
    """The seller's invoice for the whole of an OMS order (its `value`, items and shipping, in cents), with
    the tracking number in it: one callback to the connector, invoice and tracking at once."""
    items = [{"id": item["id"], "quantity": item["quantity"], "price": item["price"]} for item in oms_order["items"]]
    return invoice_notification(number, int(oms_order["value"]), items=items, tracking=tracking, issued=issued)


async def invoiced_with_tracking(cluster: Cluster) -> str:
    """Paid and dispatched, then invoiced in full with tracking by the seller through the VTEX sandbox's OMS
    API: VTEX calls the connector back, which sends invoice and tracking to the marketplace; completed."""
    order_id = await paid(cluster)
    vtex_id = await cluster.vtex_order_id(order_id)
    found = await cluster.seller("GET", f"/api/oms/pvt/orders/{vtex_id}")
    found.raise_for_status()
    number, tracking = f"NF-{order_id}", f"TRK-{order_id}"
    body = invoice_with_tracking(found.json(), number=number, tracking=tracking, issued=datetime.now(UTC))
    (await cluster.seller("POST", f"/api/oms/pvt/orders/{vtex_id}/invoice", body)).raise_for_status()
    await _settled(cluster, order_id, _status_is(OrderStatus.COMPLETED))
    return order_id


CASES: dict[str, Callable[[Cluster], Awaitable[str]]] = {
    "paid": paid,
    "paid, one transient retry (one 503)": one_transient_retry,
    "unpaid, then paid (ACCEPT_UNPAID_ORDERS=true)": unpaid_then_paid,
    "paid, dispatched, then canceled": canceled_after_dispatch,
    "paid, invoiced with tracking, completed": invoiced_with_tracking,
}


async def measure(cluster: Cluster) -> dict[str, Actions]:
    """Each case alone (nothing else in flight), its history counted once it settled."""
    actions = {}
    for name, case in CASES.items():
        order_id = await case(cluster)
        history = await cluster.client.get_workflow_handle(order_workflow_id(CONNECTION, order_id)).fetch_history()
        actions[name] = count_actions(history)
    return actions
