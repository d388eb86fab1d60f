"""The reference marketplace adapter against the marketplace sandbox: mapping, follow-ups, errors, admin,
signed webhooks, the changed-orders listing, outages, and the sandbox against its OpenAPI document."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT4
from sandboxes.catalog import NORMAL
from sandboxes.marketplace import Conflict, MarketplaceSandbox, UnknownOrder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.http_server import HttpServer
from connector.marketplaces.base import MarketplaceError, NotificationRejected
from connector.marketplaces.listing import walk_changes
from connector.marketplaces.reference import ReferenceMarketplace
from connector.models import (
    DeliveryChannel,
    Invoice,
    InvoiceItem,
    InvoiceType,
    ListingPosition,
    MarketplaceNotification,
    MarketplaceOrderStatus,
    OrderChange,
    Tracking,
)
from sandboxes import marketplace as sandbox_module

BASE_URL = "http://marketplace.sandbox"
SECRET = "reference-webhook-secret"
CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "reference-marketplace.openapi.yaml"
INVOICE = Invoice(
    invoice_number="NF-1001",
    invoice_value=10980,
    issuance_date="2025-03-01T12:00:00Z",
    invoice_url="https://nfe.example.com/NF-1001",
    invoice_key="35250312345678000190550010000010011000010010",
    embedded_invoice="<nfe/>",
    items=[InvoiceItem(sku_id="1", quantity=2, price=4990)],
)
TRACKING = Tracking(
    invoice_number="NF-1001",
    courier="Correios",
    tracking_number="BR123456789",
    tracking_url="https://track.example.com/BR123456789",
)

# parse_notification makes no request: one adapter serves every parsing test.
PARSER = ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET)

Call = Callable[[ReferenceMarketplace], Awaitable[object]]
# Every adapter call that names an order, for the error mapping they share.
CALLS: dict[str, Call] = {
    "fetch_order": lambda adapter: adapter.fetch_order("42"),
    "send_invoice": lambda adapter: adapter.send_invoice("42", INVOICE),
    "send_tracking": lambda adapter: adapter.send_tracking("42", TRACKING),
    "notify_cancellation": lambda adapter: adapter.notify_cancellation("42", "out of stock"),
}


def sign(body: bytes, *, timestamp: str, delivery_id: str, secret: str = SECRET) -> str:
    """Computed here rather than with the sandbox's helper, so a bug in one side cannot hide in both:
    the spec's `{timestamp}\\n{delivery id}\\n{body}`."""
    signed_bytes = f"{timestamp}\n{delivery_id}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed_bytes, hashlib.sha256).hexdigest()


def signed(
    body: bytes, delivery_id: str = "d-1", *, timestamp: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    sent = timestamp if timestamp is not None else str(int(time.time()))
    return {
        "x-reference-signature": sign(body, timestamp=sent, delivery_id=delivery_id.strip(), secret=secret),
        "x-reference-delivery": delivery_id,
        "x-reference-timestamp": sent,
    }


def verifies(delivery: Any) -> bool:
    """The delivery's signature is the spec's over its own timestamp, delivery id and body."""
    headers = delivery.headers
    expected = sign(
        delivery.body, timestamp=headers["x-reference-timestamp"], delivery_id=headers["x-reference-delivery"]
    )
    return bool(headers["x-reference-signature"] == expected)


def notification(order_id: object = "1001", **extra: object) -> bytes:
    return json.dumps({"topic": "orders", "order_id": order_id, **extra}).encode()


@pytest_asyncio.fixture
async def sandbox_and_adapter() -> AsyncIterator[tuple[MarketplaceSandbox, ReferenceMarketplace]]:
    sandbox = MarketplaceSandbox()
    adapter = ReferenceMarketplace(
        base_url=BASE_URL, webhook_secret=SECRET, transport=httpx.ASGITransport(app=sandbox.app)
    )
    yield sandbox, adapter
    await adapter.aclose()


@pytest_asyncio.fixture
async def sandbox_http() -> AsyncIterator[tuple[MarketplaceSandbox, httpx.AsyncClient]]:
    sandbox = MarketplaceSandbox()
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.ASGITransport(app=sandbox.app)) as http:
        yield sandbox, http


@dataclass
class Delivery:
    headers: dict[str, str]  # lower-case names, as the intake hands them to the adapter
    body: bytes


@dataclass
class Receiver:
    url: str
    deliveries: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    # Answer 500 to this many requests first, to see the sandbox retry.
    failures: int = 0

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.deliveries.get(), timeout=5)


@pytest_asyncio.fixture
async def webhook() -> AsyncIterator[Receiver]:
    """A real HTTP receiver: the sandbox delivers webhooks over the network, as in the running stack."""
    receiver = Receiver(url="")

    async def receive(request: Request) -> Response:
        await receiver.deliveries.put(Delivery(dict(request.headers), await request.body()))
        if receiver.failures:
            receiver.failures -= 1
            return Response(status_code=500)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/webhooks/reference", receive, methods=["POST"])])
    async with HttpServer(app, port=0, name="webhook-receiver") as server:
        receiver.url = f"{server.url}/webhooks/reference"
        yield receiver


async def all_changes(adapter: ReferenceMarketplace, since: datetime | None) -> list[OrderChange]:
    """Every order changed since `since`, each with its latest change, oldest first (a whole walk)."""
    latest: dict[str, OrderChange] = {}
    async for page in walk_changes(adapter, ListingPosition(since=since), page_size=100):
        latest.update((change.marketplace_order_id, change) for change in page.changes)
    return sorted(latest.values(), key=lambda change: (change.updated_at, change.marketplace_order_id))


def adapter_answering(handler: Callable[[httpx.Request], httpx.Response]) -> ReferenceMarketplace:
    return ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET, transport=httpx.MockTransport(handler))


# --- fetch_order -----------------------------------------------------------------------------------


