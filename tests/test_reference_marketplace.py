"""The reference marketplace adapter against the marketplace sandbox: mapping, follow-ups, errors, admin."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.http_server import HttpServer
from connector.marketplaces.base import MarketplaceError, NotificationRejected
from connector.marketplaces.reference import ReferenceMarketplace
from connector.models import (
    DeliveryChannel,
    Invoice,
    InvoiceItem,
    InvoiceType,
    MarketplaceOrderStatus,
    Tracking,
)
from connector.sandbox.catalog import NORMAL
from connector.sandbox.marketplace import Conflict, MarketplaceSandbox, UnknownOrder

BASE_URL = "http://marketplace.sandbox"
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
PARSER = ReferenceMarketplace(base_url=BASE_URL)

Call = Callable[[ReferenceMarketplace], Awaitable[object]]
# Every adapter call that names an order, for the error mapping they share.
CALLS: dict[str, Call] = {
    "fetch_order": lambda adapter: adapter.fetch_order("42"),
    "send_invoice": lambda adapter: adapter.send_invoice("42", INVOICE),
    "send_tracking": lambda adapter: adapter.send_tracking("42", TRACKING),
    "notify_cancellation": lambda adapter: adapter.notify_cancellation("42", "out of stock"),
}


@pytest_asyncio.fixture
async def sandbox_and_adapter() -> AsyncIterator[tuple[MarketplaceSandbox, ReferenceMarketplace]]:
    sandbox = MarketplaceSandbox()
    adapter = ReferenceMarketplace(base_url=BASE_URL, transport=httpx.ASGITransport(app=sandbox.app))
    yield sandbox, adapter
    await adapter.aclose()


@pytest_asyncio.fixture
async def sandbox_http() -> AsyncIterator[tuple[MarketplaceSandbox, httpx.AsyncClient]]:
    sandbox = MarketplaceSandbox()
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.ASGITransport(app=sandbox.app)) as http:
        yield sandbox, http


@pytest_asyncio.fixture
async def webhook() -> AsyncIterator[tuple[str, asyncio.Queue[bytes]]]:
    """A real HTTP receiver: the sandbox delivers webhooks over the network, as in the running stack."""
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive(request: Request) -> Response:
        await received.put(await request.body())
        return Response(status_code=204)

    app = Starlette(routes=[Route("/webhooks/reference", receive, methods=["POST"])])
    async with HttpServer(app, port=0, name="webhook-receiver") as server:
        yield f"{server.url}/webhooks/reference", received


def adapter_answering(handler: Callable[[httpx.Request], httpx.Response]) -> ReferenceMarketplace:
    return ReferenceMarketplace(base_url=BASE_URL, transport=httpx.MockTransport(handler))


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
    sandbox_http: tuple[MarketplaceSandbox, httpx.AsyncClient],
    webhook: tuple[str, asyncio.Queue[bytes]],
) -> None:
    sandbox, http = sandbox_http
    sandbox.webhook_url, received = webhook
    order_id = sandbox.new_order(items=[("1", 1)], status="payment_pending")["id"]
    created = sandbox.orders[order_id]["last_updated"]

    response = await http.post(f"/admin/orders/{order_id}/pay")
    assert response.status_code == 200
    assert response.json()["status"] == "paid"
    assert response.json()["last_updated"] > created
    body = await asyncio.wait_for(received.get(), timeout=5)
    assert json.loads(body) == {"topic": "orders", "resource": f"/orders/{order_id}", "order_id": order_id}
    assert PARSER.parse_notification(body).marketplace_order_id == order_id

    response = await http.post(f"/admin/orders/{order_id}/cancel")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancelled_by"]) == ("cancelled", "buyer")
    body = await asyncio.wait_for(received.get(), timeout=5)
    assert json.loads(body)["order_id"] == order_id


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


# --- parse_notification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "order_id"),
    [
        (b'{"topic": "orders", "order_id": "1001"}', "1001"),
        (b'{"topic": "orders", "resource": "/orders/7", "order_id": 7}', "7"),
        (b'{"topic": "orders", "order_id": "  1001 "}', "1001"),
    ],
)
def test_parse_notification_accepts(body: bytes, order_id: str) -> None:
    notification = PARSER.parse_notification(body)
    assert (notification.marketplace_order_id, notification.topic) == (order_id, "orders")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body is not valid JSON"),
        (b"\xff", "body is not valid JSON"),
        (b"[]", "body must be a JSON object"),
        (b'{"topic": "payments", "order_id": "1"}', "field 'topic' must be 'orders'"),
        (b'{"order_id": "1"}', "field 'topic' must be 'orders'"),
        (b'{"topic": "orders"}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": "  "}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": true}', "field 'order_id' must be a non-empty string"),
        (b'{"topic": "orders", "order_id": {"id": 1}}', "field 'order_id' must be a non-empty string"),
        (json.dumps({"topic": "orders", "order_id": "9" * 101}).encode(), "field 'order_id' is invalid"),
    ],
)
def test_parse_notification_rejects(body: bytes, message: str) -> None:
    with pytest.raises(NotificationRejected, match=f"^{message}"):
        PARSER.parse_notification(body)
