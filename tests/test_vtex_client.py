"""The VTEX client against the VTEX sandbox: every request fits the OpenAPI specs, every error is typed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from connector.models import vtex_order_id
from connector.sandbox.vtex import FaultRule, VtexSandbox
from connector.validation import validate_order
from connector.vtex.client import VtexClient
from connector.vtex.errors import VtexError, parse_retry_after
from connector.vtex.payloads import fulfillment_order_body, simulation_body
from tests.contract.openapi import validate_request
from tests.test_validation import make_order


@pytest_asyncio.fixture
async def sandbox_and_client() -> AsyncIterator[tuple[VtexSandbox, VtexClient]]:
    sandbox = VtexSandbox()
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
    assert placed.order_id == vtex_order_id("MKP", "100")
    await client.authorize_dispatch("100", sales_channel="1", affiliate_id="MKP")
    oms = await client.get_order(vtex_order_id("MKP", "100"))
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
    assert (error.value.status, error.value.code, error.value.transient) == (400, "FMT007", False)
    assert "differs from store desired value" in str(error.value)


async def test_rate_limit_is_transient_with_its_retry_after(
    sandbox_and_client: tuple[VtexSandbox, VtexClient],
) -> None:
    sandbox, client = sandbox_and_client
    sandbox.add_fault(FaultRule(method="GET", path_contains="stockkeepingunitbyid", status=429, retry_after=7))
    with pytest.raises(VtexError) as error:
        await client.get_sku_context("1", sales_channel="1")
    assert (error.value.status, error.value.retry_after, error.value.transient) == (429, 7.0, True)


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
    assert error.value.status == 401 and not error.value.transient
    assert "wrong-secret-token" not in str(error.value)


async def test_connection_failure_is_transient() -> None:
    client = VtexClient(base_url="http://127.0.0.1:9", app_key="k", app_token="t", timeout_seconds=2)
    with pytest.raises(VtexError) as error:
        await client.get_order("MKP-1-01")
    await client.aclose()
    assert error.value.status is None and error.value.transient


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