async def test_fetch_order_maps_money_to_cents(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    created = sandbox.new_order(items=[("1", 2), ("2", 1)], unit_prices={"2": 29990})
    order = await adapter.fetch_order(created["id"])
    assert order.marketplace_order_id == created["id"]
    assert order.group_id == created["pack_id"]
    assert [(i.sku_id, i.quantity, i.unit_price) for i in order.items] == [("1", 2, 4990), ("2", 1, 29990)]
    assert order.shipping.price == 2 * NORMAL.price
    assert order.shipping.delivery_channel is DeliveryChannel.DELIVERY
    assert order.shipping.address.postal_code == "01310-100"
    assert order.payment_value == 2 * 4990 + 29990 + 2 * NORMAL.price == order.items_total + 1000
    assert order.customer.document == "12345678909"
    assert order.created_at is not None


@pytest.mark.parametrize(
    ("last_updated", "version"),
    [
        ("2026-12-02T12:00:00.000001+00:00", datetime(2026, 12, 2, 12, 0, 0, 1, tzinfo=UTC)),
        ("2026-12-02T09:00:00-03:00", datetime(2026, 12, 2, 12, tzinfo=UTC)),
        # Unusable versions: the order is still read, only the poller's shortcut is lost.
        ("2026-12-02T12:00:00", None),
        ("yesterday", None),
        (None, None),
        (17, None),
    ],
)
async def test_fetch_order_reads_its_version_when_it_can(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace], last_updated: object, version: object
) -> None:
    sandbox, adapter = sandbox_and_adapter
    created = sandbox.new_order(items=[("1", 1)])
    created["last_updated"] = last_updated
    order = await adapter.fetch_order(created["id"])
    assert order.updated_at == version


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("paid", MarketplaceOrderStatus.PAID),
        ("payment_pending", MarketplaceOrderStatus.TO_BE_PAID),
        ("cancelled", MarketplaceOrderStatus.CANCELED),
    ],
)
async def test_fetch_order_maps_statuses(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
    status: str,
    expected: MarketplaceOrderStatus,
) -> None:
    sandbox, adapter = sandbox_and_adapter
    created = sandbox.new_order(items=[("1", 1)], status=status)
    assert (await adapter.fetch_order(created["id"])).status is expected


async def test_fetch_order_maps_pickup(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    created = sandbox.new_order(items=[("1", 1)], pickup=True)
    order = await adapter.fetch_order(created["id"])
    assert order.shipping.delivery_channel is DeliveryChannel.PICKUP_IN_POINT
    assert order.shipping.pickup_point_id == "1_centro"
    assert order.shipping.price == 0
    assert order.payment_value == 4990


async def test_fetch_order_of_unreadable_json_is_not_transient() -> None:
    adapter = adapter_answering(lambda _: httpx.Response(200, json={"id": "42"}))
    with pytest.raises(MarketplaceError) as caught:
        await adapter.fetch_order("42")
    assert not caught.value.transient
    assert "cannot be read" in str(caught.value)
    await adapter.aclose()


# --- invoices, tracking, cancellation -----------------------------------------------------------------


async def test_send_invoice_stores_it_in_marketplace_terms(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 2)])["id"]
    await adapter.send_invoice(order_id, INVOICE)
    (stored,) = sandbox.orders[order_id]["invoices"]
    assert {k: v for k, v in stored.items() if k != "received_at"} == {
        "number": "NF-1001",
        "type": "sale",
        "value": "109.80",
        "issued_at": "2025-03-01T12:00:00Z",
        "url": "https://nfe.example.com/NF-1001",
        "key": "35250312345678000190550010000010011000010010",
        "xml": "<nfe/>",
        "items": [{"sku": "1", "quantity": 2, "unit_price": "49.90"}],
    }


async def test_send_invoice_twice_keeps_one(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 2)])["id"]
    await adapter.send_invoice(order_id, INVOICE)
    await adapter.send_invoice(order_id, INVOICE)
    assert len(sandbox.orders[order_id]["invoices"]) == 1


async def test_partial_invoices_and_a_return_are_all_kept(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 1), ("2", 1)])["id"]
    first = Invoice(invoice_number="NF-1", invoice_value=5490, items=[InvoiceItem(sku_id="1", quantity=1, price=4990)])
    second = Invoice(
        invoice_number="NF-2", invoice_value=30490, items=[InvoiceItem(sku_id="2", quantity=1, price=29990)]
    )
    refund = Invoice(type=InvoiceType.INPUT, invoice_number="NF-3", invoice_value=5)
    for invoice in (first, second, refund):
        await adapter.send_invoice(order_id, invoice)
    stored = sandbox.orders[order_id]["invoices"]
    assert [(i["number"], i["type"], i["value"]) for i in stored] == [
        ("NF-1", "sale", "54.90"),
        ("NF-2", "sale", "304.90"),
        ("NF-3", "return", "0.05"),
    ]
    assert stored[2]["issued_at"] is None and stored[2]["items"] == []


async def test_send_tracking_once_per_invoice_and_tracking_number(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 2)])["id"]
    await adapter.send_invoice(order_id, INVOICE)
    await adapter.send_tracking(order_id, TRACKING)
    await adapter.send_tracking(order_id, TRACKING)
    (stored,) = sandbox.orders[order_id]["shipments"]
    assert {k: v for k, v in stored.items() if k != "received_at"} == {
        "invoice_number": "NF-1001",
        "carrier": "Correios",
        "tracking_number": "BR123456789",
        "tracking_url": "https://track.example.com/BR123456789",
    }


async def test_send_tracking_of_unknown_invoice_is_rejected(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 2)])["id"]
    with pytest.raises(MarketplaceError) as caught:
        await adapter.send_tracking(order_id, TRACKING)
    assert caught.value.status == 409
    assert not caught.value.transient
    assert f"invoice NF-1001 is unknown for order {order_id}" in str(caught.value)
    assert sandbox.orders[order_id]["shipments"] == []


async def test_notify_cancellation_cancels_as_seller(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    await adapter.notify_cancellation(order_id, "out of stock")
    await adapter.notify_cancellation(order_id, "said again")
    stored = sandbox.orders[order_id]
    assert (stored["status"], stored["cancelled_by"]) == ("cancelled", "seller")
    assert stored["cancellation"]["reason"] == "out of stock"
    assert (await adapter.fetch_order(order_id)).status is MarketplaceOrderStatus.CANCELED


async def test_notify_cancellation_of_a_buyer_cancelled_order_is_accepted(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    sandbox.cancel(order_id)
    await adapter.notify_cancellation(order_id, "canceled in VTEX")
    stored = sandbox.orders[order_id]
    assert stored["cancelled_by"] == "buyer"
    assert stored["cancellation"]["reason"] == "canceled in VTEX"


# --- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_unknown_order_is_not_transient(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace], call: Call
) -> None:
    _, adapter = sandbox_and_adapter
    with pytest.raises(MarketplaceError) as caught:
        await call(adapter)
    assert (caught.value.status, caught.value.transient) == (404, False)
    assert str(caught.value) == "order 42 not found in the marketplace"


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("status", [503, 500, 429])
async def test_server_errors_and_throttling_are_transient(call: Call, status: int) -> None:
    adapter = adapter_answering(lambda _: httpx.Response(status, json={"message": "try later"}))
    with pytest.raises(MarketplaceError) as caught:
        await call(adapter)
    assert (caught.value.status, caught.value.transient) == (status, True)
    await adapter.aclose()


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_transport_errors_are_transient(call: Call) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = adapter_answering(refuse)
    with pytest.raises(MarketplaceError) as caught:
        await call(adapter)
    assert (caught.value.status, caught.value.transient) == (None, True)
    assert str(caught.value) == "marketplace unreachable: ConnectError"
    await adapter.aclose()


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx.Response(400, json={"error": "bad_request", "message": "invoice value too high"}),
            "invoice value too high",
        ),
        (httpx.Response(422, json={"error": "invoice_rejected"}), "invoice_rejected"),
        (httpx.Response(403, text="forbidden for this seller"), "forbidden for this seller"),
        (httpx.Response(400), "Bad Request"),
    ],
)
async def test_other_client_errors_carry_the_marketplace_reason(response: httpx.Response, reason: str) -> None:
    adapter = adapter_answering(lambda _: response)
    with pytest.raises(MarketplaceError) as caught:
        await adapter.send_invoice("42", INVOICE)
    assert (caught.value.status, caught.value.transient) == (response.status_code, False)
    assert str(caught.value) == (
        f"marketplace answered HTTP {response.status_code} to invoice NF-1001 of order 42: {reason}"
    )
    await adapter.aclose()


