"""The VTEX client against the VTEX sandbox: every request fits the OpenAPI specs, every error is typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sandboxes.vtex import FaultRule, VtexSandbox

from connector.models import DeliveryChannel, MarketplaceOrder, ValidationReport
from connector.validation import validate_order
from connector.vtex.client import VtexClient
from connector.vtex.error_table import Handling, channel_order_handling, classify
from connector.vtex.errors import VtexError, error_from_response, parse_retry_after
from connector.vtex.payloads import (
    channel_order_body,
    channel_order_status_body,
    fulfillment_order_body,
    simulation_body,
)
from connector.vtex.responses import ChannelOrderAnswer
from tests.contract.openapi import validate_request
from tests.test_validation import make_order


@pytest_asyncio.fixture
async def sandbox_and_client() -> AsyncIterator[tuple[VtexSandbox, VtexClient]]:
    # A seller suffix other than the examples' -01, and no OMS or List orders lag.
    sandbox = VtexSandbox(order_id_suffix="-02", oms_visibility_delay_seconds=0, list_index_delay_seconds=0)
    client = VtexClient(
        base_url="http://vtex.sandbox",
        app_key=sandbox.app_key,
        app_token=sandbox.app_token,
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    yield sandbox, client
    await client.aclose()


async def test_every_operation_sends_what_the_specs_require(
    sandbox_and_client: tuple[VtexSandbox, VtexClient],
) -> None:
    sandbox, client = sandbox_and_client
    order = make_order("1", "8")
    order = order.model_copy(update={"payment_value": 2 * 4990 + 2 * 7990 + 1000})
    order.items[0].unit_price, order.items[1].unit_price = 4990, 7990
    simulation = await client.simulate(simulation_body(order, seller_id="1"), sales_channel="1", affiliate_id="MKP")
    contexts = {sku: await client.get_sku_context(sku, sales_channel="1") for sku in ("1", "8")}
    report = validate_order(order, simulation, contexts, sales_channel="1")
    assert report.ok, report.problems
    body = fulfillment_order_body(order, report, seller_id="1", services_endpoint="https://connector.example/vtex/x")
    placed = await client.place_fulfillment_order(body, sales_channel="1", affiliate_id="MKP")
    assert placed.order_id == "MKP-100-02"
    await client.authorize_dispatch("100", sales_channel="1", affiliate_id="MKP")
    oms = await client.get_order(placed.order_id)
    assert oms is not None and oms.status == "ready-for-handling"
    assert await client.get_sku_context("999", sales_channel="1") is None
    assert await client.get_order("MKP-none-01") is None

    operations = {validate_request(r.method, r.path, r.query, r.headers, r.body) for r in sandbox.requests}
    assert operations >= {
        "fulfillment-simulation-external-marketplace",
        "PlaceFulfillmentOrder",
        "AuthorizeDispatchForFulfillmentOrder",
    }
    assert len(operations) == 5  # plus Get SKU and context, and Get order


async def _place(client: VtexClient, marketplace_order_id: str, affiliate_id: str) -> str:
    order = make_order("1").model_copy(update={"marketplace_order_id": marketplace_order_id})
    order = order.model_copy(update={"payment_value": 2 * 4990 + 500})
    order.items[0].unit_price = 4990
    simulation = await client.simulate(
        simulation_body(order, seller_id="1"), sales_channel="1", affiliate_id=affiliate_id
    )
    report = validate_order(
        order, simulation, {"1": await client.get_sku_context("1", sales_channel="1")}, sales_channel="1"
    )
    assert report.ok, report.problems
    body = fulfillment_order_body(order, report, seller_id="1", services_endpoint="https://connector.example/vtex/x")
    placed = await client.place_fulfillment_order(body, sales_channel="1", affiliate_id=affiliate_id)
    assert placed.order_id is not None
    return placed.order_id


async def test_find_order_ids_lists_orders_as_the_spec_says(
    sandbox_and_client: tuple[VtexSandbox, VtexClient],
) -> None:
    sandbox, client = sandbox_and_client
    assert await client.find_order_ids("100", affiliate_id="MKP") == []
    mine = await _place(client, "100", "MKP")
    await _place(client, "1000", "MKP")
    theirs = await _place(client, "100", "XYZ")
    assert mine == "MKP-100-02"
    assert await client.find_order_ids("100", affiliate_id="MKP") == [mine]
    assert await client.find_order_ids("100", affiliate_id="XYZ") == [theirs]
    assert await client.find_order_ids("404", affiliate_id="MKP") == []
    listed = [r for r in sandbox.requests if r.path == "/api/oms/pvt/orders"]
    assert len(listed) == 4
    for request in listed:
        operation = validate_request(request.method, request.path, request.query, request.headers, request.body)
        assert operation == "ListOrders"
    assert listed[1].query == {"q": "100", "f_affiliateId": "MKP", "page": "1", "per_page": "100"}


async def test_find_order_ids_misses_orders_not_yet_indexed() -> None:
    sandbox = VtexSandbox(order_id_suffix="-04", oms_visibility_delay_seconds=0, list_index_delay_seconds=60)
    client = VtexClient(
        base_url="http://vtex.sandbox",
        app_key=sandbox.app_key,
        app_token=sandbox.app_token,
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    placed = await _place(client, "100", "MKP")
    assert await client.get_order(placed) is not None
    assert await client.find_order_ids("100", affiliate_id="MKP") == []
    await client.aclose()


async def test_business_errors_carry_the_vtex_code(
    sandbox_and_client: tuple[VtexSandbox, VtexClient],
) -> None:
    sandbox, client = sandbox_and_client
    sandbox.add_fault(
        FaultRule(
            method="POST",
            path_contains="/fulfillment/pvt/orders",
            status=400,
            code="FMT007",
            message="Payment total (1) differs from store desired value (2)",
        )
    )
    with pytest.raises(VtexError) as error:
        await client.place_fulfillment_order({}, sales_channel="1", affiliate_id="MKP")
    assert (error.value.status, error.value.code, transient(error.value)) == (400, "FMT007", False)
    assert "differs from store desired value" in str(error.value)


async def test_rate_limit_is_transient_with_its_retry_after(
    sandbox_and_client: tuple[VtexSandbox, VtexClient],
) -> None:
    sandbox, client = sandbox_and_client
    sandbox.add_fault(FaultRule(method="GET", path_contains="stockkeepingunitbyid", status=429, retry_after=7))
    with pytest.raises(VtexError) as error:
        await client.get_sku_context("1", sales_channel="1")
    assert (error.value.status, error.value.retry_after, transient(error.value)) == (429, 7.0, True)


async def test_wrong_credentials_are_a_401_without_the_token_in_the_error() -> None:
    sandbox = VtexSandbox()
    client = VtexClient(
        base_url="http://vtex.sandbox",
        app_key=sandbox.app_key,
        app_token="wrong-secret-token",
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    with pytest.raises(VtexError) as error:
        await client.get_order("MKP-1-01")
    await client.aclose()
    assert error.value.status == 401 and not transient(error.value)
    assert "wrong-secret-token" not in str(error.value)


async def test_connection_failure_is_transient() -> None:
    client = VtexClient(base_url="http://127.0.0.1:9", app_key="k", app_token="t", timeout_seconds=2)
    with pytest.raises(VtexError) as error:
        await client.get_order("MKP-1-01")
    await client.aclose()
    assert error.value.status is None and transient(error.value)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_find_order_ids_reads_every_page() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        entry = {"orderId": f"MKP-7-0{page}", "marketPlaceOrderId": "7", "affiliateId": "MKP", "status": "handling"}
        noise = {"orderId": "MKP-77-01", "marketPlaceOrderId": "77", "affiliateId": "MKP", "status": "handling"}
        paging = {"total": 3, "pages": 2, "currentPage": page, "perPage": 100}
        return httpx.Response(200, json={"list": [entry, noise], "facets": [], "paging": paging, "stats": {}})

    client = VtexClient(base_url="http://vtex", app_key="k", app_token="t", transport=httpx.MockTransport(answer))
    assert await client.find_order_ids("7", affiliate_id="MKP") == ["MKP-7-01", "MKP-7-02"]
    await client.aclose()


def transient(error: VtexError) -> bool:
    """What the error table makes of the error: retried unchanged, or not."""
    return classify(error.status, error.code) is Handling.TRANSIENT


# --- Channel Order API (New Order Integration) ---------------------------------------------------------

CONNECTOR_ENDPOINT = "https://connector.example/vtex/tok3n"


class Notifications:
    """Stands in for the connector's processing-result endpoint: records what VTEX POSTs to it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    async def send(self, url: str, body: dict[str, Any]) -> httpx.Response:
        self.received.append((url, body))
        return httpx.Response(200, json={})

    def answers(self) -> list[ChannelOrderAnswer]:
        for url, _ in self.received:
            assert url.startswith(f"{CONNECTOR_ENDPOINT}/order-integration/notification/processing-result?")
        return [ChannelOrderAnswer.model_validate(body) for _, body in self.received]


