"""The rest of the order's life on a real dev server: payment, cancellation, invoices and tracking."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx
from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule

from connector.cancel import request_cancel
from connector.embedded import Sandboxes
from connector.failures import UNREAD_NOTIFICATION
from connector.models import (
    CancelRequest,
    FollowUpState,
    Invoice,
    InvoiceItem,
    MarketplaceNotification,
    OrderState,
    OrderStatus,
    OrderWorkflowInput,
    PlacedOrder,
    VtexFlow,
    order_workflow_id,
)
from connector.stack import Stack
from connector.starter import hand_off_order
from tests.contract.openapi import validate_request
from tests.helpers import (
    PLACE_PATH,
    approvals,
    placements,
    seller,
    vtex_order_ids,
    wait_for_state,
)
from workflows.order import OrderLifecycle
from workflows.order_v1 import OrderWorkflowV1

CONNECTION = "reference"
PLACE = "/api/fulfillment/pvt/orders"

ISSUED = datetime(2026, 11, 28, 10, tzinfo=UTC)  # the invoices' issuance date

# Connector bug (workflows/order.py: _validate_and_place and _place_through_channel reset _place_attempted on
# READ_AGAIN, "refused before any call to VTEX"): a placement attempt that reached VTEX without an answer
# the connector could use (lost, late, unreadable), then a retry of the same local activity refused for the
# cancel's unread notification, leaves the order "never sent". The cancel logs X10 ("before it reached
# VTEX") and never cancels the order VTEX made, which VTEX itself approves in the Channel Order flow.


async def start(stack: Stack, box: Sandboxes, *items: tuple[str, int], status: str = "paid", **options: Any) -> str:
    order = box.marketplace.new_order(items=list(items), status=status)
    connection = dataclasses.replace(stack.connections[CONNECTION], **options)
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=connection,
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    return str(order["id"])


async def start_again(stack: Stack, order_id: str) -> None:
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=stack.connections[CONNECTION],
        notification=MarketplaceNotification(marketplace_order_id=order_id),
    )


async def reach(stack: Stack, order_id: str, status: OrderStatus) -> OrderState:
    return await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is status)


async def until_vtex_received(box: Sandboxes, path: str, *, within: float = 10.0) -> None:
    """Until the VTEX sandbox receives a request to this path from now on (its answer may still be on the
    way). The sandbox runs on this event loop, so its `received_at` is this loop's clock."""
    since = asyncio.get_running_loop().time()
    deadline = since + within
    while not [r for r in box.vtex.requests if path in r.path and r.received_at >= since]:
        assert asyncio.get_running_loop().time() < deadline, f"VTEX never received {path}"
        await asyncio.sleep(0.02)


async def cancel(stack: Stack, order_id: str, request: CancelRequest) -> None:
    """As `connector cancel` does it."""
    assert stack.store is not None
    assert await request_cancel(
        stack.client, stack.store, connection=CONNECTION, marketplace_order_id=order_id, request=request
    )


def vtex_id_of(state: OrderState) -> str:
    assert state.vtex_order_id is not None
    return state.vtex_order_id


def invoice_body(
    number: str, value: int, *, items: list[dict[str, Any]], tracking: str | None = None
) -> dict[str, Any]:
    return invoice_notification(number, value, items=items, tracking=tracking, issued=ISSUED)


async def test_unpaid_order_is_placed_then_authorized_once_paid(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    order_id = await start(stack, box, ("1", 1), status="payment_pending", accept_unpaid_orders=True)
    state = await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status is OrderStatus.AWAITING_PAYMENT and s.vtex_order_id is not None,
    )
    placed = box.vtex.orders[vtex_id_of(state)]
    # Waiting for authorize dispatch (fulfillment), for the approval (a channel order sent as new).
    assert placed.status == ("waiting-ffmt-authorization" if flow is VtexFlow.FULFILLMENT else "payment-pending")
    assert placed.body["shippingData"]["logisticsInfo"][0]["lockTTL"] == "1d"
    assert approvals(box, order_id, flow) == []
    box.marketplace.pay(order_id)
    box.marketplace.notify(order_id)
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert box.vtex.orders[vtex_id_of(state)].status == "ready-for-handling"
    assert len(approvals(box, order_id, flow)) == 1


