"""Mercado Libre end to end: its sandbox notifies the intake, the adapter keys each order to its cart (a
pack), and one VTEX order per cart goes through the Channel Order API, on a real dev server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sandboxes.mercadolibre import MercadoLibreSandbox
from sandboxes.mercadolibre_models import FaultRule as MeliFault
from sandboxes.mercadolibre_models import ItemSpec
from sandboxes.mercadolibre_seller import nfe_key, nfe_xml
from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.polling import PollingActivities
from connector.models import OrderChange, OrderState, OrderStatus, PollRequest, order_workflow_id, poller_workflow_id
from connector.poller_start import start_pollers
from connector.stack import Stack
from connector.store.models import LogStatus
from tests.conftest import embedded_settings
from tests.helpers import seller, wait_for_state
from workflows.poller import PollerWorkflow

MELI = "meli"
OTHER_SELLER = "meli-other-seller"
APP_ID = "5069405921864711"
WAREHOUSE = "meli_full"
ENQUEUE = "/api/order-integration/orders"
SHIRT = ItemSpec("Camiseta Azul M", Decimal("49.90"), quantity=2, seller_sku="1")
BOTTLE = ItemSpec("Garrafa Térmica", Decimal("79.90"), seller_sku="8")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def meli_stack(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("mercadolibre")
    connections = data / "connections.json"
    connections.write_text(
        json.dumps(
            {
                "connections": [
                    {
                        "name": name,
                        "marketplace": "mercadolibre",
                        "vtex_flow": "order-integration",
                        "mercadolibre_site": "MLB",
                        # Two sellers who authorized one application (an integrator's usual setup).
                        "mercadolibre_app_id": APP_ID,
                        "mercadolibre_client_secret": "ml-sandbox-client-secret-of-the-app",
                        "mercadolibre_seller_id": seller,
                        "fulfillment_warehouse_id": WAREHOUSE,
                        "accept_unpaid_orders": False,
                    }
                    for name, seller in ((MELI, "241983636"), (OTHER_SELLER, "318830214"))
                ]
            }
        )
    )
    settings = embedded_settings(
        store_url=f"sqlite:///{data / 'connector.db'}", data_dir=data, connections_file=str(connections)
    )
    async with Stack(settings, temporal_env.client) as stack:
        yield stack


def meli(stack: Stack) -> MercadoLibreSandbox:
    assert stack.sandboxes is not None
    return stack.sandboxes.mercadolibre[MELI]


async def reach(
    stack: Stack, key: str, status: OrderStatus, *, within: float = 30.0, connection: str = MELI
) -> OrderState:
    return await wait_for_state(stack.client, connection, key, lambda s: s.status is status, within=within)


async def cart_of(stack: Stack, order_id: int, *, within: float = 15.0, connection: str = MELI) -> str:
    """The connector order (cart) the intake keyed a Mercado Libre order to."""
    assert stack.store is not None
    deadline = asyncio.get_running_loop().time() + within
    while (key := await stack.store.cart_key(connection, str(order_id))) is None:
        assert asyncio.get_running_loop().time() < deadline, f"order {order_id} was never keyed to a cart"
        await asyncio.sleep(0.05)
    return key


def channel_bodies(stack: Stack, key: str) -> list[dict[str, Any]]:
    assert stack.sandboxes is not None
    return [
        r.body
        for r in stack.sandboxes.vtex.requests
        if r.path == ENQUEUE and isinstance(r.body, dict) and r.body.get("marketplaceOrderId") == key
    ]


def vtex_orders(stack: Stack, key: str) -> list[Any]:
    assert stack.sandboxes is not None
    return [o for o in stack.sandboxes.vtex.orders.values() if o.marketplace_order_id == key]


async def test_a_pack_of_two_orders_is_one_vtex_order_with_both_lines(meli_stack: Stack) -> None:
    pack = meli(meli_stack).create_pack([[SHIRT], [BOTTLE]], status="paid")
    first, second = pack.order_ids
    key = await cart_of(meli_stack, first)
    assert await cart_of(meli_stack, second) == key
    state = await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    [placed] = vtex_orders(meli_stack, key)
    assert placed.order_id == state.vtex_order_id
    [body] = channel_bodies(meli_stack, key)
    assert sorted((i["id"], i["quantity"], i["price"]) for i in body["items"]) == [("1", 2, 4990), ("8", 1, 7990)]
    assert body["shippingData"]["isFob"] is True  # cross_docking: Mercado Libre's carrier collects (scenario 7)


async def test_one_application_notifies_every_sellers_orders_to_one_url(meli_stack: Stack) -> None:
    # Mercado Libre has one callback URL per application: another seller's notification at this connection's
    # URL is the other seller's connection's (checked as that connection would), not a 401 to retry for an hour.
    assert meli_stack.sandboxes is not None
    other = meli_stack.sandboxes.mercadolibre[OTHER_SELLER]
    other.callback_url = meli_stack.webhook_url(MELI)
    try:
        order = other.create_order([SHIRT], status="paid")
        key = await cart_of(meli_stack, order.id, connection=OTHER_SELLER)
        await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED, connection=OTHER_SELLER)
    finally:
        other.callback_url = meli_stack.webhook_url(OTHER_SELLER)
    [first] = [n for n in other.notifications if n.resource == f"/orders/{order.id}"][:1]
    assert first.attempts[0].url == meli_stack.webhook_url(MELI) and first.attempts[0].status == 200
    assert meli_stack.store is not None and await meli_stack.store.cart_key(MELI, str(order.id)) is None


async def test_the_poller_leaves_alone_the_orders_of_a_cart_already_read(meli_stack: Stack) -> None:
    # The search lists Mercado Libre orders, the connector hands off and reads carts: a pack's orders the
    # cart's workflow has read are covered, not signaled again once the webhook grace is over.
    sandbox = meli(meli_stack)
    pack = sandbox.create_pack([[SHIRT], [BOTTLE]], status="paid")
    key = await cart_of(meli_stack, pack.order_ids[0])
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    notified = await notify_signals(meli_stack, key)
    newest = max(sandbox.orders[order_id].last_updated for order_id in pack.order_ids)
    eager = dataclasses.replace(meli_stack.connections[MELI], poll_interval_seconds=0.3, poll_webhook_grace_seconds=0)
    queue = meli_stack.settings.temporal_task_queue
    await start_pollers(meli_stack.client, task_queue=queue, connections={MELI: eager})
    poller = meli_stack.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id(MELI))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # until a poll has listed both orders and settled each
            state = await poller.query(PollerWorkflow.status)
            if state.cursor is not None and state.cursor >= newest and state.deferred == 0:
                break
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.2)
    finally:
        await poller.terminate()
    assert await notify_signals(meli_stack, key) == notified


async def test_a_retried_poll_finds_a_pack_orders_workflow_under_its_cart(meli_stack: Stack) -> None:
    # A poll that died between noting a hand-off and signaling it is retried: an order owed a read whose
    # workflow does not exist is handed off. A pack's order has its cart's workflow, not one of its own.
    sandbox = meli(meli_stack)
    pack = sandbox.create_pack([[SHIRT], [BOTTLE]], status="paid")
    key = await cart_of(meli_stack, pack.order_ids[0])
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    assert meli_stack.store is not None and meli_stack.logbook is not None
    # A change newer than the cart's last read, its hand-off noted (owed a read), as the dead poll left it.
    owed = OrderChange(marketplace_order_id=str(pack.order_ids[1]), updated_at=datetime.now(UTC))
    await meli_stack.store.note_handoff(MELI, key, datetime.now(UTC))
    polling = PollingActivities(
        meli_stack.connections,
        meli_stack.adapters,
        task_queue=meli_stack.settings.temporal_task_queue,
        logbook=meli_stack.logbook,
        ledger=meli_stack.store,
    )
    retry = ActivityEnvironment(client=meli_stack.client)
    retry.info = dataclasses.replace(retry.info, attempt=2)
    later = datetime.now(UTC) + timedelta(hours=1)  # nothing new to list: only the carried change is checked
    request = PollRequest(connection=MELI, cursor=later, overlap_seconds=0, deferred=[owed])
    progress = await retry.run(polling.poll_marketplace, request)
    assert progress.handed_off == 0 and progress.deferred == [owed]


async def notify_signals(stack: Stack, key: str) -> int:
    history = await stack.client.get_workflow_handle(order_workflow_id(MELI, key)).fetch_history()
    return sum(
        event.workflow_execution_signaled_event_attributes.signal_name == "notify"
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )


async def test_a_cart_waits_for_its_late_second_order_to_be_paid(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    pack = sandbox.create_pack([[SHIRT], [BOTTLE]], status="payment_required")
    first, second = pack.order_ids
    sandbox.pay(first)
    key = await cart_of(meli_stack, first)
    await reach(meli_stack, key, OrderStatus.AWAITING_PAYMENT)
    await asyncio.sleep(1.0)
    assert channel_bodies(meli_stack, key) == []  # half a cart is never placed
    sandbox.pay(second)
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    [body] = channel_bodies(meli_stack, key)
    assert len(body["items"]) == 2


async def test_a_pack_that_splits_or_is_renamed_stays_one_vtex_order(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    pack = sandbox.create_pack([[SHIRT], [BOTTLE]], status="payment_required")
    first, second = pack.order_ids
    key = await cart_of(meli_stack, first)
    [left, _] = sandbox.split_pack(pack.id)
    sandbox.change_pack_id(left.id)
    sandbox.pay(first)
    sandbox.pay(second)
    assert await cart_of(meli_stack, second) == key
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    await asyncio.sleep(1.0)  # every notification of the split and the payments handed off
    assert len(vtex_orders(meli_stack, key)) == 1
    assert len(channel_bodies(meli_stack, key)) == 1


@pytest.mark.parametrize(
    ("logistic_type", "fob", "marketplace_fulfillment", "warehouses"),
    [
        ("self_service", False, False, []),  # Flex: the seller delivers, VTEX's SLA
        ("drop_off", True, False, []),  # the seller drops it at Mercado Libre's carrier: FOB
        ("fulfillment", True, True, [{"warehouseId": WAREHOUSE}]),  # Full: from Mercado Libre's warehouse
    ],
)
async def test_each_logistic_type_gets_its_vtex_delivery_data(
    meli_stack: Stack, logistic_type: str, fob: bool, marketplace_fulfillment: bool, warehouses: list[Any]
) -> None:
    # Freight as the store's own SLA prices it (5.00), so the seller-delivered order matches VTEX's total.
    order = meli(meli_stack).create_order(
        [BOTTLE], status="paid", logistic_type=logistic_type, shipping_cost=Decimal("5.00")
    )
    key = await cart_of(meli_stack, order.id)
    # A Full order may complete at once: the Faturador's NF-e comes within half a second of payment.
    placed = (OrderStatus.DISPATCH_AUTHORIZED, OrderStatus.COMPLETED)
    await wait_for_state(meli_stack.client, MELI, key, lambda s: s.status in placed, within=30)
    [body] = channel_bodies(meli_stack, key)
    shipping = body["shippingData"]
    assert (shipping["isFob"], shipping["isMarketplaceFulfillment"]) == (fob, marketplace_fulfillment)
    assert [info["deliveryIds"] for info in shipping["logisticsInfo"]] == [warehouses]
    assert all(info["selectedSla"] == "" for info in shipping["logisticsInfo"]) is fob


async def test_a_cancellation_claim_cancels_the_vtex_order(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    order = sandbox.create_order([SHIRT], status="paid")
    key = await cart_of(meli_stack, order.id)
    state = await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    sandbox.open_claim(order.id, type="cancel_purchase")
    sandbox.cancel(order.id)
    await reach(meli_stack, key, OrderStatus.CANCELED)
    assert state.vtex_order_id is not None
    assert meli_stack.sandboxes is not None
    assert meli_stack.sandboxes.vtex.orders[state.vtex_order_id].status == "canceled"


async def test_a_return_claim_is_an_alert_the_seller_sees(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    order = sandbox.create_order([SHIRT], status="paid")
    key = await cart_of(meli_stack, order.id)
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    sandbox.open_claim(order.id, type="mediations")
    assert meli_stack.store is not None
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        lines = await meli_stack.store.logs(
            account="sandbox", day=datetime.now(UTC).date(), statuses=[LogStatus.ALERT], connection=MELI
        )
        if any(m.code == "X23" and m.marketplace_order_id == key for m in lines):
            break
        assert asyncio.get_running_loop().time() < deadline, "no alert line for the claim"
        await asyncio.sleep(0.1)


def broken_gauge() -> float | None:
    return REGISTRY.get_sample_value("connector_marketplace_authorization_broken", {"connection": MELI})


async def test_a_revoked_authorization_is_visible_loses_nothing_and_resumes_once_reconnected(
    meli_stack: Stack,
) -> None:
    sandbox = meli(meli_stack)
    sandbox.revoke_grant()
    sandbox.expire_access_tokens()
    order = sandbox.create_order([BOTTLE], status="paid")
    # The notification is acknowledged and queued; the hand-off waits for the marketplace.
    deadline = asyncio.get_running_loop().time() + 20
    while broken_gauge() != 1:
        assert asyncio.get_running_loop().time() < deadline, "the broken authorization never showed"
        await asyncio.sleep(0.1)
    # Acknowledged with 200 at the first delivery (nothing queued at Mercado Libre's side).
    assert any(n.resource == f"/orders/{order.id}" and n.delivered for n in sandbox.notifications)
    assert meli_stack.store is not None
    lines = await meli_stack.store.logs(
        account="sandbox", day=datetime.now(UTC).date(), statuses=[LogStatus.ALERT], connection=MELI
    )
    assert any(m.code == "X22" for m in lines)
    from connector.marketplaces.factory import (
        mercadolibre_tokens,  # the reconnect `connector mercadolibre connect` does
    )
    from connector.temporal_client import secret_sealer

    assert meli_stack.logbook is not None
    tokens = mercadolibre_tokens(
        meli_stack.connections[MELI],
        store=meli_stack.store,
        logbook=meli_stack.logbook,
        sealer=secret_sealer(meli_stack.settings),
    )
    try:
        await tokens.connect(code=sandbox.issue_authorization_code(), redirect_uri=sandbox.oauth.redirect_uri)
    finally:
        await tokens.aclose()
    key = await cart_of(meli_stack, order.id, within=40)
    await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED, within=40)
    assert broken_gauge() == 0


async def test_a_full_order_gets_mercado_libres_invoice_into_vtex_and_completes(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    order = sandbox.create_order([BOTTLE], status="paid", logistic_type="fulfillment", shipping_cost=Decimal("5.00"))
    key = await cart_of(meli_stack, order.id)
    # Mercado Libre's Faturador issues the NF-e on its own a moment after payment (the sandbox too), maybe
    # before the order reaches VTEX: the connector reads it once VTEX has the order.
    invoice = sandbox.issue_invoice(order.id)
    state = await reach(meli_stack, key, OrderStatus.COMPLETED)
    assert meli_stack.sandboxes is not None and state.vtex_order_id is not None
    placed = meli_stack.sandboxes.vtex.orders[state.vtex_order_id]
    numbers = [i.invoice_number for i in placed.invoices]
    assert len(numbers) == 1 and str(invoice.number) in numbers[0]
    assert sandbox.fiscal_documents == []  # nothing uploaded back: Mercado Libre issued it


async def test_a_full_invoice_that_fails_to_come_or_to_reach_vtex_is_retried(meli_stack: Stack) -> None:
    sandbox = meli(meli_stack)
    assert meli_stack.sandboxes is not None
    vtex = meli_stack.sandboxes.vtex
    # The faults are in place before the order exists: the Faturador issues the NF-e on its own within
    # half a second of payment, so the connector's first read may come at any moment after placement.
    sandbox.add_fault(MeliFault(method="GET", path_contains="/invoices/orders/", status=500, times=4))
    vtex.add_fault(FaultRule(method="POST", path_contains="/invoice", status=503, times=4))
    try:
        order = sandbox.create_order(
            [BOTTLE], status="paid", logistic_type="fulfillment", shipping_cost=Decimal("5.00")
        )
        key = await cart_of(meli_stack, order.id)
        state = await reach(meli_stack, key, OrderStatus.COMPLETED, within=40)
    finally:
        sandbox.clear_faults()
        vtex.clear_faults()
    assert state.vtex_order_id is not None
    held = [e.message for e in state.timeline if e.step == "reprocessing"]
    assert len(held) == 2, held  # held on the failure path once for each call, then through
    assert len(vtex.orders[state.vtex_order_id].invoices) == 1


async def test_a_cross_docking_sale_invoiced_in_vtex_gets_its_nfe_imported_and_its_label(meli_stack: Stack) -> None:
    # Brazil: Mercado Libre's carrier collects, and its label waits (invoice_pending) for the NF-e of the
    # seller's ERP, which reaches VTEX with the invoice (embeddedInvoice) and the connector imports.
    sandbox = meli(meli_stack)
    order = sandbox.create_order([BOTTLE], status="paid", logistic_type="cross_docking")
    key = await cart_of(meli_stack, order.id)
    state = await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    shipment = sandbox.shipments[order.shipment_id or 0]
    assert (shipment.status, shipment.substatus) == ("ready_to_ship", "invoice_pending")
    issued = datetime.now(UTC)
    access_key = nfe_key("35", issued, sandbox.seller_id, 1, order.id % 10**9)
    xml = nfe_xml(access_key, order.id % 10**9, 1, "79.90", issued)
    items = [{"id": "8", "quantity": 1, "price": 7990}]
    invoice = invoice_notification(f"NF-{order.id}", 7990, items=items, issued=issued)
    invoice |= {"invoiceKey": access_key, "embeddedInvoice": xml}
    assert meli_stack.sandboxes is not None
    path = f"/api/oms/pvt/orders/{state.vtex_order_id}/invoice"
    assert (await seller(meli_stack.sandboxes, "POST", path, invoice)).status_code == 200
    deadline = asyncio.get_running_loop().time() + 20
    while (imported := sandbox.imported_nfe.get(shipment.id)) is None:
        assert asyncio.get_running_loop().time() < deadline, "the NF-e was never imported"
        await asyncio.sleep(0.1)
    assert imported.key == access_key and imported.xml == xml.encode()
    assert (shipment.status, shipment.substatus) == ("ready_to_ship", "ready_to_print")
    # Mercado Libre's carrier tracks it: invoiced in full, the order is complete without a tracking of VTEX's.
    done = await reach(meli_stack, key, OrderStatus.COMPLETED)
    assert "the marketplace tracks the shipment" in done.timeline[-1].message


async def test_an_order_waiting_for_a_tracking_the_marketplace_keeps_completes_on_its_next_read(
    meli_stack: Stack,
) -> None:
    # The seller ships (ME1) and owes a tracking: invoiced without one, the order waits for it. Then a read
    # shows Mercado Libre's logistics tracking it, as every read of a Mercado Envíos 2 order does now (and
    # none did before Shipping.marketplace_tracks): that read completes the order.
    sandbox = meli(meli_stack)
    order = sandbox.create_order([BOTTLE], status="paid", logistic_type="me1", shipping_cost=Decimal("5.00"))
    key = await cart_of(meli_stack, order.id)
    state = await reach(meli_stack, key, OrderStatus.DISPATCH_AUTHORIZED)
    items = [{"id": "8", "quantity": 1, "price": 7990}]
    invoice = invoice_notification(f"NF-{order.id}", 8490, items=items, issued=datetime.now(UTC))
    assert meli_stack.sandboxes is not None
    path = f"/api/oms/pvt/orders/{state.vtex_order_id}/invoice"
    assert (await seller(meli_stack.sandboxes, "POST", path, invoice)).status_code == 200
    await reach(meli_stack, key, OrderStatus.INVOICED)
    await asyncio.sleep(1.0)
    assert (await reach(meli_stack, key, OrderStatus.INVOICED)).status is OrderStatus.INVOICED  # still waiting
    sandbox.shipments[order.shipment_id or 0].logistic_type = "self_service"  # Flex: Mercado Libre's app
    sandbox.notify_order(order.id)
    done = await reach(meli_stack, key, OrderStatus.COMPLETED)
    assert "the marketplace tracks the shipment" in done.timeline[-1].message