@pytest_asyncio.fixture
async def channel_sandbox() -> AsyncIterator[tuple[VtexSandbox, VtexClient, Notifications]]:
    notifications = Notifications()
    sandbox = VtexSandbox(
        order_id_suffix="-02",
        oms_visibility_delay_seconds=0,
        list_index_delay_seconds=0,
        order_integration_delay_seconds=0,
        callback_sender=notifications.send,
    )
    client = VtexClient(
        base_url="http://vtex.sandbox",
        app_key=sandbox.app_key,
        app_token=sandbox.app_token,
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    yield sandbox, client, notifications
    sandbox.reset()
    await client.aclose()


async def _validated(
    client: VtexClient, channel: DeliveryChannel = DeliveryChannel.DELIVERY
) -> tuple[MarketplaceOrder, ValidationReport]:
    """SKU 1 x2 at the store's price, validated against the sandbox as the workflow does."""
    order = make_order("1", channel=channel)
    freight = 0 if channel is DeliveryChannel.PICKUP_IN_POINT else 500
    shipping = order.shipping.model_copy(update={"price": freight})
    order = order.model_copy(update={"payment_value": 2 * 4990 + freight, "shipping": shipping})
    order.items[0].unit_price = 4990
    simulation = await client.simulate(simulation_body(order, seller_id="1"), sales_channel="1", affiliate_id="MKP")
    contexts = {"1": await client.get_sku_context("1", sales_channel="1")}
    report = validate_order(order, simulation, contexts, sales_channel="1")
    assert report.ok, report.problems
    return order, report


def _channel_body(order: MarketplaceOrder, report: ValidationReport, *, paid: bool) -> dict[str, Any]:
    return channel_order_body(
        order,
        report,
        connector_name="reference",
        connector_endpoint=CONNECTOR_ENDPOINT,
        paid=paid,
        price_divergence_allowance_rate=None,
        lock_ttl="1d",
    )


async def test_channel_order_enqueue_then_approve(
    channel_sandbox: tuple[VtexSandbox, VtexClient, Notifications],
) -> None:
    sandbox, client, notifications = channel_sandbox
    order, report = await _validated(client)
    answer = await client.enqueue_channel_order(_channel_body(order, report, paid=False), affiliate_id="MKP")
    assert (answer.code, answer.flow, answer.success, answer.errors) == ("SOI003", "PlaceOrder", True, [])
    assert channel_order_handling(answer.code) is None
    await sandbox.drain_callbacks()
    (integrated,) = notifications.answers()
    assert (integrated.code, integrated.main_order_id) == ("SOI001", "MKP-100-02")
    assert integrated.operation_id == answer.operation_id and integrated.marketplace_order_id == "100"

    status_body = channel_order_status_body("100", connector_name="reference", connector_endpoint=CONNECTOR_ENDPOINT)
    approval = await client.update_channel_order_status(status_body)
    assert (approval.code, approval.flow, approval.success, approval.marketplace_order_id) == (
        "SOI003",
        "ApproveOrder",
        True,
        "100",
    )
    await sandbox.drain_callbacks()
    assert [(a.flow, a.code) for a in notifications.answers()][1:] == [("ApproveOrder", "SOI002")]
    oms = await client.get_order("MKP-100-02")
    assert oms is not None and oms.status == "ready-for-handling"

    operations = [validate_request(r.method, r.path, r.query, r.headers, r.body) for r in sandbox.requests]
    assert {"EnqueueNewOrder", "UpdateOrderStatus"} <= set(operations)


async def test_a_paid_channel_order_is_approved_by_vtex_itself(
    channel_sandbox: tuple[VtexSandbox, VtexClient, Notifications],
) -> None:
    sandbox, client, notifications = channel_sandbox
    order, report = await _validated(client)
    answer = await client.enqueue_channel_order(_channel_body(order, report, paid=True), affiliate_id="MKP")
    assert answer.code == "SOI003"
    await sandbox.drain_callbacks()
    assert [(a.flow, a.code) for a in notifications.answers()] == [("PlaceOrder", "SOI001"), ("ApproveOrder", "SOI002")]
    for request in sandbox.requests:
        validate_request(request.method, request.path, request.query, request.headers, request.body)


async def test_a_pickup_channel_order_is_enqueued(
    channel_sandbox: tuple[VtexSandbox, VtexClient, Notifications],
) -> None:
    sandbox, client, _ = channel_sandbox
    order, report = await _validated(client, DeliveryChannel.PICKUP_IN_POINT)
    body = _channel_body(order, report, paid=True)
    answer = await client.enqueue_channel_order(body, affiliate_id="MKP")
    assert answer.code == "SOI003"
    sent = sandbox.requests[-1]
    assert validate_request(sent.method, sent.path, sent.query, sent.headers, sent.body) == "EnqueueNewOrder"
    assert sent.body["shippingData"]["selectedAddresses"][0]["addressId"] == "1_centro"


async def test_a_channel_order_body_vtex_refuses_is_an_eoi005_naming_the_field(
    channel_sandbox: tuple[VtexSandbox, VtexClient, Notifications],
) -> None:
    sandbox, client, notifications = channel_sandbox
    order, report = await _validated(client)
    body = _channel_body(order, report, paid=False)
    del body["shippingData"]["logisticsInfo"][0]["shippingEstimate"]
    with pytest.raises(VtexError) as error:
        await client.enqueue_channel_order(body, affiliate_id="MKP")
    assert (error.value.operation, error.value.status, error.value.code) == ("enqueue channel order", 400, "EOI005")
    assert "shippingData.logisticsInfo[0].shippingEstimate is required" in error.value.message
    assert classify(error.value.status, error.value.code) is Handling.BUSINESS
    assert channel_order_handling("EOI005") is Handling.BUSINESS
    with pytest.raises(VtexError) as approval:
        await client.update_channel_order_status({"marketplaceOrderId": "100", "marketplaceOrderStatus": "approved"})
    assert (approval.value.operation, approval.value.code) == ("update channel order status", "EOI005")
    assert "connectorName is required" in approval.value.message
    await sandbox.drain_callbacks()
    assert notifications.received == []


def _error(body: Any = None, *, text: str | None = None, status: int = 400) -> VtexError:
    request = httpx.Request("POST", "http://vtex/x")
    response = (
        httpx.Response(status, text=text, request=request)
        if text is not None
        else httpx.Response(status, json=body, request=request)
    )
    return error_from_response("op", response)


def test_error_shapes_each_give_their_code_and_message() -> None:
    checkout = _error({"error": {"code": "FMT007", "message": "Payment total (1) differs", "exception": None}})
    assert (checkout.code, checkout.message) == ("FMT007", "Payment total (1) differs")
    catalog = _error({"Message": "SKU not found"}, status=404)
    assert (catalog.code, catalog.message) == (None, "SKU not found")
    plain = _error(text="Bad Request: nope")
    assert (plain.code, plain.message) == (None, "Bad Request: nope")
    # A {"code", "message"} body without the Channel Order contract's `flow` keeps the old reading.
    other = _error({"code": "1", "message": "Something"})
    assert (other.code, other.message) == (None, "Something")
    channel = _error(
        {
            "marketplaceOrderId": "100",
            "accountName": "store",
            "code": "EOI005",
            "flow": "PlaceOrder",
            "success": False,
            "operationId": None,
            "errors": [
                {"source": "Order Integration", "code": "EOI005", "description": "clientProfileData.phone is required"},
                {"source": "Checkout", "code": "CHK0099", "description": "Invalid postal code"},
            ],
            "fields": None,
            "message": "Validation error",
        }
    )
    assert channel.code == "EOI005"
    assert channel.message == "clientProfileData.phone is required; CHK0099: Invalid postal code"
    bare = _error({"code": "EOI010", "flow": "Unknown", "success": False, "errors": None, "message": "Timed out"})
    assert (bare.code, bare.message) == ("EOI010", "Timed out")