async def test_unpaid_order_past_its_payment_window_is_canceled_in_vtex(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(
        stack, box, ("2", 1), status="payment_pending", accept_unpaid_orders=True, payment_window_seconds=1.0
    )
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[vtex_id_of(state)].status == "canceled"
    assert any("payment window" in e.message for e in state.timeline if e.code == "C")
    assert stack.store is not None
    logs = await stack.store.logs(account="sandbox", day=state.timeline[-1].at.date(), marketplace_order_id=order_id)
    assert any(m.code == "C" and "payment window" in m.business_message for m in logs)


async def test_cancel_before_placement_stops_without_touching_vtex(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    box.vtex.add_fault(
        FaultRule(
            method="POST",
            path_contains="/orderForms/simulation",
            status=200,
            delay_seconds=1.0,
            after_effect=True,
        )
    )
    simulated = asyncio.create_task(until_vtex_received(box, "/orderForms/simulation"))
    order_id = await start(stack, box, ("3", 1))
    await simulated
    await cancel(stack, order_id, CancelRequest(reason="buyer gave up", source="operator"))
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    assert state.vtex_order_id is None
    assert not [o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]
    assert "X10" in [e.code for e in state.timeline]
    assert placements(box, order_id, flow) == []


async def test_cancel_racing_the_placement_still_cancels_the_vtex_order(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    # VTEX creates (or enqueues) the order but answers a second late: the cancel arrives meanwhile. (The
    # sandbox's late answer is its fault body: a fulfillment placement copes with an answer without an
    # orderId; a Channel Order answer without the contract is unreadable, so the enqueue is retried.)
    place = PLACE_PATH[flow]
    box.vtex.add_fault(FaultRule(method="POST", path_contains=place, status=200, delay_seconds=1.0, after_effect=True))
    placing = asyncio.create_task(until_vtex_received(box, place))
    order_id = await start(stack, box, ("1", 1))
    await placing
    await cancel(stack, order_id, CancelRequest(reason="canceled in the marketplace"))
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    vtex_id = f"MKP-{order_id}{box.vtex.order_id_suffix}"
    assert box.vtex.orders[vtex_id].status == "canceled"
    assert not [r for r in box.vtex.requests if r.path.endswith(f"MKP-{order_id}/fulfill")]
    assert approvals(box, order_id, flow) == []  # a channel order sent approved is VTEX's to approve
    assert "C" in [e.code for e in state.timeline]


async def test_a_cancel_racing_a_placement_whose_answer_is_lost_still_cancels_the_vtex_order(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    # VTEX makes (or enqueues) the order; its answer is lost a second later (504): the cancel arrives meanwhile.
    place = PLACE_PATH[flow]
    box.vtex.add_fault(FaultRule(method="POST", path_contains=place, status=504, delay_seconds=1.0, after_effect=True))
    placing = asyncio.create_task(until_vtex_received(box, place))
    order_id = await start(stack, box, ("1", 1))
    await placing
    await cancel(stack, order_id, CancelRequest(reason="canceled in the marketplace"))
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    [vtex_id] = vtex_order_ids(box, order_id)
    codes = [e.code for e in state.timeline]
    assert "C" in codes and "X10" not in codes
    assert box.vtex.orders[vtex_id].status == "canceled"


async def test_marketplace_cancel_racing_the_placement_is_never_authorized(stack: Stack, box: Sandboxes) -> None:
    # The webhook path: the intake notes the hand-off before its signal, so the local authorization,
    # in the same workflow task as the placement, sees it and waits for the signal. Fulfillment only: in the
    # Channel Order flow a paid order is sent approved and VTEX approves it itself (no authorization step to
    # refuse); test_cancel_racing_the_placement_still_cancels_the_vtex_order covers its cancel.
    box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE, status=200, delay_seconds=1.0, after_effect=True))
    placing = asyncio.create_task(until_vtex_received(box, PLACE))
    order_id = await start(stack, box, ("1", 1))
    await placing
    box.marketplace.cancel(order_id)
    box.marketplace.notify(order_id)
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[vtex_id_of(state)].status == "canceled"
    assert not [r for r in box.vtex.requests if r.path.endswith(f"MKP-{order_id}/fulfill")]
    refused = [e for e in state.timeline if e.step == "authorize" and e.code == UNREAD_NOTIFICATION]
    assert len(refused) == 1 and refused[0].outcome == "pending"


async def test_a_bare_cancel_signal_racing_the_placement_cancels_after_the_authorization(
    stack: Stack, box: Sandboxes
) -> None:
    # A signal sent straight to Temporal (not through the connector, so nothing is noted in the store)
    # reaches the workflow only after the integration's workflow task: the order is authorized, then
    # canceled in VTEX like any order canceled after dispatch. Fulfillment only: a channel order waits for
    # VTEX's result between tasks, so the signal is seen before any authorization.
    box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE, status=200, delay_seconds=1.0, after_effect=True))
    placing = asyncio.create_task(until_vtex_received(box, PLACE))
    order_id = await start(stack, box, ("1", 1))
    await placing
    handle = stack.client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(CONNECTION, order_id))
    await handle.signal(OrderLifecycle.cancel, CancelRequest(reason="canceled by hand", source="operator"))
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[vtex_id_of(state)].status == "canceled"
    steps = [(e.step, e.outcome) for e in state.timeline]
    assert steps.index(("authorize", "success")) < steps.index(("cancel", "pending"))