async def test_the_adapter_sends_the_documented_paths_and_bodies() -> None:
    seen: list[tuple[str, str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.method,
                request.url.raw_path.decode(),
                json.loads(request.content) if request.content else None,
            )
        )
        return httpx.Response(201)

    adapter = adapter_answering(record)
    await adapter.send_tracking("A/1", TRACKING.model_copy(update={"courier": None, "tracking_url": None}))
    await adapter.notify_cancellation("A/1", "customer asked")
    await adapter.aclose()
    assert seen == [
        (
            "POST",
            "/orders/A%2F1/shipments",
            {
                "invoice_number": "NF-1001",
                "carrier": None,
                "tracking_number": "BR123456789",
                "tracking_url": None,
            },
        ),
        ("POST", "/orders/A%2F1/cancellation", {"reason": "customer asked"}),
    ]


# --- the sandbox's HTTP contract --------------------------------------------------------------------


def invoice_body(**overrides: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": "NF-9",
        "type": "sale",
        "value": "49.90",
        "issued_at": None,
        "url": None,
        "key": None,
        "xml": None,
        "items": [{"sku": "1", "quantity": 1, "unit_price": "49.90"}],
    }
    body.update(overrides)
    return body


async def test_sandbox_answers_follow_ups_with_the_documented_statuses(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    created = sandbox.orders[order_id]["last_updated"]
    shipment = {"invoice_number": "NF-9", "carrier": None, "tracking_number": "T1", "tracking_url": None}

    assert (await http.post(f"/orders/{order_id}/shipments", json=shipment)).status_code == 409
    assert (await http.post(f"/orders/{order_id}/invoices", json=invoice_body())).status_code == 201
    assert (await http.post(f"/orders/{order_id}/invoices", json=invoice_body())).status_code == 200
    assert (await http.post(f"/orders/{order_id}/shipments", json=shipment)).status_code == 201
    assert (await http.post(f"/orders/{order_id}/shipments", json=shipment)).status_code == 200
    # Another tracking number for the same invoice is another package.
    second = {**shipment, "tracking_number": "T2"}
    assert (await http.post(f"/orders/{order_id}/shipments", json=second)).status_code == 201
    assert (await http.post(f"/orders/{order_id}/cancellation", json={"reason": "x"})).status_code == 200
    assert (await http.post(f"/orders/{order_id}/cancellation", json={"reason": "y"})).status_code == 200

    order = (await http.get(f"/orders/{order_id}")).json()
    assert [i["number"] for i in order["invoices"]] == ["NF-9"]
    assert [s["tracking_number"] for s in order["shipments"]] == ["T1", "T2"]
    assert order["cancellation"]["reason"] == "x"
    assert (order["status"], order["cancelled_by"]) == ("cancelled", "seller")
    assert order["last_updated"] > created
    listed = (await http.get("/admin/orders")).json()["results"]
    assert listed == [order]


@pytest.mark.parametrize("path", ["invoices", "shipments", "cancellation"])
async def test_sandbox_follow_ups_of_unknown_order_are_404(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient], path: str
) -> None:
    _, http = sandbox_http
    response = await http.post(f"/orders/404/{path}", content=b"not json")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "order not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (invoice_body(value=4990), "field 'value' must be a decimal string like \"49.90\", got 4990"),
        (invoice_body(value="4990"), "field 'value' must be a decimal string like \"49.90\", got '4990'"),
        (invoice_body(value="49.901"), "field 'value' must be a decimal string like \"49.90\", got '49.901'"),
        (invoice_body(type="Output"), "field 'type' must be one of sale, return"),
        (invoice_body(number=""), "field 'number' must be a non-empty string"),
        (invoice_body(url=1), "field 'url' must be a string or null"),
        (invoice_body(items={}), "field 'items' must be a list"),
        (
            invoice_body(items=[{"sku": "1", "quantity": 0, "unit_price": "1.00"}]),
            "field 'quantity' must be a positive integer",
        ),
        ([], "body must be a JSON object"),
    ],
)
async def test_sandbox_refuses_malformed_invoices(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient], body: object, message: str
) -> None:
    sandbox, http = sandbox_http
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    response = await http.post(f"/orders/{order_id}/invoices", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "bad_request", "message": message}
    assert sandbox.orders[order_id]["invoices"] == []


