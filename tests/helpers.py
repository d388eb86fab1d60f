"""Small helpers for integration tests: wait on a workflow's query instead of sleeping blindly."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from sandboxes.marketplace import sign
from sandboxes.vtex import FaultRule
from sandboxes.vtex_models import RecordedRequest
from temporalio.client import Client

from connector.embedded import Sandboxes
from connector.models import MarketplaceNotification, OrderState, OrderStatus, VtexFlow, order_workflow_id
from connector.stack import Stack
from connector.starter import hand_off_order
from workflows.order import OrderLifecycle


async def wait_for_state(
    client: Client,
    connection: str,
    marketplace_order_id: str,
    predicate: Callable[[OrderState], bool],
    *,
    within: float = 30.0,
) -> OrderState:
    handle = client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(connection, marketplace_order_id))
    deadline = asyncio.get_running_loop().time() + within
    last: OrderState | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await handle.query(OrderLifecycle.status)
            if predicate(last):
                return last
        except Exception:  # the workflow may not exist yet: the webhook is asynchronous
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {marketplace_order_id} did not reach the expected state; last: {last}")


async def wait_until_dispatched(
    client: Client, connection: str, marketplace_order_ids: Iterable[str], *, within: float = 30.0
) -> list[OrderState]:
    """Wait until every one of the orders is dispatch authorized (concurrently)."""
    return await asyncio.gather(
        *(
            wait_for_state(
                client, connection, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED, within=within
            )
            for order_id in marketplace_order_ids
        )
    )


def signed_headers(
    secret: str, body: bytes, *, delivery_id: str | None = None, timestamp: float | None = None
) -> dict[str, str]:
    """Headers of a reference-marketplace webhook signed as the marketplace signs it (now, with a fresh
    delivery id, unless told otherwise)."""
    delivery = delivery_id or str(uuid.uuid4())
    sent = str(int(time.time() if timestamp is None else timestamp))
    return {
        "Content-Type": "application/json",
        "X-Reference-Delivery": delivery,
        "X-Reference-Timestamp": sent,
        "X-Reference-Signature": sign(secret, sent, delivery, body),
    }


def signed_webhook(
    secret: str, payload: object, *, delivery_id: str | None = None, timestamp: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A reference-marketplace webhook body and its signed headers."""
    body = json.dumps(payload).encode()
    return body, signed_headers(secret, body, delivery_id=delivery_id, timestamp=timestamp)


