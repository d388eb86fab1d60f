"""OrderLifecycle off the documented paths, on a real dev server: no order jams, vanishes or fails its
workflow task. One test per way an order used to be stranded (issue 10, "Why")."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from connector.embedded import Sandboxes
from connector.failures import Disposition, disposition
from connector.lifecycle import TRANSITIONS, allowed
from connector.models import (
    CancelRequest,
    MarketplaceNotification,
    OrderState,
    OrderStatus,
    ReprocessRequest,
    VtexFlow,
    order_workflow_id,
)
from connector.reprocess import Reprocessed, reprocess_order
from connector.stack import Stack
from connector.starter import Handoff, hand_off_order
from tests.helpers import (
    CHANNEL_STATUS,
    PLACE_PATH,
    approvals,
    charge_freight,
    seller,
    wait_for_state,
)
from workflows.order import OrderLifecycle

CONNECTION = "reference"
S = OrderStatus

ISSUED = datetime(2026, 12, 1, 10, tzinfo=UTC)  # the invoices' issuance date
# What VTEX shows once the seller approved a price divergence in its admin: a fulfillment order waits for
# authorize dispatch, a channel order for its approval.
SELLER_APPROVED = {VtexFlow.FULFILLMENT: "waiting-ffmt-authorization", VtexFlow.ORDER_INTEGRATION: "payment-pending"}


async def start(stack: Stack, box: Sandboxes, *items: tuple[str, int], status: str = "paid", **options: Any) -> str:
    order = box.marketplace.new_order(items=list(items or [("1", 1)]), status=status)
    await hand_off(stack, str(order["id"]), **options)
    return str(order["id"])


async def hand_off(stack: Stack, order_id: str, **options: Any) -> Handoff:
    connection = dataclasses.replace(stack.connections[CONNECTION], **options)
    _, handoff = await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=connection,
        notification=MarketplaceNotification(marketplace_order_id=order_id),
        logbook=stack.logbook,
    )
    return handoff


def handle_of(stack: Stack, order_id: str) -> WorkflowHandle[Any, Any]:
    return stack.client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(CONNECTION, order_id))


async def reach(stack: Stack, order_id: str, status: OrderStatus, within: float = 30.0) -> OrderState:
    return await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is status, within=within)


async def no_workflow_task_failed(stack: Stack, order_id: str) -> None:
    """Across every run of the order: a workflow-task failure is a jammed order."""
    handle = stack.client.get_workflow_handle(order_workflow_id(CONNECTION, order_id))
    async for event in handle.fetch_history_events():
        assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, event


async def invoice_in_full(box: Sandboxes, order_id: str, vtex_id: str, *, tracking: str | None = "TRK-1") -> None:
    value = int(box.marketplace.orders[order_id]["total_amount"].replace(".", ""))
    items = [{"id": "1", "quantity": 1, "price": value}]
    body = invoice_notification(f"NF-{order_id}", value, items=items, tracking=tracking, issued=ISSUED)
    response = await seller(box, "POST", f"/api/oms/pvt/orders/{vtex_id}/invoice", body)
    assert response.status_code == 200, response.text


def requests_to(box: Sandboxes, method: str, suffix: str) -> list[Any]:
    return [r for r in box.vtex.requests if r.method == method and r.path.endswith(suffix)]


# -- the lifecycle table ---------------------------------------------------------------------------


def test_every_status_has_its_moves_and_nothing_leaves_the_end() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert allowed(S.RECEIVED, S.VALIDATING) and allowed(S.PARKED, S.VALIDATING)
    assert not allowed(S.CANCELED, S.DISPATCH_AUTHORIZED)
    assert not allowed(S.COMPLETED, S.DISPATCH_AUTHORIZED)
    assert TRANSITIONS[S.LATE_PAYMENT] <= {S.REPROCESSING, S.PARKED, S.DEAD_LETTERED}


def test_an_unclassified_failure_is_retried_never_left_to_the_seller() -> None:
    for unnamed in ("OperationalError", "ValidationError", "ConnectError", None):
        assert disposition(unnamed) is Disposition.RETRY
    assert disposition("VtexBusiness") is Disposition.PARK
    assert disposition("MarketplaceRejected") is Disposition.PARK


# -- one test per way an order was stranded ----------------------------------------------------------


async def test_vtex_cancellation_the_marketplace_refuses_is_held_visibly_then_told(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    box.marketplace.outage(422)  # the marketplace refuses everything, longer than the activity retries
    response = await seller(box, "POST", f"/api/oms/pvt/orders/{state.vtex_order_id}/cancel", {"reason": "no stock"})
    assert response.status_code == 200
    parked = await reach(stack, order_id, S.PARKED)
    assert parked.error_code and parked.parked_reason  # the status query still answers, with the why
    box.marketplace.end_outage()
    await handle_of(stack, order_id).signal(OrderLifecycle.reprocess, ReprocessRequest())
    await reach(stack, order_id, S.CANCELED)
    assert box.marketplace.orders[order_id]["status"] == "cancelled"
    await no_workflow_task_failed(stack, order_id)


async def test_a_completed_order_canceled_in_the_marketplace_gets_its_return_and_cancel(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    assert state.vtex_order_id is not None
    await invoice_in_full(box, order_id, state.vtex_order_id)
    await reach(stack, order_id, S.COMPLETED)
    box.marketplace.cancel(order_id)
    box.marketplace.notify(order_id)
    canceled = await reach(stack, order_id, S.CANCELED)
    await box.vtex.drain_callbacks()
    vtex_order = box.vtex.orders[state.vtex_order_id]
    assert vtex_order.status == "canceled"
    assert [i.type for i in vtex_order.invoices] == ["Output", "Input"]
    assert "C" in [e.code for e in canceled.timeline]
    await no_workflow_task_failed(stack, order_id)


async def test_an_event_after_the_after_sale_window_is_logged_for_an_operator(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, after_sale_window_seconds=1.0)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    assert state.vtex_order_id is not None
    await invoice_in_full(box, order_id, state.vtex_order_id)
    final: OrderState = await handle_of(stack, order_id).result()
    assert final.status is S.COMPLETED
    assert final.timeline[-1].step == "after-sale"
    # A marketplace cancellation now: refused as already finished, but logged as an alert, not dropped.
    assert await hand_off(stack, order_id) is Handoff.ALREADY_FINISHED
    assert stack.store is not None
    logs = await stack.store.logs(account="sandbox", day=final.timeline[-1].at.date(), marketplace_order_id=order_id)
    assert any(m.code == "X16" and m.operation == "Order notification" for m in logs)
    # A VTEX callback now (the seller updates the tracking): acknowledged to VTEX, logged as an alert.
    tracking = {"trackingNumber": "TRK-2", "trackingUrl": None, "courier": "Correios", "dispatchedDate": None}
    response = await seller(box, "PATCH", f"/api/oms/pvt/orders/{state.vtex_order_id}/invoice/NF-{order_id}", tracking)
    assert response.status_code == 200, response.text
    logs = await stack.store.logs(account="sandbox", day=final.timeline[-1].at.date(), marketplace_order_id=order_id)
    assert any(m.code == "X16" and m.operation == "VTEX callback" and m.status.value == "alert" for m in logs)


async def test_the_payment_window_tells_the_marketplace_and_a_late_payment_is_flagged(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, status="payment_pending", accept_unpaid_orders=True, payment_window_seconds=1.0)
    state = await reach(stack, order_id, S.CANCELED)
    assert state.vtex_order_id is not None
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[state.vtex_order_id].status == "canceled"
    assert box.marketplace.orders[order_id]["status"] == "cancelled"  # the marketplace was told
    # The buyer's payment went through at the marketplace after all (its own late confirmation).
    box.marketplace.orders[order_id]["status"] = "paid"
    box.marketplace.notify(order_id)
    late = await reach(stack, order_id, S.LATE_PAYMENT)
    assert late.error_code == "LATE_PAYMENT" and late.parked_reason and "Refund" in late.parked_reason
    await no_workflow_task_failed(stack, order_id)


async def test_a_cancel_during_a_busy_follow_up_survives_continue_as_new(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, continue_as_new_after_events=50)
    await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    handle = handle_of(stack, order_id)
    # Each notification costs a signal and a marketplace read: the history grows past the limit. Under load
    # several notifications make one read, so they go on until the order has continued as new.
    for _ in range(60):
        box.marketplace.notify(order_id)
        await asyncio.sleep(0.15)
        if (await handle.query(OrderLifecycle.status)).run_number > 1:
            break
    box.marketplace.notify(order_id)  # the follow-up still busy when the cancel comes
    await handle.signal(OrderLifecycle.cancel, CancelRequest(reason="buyer regret", source="operator"))
    state = await reach(stack, order_id, S.CANCELED)
    await box.vtex.drain_callbacks()
    assert state.run_number > 1
    assert box.vtex.orders[state.vtex_order_id or ""].status == "canceled"
    await no_workflow_task_failed(stack, order_id)


async def test_the_dead_letter_loop_continues_as_new_and_recovers(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE_PATH[flow], status=503, times=-1))
    policy = stack.connections[CONNECTION].policy.model_copy(
        update={"max_attempts": 1, "dead_letter_retry_seconds": 0.2, "activity_attempts": 1}
    )
    order_id = await start(stack, box, policy=policy, continue_as_new_after_events=50)
    await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status is S.DEAD_LETTERED and s.run_number >= 3,
        within=60,
    )
    box.vtex.clear_faults()
    await handle_of(stack, order_id).signal(OrderLifecycle.reprocess, ReprocessRequest())
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    assert len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]) == 1
    assert state.error_code is None
    await no_workflow_task_failed(stack, order_id)


async def test_a_terminated_order_is_integrated_again_into_its_existing_vtex_order(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    first = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    await handle_of(stack, order_id).terminate("operator terminated a jammed order")
    assert await hand_off(stack, order_id) is Handoff.ACCEPTED
    # The new run's mark: it found the order VTEX already had (fulfillment: FMT009 or its look first; the
    # Channel Order API refuses the duplicate, EOI007, and the look-up finds the order).
    mark = "already existed" if flow is VtexFlow.FULFILLMENT else "EOI007"
    again = await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status is S.DISPATCH_AUTHORIZED and any(mark in e.message for e in s.timeline),
    )
    assert again.vtex_order_id == first.vtex_order_id
    assert len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]) == 1


async def test_invoice_forwarding_the_marketplace_refuses_is_parked_with_an_error_code(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    assert state.vtex_order_id is not None
    box.marketplace.outage(422)
    await invoice_in_full(box, order_id, state.vtex_order_id)
    parked = await reach(stack, order_id, S.PARKED)
    assert parked.error_code == "MARKETPLACE"
    box.marketplace.end_outage()
    await handle_of(stack, order_id).signal(OrderLifecycle.reprocess, ReprocessRequest())
    await reach(stack, order_id, S.COMPLETED)
    await no_workflow_task_failed(stack, order_id)


async def divergent_order(stack: Stack, box: Sandboxes, flow: VtexFlow) -> tuple[str, str]:
    """An order VTEX holds for the seller's approval of its price divergence (the connection allows 5%)."""
    if flow is VtexFlow.FULFILLMENT:
        # 1.7% off on the item: placed with isCreatedAsync for manual approval.
        order = box.marketplace.new_order(items=[("2", 1)], unit_prices={"2": 29990 + 500})
    else:
        # VTEX takes a divergence within the allowance the order carries as it is: this one is beyond it
        # (50.00 of freight where VTEX's SLA costs 5.00, 14.8% on the order; the item price matches, so the
        # connector's own check passes), and the seller's Order Authorization rules hold it for approval.
        order = box.marketplace.new_order(items=[("2", 1)])
        charge_freight(box, str(order["id"]), 5000)
        box.vtex.order_integration.price_divergence_affiliates.add("MKP")
    await hand_off(stack, str(order["id"]), price_divergence_allowance_rate=0.05)
    state = await reach(stack, str(order["id"]), S.PENDING_APPROVAL)
    assert state.vtex_order_id is not None
    assert box.vtex.orders[state.vtex_order_id].status == "waiting-for-manual-authorization"
    return str(order["id"]), state.vtex_order_id