async def test_sandbox_refuses_invalid_json_and_a_missing_reason(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    response = await http.post(f"/orders/{order_id}/shipments", content=b"{")
    assert (response.status_code, response.json()["message"]) == (400, "body is not valid JSON")
    response = await http.post(f"/orders/{order_id}/cancellation", json={})
    assert (response.status_code, response.json()["message"]) == (400, "field 'reason' must be a string")
    assert sandbox.orders[order_id]["status"] == "paid"


# --- admin: pay and cancel --------------------------------------------------------------------------


async def test_admin_pay_and_cancel_change_the_order_and_notify(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient], webhook: Receiver
) -> None:
    sandbox, http = sandbox_http
    sandbox.webhook_url, sandbox.webhook_secret = webhook.url, SECRET
    order_id = sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"]
    created = sandbox.orders[order_id]["last_updated"]

    response = await http.post(f"/admin/orders/{order_id}/pay")
    assert response.status_code == 200
    assert response.json()["status"] == "paid"
    assert response.json()["last_updated"] > created
    paid = await webhook.next()
    body = json.loads(paid.body)
    assert body == {
        "topic": "orders",
        "resource": f"/orders/{order_id}",
        "order_id": order_id,
        "sent_at": body["sent_at"],
    }
    assert abs(datetime.fromisoformat(body["sent_at"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert verifies(paid)
    assert abs(int(paid.headers["x-reference-timestamp"]) - time.time()) < 5
    assert uuid.UUID(paid.headers["x-reference-delivery"])
    parsed = PARSER.parse_notification(paid.headers, paid.body)
    assert (parsed.marketplace_order_id, parsed.delivery_id) == (order_id, paid.headers["x-reference-delivery"])

    response = await http.post(f"/admin/orders/{order_id}/cancel")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancelled_by"]) == ("cancelled", "buyer")
    cancelled = await webhook.next()
    assert json.loads(cancelled.body)["order_id"] == order_id
    # Another change is another delivery.
    assert cancelled.headers["x-reference-delivery"] != paid.headers["x-reference-delivery"]


async def test_admin_refuses_impossible_transitions(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    paid = sandbox.new_order(items=[("1", 1)])["id"]
    cancelled = sandbox.new_order(items=[("1", 1)], status="cancelled")["id"]
    assert sandbox.orders[cancelled]["cancelled_by"] == "buyer"

    for path, status in [
        (f"/admin/orders/{paid}/pay", 409),
        (f"/admin/orders/{cancelled}/pay", 409),
        (f"/admin/orders/{cancelled}/cancel", 409),
        ("/admin/orders/404/pay", 404),
        ("/admin/orders/404/cancel", 404),
    ]:
        response = await http.post(path)
        assert response.status_code == status, path
    response = await http.post(f"/admin/orders/{cancelled}/pay")
    assert response.json() == {
        "error": "conflict",
        "message": f"order {cancelled} is cancelled; only a payment_pending order can be paid",
    }
    assert sandbox.notifications_sent == 0


def test_sandbox_python_api_raises_for_unknown_orders_and_conflicts() -> None:
    sandbox = MarketplaceSandbox()
    order_id = sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"]
    assert sandbox.pay(order_id)["status"] == "paid"
    with pytest.raises(Conflict):
        sandbox.pay(order_id)
    assert sandbox.cancel(order_id)["cancelled_by"] == "buyer"
    with pytest.raises(Conflict):
        sandbox.cancel(order_id)
    with pytest.raises(UnknownOrder):
        sandbox.pay("404")
    with pytest.raises(UnknownOrder):
        sandbox.order("404")


# --- webhook deliveries -------------------------------------------------------------------------------


async def test_a_retried_delivery_repeats_its_id_and_body_signed_afresh(webhook: Receiver) -> None:
    sandbox = MarketplaceSandbox(webhook_url=webhook.url, webhook_secret=SECRET)
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    webhook.failures = 1
    delivery_id = sandbox.notify(order_id)
    first, retry = await webhook.next(), await webhook.next()
    assert first.headers["x-reference-delivery"] == retry.headers["x-reference-delivery"] == delivery_id
    assert first.body == retry.body
    assert verifies(first) and verifies(retry)  # each attempt signed over its own timestamp
    await asyncio.sleep(0.05)  # let the sandbox count the answered retry
    assert sandbox.notifications_sent == 1


async def test_a_duplicated_delivery_carries_the_same_delivery_id(webhook: Receiver) -> None:
    sandbox = MarketplaceSandbox(webhook_url=webhook.url, webhook_secret=SECRET)
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    delivery_id = sandbox.notify(order_id, times=3)
    copies = [await webhook.next() for _ in range(3)]
    parsed = [PARSER.parse_notification(copy.headers, copy.body) for copy in copies]
    assert {(n.marketplace_order_id, n.delivery_id) for n in parsed} == {(order_id, delivery_id)}
    assert len({copy.body for copy in copies}) == 1


async def test_admin_notify_redelivers(webhook: Receiver) -> None:
    sandbox = MarketplaceSandbox(webhook_url=webhook.url, webhook_secret=SECRET)
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.ASGITransport(app=sandbox.app)) as http:
        response = await http.post(f"/admin/orders/{order_id}/notify", json={"times": 2})
        assert response.status_code == 202
        delivery_id = response.json()["delivery_id"]
        for body in ({"times": 0}, {"times": 11}, {"times": "2"}, {"times": True}):
            refused = await http.post(f"/admin/orders/{order_id}/notify", json=body)
            assert (refused.status_code, refused.json()["message"]) == (
                400,
                "field 'times' must be an integer from 1 to 10",
            )
        assert (await http.post("/admin/orders/404/notify")).status_code == 404
        once = await http.post(f"/admin/orders/{order_id}/notify")
    copies = [await webhook.next() for _ in range(3)]
    ids = sorted(copy.headers["x-reference-delivery"] for copy in copies)
    assert ids == sorted([delivery_id, delivery_id, once.json()["delivery_id"]])


async def test_an_unsigned_sandbox_sends_no_signature(webhook: Receiver) -> None:
    sandbox = MarketplaceSandbox(webhook_url=webhook.url)
    sandbox.notify(sandbox.new_order(items=[("1", 1)])["id"])
    delivery = await webhook.next()
    assert "x-reference-signature" not in delivery.headers
    with pytest.raises(NotificationRejected) as caught:
        PARSER.parse_notification(delivery.headers, delivery.body)
    assert caught.value.status == 401


async def test_notify_without_webhook_url_sends_nothing() -> None:
    sandbox = MarketplaceSandbox()
    assert sandbox.notify("1") is None
    with pytest.raises(ValueError, match="times must be at least 1"):
        sandbox.notify("1", times=0)


# --- parse_notification: signature --------------------------------------------------------------------


def test_parse_notification_accepts_a_signed_body_and_passes_the_delivery_id_on() -> None:
    body = notification()
    parsed = PARSER.parse_notification(signed(body, delivery_id=" d-42 "), body)
    assert parsed == MarketplaceNotification(marketplace_order_id="1001", delivery_id="d-42")
    # Hex digits in either case are the same digest.
    headers = signed(body)
    upper = {**headers, "x-reference-signature": "sha256=" + headers["x-reference-signature"][7:].upper()}
    assert PARSER.parse_notification(upper, body).marketplace_order_id == "1001"


def _with(body: bytes = b"", **changes: str | None) -> dict[str, str]:
    """Headers signed for `notification()` (or `body`), then changed: None drops a header."""
    headers = signed(body or notification())
    for name, value in changes.items():
        header = "x-reference-" + name.replace("_", "-")
        if value is None:
            headers.pop(header)
        else:
            headers[header] = value
    return headers


NOW = str(int(time.time()))


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({}, notification(), "header X-Reference-Signature is missing"),
        (
            {k.title(): v for k, v in signed(notification()).items()},
            notification(),
            "header X-Reference-Signature is missing",
        ),
        (_with(signature="sha256="), notification(), "must be 'sha256=' and 64 hexadecimal digits"),
        (_with(signature="0" * 64), notification(), "must be 'sha256=' and 64 hexadecimal digits"),
        (
            _with(signature="sha1=" + hashlib.sha1(notification()).hexdigest()),
            notification(),
            "must be 'sha256=' and 64 hexadecimal digits",
        ),
        (_with(signature="sha256=" + "g" * 64), notification(), "must be 'sha256=' and 64 hexadecimal"),
        (_with(signature="sha256=" + "é" * 64), notification(), "must be 'sha256=' and 64 hexadecimal"),
        (_with(signature="sha256=" + "\u0663" * 64), notification(), "must be 'sha256=' and 64 hexadecimal"),
        (_with(signature=signed(notification())["x-reference-signature"] + "00"), notification(), "must be"),
        (signed(notification(), secret="another-secret-value"), notification(), "does not match"),
        (signed(notification("1001")), notification("1002"), "does not match"),
        # Signed, then re-serialized on the way: the same JSON, other bytes.
        (
            signed(notification()),
            json.dumps(json.loads(notification()), separators=(",", ":")).encode(),
            "does not match",
        ),
        # The signature is checked before the body is read.
        (signed(b"{"), b"{}", "does not match"),
        # The delivery id and the timestamp are signed: a captured body replayed under a fresh delivery
        # id, or re-stamped to pass the window, does not verify.
        (_with(delivery="d-2"), notification(), "does not match"),
        (_with(timestamp=str(int(NOW) + 1)), notification(), "does not match"),
        (_with(delivery=None), notification(), "header X-Reference-Delivery (signed) must be 1 to 200"),
        (_with(timestamp=None), notification(), "header X-Reference-Timestamp (signed) must be Unix seconds"),
        (_with(timestamp="+" + NOW), notification(), "header X-Reference-Timestamp (signed) must be Unix seconds"),
        (_with(timestamp="1e9"), notification(), "header X-Reference-Timestamp (signed) must be Unix seconds"),
    ],
    ids=[
        "missing",
        "not-lower-case",
        "empty-digest",
        "no-prefix",
        "sha1",
        "not-hex",
        "non-ascii",
        "non-ascii-digits",
        "too-long",
        "wrong-secret",
        "tampered-body",
        "re-serialized-body",
        "before-the-body",
        "replayed-with-another-delivery-id",
        "re-stamped",
        "no-delivery-id",
        "no-timestamp",
        "signed-timestamp",
        "float-timestamp",
    ],
)
def test_parse_notification_rejects_bad_signatures_with_401(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(NotificationRejected) as caught:
        PARSER.parse_notification(headers, body)
    assert caught.value.status == 401
    assert message in str(caught.value)


@pytest.mark.parametrize(("offset", "message"), [(-301, "s old; deliveries more than 300 s"), (400, "s ahead")])
def test_a_correct_signature_outside_the_window_is_refused(offset: int, message: str) -> None:
    """A replay (or a marketplace clock far off): the timestamp is taken at run time, not at import."""
    body = notification()
    with pytest.raises(NotificationRejected, match=message) as caught:
        PARSER.parse_notification(signed(body, timestamp=str(int(time.time()) + offset)), body)
    assert caught.value.status == 401


def test_the_replay_window_is_the_adapters_setting() -> None:
    body = notification()
    an_hour_ago = str(int(time.time()) - 3600)
    lenient = ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET, replay_window_seconds=7200)
    assert lenient.parse_notification(signed(body, timestamp=an_hour_ago), body).marketplace_order_id == "1001"
    later = ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET, clock=lambda: time.time() + 301)
    with pytest.raises(NotificationRejected, match="s old"):
        later.parse_notification(signed(body), body)


