"""OMS cancel, invoice and tracking in the VTEX sandbox, and its callbacks to marketplaceServicesEndpoint."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sandboxes.vtex import VtexSandbox, client_sender
from sandboxes.vtex_callbacks import callback_url
from sandboxes.vtex_models import JSON
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract.openapi import validate_request
from tests.test_vtex_sandbox import (
    HEADERS,
    OMS_ID,
    ORDER,
    PLACE,
    QUERY,
    assert_matches_spec,
    assert_vtex_error,
    make_sandbox,
    response_pointer,
)

ENDPOINT = "http://127.0.0.1:8000/vtex/reference/tok3n"
ORDER_ID = OMS_ID
OMS = f"/api/oms/pvt/orders/{ORDER_ID}"
VALUE = 10480  # ORDER's value: 2 x 4990 plus 500 shipping
RECEIPT_KEYS = {"date", "orderId", "receipt"}


class Receiver:
    """The connector's callback endpoint: records what VTEX POSTs and answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.seen: list[tuple[str, str, Any]] = []  # (path, query string, body)
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, request.url.query, await request.json()))
        return JSONResponse({"orderId": ORDER_ID, "receipt": "r-1", "date": "now"}, self.status)


class GatedSender:
    """Holds every delivery until the gate opens: shows the triggering request is not blocked."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def __call__(self, url: str, body: JSON) -> httpx.Response:
        await self.gate.wait()
        return httpx.Response(200, json={"receipt": "late"})


async def refuse(url: str, body: JSON) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest_asyncio.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[VtexSandbox]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as to_receiver:
        vtex = make_sandbox(callback_sender=client_sender(to_receiver), callback_retry_delays=(0.01, 0.02))
        yield vtex
        vtex.reset()  # a failed test must not leave deliveries running into the next one


@pytest_asyncio.fixture
async def client(sandbox: VtexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtex", headers=HEADERS) as http:
        yield http


async def ready_order(client: httpx.AsyncClient, endpoint: str = ENDPOINT) -> None:
    body = copy.deepcopy(ORDER) | {"marketplaceServicesEndpoint": endpoint}
    assert (await client.post(PLACE, params=QUERY, json=body)).status_code == 200
    authorized = await client.post(f"{PLACE}/MKP-1001/fulfill", params=QUERY, json={"marketplaceOrderId": "1001"})
    assert authorized.status_code == 201


def invoice(number: str = "NFe-1", value: int | str = VALUE, kind: str = "Output", **changes: Any) -> JSON:
    return {
        "type": kind,
        "issuanceDate": "2024-01-31T18:25:43-05:00",
        "invoiceNumber": number,
        "invoiceValue": value,
        "invoiceUrl": "https://seller.example.com/nfe/1.pdf",
        "invoiceKey": "CFe3520110006396",
        "embeddedInvoice": None,
        "courier": "",
        "trackingNumber": "",
        "trackingUrl": "",
        "items": [{"id": "1", "quantity": 2, "price": 4990}],
        **changes,
    }


async def cancel(client: httpx.AsyncClient, reason: str = "Customer gave up") -> httpx.Response:
    return await client.post(f"{OMS}/cancel", json={"reason": reason, "requestedByUser": True})


async def get_order(client: httpx.AsyncClient) -> JSON:
    response = await client.get(OMS)
    assert response.status_code == 200
    body: JSON = response.json()
    assert_matches_spec("Orders API", response_pointer("/api/oms/pvt/orders/{orderId}", "get"), body)
    return body


def assert_valid_connector_request(sandbox: VtexSandbox, operation: str) -> None:
    """What the sandbox received, checked against the Orders API spec as the connector would send it."""
    sent = sandbox.requests[-1]
    assert validate_request(sent.method, sent.path, sent.query, sent.headers, sent.body, spec="Orders API") == (
        operation
    )


def assert_receipt(response: httpx.Response, pointer: str) -> JSON:
    assert response.status_code == 200, response.text
    body: JSON = response.json()
    assert_matches_spec("Orders API", pointer, body)
    assert set(body) == RECEIPT_KEYS and body["orderId"] == ORDER_ID and len(body["receipt"]) == 32
    return body


CANCEL_ANSWER = response_pointer("/api/oms/pvt/orders/{orderId}/cancel", "post")
INVOICE_ANSWER = response_pointer("/api/oms/pvt/orders/{orderId}/invoice", "post")
TRACKING_ANSWER = "/components/schemas/Updatepartialinvoice.SendTrackingNumber"


# --- cancel ------------------------------------------------------------------------------------------


async def test_cancel_asks_the_marketplace_without_blocking_then_cancels() -> None:
    gated = GatedSender()
    sandbox = make_sandbox(callback_sender=gated)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex", headers=HEADERS
    ) as client:
        await ready_order(client)
        answer = assert_receipt(await cancel(client), CANCEL_ANSWER)
        assert_valid_connector_request(sandbox, "CancelOrder")
        # Answered while the notification is still held at the gate.
        body = await get_order(client)
        assert (body["status"], body["allowCancellation"]) == ("cancellation-requested", False)
        assert body["statusDescription"] == "Cancelamento solicitado"
        assert body["cancelReason"] == "Customer gave up"
        assert body["cancellationData"]["RequestedByUser"] is True
        assert body["cancellationData"]["CancellationDate"] == answer["date"]
        # Asking again while the notification is on its way changes nothing.
        again = assert_receipt(await cancel(client, "other"), CANCEL_ANSWER)
        assert again == answer
        gated.gate.set()
        await sandbox.drain_callbacks()
        assert (await get_order(client))["status"] == "canceled"
        (attempt,) = sandbox.callbacks
        assert (attempt.event, attempt.url) == ("cancel", f"{ENDPOINT}/pvt/orders/{ORDER_ID}/cancel")
        assert (attempt.body, attempt.status, attempt.answer) == (
            {"reason": "Customer gave up"},
            200,
            {"receipt": "late"},
        )
        cancellation = sandbox.orders[ORDER_ID].cancellation
        assert cancellation is not None and cancellation.callback == "delivered"
        # Idempotent once canceled too: the first receipt again and no new notification.
        assert assert_receipt(await cancel(client), CANCEL_ANSWER) == answer
        await sandbox.drain_callbacks()
        assert len(sandbox.callbacks) == 1


async def test_cancel_callback_reaches_the_receiver(
    client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver
) -> None:
    await ready_order(client)
    await cancel(client)
    await sandbox.drain_callbacks()
    assert receiver.seen == [
        (f"/vtex/reference/tok3n/pvt/orders/{ORDER_ID}/cancel", "", {"reason": "Customer gave up"})
    ]
    assert sandbox.orders[ORDER_ID].status == "canceled"


async def test_failing_receiver_leaves_cancellation_requested_until_asked_again(
    client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver
) -> None:
    await ready_order(client)
    receiver.status = 500
    first = assert_receipt(await cancel(client), CANCEL_ANSWER)
    await sandbox.drain_callbacks()
    assert [(a.attempt, a.status, a.error) for a in sandbox.callbacks] == [
        (1, 500, None),
        (2, 500, None),
        (3, 500, None),
    ]
    times = [a.sent_at for a in sandbox.callbacks]
    assert times[1] - times[0] >= 0.01 and times[2] - times[1] >= 0.02  # the configured backoff
    order = sandbox.orders[ORDER_ID]
    assert order.status == "cancellation-requested"
    assert order.cancellation is not None and order.cancellation.callback == "failed"
    # The connector's retry notifies again, with the first request's reason and receipt.
    receiver.status = 200
    assert assert_receipt(await cancel(client, "retry"), CANCEL_ANSWER) == first
    await sandbox.drain_callbacks()
    assert sandbox.callbacks[-1].body == {"reason": "Customer gave up"}
    assert order.status == "canceled"


async def test_unreachable_receiver_is_recorded_as_an_error() -> None:
    sandbox = make_sandbox(callback_sender=refuse, callback_retry_delays=())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex", headers=HEADERS
    ) as http:
        await ready_order(http)
        await cancel(http)
        await sandbox.drain_callbacks()
    (attempt,) = sandbox.callbacks
    assert (attempt.status, attempt.error) == (None, "ConnectError: connection refused")
    assert sandbox.orders[ORDER_ID].status == "cancellation-requested"


async def test_cancel_unknown_order_and_bad_bodies(client: httpx.AsyncClient) -> None:
    assert_vtex_error(await cancel(client), 404, None, ORDER_ID)
    await ready_order(client)
    assert_vtex_error(await client.post(f"{OMS}/cancel", json={"reason": 1}), 400, "CHK00308", "reason")
    bad_flag = await client.post(f"{OMS}/cancel", json={"reason": "x", "requestedByUser": "yes"})
    assert_vtex_error(bad_flag, 400, "CHK00308", "requestedByUser")
    assert_vtex_error(await client.post(f"{OMS}/cancel", json=[]), 400, "CHK00308")


async def test_invoiced_order_cannot_be_canceled(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await ready_order(client)
    assert_receipt(await client.post(f"{OMS}/invoice", json=invoice()), INVOICE_ANSWER)
    assert (await get_order(client))["allowCancellation"] is False
    message = f"Order {ORDER_ID} cannot be cancelled in status invoiced"
    assert_vtex_error(await cancel(client), 400, "CHK0202", message)
    await sandbox.drain_callbacks()
    assert [a.event for a in sandbox.callbacks] == ["invoice"]
    assert sandbox.orders[ORDER_ID].status == "invoiced"


async def test_partially_invoiced_order_cannot_be_canceled(client: httpx.AsyncClient) -> None:
    await ready_order(client)
    await client.post(f"{OMS}/invoice", json=invoice(value=4990, items=[{"id": "1", "quantity": 1, "price": 4990}]))
    assert (await get_order(client))["allowCancellation"] is False
    assert_vtex_error(await cancel(client), 400, "CHK0202", "partially invoiced")


async def test_return_invoice_then_cancel(client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver) -> None:
    await ready_order(client)
    await client.post(f"{OMS}/invoice", json=invoice())
    # The canceled-orders guide: an invoiced order needs a return (Input) invoice first.
    back = await client.post(f"{OMS}/invoice", json=invoice("NFe-1-R", str(VALUE), "Input", courier="Correios"))
    assert_receipt(back, INVOICE_ANSWER)
    assert_valid_connector_request(sandbox, "InvoiceNotification")
    packages = (await get_order(client))["packageAttachment"]["packages"]
    assert [(p["type"], p["invoiceNumber"]) for p in packages] == [("Output", "NFe-1"), ("Input", "NFe-1-R")]
    assert packages[0]["restitutions"] == {}
    assert packages[1]["restitutions"]["Refund"]["value"] == VALUE
    assert_receipt(await cancel(client), CANCEL_ANSWER)
    assert_valid_connector_request(sandbox, "CancelOrder")
    await sandbox.drain_callbacks()
    assert sandbox.orders[ORDER_ID].status == "canceled"
    # The return itself was not notified: only the sale and the cancellation were.
    assert [a.event for a in sandbox.callbacks] == ["invoice", "cancel"]
    assert [path.rsplit("/", 1)[-1] for path, _, _ in receiver.seen] == ["invoice", "cancel"]


async def test_authorize_dispatch_refuses_canceled_and_cancellation_requested(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    await ready_order(client)
    sandbox.orders[ORDER_ID].status = "waiting-ffmt-authorization"  # as if dispatch was never authorized
    await cancel(client)
    fulfill = f"{PLACE}/MKP-1001/fulfill"
    assert sandbox.orders[ORDER_ID].status == "cancellation-requested"
    requested = await client.post(fulfill, params=QUERY, json={"marketplaceOrderId": "1001"})
    assert_vtex_error(requested, 400, "FMT0056")
    await sandbox.drain_callbacks()
    assert sandbox.orders[ORDER_ID].status == "canceled"
    assert_vtex_error(await client.post(fulfill, params=QUERY, json={"marketplaceOrderId": "1001"}), 400, "FMT0056")


# --- invoices -------------------------------------------------------------------------------------------


async def test_output_invoice_is_stored_shown_and_sent_to_the_marketplace(
    client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver
) -> None:
    await ready_order(client)
    body = invoice(value=str(VALUE), embeddedInvoice="<NFe/>")
    assert_receipt(await client.post(f"{OMS}/invoice", json=body), INVOICE_ANSWER)
    order = await get_order(client)
    assert order["status"] == "invoiced"
    assert order["invoicedDate"] is not None
    (package,) = order["packageAttachment"]["packages"]
    assert package | {"issuanceDate": None} == package | {
        "items": [{"itemIndex": 0, "quantity": 2, "price": 4990, "description": None, "unitMultiplier": 1.0}],
        "invoiceNumber": "NFe-1",
        "invoiceValue": VALUE,
        "type": "Output",
        "embeddedInvoice": "<NFe/>",
        "courier": "",
        "issuanceDate": None,
    }
    await sandbox.drain_callbacks()
    expected = {
        "type": "Output",
        "invoiceNumber": "NFe-1",
        "invoiceValue": VALUE,  # integer cents, although the request sent a string
        "issuanceDate": "2024-01-31T18:25:43-05:00",
        "invoiceUrl": "https://seller.example.com/nfe/1.pdf",
        "invoiceKey": "CFe3520110006396",
        "embeddedInvoice": "<NFe/>",
        "courier": "",
        "trackingNumber": "",
        "trackingUrl": "",
        "items": [{"id": "1", "quantity": 2, "price": 4990}],
    }
    assert receiver.seen == [(f"/vtex/reference/tok3n/pub/orders/{ORDER_ID}/invoice", "", expected)]
    (attempt,) = sandbox.callbacks
    assert (attempt.event, attempt.url, attempt.status) == (
        "invoice",
        f"{ENDPOINT}/pub/orders/{ORDER_ID}/invoice",
        200,
    )


async def test_two_partial_invoices_make_the_order_invoiced(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await ready_order(client)
    half = [{"id": "1", "quantity": 1, "price": 4990}]
    assert_receipt(await client.post(f"{OMS}/invoice", json=invoice("NFe-1", 5240, items=half)), INVOICE_ANSWER)
    first = await get_order(client)
    assert (first["status"], first["invoicedDate"]) == ("ready-for-handling", None)
    assert_receipt(await client.post(f"{OMS}/invoice", json=invoice("NFe-2", "5240", items=half)), INVOICE_ANSWER)
    second = await get_order(client)
    assert second["status"] == "invoiced"
    assert [p["invoiceValue"] for p in second["packageAttachment"]["packages"]] == [5240, 5240]
    await sandbox.drain_callbacks()
    assert [a.body["invoiceNumber"] for a in sandbox.callbacks] == ["NFe-1", "NFe-2"]


async def test_same_invoice_number_only_renews_the_receipt(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await ready_order(client)
    first = assert_receipt(await client.post(f"{OMS}/invoice", json=invoice(value=100)), INVOICE_ANSWER)
    changed = invoice(value=VALUE, invoiceKey="other")
    second = assert_receipt(await client.post(f"{OMS}/invoice", json=changed), INVOICE_ANSWER)
    assert second["receipt"] != first["receipt"]
    (stored,) = sandbox.orders[ORDER_ID].invoices
    assert (stored.invoice_value, stored.invoice_key, stored.receipt) == (
        100,
        "CFe3520110006396",
        second["receipt"],
    )
    assert sandbox.orders[ORDER_ID].status == "ready-for-handling"
    await sandbox.drain_callbacks()
    assert len(sandbox.callbacks) == 1


def _without(name: str) -> JSON:
    body = invoice()
    del body[name]
    return body


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (_without("type"), "type"),
        (invoice(kind="output"), "type"),
        (_without("issuanceDate"), "issuanceDate is required"),
        (invoice(issuanceDate="yesterday"), "issuanceDate must be an ISO 8601 date"),
        (_without("invoiceNumber"), "invoiceNumber is required"),
        (invoice(number=""), "invoiceNumber is required"),
        (_without("invoiceValue"), "invoiceValue"),
        (invoice(value="104.80"), "without a decimal separator"),
        (invoice(value=True), "invoiceValue"),
        (invoice(value=0), "greater than 0"),
        (_without("items"), "items"),
        (invoice(items=[{"id": "1", "quantity": 0, "price": 1}]), "quantity"),
        (invoice(items=[{"id": "1", "quantity": 1, "price": 1.5}]), "price"),
        (invoice(items=[{"id": "9", "quantity": 1, "price": 1}]), f"Item 9 is not in order {ORDER_ID}"),
        (invoice(invoiceUrl=5), "invoiceUrl must be a string"),
        ([invoice()], "JSON object"),
    ],
)
async def test_invoice_body_is_validated(client: httpx.AsyncClient, body: Any, text: str) -> None:
    await ready_order(client)
    assert_vtex_error(await client.post(f"{OMS}/invoice", json=body), 400, "CHK00308", text)


async def test_invoice_needs_an_authorized_order_not_being_canceled(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    assert_vtex_error(await client.post(f"{OMS}/invoice", json=invoice()), 404, None)
    await ready_order(client)
    order = sandbox.orders[ORDER_ID]
    for status in ("waiting-ffmt-authorization", "cancellation-requested", "canceled"):
        order.status = status
        message = f"Order {ORDER_ID} is in state {status} and cannot accept invoice"
        assert_vtex_error(await client.post(f"{OMS}/invoice", json=invoice()), 400, "ORD039", message)
    assert order.invoices == []


# --- tracking --------------------------------------------------------------------------------------------

TRACKING = {
    "trackingNumber": "BR123",
    "trackingUrl": "https://track.example.com/BR123",
    "courier": "Correios",
    "dispatchedDate": "2024-02-08T13:16:13.4617653+00:00",
}


async def test_tracking_update_sends_the_invoice_again_with_tracking(
    client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver
) -> None:
    await ready_order(client)
    await client.post(f"{OMS}/invoice", json=invoice())
    response = await client.patch(f"{OMS}/invoice/NFe-1", json=TRACKING)
    assert_receipt(response, TRACKING_ANSWER)
    await sandbox.drain_callbacks()
    first, second = (body for _, _, body in receiver.seen)
    assert first["trackingNumber"] == ""
    assert second == first | {
        "trackingNumber": "BR123",
        "trackingUrl": "https://track.example.com/BR123",
        "courier": "Correios",
    }
    (package,) = (await get_order(client))["packageAttachment"]["packages"]
    assert (package["trackingNumber"], package["courier"]) == ("BR123", "Correios")
    assert sandbox.orders[ORDER_ID].invoices[0].dispatched_date == TRACKING["dispatchedDate"]


async def test_tracking_update_errors(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    assert_vtex_error(await client.patch(f"{OMS}/invoice/NFe-1", json=TRACKING), 404, None)
    await ready_order(client)
    unknown = await client.patch(f"{OMS}/invoice/NFe-404", json=TRACKING)
    assert_vtex_error(unknown, 404, "ORD038", f"Invoices not found from order {ORDER_ID}")
    await client.post(f"{OMS}/invoice", json=invoice())
    partial = {"trackingNumber": "BR123"}
    assert_vtex_error(await client.patch(f"{OMS}/invoice/NFe-1", json=partial), 400, "CHK00308", "required")
    no_number = TRACKING | {"trackingNumber": None}
    assert_vtex_error(await client.patch(f"{OMS}/invoice/NFe-1", json=no_number), 400, "CHK00308", "trackingNumber")
    bad_date = TRACKING | {"dispatchedDate": "soon"}
    assert_vtex_error(await client.patch(f"{OMS}/invoice/NFe-1", json=bad_date), 400, "CHK00308", "dispatchedDate")
    text = await client.patch(f"{OMS}/invoice/NFe-1", content=b"x", headers={"Content-Type": "text/plain"})
    assert_vtex_error(text, 400, "CHK00308", "Content-Type")
    assert sandbox.orders[ORDER_ID].invoices[0].tracking_number == ""


async def test_return_invoice_tracking_is_not_notified(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await ready_order(client)
    await client.post(f"{OMS}/invoice", json=invoice())
    await client.post(f"{OMS}/invoice", json=invoice("R-1", kind="Input"))
    assert_receipt(await client.patch(f"{OMS}/invoice/R-1", json=TRACKING), TRACKING_ANSWER)
    await sandbox.drain_callbacks()
    assert [a.body["invoiceNumber"] for a in sandbox.callbacks] == ["NFe-1"]


# --- callback URLs, admin API, reset ------------------------------------------------------------------------


async def test_callback_url_keeps_the_endpoint_query_string(
    client: httpx.AsyncClient, sandbox: VtexSandbox, receiver: Receiver
) -> None:
    await ready_order(client, f"{ENDPOINT}?an=grocery1")
    await client.post(f"{OMS}/invoice", json=invoice())
    await cancel(client, "x")  # refused (invoiced); the invoice callback alone goes out
    await sandbox.drain_callbacks()
    assert sandbox.callbacks[0].url == f"{ENDPOINT}/pub/orders/{ORDER_ID}/invoice?an=grocery1"
    assert receiver.seen[0][:2] == (f"/vtex/reference/tok3n/pub/orders/{ORDER_ID}/invoice", "an=grocery1")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://m.example.com", "https://m.example.com/pvt/orders/A-1-01/cancel"),
        ("https://m.example.com/api/", "https://m.example.com/api/pvt/orders/A-1-01/cancel"),
        (
            "http://oms.vtexinternal.com.br/api/oms?an=luxstore",
            "http://oms.vtexinternal.com.br/api/oms/pvt/orders/A-1-01/cancel?an=luxstore",
        ),
    ],
)
def test_callback_url(endpoint: str, expected: str) -> None:
    assert callback_url(endpoint, "cancel", "A-1-01") == expected


async def test_admin_api_lists_callbacks_and_reset_forgets_them(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    await ready_order(client)
    await client.post(f"{OMS}/invoice", json=invoice())
    await sandbox.drain_callbacks()
    listed = (await client.get("/_sandbox/callbacks")).json()
    assert [(c["event"], c["order_id"], c["attempt"], c["status"]) for c in listed] == [("invoice", ORDER_ID, 1, 200)]
    admin_order = (await client.get("/_sandbox/orders")).json()[0]
    assert admin_order["invoices"][0]["invoice_number"] == "NFe-1"
    assert admin_order["invoiced_date"] is not None
    callbacks = sandbox.callbacks
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert callbacks is sandbox.callbacks and callbacks == []


async def test_reset_abandons_deliveries_under_way() -> None:
    gated = GatedSender()
    sandbox = make_sandbox(callback_sender=gated)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex", headers=HEADERS
    ) as client:
        await ready_order(client)
        await cancel(client)
    await asyncio.sleep(0)  # let the delivery start and wait at the gate
    sandbox.reset()
    await asyncio.wait_for(sandbox.drain_callbacks(), timeout=1)
    assert sandbox.callbacks == []