async def test_price_approval_needs_a_documented_status_and_a_cancel_never_authorizes(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id, vtex_id = await divergent_order(stack, box, flow)
    box.vtex.orders[vtex_id].status = "some-undocumented-status"
    await asyncio.sleep(1.0)  # several approval polls
    assert (await handle_of(stack, order_id).query(OrderLifecycle.status)).status is S.PENDING_APPROVAL
    await handle_of(stack, order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="buyer gave up"))
    await reach(stack, order_id, S.CANCELED)
    assert not requests_to(box, "POST", f"-{order_id}/fulfill")
    assert approvals(box, order_id, flow) == []
    await no_workflow_task_failed(stack, order_id)


async def test_a_rejected_price_divergence_ends_canceled_without_authorizing(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id, vtex_id = await divergent_order(stack, box, flow)
    box.vtex.orders[vtex_id].status = "canceled"  # the seller rejects the divergence in VTEX's admin
    await reach(stack, order_id, S.CANCELED)
    assert not requests_to(box, "POST", f"-{order_id}/fulfill")
    assert approvals(box, order_id, flow) == []
    assert box.marketplace.orders[order_id]["status"] == "cancelled"  # told it will not be fulfilled


async def test_a_failed_cancel_does_not_send_the_return_invoice_twice(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    vtex_id = state.vtex_order_id or ""
    await invoice_in_full(box, order_id, vtex_id, tracking=None)
    await reach(stack, order_id, S.INVOICED)
    box.vtex.add_fault(FaultRule(method="POST", path_contains=f"{vtex_id}/cancel", status=503, times=4))
    await handle_of(stack, order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="returned", source="operator"))
    await reach(stack, order_id, S.CANCELED)
    await box.vtex.drain_callbacks()
    returns = [r for r in requests_to(box, "POST", f"{vtex_id}/invoice") if (r.body or {}).get("type") == "Input"]
    assert len(returns) == 1
    assert box.vtex.orders[vtex_id].status == "canceled"


async def test_a_cancel_after_a_lost_placement_answer_finds_the_order_over_time(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    # VTEX creates (or enqueues) the order but every answer is lost: the outcome of the placement is unknown.
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains=PLACE_PATH[flow], status=504, times=-1, after_effect=True)
    )
    box.vtex.add_fault(FaultRule(method="GET", path_contains="/api/oms/pvt/orders", status=503, times=-1))
    order_id = await start(stack, box)
    await reach(stack, order_id, S.REPROCESSING)
    await handle_of(stack, order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="canceled in the marketplace"))
    await asyncio.sleep(0.5)
    box.vtex.clear_faults()
    state = await reach(stack, order_id, S.CANCELED)
    await box.vtex.drain_callbacks()
    codes = [e.code for e in state.timeline]
    assert "C" in codes and "X10" not in codes
    vtex_orders = [o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]
    assert len(vtex_orders) == 1 and vtex_orders[0].status == "canceled"
    await no_workflow_task_failed(stack, order_id)