def test_the_adapter_needs_a_webhook_secret() -> None:
    with pytest.raises(ValueError, match="webhook_secret must not be empty"):
        ReferenceMarketplace(base_url=BASE_URL, webhook_secret="")


# --- parse_notification: body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "order_id"),
    [
        (b'{"topic": "orders", "order_id": "1001"}', "1001"),
        (b'{"topic": "orders", "resource": "/orders/7", "order_id": 7}', "7"),
        (b'{"topic": "orders", "order_id": "  1001 "}', "1001"),
        (b'{"topic": "orders", "order_id": "A-1.b:2_c", "sent_at": "2025-03-01T12:00:00+00:00"}', "A-1.b:2_c"),
        (notification("9" * 100), "9" * 100),
    ],
)
def test_parse_notification_accepts(body: bytes, order_id: str) -> None:
    parsed = PARSER.parse_notification(signed(body), body)
    assert (parsed.marketplace_order_id, parsed.topic) == (order_id, "orders")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body is not valid JSON"),
        (b"\xff", "body is not valid JSON"),
        (b'{"topic": "orders", "order_id": "caf\xe9"}', "body is not valid JSON"),
        (b'{"topic": "orders", "order_id": NaN}', "body is not valid JSON"),
        (b'{"topic": "orders", "order_id": -Infinity}', "body is not valid JSON"),
        (b'{"topic": "orders", "order_id": ' + b"9" * 5000 + b"}", "body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"[]", "body must be a JSON object"),
        (b'"orders"', "body must be a JSON object"),
        (b'{"topic": "payments", "order_id": "1"}', "field 'topic' must be 'orders'"),
        (b'{"order_id": "1"}', "field 'topic' must be 'orders'"),
        (b'{"topic": ["orders"], "order_id": "1"}', "field 'topic' must be 'orders'"),
        (b'{"topic": "orders"}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": "  "}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": true}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": 1.5}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": {"id": 1}}', "field 'order_id' must be a non-empty string"),
        (notification("9" * 101), "field 'order_id' is invalid"),
        (notification("A/1"), "field 'order_id' is invalid"),
        (notification("1001\n2"), "field 'order_id' is invalid"),
        (b'{"topic": "orders", "order_id": "\\ud800"}', "field 'order_id' is invalid"),
        (notification(10**200), "field 'order_id' is invalid"),
    ],
)
def test_parse_notification_rejects_bodies_with_400(body: bytes, message: str) -> None:
    with pytest.raises(NotificationRejected, match=f"^{message}") as caught:
        PARSER.parse_notification(signed(body), body)
    assert caught.value.status == 400


@pytest.mark.parametrize("delivery_id", ["", "   ", "d" * 201])
def test_parse_notification_rejects_unusable_delivery_ids(delivery_id: str) -> None:
    body = notification()
    with pytest.raises(NotificationRejected, match=r"^header X-Reference-Delivery \(signed\) must be 1 to 200"):
        PARSER.parse_notification(signed(body, delivery_id=delivery_id), body)
    assert PARSER.parse_notification(signed(body, delivery_id="d" * 200), body).delivery_id == "d" * 200


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NOTIFICATION_LIKE = st.fixed_dictionaries(
    {"topic": st.just("orders") | JSON_VALUES, "order_id": st.text(max_size=120) | st.integers() | JSON_VALUES},
    optional={"resource": JSON_VALUES, "sent_at": JSON_VALUES},
)
BODIES = (
    st.binary(max_size=200)
    # json.dumps writes NaN and Infinity for such floats: the parser must refuse them, not crash.
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | NOTIFICATION_LIKE.map(lambda value: json.dumps(value).encode())
)
HEADERS = st.dictionaries(
    st.sampled_from(["x-reference-signature", "x-reference-delivery", "x-reference-timestamp"]) | st.text(max_size=20),
    st.text(max_size=260),
    max_size=4,
)


