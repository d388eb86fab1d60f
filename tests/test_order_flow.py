"""End to end on a real Temporal dev server: marketplace sandbox → webhook → workflow → VTEX sandbox."""

from __future__ import annotations

import asyncio

import httpx
from sandboxes.vtex import FaultRule, NotificationFault
from temporalio.api.enums.v1 import EventType

from connector.models import OrderStatus, VtexFlow, order_workflow_id
from connector.stack import Stack
from tests.contract.openapi import validate_request
from tests.helpers import ENQUEUE, clear_vtex_faults, placements, signed_webhook, wait_for_state

CONNECTION = "reference"


def sandboxes(stack: Stack):  # type: ignore[no-untyped-def]
    assert stack.sandboxes is not None
    return stack.sandboxes


async def test_paid_order_becomes_a_dispatch_authorized_vtex_order(stack: Stack, flow: VtexFlow) -> None:
    box = sandboxes(stack)
    async with httpx.AsyncClient(base_url=box.marketplace_server.url) as http:
        response = await http.post("/admin/orders", json={"items": [{"sku": "1", "quantity": 2}, {"sku": "8"}]})
    assert response.status_code == 201
    order_id = response.json()["id"]

    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    vtex_id = f"MKP-{order_id}{box.vtex.order_id_suffix}"
    assert state.vtex_order_id == vtex_id
    if flow is VtexFlow.FULFILLMENT:
        assert [e.step for e in state.timeline][:5] == ["received", "fetch", "validate", "place", "authorize"]
    else:
        # Sent (place pending), then found in VTEX (place success) and seen approved by VTEX itself; VTEX's
        # processing results come in between, whenever they arrive.
        steps = [(e.step, e.outcome) for e in state.timeline if e.step != "vtex-result"][:6]
        assert [step for step, _ in steps] == ["received", "fetch", "validate", "place", "place", "authorize"]
        assert [outcome for step, outcome in steps if step == "place"] == ["pending", "success"]
        [enqueued] = placements(box, order_id, flow)
        assert enqueued.body["marketplaceOrderStatus"] == "approved"
        assert enqueued.body["marketplacePaymentValue"] == 2 * 4990 + 7990 + 2 * 500

    # What VTEX holds (in the Channel Order flow, its reading of the enqueued order).
    placed = box.vtex.orders[vtex_id]
    assert placed.status == "ready-for-handling"
    body = placed.body
    assert body["marketplaceOrderId"] == order_id
    assert body["marketplaceServicesEndpoint"] == stack.connections[CONNECTION].services_endpoint
    assert body["marketplacePaymentValue"] == 2 * 4990 + 7990 + 2 * 500
    assert [(i["id"], i["quantity"], i["price"]) for i in body["items"]] == [("1", 2, 4990), ("8", 1, 7990)]
    assert sum(entry["price"] for entry in body["shippingData"]["logisticsInfo"]) == 1000
    assert body["paymentData"] is None

    # Every request the connector has sent so far fits VTEX's OpenAPI specs.
    sent = list(box.vtex.requests)
    if flow is VtexFlow.FULFILLMENT:
        assert {r.path.split("/")[2] for r in sent} >= {"checkout", "catalog_system", "fulfillment"}
    else:
        assert {r.path.split("/")[2] for r in sent} >= {"checkout", "catalog_system", "order-integration"}
        mine = [r for r in sent if order_id in r.path or order_id in str(r.body)]
        assert not [r for r in mine if r.path.startswith("/api/fulfillment/")]  # neither placed nor authorized
    for recorded in sent:
        validate_request(recorded.method, recorded.path, recorded.query, recorded.headers, recorded.body)