async def test_connector_reprocess_starts_a_terminated_order_again(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains=PLACE_PATH[flow], status=503, times=-1, after_effect=True)
    )
    order_id = await start(stack, box)
    await reach(stack, order_id, S.REPROCESSING)
    await handle_of(stack, order_id).terminate("operator terminated a jammed order")
    box.vtex.clear_faults()
    outcome = await reprocess_order(stack.client, connection=CONNECTION, marketplace_order_id=order_id, reason="fixed")
    assert outcome is Reprocessed.RESTARTED
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    vtex_orders = [o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]
    assert [o.order_id for o in vtex_orders] == [state.vtex_order_id]
    unknown = await reprocess_order(stack.client, connection=CONNECTION, marketplace_order_id="nope", reason="x")
    assert unknown is Reprocessed.UNKNOWN


async def test_a_refused_return_invoice_parks_the_cancel_until_reprocessed(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    vtex_id = state.vtex_order_id or ""
    await invoice_in_full(box, order_id, vtex_id, tracking=None)
    await reach(stack, order_id, S.INVOICED)
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains=f"{vtex_id}/invoice", status=400, code="ORD999", times=-1)
    )
    await handle_of(stack, order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="returned", source="operator"))
    parked = await reach(stack, order_id, S.PARKED)
    assert parked.error_code == "ORD999"
    box.vtex.clear_faults()
    await handle_of(stack, order_id).signal(OrderLifecycle.reprocess, ReprocessRequest())
    await reach(stack, order_id, S.CANCELED)
    await no_workflow_task_failed(stack, order_id)