@settings(max_examples=400)
@given(headers=HEADERS, body=BODIES, sign_body=st.booleans())
def test_parse_notification_raises_nothing_but_notification_rejected(
    headers: dict[str, str], body: bytes, sign_body: bool
) -> None:
    if sign_body:
        # Signed, the body reaches the parser proper.
        headers = {**headers, **signed(body)}
    try:
        parsed = PARSER.parse_notification(headers, body)
    except NotificationRejected as exc:
        assert exc.status in (400, 401) and str(exc)
    else:
        assert sign_body
        assert isinstance(parsed, MarketplaceNotification)


# --- the changed-orders listing -----------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox, keeps their query parameters, and runs `after` once, after the first
    answer (a change in the marketplace while the connector walks the listing)."""

    def __init__(self, sandbox: MarketplaceSandbox, after: Callable[[], object] | None = None) -> None:
        self._inner = httpx.ASGITransport(app=sandbox.app)
        self._after = after
        self.queries: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(dict(request.url.params))
        response = await self._inner.handle_async_request(request)
        if self._after is not None:
            self._after()
            self._after = None
        return response


def listed(sandbox: MarketplaceSandbox, order_id: str) -> OrderChange:
    return OrderChange(
        marketplace_order_id=order_id, updated_at=datetime.fromisoformat(sandbox.orders[order_id]["last_updated"])
    )


async def test_every_change_moves_last_updated_forward(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    first = sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"]
    second = sandbox.new_order(items=[("1", 1)])["id"]
    stamps = [sandbox.orders[first]["last_updated"]]
    for change in (
        lambda: sandbox.pay(first),
        lambda: sandbox.receive_invoice(first, invoice_body()),
        lambda: sandbox.receive_shipment(first, {"invoice_number": "NF-9", "tracking_number": "T1"}),
        lambda: sandbox.receive_cancellation(first, {"reason": "x"}),
    ):
        change()
        stamps.append(sandbox.orders[first]["last_updated"])
    assert stamps == sorted(set(stamps))
    # Repeats change nothing, so they move nothing.
    sandbox.receive_invoice(first, invoice_body())
    sandbox.receive_cancellation(first, {"reason": "y"})
    assert sandbox.orders[first]["last_updated"] == stamps[-1]
    assert await all_changes(adapter, None) == [listed(sandbox, second), listed(sandbox, first)]


async def test_changes_within_one_clock_tick_still_order(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls(2025, 3, 1, 12, tzinfo=tz)

    monkeypatch.setattr(sandbox_module, "datetime", Frozen)
    sandbox, adapter = sandbox_and_adapter
    a = sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"]
    b = sandbox.new_order(items=[("1", 1)])["id"]
    sandbox.pay(a)
    assert [sandbox.orders[i]["last_updated"] for i in (b, a)] == [
        "2025-03-01T12:00:00.000001+00:00",
        "2025-03-01T12:00:00.000002+00:00",
    ]
    changes = await all_changes(adapter, datetime(2025, 3, 1, 12, 0, 0, 2, tzinfo=UTC))
    assert [change.marketplace_order_id for change in changes] == [a]


async def test_listing_since_is_inclusive_and_sorted(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    ids = [sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"] for _ in range(4)]
    sandbox.pay(ids[0])
    since = sandbox.orders[ids[2]]["last_updated"]
    response = await http.get("/orders", params={"updated_since": since})
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"id": i, "status": sandbox.orders[i]["status"], "last_updated": sandbox.orders[i]["last_updated"]}
            for i in (ids[2], ids[3], ids[0])
        ],
        "paging": {"total": 3, "offset": 0, "limit": 50},
    }
    # The same instant in another offset is the same filter.
    local = datetime.fromisoformat(since).astimezone(datetime.now().astimezone().tzinfo).isoformat()
    assert (await http.get("/orders", params={"updated_since": local})).json()["paging"]["total"] == 3
    zulu = since.replace("+00:00", "Z")
    assert (await http.get("/orders", params={"updated_since": zulu})).json()["paging"]["total"] == 3


async def test_listing_pages_over_more_than_a_hundred_orders(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    ids = [sandbox.new_order(items=[("1", 1)])["id"] for _ in range(250)]
    pages = [(await http.get("/orders", params={"limit": 100, "offset": offset})).json() for offset in (0, 100, 200)]
    assert [page["paging"] for page in pages] == [
        {"total": 250, "offset": offset, "limit": 100} for offset in (0, 100, 200)
    ]
    assert [entry["id"] for page in pages for entry in page["results"]] == ids
    beyond = (await http.get("/orders", params={"offset": 900})).json()
    assert beyond == {"results": [], "paging": {"total": 250, "offset": 900, "limit": 50}}

    transport = RecordingTransport(sandbox)
    adapter = ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET, transport=transport)
    changes = await all_changes(adapter, None)
    await adapter.aclose()
    assert changes == [listed(sandbox, order_id) for order_id in ids]
    # Keyset paging: each page starts at the last instant read, skipping the one entry read there.
    assert transport.queries == [
        {"limit": "100", "offset": "0"},
        {"limit": "100", "offset": "1", "updated_since": sandbox.orders[ids[99]]["last_updated"]},
        {"limit": "100", "offset": "1", "updated_since": sandbox.orders[ids[199]]["last_updated"]},
    ]


async def test_an_order_changed_during_the_walk_hides_no_other_order() -> None:
    sandbox = MarketplaceSandbox()
    ids = [sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"] for _ in range(150)]
    # After the first page, an order on it is paid and moves to the end: with offset paging alone, the
    # order that was 101st would now be 100th, on the page already read, and missed.
    transport = RecordingTransport(sandbox, after=lambda: sandbox.pay(ids[10]))
    adapter = ReferenceMarketplace(base_url=BASE_URL, webhook_secret=SECRET, transport=transport)
    changes = await all_changes(adapter, None)
    await adapter.aclose()
    assert changes == [listed(sandbox, order_id) for order_id in ids[:10] + ids[11:] + [ids[10]]]


async def test_listing_from_a_point_returns_the_later_changes_oldest_first(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    ids = [sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"] for _ in range(5)]
    since = listed(sandbox, ids[3]).updated_at
    sandbox.cancel(ids[1])
    assert await all_changes(adapter, since) == [listed(sandbox, i) for i in (ids[3], ids[4], ids[1])]
    assert await all_changes(adapter, datetime.now(UTC) + timedelta(hours=1)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"updated_since": "yesterday"}, "parameter 'updated_since' must be an ISO 8601 date-time with a UTC offset"),
        ({"updated_since": "2025-03-01T12:00:00"}, "parameter 'updated_since' must be an ISO 8601 date-time"),
        ({"updated_since": "2025-03-01"}, "parameter 'updated_since' must be an ISO 8601 date-time"),
        ({"updated_since": ""}, "parameter 'updated_since' must be an ISO 8601 date-time"),
        ({"limit": "0"}, "parameter 'limit' must be an integer from 1 to 100"),
        ({"limit": "101"}, "parameter 'limit' must be an integer from 1 to 100"),
        ({"limit": "ten"}, "parameter 'limit' must be an integer from 1 to 100"),
        ({"limit": "+5"}, "parameter 'limit' must be an integer from 1 to 100"),
        ({"limit": "\u0665"}, "parameter 'limit' must be an integer from 1 to 100"),
        ({"offset": "-1"}, "parameter 'offset' must be an integer of at least 0"),
        ({"offset": "1e3"}, "parameter 'offset' must be an integer of at least 0"),
        ({"offset": "9" * 5000}, "parameter 'offset' must be an integer of at least 0"),
    ],
)
async def test_listing_refuses_bad_parameters(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient], params: dict[str, str], message: str
) -> None:
    _, http = sandbox_http
    response = await http.get("/orders", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"].startswith(message)


async def test_a_naive_since_is_a_final_error(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    _, adapter = sandbox_and_adapter
    with pytest.raises(MarketplaceError) as caught:
        await all_changes(adapter, datetime(2025, 3, 1, 12))
    assert (caught.value.status, caught.value.transient) == (400, False)
    assert "parameter 'updated_since' must be an ISO 8601 date-time with a UTC offset" in str(caught.value)


@pytest.mark.parametrize(
    ("response", "transient"),
    [
        (httpx.Response(503, json={"message": "try later"}), True),
        (httpx.Response(500), True),
        (httpx.Response(429, json={"message": "slow down"}), True),
        (httpx.Response(400, json={"error": "bad_request", "message": "bad limit"}), False),
        (httpx.Response(404), False),
    ],
)
async def test_listing_errors_are_mapped_like_the_other_calls(response: httpx.Response, transient: bool) -> None:
    adapter = adapter_answering(lambda _: response)
    with pytest.raises(MarketplaceError) as caught:
        await all_changes(adapter, None)
    await adapter.aclose()
    assert (caught.value.status, caught.value.transient) == (response.status_code, transient)
    assert str(caught.value).startswith(f"marketplace answered HTTP {response.status_code} to the changed-orders")


async def test_listing_transport_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    adapter = adapter_answering(refuse)
    with pytest.raises(MarketplaceError) as caught:
        await all_changes(adapter, None)
    await adapter.aclose()
    assert (caught.value.status, caught.value.transient) == (None, True)


def entry(order_id: str, second: int) -> dict[str, str]:
    updated = datetime(2025, 3, 1, 12, tzinfo=UTC) + timedelta(seconds=second)
    return {"id": order_id, "status": "paid", "last_updated": updated.isoformat()}


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"results": []}, "cannot be read: paging: Field required"),
        ({"results": [{"id": "1"}], "paging": {"total": 1}}, "cannot be read: results.0.last_updated: Field required"),
        (
            {"results": [{"id": "1", "last_updated": "2025-03-01T12:00:00"}], "paging": {"total": 1}},
            "cannot be read: results.0.last_updated: Input should have timezone info",
        ),
        ({"results": [entry("1", 5), entry("2", 4)], "paging": {"total": 2}}, "is not sorted by last_updated"),
        # Marketplaces that answer every request with the same page would be walked forever: one that
        # ignores updated_since goes back in time, one that ignores offset (here, with more entries at one
        # instant than a page holds) brings nothing new.
        ({"results": [entry(str(i), i) for i in range(100)], "paging": {"total": 500}}, "is not sorted"),
        ({"results": [entry(str(i), 0) for i in range(100)], "paging": {"total": 500}}, "does not advance"),
    ],
)
async def test_an_unusable_listing_is_a_final_error(page: dict[str, Any], message: str) -> None:
    adapter = adapter_answering(lambda _: httpx.Response(200, json=page))
    with pytest.raises(MarketplaceError) as caught:
        await all_changes(adapter, None)
    await adapter.aclose()
    assert (caught.value.status, caught.value.transient) == (None, False)
    assert message in str(caught.value)


# --- outages ------------------------------------------------------------------------------------------


async def test_an_outage_takes_the_order_api_down_but_not_the_admin_api(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    sandbox.outage()
    for path in (f"/orders/{order_id}", "/orders", "/orders/404"):
        response = await http.get(path)
        assert response.status_code == 503, path
        assert response.json() == {
            "error": "outage",
            "message": "the marketplace is unavailable (injected outage, HTTP 503)",
        }
    response = await http.post(f"/orders/{order_id}/invoices", json=invoice_body())
    assert response.status_code == 503
    assert sandbox.orders[order_id]["invoices"] == []
    assert (await http.get("/admin/orders")).status_code == 200
    sandbox.end_outage()
    assert (await http.get(f"/orders/{order_id}")).status_code == 200


async def test_an_outage_can_last_a_number_of_requests(
    sandbox_and_adapter: tuple[MarketplaceSandbox, ReferenceMarketplace],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    sandbox.outage(429, times=2)
    for call in (adapter.fetch_order(order_id), all_changes(adapter, None)):
        with pytest.raises(MarketplaceError) as caught:
            await call
        assert (caught.value.status, caught.value.transient) == (429, True)
    assert (await adapter.fetch_order(order_id)).marketplace_order_id == order_id


async def test_admin_outage_routes(sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient]) -> None:
    sandbox, http = sandbox_http
    order_id = sandbox.new_order(items=[("1", 1)])["id"]
    response = await http.post("/admin/outage", json={"status": 500, "times": 1})
    assert (response.status_code, response.json()) == (200, {"status": 500, "times": 1})
    assert (await http.get(f"/orders/{order_id}")).status_code == 500
    assert (await http.get(f"/orders/{order_id}")).status_code == 200

    assert (await http.post("/admin/outage")).json() == {"status": 503, "times": None}
    assert (await http.get(f"/orders/{order_id}")).status_code == 503
    assert (await http.delete("/admin/outage")).status_code == 204
    assert (await http.get(f"/orders/{order_id}")).status_code == 200

    for body, message in [
        ({"status": 200}, "status must be an HTTP error status from 400 to 599"),
        ({"status": "503"}, "status must be an HTTP error status from 400 to 599"),
        ({"status": True}, "status must be an HTTP error status from 400 to 599"),
        ({"times": 0}, "times must be a positive integer or null"),
        ({"times": 1.5}, "times must be a positive integer or null"),
        ([], "body must be a JSON object"),
    ]:
        response = await http.post("/admin/outage", json=body)
        assert (response.status_code, response.json()["message"]) == (400, message), body
    assert (await http.get(f"/orders/{order_id}")).status_code == 200


# --- the OpenAPI document -------------------------------------------------------------------------------

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch"})
CONTRACT_URI = "urn:reference-marketplace"


@cache
def contract() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    return document


def closed(node: Any) -> Any:
    """A copy in which every object schema requires all its properties and allows no others: what the
    sandbox sends (it always writes every field, null or not) must be exactly what the document says."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    copied = {key: closed(value) for key, value in node.items()}
    if isinstance(copied.get("properties"), dict):
        copied["required"] = sorted(copied["properties"])
        copied["additionalProperties"] = False
    return copied