async def test_the_search_attributes_find_the_order_by_either_id(stack: Stack, flow: VtexFlow) -> None:
    order = sandboxes(stack).marketplace.new_order(items=[("2", 1)])
    sandboxes(stack).marketplace.notify(order["id"])
    state = await wait_for_state(
        stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    query = f"VtexOrderId = '{state.vtex_order_id}' AND MarketplaceOrderId = '{order['id']}'"
    for _ in range(100):
        found = [w.id async for w in stack.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [order_workflow_id(CONNECTION, order["id"])]


async def test_duplicate_notifications_make_exactly_one_vtex_order(stack: Stack, flow: VtexFlow) -> None:
    box = sandboxes(stack)
    order = box.marketplace.new_order(items=[("3", 1)])
    webhook = stack.webhook_url(CONNECTION)
    secret = stack.connections[CONNECTION].webhook_secret
    notification = {"topic": "orders", "resource": f"/orders/{order['id']}", "order_id": order["id"]}
    async with httpx.AsyncClient() as http:
        deliveries = [signed_webhook(secret, notification, delivery_id=f"d-{order['id']}-{n}") for n in range(6)]
        answers = await asyncio.gather(*(http.post(webhook, content=b, headers=h) for b, h in deliveries[:5]))
        assert {a.status_code for a in answers} == {202}
        await wait_for_state(
            stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        late = await http.post(webhook, content=deliveries[5][0], headers=deliveries[5][1])
        assert late.status_code == 202
    state = await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: s.notifications_received == 6)

    vtex_orders = [o for o in box.vtex.orders.values() if o.marketplace_order_id == order["id"]]
    assert len(vtex_orders) == 1
    assert len(placements(box, order["id"], flow)) == 1
    assert state.status is OrderStatus.DISPATCH_AUTHORIZED

    history = await stack.client.get_workflow_handle(order_workflow_id(CONNECTION, order["id"])).fetch_history()
    starts = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
    assert len(starts) == 1


async def test_order_with_sku_problems_is_parked_with_every_action(stack: Stack, flow: VtexFlow) -> None:
    box = sandboxes(stack)
    order = box.marketplace.new_order(items=[("4", 1), ("5", 1), ("6", 1)])
    box.marketplace.notify(order["id"])
    state = await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.PARKED)
    assert state.parked_reason is not None
    for action in ("activate SKU 4", "add SKU 5 to sales channel", "add stock for SKU 6"):
        assert action in state.parked_reason
    assert not [o for o in box.vtex.orders.values() if o.marketplace_order_id == order["id"]]
    assert placements(box, order["id"], flow) == []  # the connector's own validation holds it in both flows


async def test_app_token_never_reaches_workflow_history(stack: Stack, flow: VtexFlow) -> None:
    order = sandboxes(stack).marketplace.new_order(items=[("1", 1)])
    sandboxes(stack).marketplace.notify(order["id"])
    await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    history = await stack.client.get_workflow_handle(order_workflow_id(CONNECTION, order["id"])).fetch_history()
    assert sandboxes(stack).vtex.app_token not in history.to_json()


async def test_a_lost_placement_response_still_makes_one_vtex_order(stack: Stack, flow: VtexFlow) -> None:
    box = sandboxes(stack)
    order = box.marketplace.new_order(items=[("2", 1)])
    if flow is VtexFlow.FULFILLMENT:
        # VTEX creates the order, then the response is lost (gateway timeout): the retry must not re-place.
        box.vtex.add_fault(
            FaultRule(method="POST", path_contains="/api/fulfillment/pvt/orders", status=504, after_effect=True)
        )
    else:
        # VTEX enqueues the order, then its SOI003 answer is lost, and so is the SOI001 it reports once it
        # integrated it: the connector sends the order again and must find the one VTEX made.
        box.vtex.add_fault(FaultRule(method="POST", path_contains=ENQUEUE, status=504, after_effect=True))
        box.vtex.add_notification_fault(NotificationFault(action="drop", flow="PlaceOrder", code="SOI001"))
    try:
        box.marketplace.notify(order["id"])
        state = await wait_for_state(
            stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        await box.vtex.order_integration.drain()  # every request VTEX was sent is processed
    finally:
        clear_vtex_faults(box)
    assert len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order["id"]]) == 1
    sent = placements(box, order["id"], flow)
    assert sent[0].status == 504
    if flow is VtexFlow.FULFILLMENT:
        # A retry looks for the order first; while OMS does not show it yet (VTEX indexes with a lag) a retry
        # may place it again, and VTEX refuses that one (FMT009, 400): never a second order.
        assert all(r.status == 400 for r in sent[1:])
        assert any("already existed" in e.message for e in state.timeline if e.step == "place")
        return
    # Enqueued again (SOI003): VTEX integrated one of the requests and refused each other one as a duplicate.
    assert len(sent) >= 2 and all(r.status == 200 for r in sent[1:])
    results = [
        (n.code, n.fate)
        for n in box.vtex.order_integration.notifications
        if n.marketplace_order_id == order["id"] and n.flow == "PlaceOrder"
    ]
    assert sorted(results) == sorted([("SOI001", "dropped")] + [("EOI007", "sent")] * (len(sent) - 1))


async def test_vtex_server_errors_are_retried_until_the_order_goes_through(stack: Stack, flow: VtexFlow) -> None:
    box = sandboxes(stack)
    order = box.marketplace.new_order(items=[("1", 1)])
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains="/api/checkout/pub/orderForms/simulation", status=503, times=2)
    )
    if flow is VtexFlow.ORDER_INTEGRATION:
        box.vtex.add_fault(FaultRule(method="POST", path_contains=ENQUEUE, status=503, times=2))
    box.marketplace.notify(order["id"])
    await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    assert not box.vtex.faults  # both injected failures were consumed by retries