async def test_a_marketplace_outage_in_the_after_sale_window_is_retried(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    await invoice_in_full(box, order_id, state.vtex_order_id or "")
    await reach(stack, order_id, S.COMPLETED)
    box.marketplace.outage(503)
    await handle_of(stack, order_id).signal(
        OrderLifecycle.notify, MarketplaceNotification(marketplace_order_id=order_id, source="webhook")
    )
    await reach(stack, order_id, S.REPROCESSING)
    box.marketplace.end_outage()
    back = await reach(stack, order_id, S.COMPLETED)
    assert back.error_code is None
    await no_workflow_task_failed(stack, order_id)


async def test_a_connection_missing_on_the_worker_queues_orders_instead_of_parking_them(
    stack: Stack, box: Sandboxes
) -> None:
    # One flow: the order stops at the marketplace read, before anything either flow does.
    order = box.marketplace.new_order(items=[("1", 1)])
    ghost = dataclasses.replace(stack.connections[CONNECTION], name="ghost")
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=ghost,
        notification=MarketplaceNotification(marketplace_order_id=str(order["id"])),
    )
    state = await wait_for_state(stack.client, "ghost", str(order["id"]), lambda s: s.status is S.REPROCESSING)
    assert state.error_code == "UnknownConnection"  # a deployment problem: retried, the seller has nothing to do
    await stack.client.get_workflow_handle(order_workflow_id("ghost", str(order["id"]))).terminate("test over")