@cache
def strict_registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(CONTRACT_URI, DRAFT4.create_resource(closed(contract())))
    return registry


def pointer(*segments: str) -> str:
    """The JSON pointer reached from the document's root through `segments`, following `$ref`s on the
    way (a pointer does not pass through a reference); a missing status falls back to its range (5XX)."""
    node: Any = contract()
    path = ""
    for segment in segments:
        if isinstance(node, list):
            node = node[int(segment)]
        else:
            if segment not in node and segment[:1].isdigit():
                segment = f"{segment[0]}XX"
            assert segment in node, f"{path}/{segment} is not in the document"
            node = node[segment]
        path += "/" + segment.replace("~", "~0").replace("/", "~1")
        while isinstance(node, dict) and "$ref" in node:
            path = node["$ref"].removeprefix("#")
            node = contract()
            for part in path.split("/")[1:]:
                node = node[part.replace("~1", "/").replace("~0", "~")]
    return path


def assert_matches(schema_pointer: str, instance: object) -> None:
    validator = OAS30Validator(
        {"$ref": f"{CONTRACT_URI}#{quote(schema_pointer)}"},
        registry=strict_registry(),
        format_checker=oas30_format_checker,
    )
    problems = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]
    assert not problems, (schema_pointer, problems)


def assert_response_matches(path: str, method: str, response: httpx.Response) -> None:
    status = str(response.status_code)
    assert_matches(
        pointer("paths", path, method, "responses", status, "content", "application/json", "schema"), response.json()
    )


