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
from temporalio.client import Client

from connector.embedded import Sandboxes
from connector.models import MarketplaceNotification, OrderState, OrderStatus, order_workflow_id
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
