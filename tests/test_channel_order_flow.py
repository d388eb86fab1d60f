"""The Channel Order API (New Order Integration, `vtex_flow` order-integration) end to end on a real dev
server: the connector enqueues, VTEX's sandbox processes asynchronously and POSTs its processing result to
the intake, and the order finishes whatever becomes of that notification."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx
from sandboxes.vtex import FaultRule, NotificationFault, ProcessingFault

from connector.cancel import request_cancel
from connector.embedded import Sandboxes
from connector.models import CancelRequest, MarketplaceNotification, OrderState, OrderStatus, VtexFlow
from connector.stack import Stack
from connector.starter import hand_off_order
from connector.store.models import LogMessage, LogStatus
from tests.contract.openapi import validate_request
from tests.helpers import wait_for_state

CONNECTION = "reference"
ENQUEUE = "/api/order-integration/orders"
STATUS = "/api/order-integration/orders/status"
PROCESSING_RESULT = "/order-integration/notification/processing-result"


async def start(
    stack: Stack, box: Sandboxes, *items: tuple[str, int], status: str = "paid", pickup: bool = False, **options: Any
) -> str:
    order = box.marketplace.new_order(items=list(items), status=status, pickup=pickup)
    connection = dataclasses.replace(stack.connections[CONNECTION], vtex_flow=VtexFlow.ORDER_INTEGRATION, **options)
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=connection,
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    return str(order["id"])


async def reach(stack: Stack, order_id: str, status: OrderStatus, *, within: float = 30.0) -> OrderState:
    return await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is status, within=within)


def channel_requests(box: Sandboxes, order_id: str, path: str) -> list[Any]:
    return [
        r
        for r in box.vtex.requests
        if r.path == path and isinstance(r.body, dict) and r.body.get("marketplaceOrderId") == order_id
    ]


def vtex_orders(box: Sandboxes, order_id: str) -> list[str]:
    return [o.order_id for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]


async def order_log(stack: Stack, order_id: str) -> list[LogMessage]:
    assert stack.store is not None
    today = datetime.now(UTC).date()
    return await stack.store.logs(account="sandbox", day=today, marketplace_order_id=order_id, connection=CONNECTION)


async def log_codes(stack: Stack, order_id: str) -> list[str]:
    return [m.code for m in await order_log(stack, order_id)]


async def test_a_paid_order_is_enqueued_integrated_and_approved_by_vtex(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("1", 2), ("8", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert vtex_orders(box, order_id) == [state.vtex_order_id]
    assert state.vtex_order_id is not None and box.vtex.orders[state.vtex_order_id].status == "ready-for-handling"
    sent = channel_requests(box, order_id, ENQUEUE)
    assert len(sent) == 1 and sent[0].body["marketplaceOrderStatus"] == "approved"
    assert sent[0].body["connectorEndpoint"] == stack.connections[CONNECTION].services_endpoint
    # No legacy call: neither Place fulfillment order nor authorize dispatch.
    assert not [r for r in box.vtex.requests if r.path.startswith("/api/fulfillment/") and order_id in str(r.body)]
    for recorded in box.vtex.requests:
        if recorded.path.startswith("/api/order-integration/"):
            validate_request(recorded.method, recorded.path, recorded.query, recorded.headers, recorded.body)
    codes = await log_codes(stack, order_id)
    assert {"X19", "A", "X3"} <= set(codes)


async def test_a_pickup_order_names_its_pickup_point_and_no_sla(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("1", 1), pickup=True)
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    body = channel_requests(box, order_id, ENQUEUE)[0].body
    assert body["shippingData"]["selectedAddresses"][0]["addressType"] == "pickup"
    assert [(i["selectedDeliveryChannel"], i["selectedSla"]) for i in body["shippingData"]["logisticsInfo"]] == [
        ("pickup-in-point", "")
    ]


async def test_an_unpaid_order_is_enqueued_as_new_and_approved_once_paid(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("1", 1), status="payment_pending", accept_unpaid_orders=True)
    state = await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status is OrderStatus.AWAITING_PAYMENT and s.vtex_order_id is not None,
    )
    assert state.vtex_order_id is not None
    assert box.vtex.orders[state.vtex_order_id].status == "payment-pending"
    assert [r.body["marketplaceOrderStatus"] for r in channel_requests(box, order_id, ENQUEUE)] == ["new"]
    box.marketplace.pay(order_id)
    box.marketplace.notify(order_id)
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert box.vtex.orders[state.vtex_order_id].status == "ready-for-handling"
    approvals = channel_requests(box, order_id, STATUS)
    assert len(approvals) == 1
    validate_request(
        approvals[0].method, approvals[0].path, approvals[0].query, approvals[0].headers, approvals[0].body
    )


async def test_lost_notifications_change_nothing(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_notification_fault(NotificationFault(action="drop", times=-1))
    order_id = await start(stack, box, ("2", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert [n.fate for n in box.vtex.order_integration.notifications if n.marketplace_order_id == order_id] == [
        "dropped",
        "dropped",
    ]
    assert vtex_orders(box, order_id) == [state.vtex_order_id]


async def test_repeated_and_late_notifications_make_one_order(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_notification_fault(NotificationFault(action="duplicate", code="SOI001"))
    box.vtex.add_notification_fault(NotificationFault(action="delay", code="SOI002", delay_seconds=1.5))
    order_id = await start(stack, box, ("2", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    await asyncio.sleep(2.0)  # the late SOI002 arrives after the order moved on
    after = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert vtex_orders(box, order_id) == [state.vtex_order_id]
    assert len(channel_requests(box, order_id, ENQUEUE)) == 1
    assert after.parked_reason is None


async def test_a_stock_refusal_is_reprocessed_until_vtex_takes_the_order(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_processing_fault(ProcessingFault(code="EOI002"))
    order_id = await start(stack, box, ("3", 1))
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert [e.code for e in state.timeline if e.step == "reprocessing"] == ["EOI002"]
    assert len(channel_requests(box, order_id, ENQUEUE)) == 2
    assert "X5" in await log_codes(stack, order_id)


async def test_a_validation_refusal_parks_the_order_with_vtexs_reason(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_processing_fault(ProcessingFault(code="EOI005"))
    order_id = await start(stack, box, ("3", 1))
    state = await reach(stack, order_id, OrderStatus.PARKED)
    assert state.error_code == "EOI005"
    assert state.parked_reason is not None and "EOI005" in state.parked_reason
    assert vtex_orders(box, order_id) == []


async def test_a_duplicate_is_followed_not_placed_twice(stack: Stack, box: Sandboxes) -> None:
    # VTEX's result is lost and VTEX cannot be asked for a while: the connector sends the order again and
    # VTEX refuses the duplicate (EOI007); the order it follows is the one VTEX made the first time.
    box.vtex.add_notification_fault(NotificationFault(action="drop", code="SOI001"))
    box.vtex.add_fault(FaultRule(method="GET", path_contains="/api/oms/pvt/orders", status=503, times=-1))
    order_id = await start(stack, box, ("2", 1))
    deadline = asyncio.get_running_loop().time() + 20
    while len(channel_requests(box, order_id, ENQUEUE)) < 2:
        assert asyncio.get_running_loop().time() < deadline, "the order was never sent again"
        await asyncio.sleep(0.1)
    box.vtex.clear_faults()
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert vtex_orders(box, order_id) == [state.vtex_order_id]
    await box.vtex.order_integration.drain()
    codes = [n.code for n in box.vtex.order_integration.notifications if n.marketplace_order_id == order_id]
    assert "EOI007" in codes


async def test_a_server_error_on_enqueue_is_retried(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(FaultRule(method="POST", path_contains=ENQUEUE, status=503, times=2))
    order_id = await start(stack, box, ("1", 1))
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert [r.status for r in channel_requests(box, order_id, ENQUEUE)] == [503, 503, 200]


async def test_processing_results_at_the_intake(stack: Stack, box: Sandboxes) -> None:
    endpoint = stack.connections[CONNECTION].services_endpoint
    result = {"code": "SOI001", "flow": "PlaceOrder", "success": True, "marketplaceOrderId": "nobody-123"}
    async with httpx.AsyncClient() as http:
        wrong = await http.post(endpoint[: -len("x")] + "y" + PROCESSING_RESULT, json=result)
        malformed = await http.post(endpoint + PROCESSING_RESULT, json={"flow": "PlaceOrder"})
        no_order = await http.post(endpoint + PROCESSING_RESULT, json={**result, "marketplaceOrderId": None})
        unknown = await http.post(endpoint + PROCESSING_RESULT, json=result)
    assert wrong.status_code == 404
    assert malformed.status_code == 400 and "code" in malformed.json()["error"]
    assert no_order.status_code == 400
    assert unknown.status_code == 200
    lines = await order_log(stack, "nobody-123")
    assert [(m.code, m.status) for m in lines] == [("X18", LogStatus.ALERT)]


async def test_a_forged_result_moves_nothing(stack: Stack, box: Sandboxes) -> None:
    other = await reach(stack, await start(stack, box, ("1", 1)), OrderStatus.DISPATCH_AUTHORIZED)
    # VTEX is slow: a SOI001 naming another order's VTEX id and an EOI003 of no request of ours come first.
    box.vtex.order_integration.delay_seconds = 2.0
    try:
        order_id = await start(stack, box, ("2", 1))
        await reach(stack, order_id, OrderStatus.ENQUEUED)
        endpoint = stack.connections[CONNECTION].services_endpoint + PROCESSING_RESULT
        forged = {"flow": "PlaceOrder", "marketplaceOrderId": order_id, "success": True}
        async with httpx.AsyncClient() as http:
            for body in (
                {**forged, "code": "SOI001", "fields": {"mainOrderId": other.vtex_order_id}},
                {**forged, "code": "EOI003", "success": False, "errors": [{"code": "FMT007", "description": "x"}]},
            ):
                assert (await http.post(endpoint, json=body)).status_code == 200
        state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    finally:
        box.vtex.order_integration.delay_seconds = None
    assert state.vtex_order_id is not None and state.vtex_order_id != other.vtex_order_id
    assert vtex_orders(box, order_id) == [state.vtex_order_id]
    alerts = [m for m in await order_log(stack, order_id) if m.code == "X18"]
    assert len(alerts) == 2 and all(m.status is LogStatus.ALERT for m in alerts)


async def placed_unpaid(stack: Stack, box: Sandboxes, sku: str) -> tuple[str, str]:
    """An unpaid order VTEX integrated (payment-pending); its marketplace and VTEX ids."""
    order_id = await start(stack, box, (sku, 1), status="payment_pending", accept_unpaid_orders=True)
    state = await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status is OrderStatus.AWAITING_PAYMENT and s.vtex_order_id is not None,
    )
    assert state.vtex_order_id is not None
    return order_id, state.vtex_order_id


def pay(box: Sandboxes, order_id: str) -> None:
    box.marketplace.pay(order_id)
    box.marketplace.notify(order_id)


async def test_an_approval_vtex_cannot_make_yet_is_queued_then_sent_again(stack: Stack, box: Sandboxes) -> None:
    order_id, vtex_id = await placed_unpaid(stack, box, "1")
    box.vtex.add_processing_fault(ProcessingFault(code="EOI008", flow="ApproveOrder"))
    pay(box, order_id)
    state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert [e.code for e in state.timeline if e.step == "reprocessing"] == ["EOI008"]
    assert len(channel_requests(box, order_id, STATUS)) == 2
    assert box.vtex.orders[vtex_id].status == "ready-for-handling"


async def test_a_server_error_on_the_approval_is_retried(stack: Stack, box: Sandboxes) -> None:
    order_id, _ = await placed_unpaid(stack, box, "1")
    box.vtex.add_fault(FaultRule(method="PUT", path_contains=STATUS, status=500, times=2))
    pay(box, order_id)
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert [r.status for r in channel_requests(box, order_id, STATUS)] == [500, 500, 200]


async def test_an_approval_waits_for_the_sellers_price_decision(stack: Stack, box: Sandboxes) -> None:
    # VTEX holds the order for a price divergence its Order Authorization rules catch (EOI011 on approval).
    order_id, vtex_id = await placed_unpaid(stack, box, "2")
    box.vtex.orders[vtex_id].status = "waiting-for-manual-authorization"
    pay(box, order_id)
    await reach(stack, order_id, OrderStatus.PENDING_APPROVAL)
    assert channel_requests(box, order_id, STATUS) == []
    box.vtex.orders[vtex_id].status = "payment-pending"  # the seller approves the price in VTEX's admin
    await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    assert box.vtex.orders[vtex_id].status == "ready-for-handling"


async def test_an_order_vtex_canceled_before_its_approval_ends_canceled(stack: Stack, box: Sandboxes) -> None:
    order_id, vtex_id = await placed_unpaid(stack, box, "2")
    box.vtex.orders[vtex_id].status = "canceled"  # the seller canceled it in VTEX
    pay(box, order_id)
    state = await reach(stack, order_id, OrderStatus.CANCELED)
    assert channel_requests(box, order_id, STATUS) == []
    assert "VTEX canceled the order before approving it" in " ".join(e.message for e in state.timeline)
    assert box.marketplace.orders[order_id]["cancellation"] is not None  # the marketplace was told


async def test_a_cancel_while_vtex_processes_the_order_cancels_what_vtex_makes(stack: Stack, box: Sandboxes) -> None:
    box.vtex.order_integration.delay_seconds = 1.5
    try:
        order_id = await start(stack, box, ("2", 1))
        await reach(stack, order_id, OrderStatus.ENQUEUED)
        assert stack.store is not None
        assert await request_cancel(
            stack.client,
            stack.store,
            connection=CONNECTION,
            marketplace_order_id=order_id,
            request=CancelRequest(reason="the buyer changed their mind", source="operator"),
        )
        state = await reach(stack, order_id, OrderStatus.CANCELED)
    finally:
        box.vtex.order_integration.delay_seconds = None
    assert state.vtex_order_id is not None
    assert box.vtex.orders[state.vtex_order_id].status == "canceled"
    assert channel_requests(box, order_id, STATUS) == []


async def test_an_approval_vtex_refuses_for_its_status_parks_the_order(stack: Stack, box: Sandboxes) -> None:
    order_id, _ = await placed_unpaid(stack, box, "1")
    box.vtex.add_processing_fault(ProcessingFault(code="EOI009", flow="ApproveOrder"))
    pay(box, order_id)
    state = await reach(stack, order_id, OrderStatus.PARKED)
    assert state.error_code == "EOI009"
    assert "X9" in await log_codes(stack, order_id)


async def test_an_order_vtex_reports_duplicated_is_followed_as_one_that_existed(stack: Stack, box: Sandboxes) -> None:
    box.vtex.order_integration.delay_seconds = 2.0
    box.vtex.add_notification_fault(NotificationFault(action="drop", code="SOI001"))
    try:
        order_id = await start(stack, box, ("2", 1))
        await reach(stack, order_id, OrderStatus.ENQUEUED)
        [integration] = [i for i in box.vtex.order_integration.integrations if i.marketplace_order_id == order_id]
        duplicated = {
            "flow": "PlaceOrder",
            "code": "EOI007",
            "success": False,
            "marketplaceOrderId": order_id,
            "operationId": integration.operation_id,
        }
        endpoint = stack.connections[CONNECTION].services_endpoint + PROCESSING_RESULT
        async with httpx.AsyncClient() as http:
            assert (await http.post(endpoint, json=duplicated)).status_code == 200
        state = await reach(stack, order_id, OrderStatus.DISPATCH_AUTHORIZED)
    finally:
        box.vtex.order_integration.delay_seconds = None
    assert any("not placed twice" in e.message for e in state.timeline if e.step == "place")
    assert state.parked_reason is None and vtex_orders(box, order_id) == [state.vtex_order_id]