async def test_cancel_after_dispatch(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    order_id = await start(stack, box, ("8", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    box.marketplace.cancel(order_id)
    box.marketplace.notify(order_id)
    await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[vtex_id_of(state)].status == "canceled"
    cancels = [r for r in box.vtex.requests if r.path == f"/api/oms/pvt/orders/{vtex_id_of(state)}/cancel"]
    assert len(cancels) == 1
    validate_request(cancels[0].method, cancels[0].path, cancels[0].query, cancels[0].headers, cancels[0].body)


async def test_invoice_and_tracking_reach_the_marketplace_then_the_order_completes(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, ("1", 2))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    vtex_id = vtex_id_of(state)
    total = box.marketplace.orders[order_id]["total_amount"]
    value = int(total.replace(".", ""))
    half = value // 2
    item = {"id": "1", "quantity": 1, "price": 4990}

    first = await seller(
        box, "POST", f"/api/oms/pvt/orders/{vtex_id}/invoice", invoice_body("NF-1", half, items=[item])
    )
    assert first.status_code == 200
    await reach(stack, order_id, OrderStatus.INVOICED)
    await seller(
        box,
        "PATCH",
        f"/api/oms/pvt/orders/{vtex_id}/invoice/NF-1",
        {
            "trackingNumber": "TRK-1",
            "trackingUrl": "https://track.example/TRK-1",
            "courier": "Correios",
            "dispatchedDate": None,
        },
    )
    await seller(
        box,
        "POST",
        f"/api/oms/pvt/orders/{vtex_id}/invoice",
        invoice_body("NF-2", value - half, items=[item], tracking="TRK-2"),
    )
    await reach(stack, order_id, OrderStatus.COMPLETED)

    received = box.marketplace.orders[order_id]
    assert [(i["number"], i["value"]) for i in received["invoices"]] == [
        ("NF-1", f"{half / 100:.2f}"),
        ("NF-2", f"{(value - half) / 100:.2f}"),
    ]
    assert sorted((s["invoice_number"], s["tracking_number"]) for s in received["shipments"]) == [
        ("NF-1", "TRK-1"),
        ("NF-2", "TRK-2"),
    ]
    # The workflow stays open, idle, for the after-sale window (returns, chargebacks, late callbacks).
    description = await stack.client.get_workflow_handle(order_workflow_id(CONNECTION, order_id)).describe()
    assert description.status is not None and description.status.name == "RUNNING"


async def test_canceling_an_invoiced_order_sends_the_return_invoice_first(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, ("2", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    vtex_id = vtex_id_of(state)
    value = int(box.marketplace.orders[order_id]["total_amount"].replace(".", ""))
    await seller(
        box,
        "POST",
        f"/api/oms/pvt/orders/{vtex_id}/invoice",
        invoice_body("NF-9", value, items=[{"id": "2", "quantity": 1, "price": 29990}]),
    )
    await reach(stack, order_id, OrderStatus.INVOICED)
    assert box.vtex.orders[vtex_id].status == "invoiced"

    box.marketplace.cancel(order_id)
    box.marketplace.notify(order_id)
    await reach(stack, order_id, OrderStatus.CANCELED)
    await box.vtex.drain_callbacks()
    assert box.vtex.orders[vtex_id].status == "canceled"
    mine = [
        r
        for r in box.vtex.requests
        if r.path.startswith(f"/api/oms/pvt/orders/{vtex_id}/")
        and r.method == "POST"
        and (r.body or {}).get("type") != "Output"
    ]
    assert [r.path.rsplit("/", 1)[1] for r in mine] == ["invoice", "cancel"]
    assert mine[0].body["type"] == "Input" and mine[0].body["invoiceValue"] == str(value)
    for recorded in mine:
        validate_request(recorded.method, recorded.path, recorded.query, recorded.headers, recorded.body)


async def test_a_cancellation_made_in_vtex_reaches_the_marketplace(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, ("3", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    response = await seller(
        box,
        "POST",
        f"/api/oms/pvt/orders/{vtex_id_of(state)}/cancel",
        {"reason": "damaged in the warehouse"},
    )
    assert response.status_code == 200
    await reach(stack, order_id, OrderStatus.CANCELED)
    received = box.marketplace.orders[order_id]
    assert received["status"] == "cancelled" and received["cancelled_by"] == "seller"
    assert received["cancellation"]["reason"] == "damaged in the warehouse"


async def test_callbacks_with_a_wrong_token_are_refused(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    order_id = await start(stack, box, ("1", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    good = stack.connections[CONNECTION].services_endpoint
    bad = good.rsplit("/", 1)[0] + "/not-the-token-at-all-0000"
    body = invoice_body("NF-X", 100, items=[])
    # VTEX holds the invoice (and called back once already): the repeated callback below checks out.
    await seller(box, "POST", f"/api/oms/pvt/orders/{vtex_id_of(state)}/invoice", body)
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{bad}/pub/orders/{state.vtex_order_id}/invoice", json=body)
        unknown = await http.post(f"{good}/pvt/orders/MKP-nope-01/invoice", json=body)
        malformed = await http.post(f"{good}/pvt/orders/{order_id}/invoice", json={"invoiceNumber": ""})
        by_marketplace_id = await http.post(f"{good}/pvt/orders/{order_id}/invoice", json=body)
    assert refused.status_code == 404
    assert unknown.status_code == 404
    assert malformed.status_code == 400 and "invoice" in malformed.json()["error"]
    assert by_marketplace_id.status_code == 200
    assert by_marketplace_id.json()["orderId"] == state.vtex_order_id
    assert set(by_marketplace_id.json()) == {"orderId", "receipt", "date"}


async def test_a_continued_run_picks_the_follow_up_up_where_it_was(stack: Stack, box: Sandboxes) -> None:
    """What continue-as-new hands over (FollowUpState) is enough to finish the order. (The first
    definition, OrderWorkflowV1, knows only the fulfillment flow.)"""
    order = box.marketplace.new_order(items=[("1", 1)])
    order_id = order["id"]
    value = int(order["total_amount"].replace(".", ""))
    vtex_id = f"MKP-{order_id}{box.vtex.order_id_suffix}"
    connection = stack.connections[CONNECTION]
    resume = FollowUpState(
        state=OrderState(
            connection=CONNECTION,
            marketplace_order_id=order_id,
            vtex_order_id=vtex_id,
            status=OrderStatus.DISPATCH_AUTHORIZED,
        ),
        placed=PlacedOrder(vtex_order_id=vtex_id),
        order_value=value,
    )
    # Orders started by the first definition continue as new on it until they drain.
    handle = await stack.client.start_workflow(
        OrderWorkflowV1.run,
        OrderWorkflowInput(
            connection=CONNECTION,
            marketplace_order_id=order_id,
            affiliate_id="MKP",
            sales_channel="1",
            policy=connection.policy,
            vtex_task_queue=connection.vtex_task_queue,
            resume=resume,
        ),
        id=order_workflow_id(CONNECTION, order_id),
        task_queue=stack.settings.temporal_task_queue,
    )
    invoice = Invoice(
        invoice_number="NF-77",
        invoice_value=value,
        tracking_number="TRK-77",
        items=[InvoiceItem(sku_id="1", quantity=1, price=4990)],
    )
    await handle.signal(OrderWorkflowV1.vtex_invoice, invoice)
    state = await handle.result()
    assert state.status is OrderStatus.COMPLETED
    assert [i["number"] for i in box.marketplace.orders[order_id]["invoices"]] == ["NF-77"]
    assert state.timeline[-1].step == "complete"


async def test_an_order_placed_by_an_earlier_run_is_followed_even_when_its_own_reservation_fails_validation(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    # A run that placed the order but never recorded it (here: terminated while authorization failed; a
    # worker killed inside the integration's workflow task is the same) leaves the order in VTEX holding
    # the last unit. The next run's validation then fails on stock: it must find the order and follow it.
    if flow is VtexFlow.FULFILLMENT:
        box.vtex.add_fault(FaultRule(method="POST", path_contains="fulfillment/pvt/orders/MKP-", status=503, times=-1))
        order_id = await start(stack, box, ("1", 1))
        first = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.vtex_order_id is not None)
        made = first.vtex_order_id
    else:
        # VTEX made the channel order, but the run never saw it: every look at OMS failed.
        box.vtex.add_fault(FaultRule(method="GET", path_contains="/api/oms/pvt/orders", status=503, times=-1))
        order_id = await start(stack, box, ("1", 1))
        deadline = asyncio.get_running_loop().time() + 10
        while not vtex_order_ids(box, order_id):
            assert asyncio.get_running_loop().time() < deadline, "VTEX never made the order"
            await asyncio.sleep(0.05)
        [made] = vtex_order_ids(box, order_id)
    handle = stack.client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(CONNECTION, order_id))
    await handle.terminate("the run is lost")
    box.vtex.clear_faults()
    in_stock, box.vtex.stock["1"] = box.vtex.stock["1"], 0
    try:
        await start_again(stack, order_id)
        state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    finally:
        box.vtex.stock["1"] = in_stock  # the sandbox is shared with the tests after this one
    assert state.vtex_order_id == made
    assert len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]) == 1
    assert any("already existed" in e.message for e in state.timeline if e.step == "place")
