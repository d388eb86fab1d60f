"""The VTEX sandbox answers as the official specs describe: shapes, error codes, auth, faults, admin API."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from openapi_schema_validator import OAS30ReadValidator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from sandboxes.catalog import NORMAL, PICKUP, SandboxSku
from sandboxes.vtex import FaultRule, VtexSandbox

AUTH = {"X-VTEX-API-AppKey": "vtexappkey-sandbox-KEY", "X-VTEX-API-AppToken": "sandbox-app-token"}
HEADERS = {"Accept": "application/json", "Content-Type": "application/json", **AUTH}
SIMULATION = "/api/checkout/pub/orderForms/simulation"
PLACE = "/api/fulfillment/pvt/orders"
QUERY = {"affiliateId": "MKP", "sc": "1"}
# Pinned so tests can name OMS ids; not -01, so nothing here leans on the examples' suffix. No OMS or
# List orders lag either: the tests of those set their own.
SUFFIX = "-03"
OMS_ID = f"MKP-1001{SUFFIX}"
SANDBOX_OPTIONS: dict[str, Any] = {
    "order_id_suffix": SUFFIX,
    "oms_visibility_delay_seconds": 0,
    "list_index_delay_seconds": 0,
}

# SKU 1 (4990) x2 with "Normal" (500): the store's desired value is 10480.
ORDER: dict[str, Any] = {
    "marketplaceOrderId": "1001",
    "marketplaceServicesEndpoint": "https://marketplace.example.com/vtex",
    "marketplacePaymentValue": 10480,
    "isCreatedAsync": False,
    "items": [{"id": "1", "quantity": 2, "seller": "1", "price": 4990}],
    "clientProfileData": {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "documentType": "cpf",
        "document": "12345678900",
    },
    "shippingData": {
        "address": {
            "addressType": "residential",
            "receiverName": "Ada Lovelace",
            "postalCode": "22250-040",
            "city": "Rio de Janeiro",
            "state": "RJ",
            "country": "BRA",
            "street": "Praia de Botafogo",
            "number": "300",
        },
        "logisticsInfo": [{"itemIndex": 0, "selectedSla": "Normal", "price": 500, "lockTTL": "1d"}],
    },
    "paymentData": None,
}


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER)
    body.update(changes)
    return body


def single_item_order(sku_id: str, quantity: int, sla: str, payment: int, **changes: Any) -> dict[str, Any]:
    body = order(items=[{"id": sku_id, "quantity": quantity, "seller": "1"}], marketplacePaymentValue=payment)
    body["shippingData"]["logisticsInfo"] = [{"itemIndex": 0, "selectedSla": sla, "price": 0}]
    body.update(changes)
    return body


def make_sandbox(**options: Any) -> VtexSandbox:
    return VtexSandbox(**(SANDBOX_OPTIONS | options))


@pytest.fixture
def sandbox() -> VtexSandbox:
    return make_sandbox()


@pytest_asyncio.fixture
async def client(sandbox: VtexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtex", headers=HEADERS) as http:
        yield http


async def place(client: httpx.AsyncClient, body: Any, **query: str) -> httpx.Response:
    return await client.post(PLACE, params={**QUERY, **query}, json=body)


async def simulate(client: httpx.AsyncClient, items: list[tuple[str, int]], sc: str = "1") -> Any:
    body = {
        "items": [{"id": sku, "quantity": qty, "seller": "1"} for sku, qty in items],
        "postalCode": "22250-040",
        "country": "BRA",
    }
    response = await client.post(SIMULATION, params={"sc": sc, "affiliateId": "MKP"}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_vtex_error(response: httpx.Response, status: int, code: str | None, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "exception"}
    assert body["error"]["code"] == code
    assert body["error"]["exception"] is None
    assert text in body["error"]["message"]


# --- spec conformance helper ----------------------------------------------------------------------


def _spec_dir() -> Path:
    override = os.environ.get("VTEX_OPENAPI_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "vtex-openapi"


@cache
def _registry(spec: str) -> Registry[Any]:
    with (_spec_dir() / f"VTEX - {spec}.json").open(encoding="utf-8") as handle:
        doc = json.load(handle)
    registry: Registry[Any] = Registry().with_resource("urn:spec", DRAFT4.create_resource(doc))
    return registry


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def response_pointer(path: str, method: str, status: str = "200") -> str:
    return f"/paths/{_escape(path)}/{method}/responses/{status}/content/{_escape('application/json')}/schema"


def assert_matches_spec(spec: str, pointer: str, instance: Any) -> None:
    if not _spec_dir().is_dir():
        pytest.skip("VTEX OpenAPI specs not available")
    validator = OAS30ReadValidator({"$ref": f"urn:spec#{quote(pointer)}"}, registry=_registry(spec))
    problems = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]
    assert not problems, problems


# --- simulation -------------------------------------------------------------------------------------


async def test_simulation_prices_items_and_quotes_slas(client: httpx.AsyncClient) -> None:
    body = await simulate(client, [("1", 2), ("8", 1)])
    assert_matches_spec("Checkout API", response_pointer(SIMULATION, "post"), body)
    first, second = body["items"]
    assert first | {"priceValidUntil": None, "priceDefinition": None} == first | {
        "id": "1",
        "requestIndex": 0,
        "quantity": 2,
        "seller": "1",
        "price": 4990,
        "listPrice": 4990,
        "sellingPrice": 4990,
        "availability": "available",
        "priceValidUntil": None,
        "priceDefinition": None,
    }
    assert (second["id"], second["requestIndex"], second["availability"]) == ("8", 1, "available")
    logistics = body["logisticsInfo"]
    assert [info["itemIndex"] for info in logistics] == [0, 1]
    assert [sla["id"] for sla in logistics[0]["slas"]] == ["Normal", "Express", "Retirada Centro"]
    assert [sla["id"] for sla in logistics[1]["slas"]] == ["Normal", "Retirada Centro"]
    pickup = logistics[0]["slas"][2]
    assert pickup["deliveryChannel"] == "pickup-in-point"
    assert pickup["pickupPointId"] == "1_centro"
    normal = logistics[0]["slas"][0]
    assert {k: normal[k] for k in ("name", "deliveryChannel", "price", "shippingEstimate", "lockTTL")} == {
        "name": "Normal",
        "deliveryChannel": "delivery",
        "price": 500,
        "shippingEstimate": "5bd",
        "lockTTL": "10d",
    }
    assert logistics[0]["shipsTo"] == ["BRA"]
    assert logistics[0]["deliveryChannels"] == [{"id": "delivery"}, {"id": "pickup-in-point"}]
    # Checkout preselects the cheapest delivery SLA, which the Shipping total reflects.
    assert logistics[0]["selectedSla"] == "Normal"
    assert body["totals"] == [
        {"id": "Items", "name": "Total dos Itens", "value": 4990 * 2 + 7990},
        {"id": "Shipping", "name": "Total do Frete", "value": 500 + 500},
    ]
    assert body["messages"] == []
    assert (body["postalCode"], body["country"]) == ("22250-040", "BRA")


@pytest.mark.parametrize(("sku", "why"), [("999", "unknown"), ("4", "inactive"), ("5", "not in sc 1")])
async def test_simulation_leaves_out_unsellable_skus(client: httpx.AsyncClient, sku: str, why: str) -> None:
    body = await simulate(client, [(sku, 1), ("1", 1)])
    # The omitted SKU shifts positions: itemIndex counts answer items, requestIndex request items.
    assert [(item["id"], item["requestIndex"]) for item in body["items"]] == [("1", 1)]
    assert [info["itemIndex"] for info in body["logisticsInfo"]] == [0]
    assert body["logisticsInfo"][0]["slas"]
    assert [(m["code"], m["text"]) for m in body["messages"]] == [("ORD027", f"Item {sku} not found or unavailable")]


async def test_simulation_uses_the_sales_channel_query(client: httpx.AsyncClient) -> None:
    body = await simulate(client, [("5", 1)], sc="2")
    assert [item["id"] for item in body["items"]] == ["5"]


async def test_simulation_out_of_stock_and_without_carriers(client: httpx.AsyncClient) -> None:
    body = await simulate(client, [("6", 1), ("7", 1)])
    availability = {item["id"]: item["availability"] for item in body["items"]}
    assert availability == {"6": "withoutStock", "7": "cannotBeDelivered"}
    assert [info["slas"] for info in body["logisticsInfo"]] == [[], []]
    assert {m["code"] for m in body["messages"]} == {"withoutStock", "cannotBeDelivered"}
    assert body["totals"][0]["value"] == 0


async def test_simulation_needs_no_auth_and_checks_items(client: httpx.AsyncClient) -> None:
    bare = {"Content-Type": "application/json"}
    items = {
        "items": [{"id": "1", "quantity": 1, "seller": "1"}],
        "postalCode": "01310-100",
        "country": "BRA",
    }
    ok = await client.post(SIMULATION, json=items, headers={**bare, "X-VTEX-API-AppKey": ""})
    assert ok.status_code == 200
    bad = await client.post(SIMULATION, json={"items": [{"id": "1", "quantity": 0, "seller": "1"}]})
    assert_vtex_error(bad, 400, "CHK0023", "Invalid quantity for item")


# --- catalog ------------------------------------------------------------------------------------------


async def test_sku_context_answers_pascal_case(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/5", params={"sc": "1"})
    assert response.status_code == 200
    body = response.json()
    assert_matches_spec("Catalog API", "/components/schemas/GetSKUandContext", body)
    assert body["Id"] == 5
    assert body["SkuName"] == body["NameComplete"] == "Jaqueta Exclusiva Loja"
    assert (body["IsActive"], body["IsProductActive"], body["SalesChannels"]) == (True, True, [2])
    assert body["SkuSellers"][0]["SellerId"] == "1"
    assert set(body["Dimension"]) == {"cubicweight", "height", "length", "weight", "width"}
    assert set(body["AlternateIds"]) == {"Ean", "RefId"}
    assert (body["MeasurementUnit"], body["UnitMultiplier"]) == ("un", 1.0)

    inactive = (await client.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/4")).json()
    assert inactive["IsActive"] is False


async def test_sku_context_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/999")
    assert_vtex_error(response, 404, None, "999")


# --- auth and content type ----------------------------------------------------------------------------

PRIVATE_CALLS = [
    ("GET", "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"),
    ("POST", "/api/fulfillment/pvt/orders?affiliateId=MKP"),
    ("POST", "/api/fulfillment/pvt/orders/MKP-1001/fulfill?affiliateId=MKP"),
    ("GET", f"/api/oms/pvt/orders/{OMS_ID}"),
    ("POST", f"/api/oms/pvt/orders/{OMS_ID}/cancel"),
    ("POST", f"/api/oms/pvt/orders/{OMS_ID}/invoice"),
    ("PATCH", f"/api/oms/pvt/orders/{OMS_ID}/invoice/NFe-1"),
]
BAD_CREDENTIALS = [
    {},
    {"X-VTEX-API-AppKey": AUTH["X-VTEX-API-AppKey"]},
    {**AUTH, "X-VTEX-API-AppKey": "vtexappkey-other"},
    {**AUTH, "X-VTEX-API-AppToken": "wrong"},
]


@pytest.mark.parametrize(("method", "url"), PRIVATE_CALLS)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
async def test_private_endpoints_need_the_configured_key_pair(
    sandbox: VtexSandbox, method: str, url: str, credentials: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtex") as bare:
        headers = {"Content-Type": "application/json", **credentials}
        body = ORDER if method in ("POST", "PATCH") else None
        response = await bare.request(method, url, headers=headers, json=body)
    assert_vtex_error(response, 401, "CHK003", "Access denied")
    assert sandbox.orders == {}


async def test_custom_credentials(sandbox: VtexSandbox) -> None:
    custom = make_sandbox(app_key="k", app_token="t")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=custom.app), base_url="http://vtex") as http:
        url = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"
        assert (await http.get(url, headers=AUTH)).status_code == 401
        ok = await http.get(url, headers={"X-VTEX-API-AppKey": "k", "X-VTEX-API-AppToken": "t"})
        assert ok.status_code == 200


async def test_posts_must_be_json(client: httpx.AsyncClient) -> None:
    form = await client.post(PLACE, params=QUERY, content=b"a=1", headers={"Content-Type": "text/plain"})
    assert_vtex_error(form, 400, "CHK00308", "Content-Type")
    broken = await client.post(PLACE, params=QUERY, content=b"{not json")
    assert_vtex_error(broken, 400, "CHK00308", "not valid JSON")
    charset = await client.post(
        PLACE,
        params=QUERY,
        content=json.dumps(ORDER),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_vtex_error(await client.get("/api/nowhere"), 404, None)
    assert_vtex_error(await client.delete("/api/oms/pvt/orders/MKP-1-01"), 405, None)


# --- place fulfillment order ----------------------------------------------------------------------------


async def test_place_order_creates_and_reserves(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    response = await place(client, ORDER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "orderId": OMS_ID,
        "status": "success",
        "message": "Order placed successfully",
        "orderData": ORDER,
    }
    # The response schema types orderData.paymentData as a string although the request sends null.
    echoed = {**body, "orderData": {k: v for k, v in ORDER.items() if k != "paymentData"}}
    assert_matches_spec(
        "Marketplace Protocol - External Marketplace Orders",
        "/components/schemas/placeFulfillmentOrderResponse",
        echoed,
    )
    stored = sandbox.orders[OMS_ID]
    assert (stored.marketplace_order_id, stored.affiliate_id, stored.sales_channel) == ("1001", "MKP", 1)
    assert (stored.status, stored.is_created_async, stored.body) == (
        "waiting-ffmt-authorization",
        False,
        ORDER,
    )
    assert sandbox.stock["1"] == 100_000 - 2


async def test_place_order_accepts_the_guides_array(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    response = await place(client, [ORDER])
    assert response.status_code == 200
    assert response.json()["orderId"] == OMS_ID
    too_many = await place(client, [order(marketplaceOrderId="2"), order(marketplaceOrderId="3")])
    assert_vtex_error(too_many, 400, "CHK00308")


async def test_place_order_requires_affiliate(client: httpx.AsyncClient) -> None:
    response = await client.post(PLACE, params={"sc": "1"}, json=ORDER)
    assert_vtex_error(response, 400, "FMT0021", "Invalid affiliate id")
    assert_vtex_error(await place(client, ORDER, sc="x"), 400, "FMT0036")


def _parent(body: dict[str, Any], path: str) -> tuple[Any, str]:
    *parents, leaf = path.split(".")
    node: Any = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, leaf


def _without(path: str) -> dict[str, Any]:
    body = order()
    node, leaf = _parent(body, path)
    del node[leaf]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = order()
    node, leaf = _parent(body, path)
    node[leaf] = value
    return body


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (_without("marketplaceOrderId"), "FMT015", "Marketplace id has not been provided"),
        (_without("marketplaceServicesEndpoint"), "FMT0070", "marketplace's service has not been provided"),
        (_with("marketplaceServicesEndpoint", "marketplace.example.com"), "CHK00308", "URL"),
        (_without("marketplacePaymentValue"), "FMT0042", "Invalid marketplace payment value"),
        (_with("marketplacePaymentValue", "10480"), "FMT0042", "Invalid marketplace payment value"),
        (_with("paymentData", {"payments": []}), "FMT0042", "payment data"),
        (_with("isCreatedAsync", "yes"), "CHK00308", "isCreatedAsync"),
        (_with("items", []), "CHK00308", "items"),
        (_without("items.0.id"), "FMT0039", "Invalid id for item"),
        (_with("items.0.quantity", 0), "FMT0038", "Invalid quantity for item"),
        (_without("items.0.seller"), "FMT0040", "Invalid seller for item"),
        (_with("items.0.price", 49.9), "FMT0041", "Invalid price for item"),
        (_without("clientProfileData"), "CHK00308", "clientProfileData"),
        (_without("clientProfileData.document"), "CHK00308", "clientProfileData.document"),
        (_with("clientProfileData.email", "nobody"), "FMT0032", "Invalid email"),
        (_without("shippingData"), "FMT001", "Cannot reserve items without shipping data"),
        (_without("shippingData.address.city"), "CHK00308", "shippingData.address.city"),
        (_with("shippingData.address.postalCode", ""), "FMT0074", "postal code or geocoordinates"),
        (_without("shippingData.logisticsInfo.0.selectedSla"), "CHK00308", "selectedSla"),
        (_without("shippingData.logisticsInfo.0.price"), "CHK00308", "logisticsInfo[0].price"),
        (_with("shippingData.logisticsInfo.0.itemIndex", 1), "FMT0057", "Invalid item index"),
        (_with("shippingData.updateStatus", "outdated"), "ORD022", "old"),
    ],
)
async def test_place_order_validates_the_schema(
    client: httpx.AsyncClient, sandbox: VtexSandbox, body: dict[str, Any], code: str, text: str
) -> None:
    assert_vtex_error(await place(client, body), 400, code, text)
    assert sandbox.orders == {}


async def test_duplicate_order_is_fmt009(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    assert (await place(client, ORDER)).status_code == 200
    again = await place(client, ORDER)
    assert_vtex_error(
        again,
        400,
        "FMT009",
        "The request order with marketplace order id 1001 for affiliate MKP already exists",
    )
    assert sandbox.stock["1"] == 100_000 - 2  # reserved once
    # Another affiliate may use the same marketplace order id.
    assert (await place(client, ORDER, affiliateId="XYZ")).status_code == 200


async def test_recreating_a_canceled_order_is_fmt0060(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await place(client, ORDER)
    sandbox.orders[OMS_ID].status = "canceled"
    assert_vtex_error(
        await place(client, ORDER),
        400,
        "FMT0060",
        "marketplace order id 1001 for affiliate MKP is already canceled and cannot be recreated",
    )


@pytest.mark.parametrize("sku", ["999", "4", "5"])
async def test_unsellable_item_is_ord027(client: httpx.AsyncClient, sku: str) -> None:
    body = single_item_order(sku, 1, "Normal", 0)
    assert_vtex_error(await place(client, body), 400, "ORD027", f"Item {sku} not found or unavailable")


async def test_sales_channel_query_decides_sellability(client: httpx.AsyncClient) -> None:
    body = single_item_order("5", 1, "Normal", 49990 + 500)
    assert (await place(client, body, sc="2")).status_code == 200


async def test_insufficient_stock_is_ord028(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    assert_vtex_error(await place(client, single_item_order("6", 1, "Normal", 0)), 400, "ORD028", "Item 6(1)")
    # Stock is counted per SKU across item lines, and checked before carriers (SKU 7 has none).
    body = single_item_order("7", 101, "Normal", 0)
    assert_vtex_error(await place(client, body), 400, "ORD028", "Item 7(1) is not available")
    sandbox.stock["1"] = 3
    two_lines = order(items=[{"id": "1", "quantity": 2, "seller": "1"}, {"id": "1", "quantity": 2, "seller": "1"}])
    assert_vtex_error(await place(client, two_lines), 400, "ORD028")


async def test_item_checks_come_before_price(client: httpx.AsyncClient) -> None:
    body = order(items=[{"id": "999", "quantity": 1, "seller": "1"}], marketplacePaymentValue=1)
    assert_vtex_error(await place(client, body), 400, "ORD027")


async def test_sku_without_carrier_is_fmt003(client: httpx.AsyncClient) -> None:
    body = single_item_order("7", 1, "Normal", 259990)
    assert_vtex_error(await place(client, body), 400, "FMT003", "There is no SLA for item 7(1)")


async def test_item_without_logistics_entry_is_fmt004(client: httpx.AsyncClient) -> None:
    body = order()
    body["shippingData"]["logisticsInfo"] = []
    assert_vtex_error(await place(client, body), 400, "FMT004", "There is no selected SLA for item 1(1)")


async def test_unoffered_sla_is_fmt010(client: httpx.AsyncClient) -> None:
    body = single_item_order("1", 1, "Turbo", 4990)
    assert_vtex_error(await place(client, body), 400, "FMT010", "The selected SLA for item 1(1) is not available")
    mismatch = single_item_order("1", 1, "Normal", 5490)
    mismatch["shippingData"]["logisticsInfo"][0]["selectedDeliveryChannel"] = "pickup-in-point"
    assert_vtex_error(await place(client, mismatch), 400, "FMT010")


async def test_pickup_where_the_sku_has_no_pickup_point_is_fmt010() -> None:
    sandbox = make_sandbox(skus=[SandboxSku("10", "Entrega só", 1000, 5, slas=(NORMAL,))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex", headers=HEADERS
    ) as http:
        pickup = await place(http, single_item_order("10", 1, PICKUP.id, 1000))
        assert_vtex_error(pickup, 400, "FMT010", "item 10(1)")
        assert (await place(http, single_item_order("10", 1, NORMAL.id, 1500))).status_code == 200


async def test_price_divergence_is_fmt007(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    # Desired value: catalog price x quantity plus the catalog price of the selected SLA, whatever the
    # request's own item and freight prices say.
    body = order(marketplacePaymentValue=10000)
    body["shippingData"]["logisticsInfo"][0]["price"] = 20
    response = await place(client, body)
    assert_vtex_error(response, 400, "FMT007", "Payment total (10000) differs from store desired value (10480)")
    assert sandbox.stock["1"] == 100_000


async def test_price_divergence_with_is_created_async(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    response = await place(client, order(marketplacePaymentValue=10000, isCreatedAsync=True))
    assert response.status_code == 200
    stored = sandbox.orders[OMS_ID]
    assert (stored.status, stored.is_created_async) == ("waiting-for-manual-authorization", True)


async def test_pickup_order_totals(client: httpx.AsyncClient) -> None:
    body = single_item_order("8", 1, "Retirada Centro", 7990)
    assert (await place(client, body)).status_code == 200


# --- authorize dispatch ------------------------------------------------------------------------------


async def authorize(client: httpx.AsyncClient, order_id: str, body: Any, **query: str) -> httpx.Response:
    return await client.post(f"{PLACE}/{order_id}/fulfill", params={**QUERY, **query}, json=body)


async def test_authorize_dispatch_moves_to_ready_for_handling(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await place(client, ORDER)
    response = await authorize(client, "MKP-1001", {"marketplaceOrderId": "1001"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert_matches_spec(
        "Marketplace Protocol - External Marketplace Orders",
        "/components/schemas/orderIDFulfillmentResponse",
        body,
    )
    assert body["status"] == "success"
    assert body["orderId"] == OMS_ID
    assert body["details"]["marketplaceOrderId"] == "1001"
    assert body["details"]["status"] == "ready-for-handling"
    assert sandbox.orders[OMS_ID].status == "ready-for-handling"
    # Idempotent, in the OMS id form and the guides' array form too.
    again = await authorize(client, OMS_ID, [{"marketplaceOrderId": "1001"}])
    assert again.status_code == 201
    assert again.json()["details"]["status"] == "ready-for-handling"


async def test_authorize_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert_vtex_error(await authorize(client, "MKP-404", {"marketplaceOrderId": "404"}), 404, None, "MKP-404")
    await place(client, ORDER)
    other_affiliate = await authorize(client, "MKP-1001", {"marketplaceOrderId": "1001"}, affiliateId="XYZ")
    assert_vtex_error(other_affiliate, 404, None)


async def test_authorize_checks_body_and_affiliate(client: httpx.AsyncClient) -> None:
    await place(client, ORDER)
    mismatch = await authorize(client, "MKP-1001", {"marketplaceOrderId": "1002"})
    assert_vtex_error(mismatch, 400, "FMT0071", "Marketplace id do not match with original order")
    assert_vtex_error(await authorize(client, "MKP-1001", {}), 400, "FMT015")
    no_affiliate = await client.post(f"{PLACE}/MKP-1001/fulfill", json={"marketplaceOrderId": "1001"})
    assert_vtex_error(no_affiliate, 400, "FMT0021")


async def test_authorize_waits_for_manual_price_approval(client: httpx.AsyncClient) -> None:
    await place(client, order(marketplacePaymentValue=1, isCreatedAsync=True))
    response = await authorize(client, "MKP-1001", {"marketplaceOrderId": "1001"})
    assert_vtex_error(response, 400, "FMT0056")


# --- OMS get order -----------------------------------------------------------------------------------


async def test_get_order_has_the_orders_api_shape(client: httpx.AsyncClient) -> None:
    await place(client, ORDER)
    await authorize(client, "MKP-1001", {"marketplaceOrderId": "1001"})
    response = await client.get(f"/api/oms/pvt/orders/{OMS_ID}")
    assert response.status_code == 200
    body = response.json()
    assert_matches_spec("Orders API", response_pointer("/api/oms/pvt/orders/{orderId}", "get"), body)
    expected = {
        "orderId": OMS_ID,
        "marketplaceOrderId": "1001",
        "marketplaceServicesEndpoint": ORDER["marketplaceServicesEndpoint"],
        "origin": "Fulfillment",
        "affiliateId": "MKP",
        "salesChannel": "1",
        "status": "ready-for-handling",
        "value": 10480,
        "allowCancellation": True,
        "invoiceData": None,
        "packageAttachment": {"packages": []},
    }
    assert {key: body[key] for key in expected} == expected
    assert body["marketplace"]["baseURL"] == ORDER["marketplaceServicesEndpoint"]
    assert {t["id"]: t["value"] for t in body["totals"]} == {
        "Items": 9980,
        "Discounts": 0,
        "Shipping": 500,
        "Tax": 0,
    }
    (item,) = body["items"]
    assert {k: item[k] for k in ("id", "quantity", "seller", "price", "sellingPrice", "name")} == {
        "id": "1",
        "quantity": 2,
        "seller": "1",
        "price": 4990,
        "sellingPrice": 4990,
        "name": "Camiseta Azul M",
    }
    assert item["productId"]
    assert body["clientProfileData"]["email"] == "ada@example.com"
    assert body["shippingData"]["address"]["postalCode"] == "22250-040"
    assert body["shippingData"]["logisticsInfo"][0]["selectedSla"] == "Normal"
    assert body["authorizedDate"] is not None
    by_sequence = await client.get(f"/api/oms/pvt/orders/seq{body['sequence']}")
    assert by_sequence.json()["orderId"] == OMS_ID


async def test_get_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert_vtex_error(await client.get("/api/oms/pvt/orders/MKP-1-01"), 404, None, "MKP-1-01")


# --- faults --------------------------------------------------------------------------------------------


async def test_fault_answers_status_and_code_the_given_number_of_times(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    sandbox.add_fault(FaultRule("POST", "/fulfillment/pvt/orders", 503, code="CHK0290", message="down", times=2))
    for _ in range(2):
        assert_vtex_error(await place(client, ORDER), 503, "CHK0290", "down")
    assert sandbox.orders == {}  # a plain fault never reaches the operation
    assert (await place(client, ORDER)).status_code == 200
    assert sandbox.faults == []


async def test_fault_method_filter_and_forever(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    sandbox.add_fault(FaultRule("GET", "/api/oms/", 500, times=-1))
    await place(client, ORDER)
    for _ in range(3):
        assert (await client.get(f"/api/oms/pvt/orders/{OMS_ID}")).status_code == 500
    assert (await client.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/1")).status_code == 200


async def test_fault_comes_before_auth(sandbox: VtexSandbox) -> None:
    sandbox.add_fault(FaultRule(None, "/api/", 502))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex") as bare:
        response = await bare.get("/api/oms/pvt/orders/X")
    assert_vtex_error(response, 502, None, "Sandbox injected fault")


async def test_429_carries_retry_after(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    sandbox.add_fault(FaultRule("POST", "orderForms/simulation", 429, code="CHK0290.4", retry_after=7))
    sandbox.add_fault(FaultRule("POST", "orderForms/simulation", 429))
    sandbox.add_fault(FaultRule("POST", "orderForms/simulation", 503, retry_after=30))
    items = {"items": [{"id": "1", "quantity": 1, "seller": "1"}]}
    first = await client.post(SIMULATION, json=items)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    second = await client.post(SIMULATION, json=items)
    assert (second.status_code, second.headers["Retry-After"]) == (429, "1")
    third = await client.post(SIMULATION, json=items)
    assert (third.status_code, third.headers["Retry-After"]) == (503, "30")
    assert (await client.post(SIMULATION, json=items)).status_code == 200


async def test_after_effect_creates_the_order_but_loses_the_answer(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    sandbox.add_fault(FaultRule("POST", "/api/fulfillment/pvt/orders", 504, after_effect=True))
    assert_vtex_error(await place(client, ORDER), 504, None)
    assert sandbox.orders[OMS_ID].status == "waiting-ffmt-authorization"
    assert sandbox.requests[-1].status == 504
    # The connector's retry meets the order it already created.
    assert_vtex_error(await place(client, ORDER), 400, "FMT009")


async def test_delay_holds_the_answer(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    sandbox.add_fault(FaultRule("GET", "/api/oms/", 500, delay_seconds=0.2))
    started = time.monotonic()
    response = await client.get(f"/api/oms/pvt/orders/{OMS_ID}")
    assert response.status_code == 500
    assert time.monotonic() - started >= 0.2


async def test_delay_after_effect_times_the_client_out_after_the_work(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    sandbox.add_fault(FaultRule("POST", "/api/fulfillment/", 500, delay_seconds=5, after_effect=True))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(place(client, ORDER), timeout=0.2)
    assert OMS_ID in sandbox.orders
    assert sandbox.requests[-1].status == 500


def test_fault_rule_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FaultRule("GET", "/", 200, times=0)
    with pytest.raises(ValueError):
        FaultRule("GET", "/", 99)
    with pytest.raises(ValueError):
        FaultRule("GET", "/", 500, delay_seconds=-1)
    for probability in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            FaultRule("GET", "/", 500, probability=probability)


SKU_CONTEXT = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"


async def statuses(client: httpx.AsyncClient, count: int) -> list[int]:
    return [(await client.get(SKU_CONTEXT)).status_code for _ in range(count)]


async def test_probability_answers_a_seeded_share_of_the_requests(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    sandbox.add_fault(FaultRule("GET", "/stockkeepingunitbyid/", 503, times=-1, probability=0.25))
    first = await statuses(client, 400)
    assert 60 <= first.count(503) <= 140  # 100 expected; the bounds are about 5 standard deviations
    assert set(first) == {200, 503}
    # The same seed draws the same sequence: a fault run can be repeated.
    sandbox.reset()
    sandbox.add_fault(FaultRule("GET", "/stockkeepingunitbyid/", 503, times=-1, probability=0.25))
    assert await statuses(client, 400) == first
    other = make_sandbox(fault_seed=1)
    other.add_fault(FaultRule("GET", "/stockkeepingunitbyid/", 503, times=-1, probability=0.25))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other.app), base_url="http://vtex") as http:
        http.headers.update(HEADERS)
        assert await statuses(http, 400) != first


async def test_a_request_a_rule_lets_pass_meets_the_next_rule(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    sandbox.add_fault(FaultRule(None, "/api/", 503, times=-1, probability=0.5))
    sandbox.add_fault(FaultRule(None, "/api/", 429, times=-1))
    seen = await statuses(client, 100)
    assert set(seen) == {503, 429}


async def test_times_counts_only_the_requests_a_random_rule_answers(
    client: httpx.AsyncClient, sandbox: VtexSandbox
) -> None:
    sandbox.add_fault(FaultRule("GET", "/stockkeepingunitbyid/", 500, times=3, probability=0.5))
    seen = await statuses(client, 100)
    assert seen.count(500) == 3
    assert sandbox.faults == []


# --- recording, reset and the admin API -------------------------------------------------------------------


async def test_requests_are_recorded_with_the_token_masked(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    await place(client, ORDER)
    await client.get("/_sandbox/orders")
    (recorded,) = sandbox.requests
    assert (recorded.method, recorded.path, recorded.status) == ("POST", PLACE, 200)
    assert recorded.query == QUERY
    assert recorded.body == ORDER
    assert recorded.headers["x-vtex-api-apptoken"] == "***"
    assert recorded.headers["x-vtex-api-appkey"] == AUTH["X-VTEX-API-AppKey"]
    assert recorded.headers["content-type"] == "application/json"


async def test_reset_clears_everything_and_restores_stock(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    orders, requests = sandbox.orders, sandbox.requests
    await place(client, ORDER)
    sandbox.add_fault(FaultRule(None, "/", 500))
    sandbox.reset()
    assert (sandbox.orders, sandbox.requests, sandbox.faults) == ({}, [], [])
    assert orders is sandbox.orders and requests is sandbox.requests
    assert sandbox.stock["1"] == 100_000
    assert (await place(client, ORDER)).status_code == 200


async def test_admin_api(client: httpx.AsyncClient, sandbox: VtexSandbox) -> None:
    fault = {
        "method": "POST",
        "path_contains": "MKP-1001/fulfill",
        "status": 429,
        "code": "X1",
        "retry_after": 3,
    }
    created = await client.post("/_sandbox/faults", json=fault)
    assert created.status_code == 201
    assert (created.json()["times"], created.json()["probability"]) == (1, 1.0)
    assert [f["status"] for f in (await client.get("/_sandbox/faults")).json()] == [429]
    bad = await client.post("/_sandbox/faults", json={"method": "GET", "path_contains": "/", "status": "500"})
    assert bad.status_code == 400
    unknown = await client.post("/_sandbox/faults", json={**fault, "colour": "red"})
    assert unknown.status_code == 400
    for probability in ("0.2", True, 0, 2):
        refused = await client.post("/_sandbox/faults", json={**fault, "probability": probability})
        assert refused.status_code == 400

    await place(client, ORDER)
    throttled = await authorize(client, "MKP-1001", {"marketplaceOrderId": "1001"})
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")

    orders = (await client.get("/_sandbox/orders")).json()
    assert [(o["order_id"], o["status"], o["marketplace_order_id"]) for o in orders] == [
        (OMS_ID, "waiting-ffmt-authorization", "1001")
    ]
    assert orders[0]["body"] == ORDER
    recorded = (await client.get("/_sandbox/requests")).json()
    assert [(r["method"], r["status"]) for r in recorded] == [("POST", 200), ("POST", 429)]
    assert recorded[0]["headers"]["x-vtex-api-apptoken"] == "***"

    canceled = await client.post(f"/_sandbox/orders/{OMS_ID}/status", json={"status": "canceled"})
    assert canceled.status_code == 200
    assert_vtex_error(await place(client, ORDER), 400, "FMT0060")

    random_fault = await client.post("/_sandbox/faults", json={**fault, "times": -1, "probability": 0.2})
    assert (random_fault.status_code, random_fault.json()["probability"]) == (201, 0.2)
    assert (await client.delete("/_sandbox/faults")).status_code == 204
    assert sandbox.faults == []
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert (sandbox.orders, sandbox.requests) == ({}, [])