async def seller(box: Sandboxes, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """The seller acting in VTEX through the OMS API (invoice, tracking, cancel); VTEX's callbacks to the
    connector are delivered before it returns."""
    async with httpx.AsyncClient(
        base_url=box.vtex_server.url,
        headers={
            "X-VTEX-API-AppKey": box.vtex.app_key,
            "X-VTEX-API-AppToken": box.vtex.app_token,
            # The Orders API spec requires both on every call, GET included.
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    ) as http:
        for _ in range(30):  # OMS shows a new order a moment after it is created
            response = await http.request(method, path, json=body)
            if response.status_code != 404:
                break
            await asyncio.sleep(0.1)
    await box.vtex.drain_callbacks()
    return response


async def dispatched_in_oms(stack: Stack, box: Sandboxes, sku: str = "1") -> OrderState:
    """A new paid order of the connection `reference`, followed until dispatch is authorized and VTEX's OMS
    shows it (Get order answers: OMS lags placement a little)."""
    order = box.marketplace.new_order(items=[(sku, 1)])
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=stack.connections["reference"],
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    state = await wait_for_state(
        stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert (await seller(box, "GET", f"/api/oms/pvt/orders/{state.vtex_order_id}")).status_code == 200
    return state


def fmt007(paid: int, desired: int) -> FaultRule:
    """VTEX refusing every placement with FMT007 (the marketplace charged `paid`, VTEX wants `desired`)."""
    return FaultRule(
        method="POST",
        path_contains="/api/fulfillment/pvt/orders",
        status=400,
        code="FMT007",
        message=f"Payment total ({paid}) differs from store desired value ({desired})",
    )


# Where each flow places and approves an order (README, "Two ways into VTEX").
PLACE = "/api/fulfillment/pvt/orders"
ENQUEUE = "/api/order-integration/orders"
CHANNEL_STATUS = "/api/order-integration/orders/status"
PLACE_PATH = {VtexFlow.FULFILLMENT: PLACE, VtexFlow.ORDER_INTEGRATION: ENQUEUE}


def placements(box: Sandboxes, order_id: str, flow: VtexFlow) -> list[RecordedRequest]:
    """The requests that placed (fulfillment) or enqueued (order-integration) this marketplace order."""
    return [
        r
        for r in box.vtex.requests
        if r.method == "POST"
        and r.path == PLACE_PATH[flow]
        and isinstance(r.body, dict)
        and r.body.get("marketplaceOrderId") == order_id
    ]


def approvals(box: Sandboxes, order_id: str, flow: VtexFlow) -> list[RecordedRequest]:
    """The connector's requests to release the order for handling: authorize dispatch (fulfillment) or
    the approval (order-integration; a paid order is sent approved and VTEX approves it itself)."""
    if flow is VtexFlow.FULFILLMENT:
        return [r for r in box.vtex.requests if r.method == "POST" and r.path.endswith(f"-{order_id}/fulfill")]
    return [
        r
        for r in box.vtex.requests
        if r.method == "PUT"
        and r.path == CHANNEL_STATUS
        and isinstance(r.body, dict)
        and r.body.get("marketplaceOrderId") == order_id
    ]


def vtex_order_ids(box: Sandboxes, order_id: str) -> list[str]:
    return [o.order_id for o in box.vtex.orders.values() if o.marketplace_order_id == order_id]


def clear_vtex_faults(box: Sandboxes) -> None:
    """Every fault a test may leave in the VTEX sandbox: request faults and the Channel Order API's
    notification and processing faults, its pinned processing delay and Order Authorization rules."""
    box.vtex.clear_faults()
    integration = box.vtex.order_integration
    integration.faults.clear()
    integration.processing_faults.clear()
    integration.delay_seconds = None
    integration.price_divergence_affiliates.clear()


def charge_freight(box: Sandboxes, order_id: str, cents: int) -> None:
    """The marketplace charged `cents` of freight (and so a total VTEX's SLA prices do not make): a
    divergence the connector's item-price check cannot see, which only VTEX's placement rules find."""
    order = box.marketplace.orders[order_id]
    before = round(float(order["shipping"]["cost"]) * 100)
    total = round(float(order["total_amount"]) * 100) - before + cents
    order["shipping"]["cost"] = f"{cents / 100:.2f}"
    order["total_amount"] = f"{total / 100:.2f}"


async def sell_out_while_vtex_processes(box: Sandboxes, order_id: str, sku: str, *, restock: bool) -> int:
    """The last units of `sku` sell elsewhere after the connector validated the order and sent it to the
    Channel Order API, before VTEX processes it: VTEX's own rules refuse it (ORD028, reported as EOI002).
    Needs the processing delay pinned (order_integration.delay_seconds) so the window is there. With
    `restock` the stock comes back as soon as VTEX processed the order. Returns the stock it had."""
    integration = box.vtex.order_integration
    assert integration.delay_seconds, "pin the processing delay first"
    deadline = asyncio.get_running_loop().time() + 20
    while not [i for i in integration.integrations if i.marketplace_order_id == order_id]:
        assert asyncio.get_running_loop().time() < deadline, f"order {order_id} was never sent to VTEX"
        await asyncio.sleep(0.01)
    assert any(i.state == "enqueued" for i in integration.integrations if i.marketplace_order_id == order_id)
    had, box.vtex.stock[sku] = box.vtex.stock[sku], 0
    while any(i.state == "enqueued" for i in integration.integrations if i.marketplace_order_id == order_id):
        assert asyncio.get_running_loop().time() < deadline, f"VTEX never processed the order {order_id}"
        await asyncio.sleep(0.01)
    if restock:
        box.vtex.stock[sku] = had
    return had