async def test_a_failing_authorize_dispatch_is_queued_then_completes(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    if flow is VtexFlow.FULFILLMENT:
        order_id = str(box.marketplace.new_order(items=[("1", 1)])["id"])
        box.vtex.add_fault(FaultRule(method="POST", path_contains=f"-{order_id}/fulfill", status=503, times=-1))
        await hand_off(stack, order_id)
    else:
        # VTEX approves an order sent paid by itself: the connector's approval request is for an order paid
        # after VTEX integrated it.
        order_id = await start(stack, box, status="payment_pending", accept_unpaid_orders=True)
        await wait_for_state(
            stack.client, CONNECTION, order_id, lambda s: s.status is S.AWAITING_PAYMENT and s.vtex_order_id is not None
        )
        box.vtex.add_fault(FaultRule(method="PUT", path_contains=CHANNEL_STATUS, status=503, times=-1))
        box.marketplace.pay(order_id)
        box.marketplace.notify(order_id)
    held = await reach(stack, order_id, S.REPROCESSING)
    assert held.error_code == "HTTP503" and held.vtex_order_id is not None
    box.vtex.clear_faults()
    await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    await no_workflow_task_failed(stack, order_id)


async def test_a_failing_look_during_price_approval_is_queued_then_waits_again(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id, vtex_id = await divergent_order(stack, box, flow)
    box.vtex.add_fault(FaultRule(method="GET", path_contains=f"/api/oms/pvt/orders/{vtex_id}", status=503, times=-1))
    await reach(stack, order_id, S.REPROCESSING)
    box.vtex.clear_faults()
    await reach(stack, order_id, S.PENDING_APPROVAL)
    box.vtex.orders[vtex_id].status = SELLER_APPROVED[flow]  # the seller approves
    await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    await no_workflow_task_failed(stack, order_id)


async def test_a_marketplace_outage_during_the_payment_wait_is_queued_then_waits_again(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, status="payment_pending", accept_unpaid_orders=True)
    await reach(stack, order_id, S.AWAITING_PAYMENT)
    box.marketplace.outage(503)
    box.marketplace.pay(order_id)  # the admin API is not behind the outage
    await handle_of(stack, order_id).signal(
        OrderLifecycle.notify, MarketplaceNotification(marketplace_order_id=order_id, source="webhook")
    )
    await reach(stack, order_id, S.REPROCESSING)
    box.marketplace.end_outage()
    await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    await no_workflow_task_failed(stack, order_id)


async def test_a_refused_cancel_parks_the_order_until_reprocessed(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    order_id = await start(stack, box)
    state = await reach(stack, order_id, S.DISPATCH_AUTHORIZED)
    vtex_id = state.vtex_order_id or ""
    box.vtex.add_fault(FaultRule(method="POST", path_contains=f"{vtex_id}/cancel", status=400, code="ORD998", times=-1))
    await handle_of(stack, order_id).signal(
        OrderLifecycle.cancel, CancelRequest(reason="buyer regret", source="operator")
    )
    parked = await reach(stack, order_id, S.PARKED)
    assert parked.error_code == "ORD998"
    box.vtex.clear_faults()
    await handle_of(stack, order_id).signal(OrderLifecycle.reprocess, ReprocessRequest())
    await reach(stack, order_id, S.CANCELED)
    await no_workflow_task_failed(stack, order_id)