def test_the_document_is_valid_openapi_3_0() -> None:
    document = contract()
    assert document["openapi"].startswith("3.0.")
    assert "plugs into the connector with configuration alone" in " ".join(document["info"]["description"].split())
    validate_openapi(document)
    # x-webhooks is an extension the validator skips: check its path items as if they were paths.
    validate_openapi({**document, "paths": {f"/x-webhooks/{k}": v for k, v in document["x-webhooks"].items()}})


def test_the_document_describes_every_public_route_of_the_sandbox() -> None:
    routes = {
        (route.path, method.lower())
        for route in MarketplaceSandbox().app.routes
        if isinstance(route, Route) and not route.path.startswith("/admin")
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, item in contract()["paths"].items() for method in item if method in HTTP_METHODS
    }
    assert routes == documented


async def test_sandbox_responses_match_the_document(
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = sandbox_http

    async def check(method: str, template: str, status: int, order_id: str = "", **request: Any) -> None:
        """One request; its answer must have `status` and match what the document says of that status."""
        response = await http.request(method, template.replace("{order_id}", order_id), **request)
        assert response.status_code == status, (method, template, response.text)
        assert_response_matches(template, method.lower(), response)

    orders = [
        sandbox.new_order(items=[("1", 2), ("2", 1)])["id"],
        sandbox.new_order(items=[("1", 1)], status="payment_pending", pickup=True)["id"],
        sandbox.new_order(items=[("1", 1)], status="cancelled")["id"],
    ]
    followed = orders[0]
    shipment = {"invoice_number": "NF-9", "carrier": "Correios", "tracking_number": "T1", "tracking_url": None}
    await check("POST", "/orders/{order_id}/shipments", 409, followed, json=shipment)
    await check("POST", "/orders/{order_id}/invoices", 201, followed, json=invoice_body())
    await check("POST", "/orders/{order_id}/invoices", 200, followed, json=invoice_body())
    await check("POST", "/orders/{order_id}/invoices", 400, followed, json={})
    await check("POST", "/orders/{order_id}/shipments", 201, followed, json=shipment)
    await check("POST", "/orders/{order_id}/shipments", 200, followed, json=shipment)
    await check("POST", "/orders/{order_id}/cancellation", 400, followed, json={})
    await check("POST", "/orders/{order_id}/cancellation", 200, followed, json={"reason": "out of stock"})
    await check("POST", "/orders/{order_id}/cancellation", 404, "404", json={"reason": "x"})
    for order_id in orders:
        await check("GET", "/orders/{order_id}", 200, order_id)
    await check("GET", "/orders/{order_id}", 404, "404")
    await check("GET", "/orders", 200)
    await check("GET", "/orders", 200, params={"limit": 1, "offset": 1})
    await check("GET", "/orders", 400, params={"limit": 0})
    sandbox.outage()
    await check("GET", "/orders/{order_id}", 503, followed)
    await check("GET", "/orders", 503)


async def test_adapter_requests_match_the_document() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/orders":
            return httpx.Response(200, json={"results": [], "paging": {"total": 0, "offset": 0, "limit": 100}})
        return httpx.Response(201)

    adapter = adapter_answering(record)
    refund = Invoice(type=InvoiceType.INPUT, invoice_number="NF-2", invoice_value=5)
    await adapter.send_invoice("42", INVOICE)
    await adapter.send_invoice("42", refund)
    await adapter.send_tracking("42", TRACKING)
    await adapter.notify_cancellation("42", "out of stock")
    await all_changes(adapter, datetime(2025, 3, 1, tzinfo=UTC))
    await adapter.aclose()
    *posts, listing = seen
    for request in posts:
        template = request.url.path.replace("/orders/42/", "/orders/{order_id}/")
        assert_matches(
            pointer("paths", template, "post", "requestBody", "content", "application/json", "schema"),
            json.loads(request.content),
        )
    parameters = contract()["paths"]["/orders"]["get"]["parameters"]
    query = dict(listing.url.params)
    assert set(query) == {parameter["name"] for parameter in parameters}
    for index, parameter in enumerate(parameters):
        # Query values are text; the schema says which are integers.
        value = query[parameter["name"]]
        typed = int(value) if parameter["schema"]["type"] == "integer" else value
        assert_matches(pointer("paths", "/orders", "get", "parameters", str(index), "schema"), typed)


async def test_the_webhook_matches_the_document(webhook: Receiver) -> None:
    sandbox = MarketplaceSandbox(webhook_url=webhook.url, webhook_secret=SECRET)
    sandbox.notify(sandbox.new_order(items=[("1", 1)])["id"])
    delivery = await webhook.next()
    post = ("x-webhooks", "orderChanged", "post")
    assert_matches(pointer(*post, "requestBody", "content", "application/json", "schema"), json.loads(delivery.body))
    for index, parameter in enumerate(contract()["x-webhooks"]["orderChanged"]["post"]["parameters"]):
        assert parameter["in"] == "header" and parameter["required"]
        assert_matches(pointer(*post, "parameters", str(index), "schema"), delivery.headers[parameter["name"].lower()])
    assert delivery.headers["content-type"] == "application/json"
