"""The VTEX sandbox's Channel Order API (New Order Integration): EnqueueNewOrder and UpdateOrderStatus
answer SOI003 at once, then the processing result is POSTed to `{connectorEndpoint}/order-integration/
notification/processing-result?an=...`, as the External Marketplace Orders spec and the collect-orders /
update-order-status guides describe. Every request is checked against the spec (tests/contract), every
answer against its response schema, every notification against the contract."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sandboxes.vtex import FaultRule, VtexSandbox
from sandboxes.vtex_callbacks import client_sender
from sandboxes.vtex_order_integration import ENQUEUE_PATH, STATUS_PATH, NotificationFault
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.http_server import HttpServer
from tests.contract.openapi import ContractViolation, validate_request
from tests.test_vtex_sandbox import AUTH, HEADERS, SUFFIX, assert_matches_spec, make_sandbox, response_pointer

JSON = dict[str, Any]
SPEC = "Marketplace Protocol - External Marketplace Orders"
ENQUEUE_ANSWER = response_pointer(ENQUEUE_PATH, "post")
ENQUEUE_ERROR = response_pointer(ENQUEUE_PATH, "post", "default")
STATUS_ANSWER = response_pointer(STATUS_PATH, "put")
CONNECTOR = "http://connector.test/vtex/tok3n"
NOTIFICATION_PATH = "/vtex/tok3n/order-integration/notification/processing-result"
CONTRACT_KEYS = {
    "marketplaceOrderId",
    "accountName",
    "code",
    "flow",
    "success",
    "operationId",
    "errors",
    "fields",
    "message",
}

# SKU 1 (4990) x2 with "Normal" (500): the store's value is 10480, as in the legacy tests.
ORDER: JSON = {
    "marketplaceOrderId": "2001",
    "connectorName": "Reference",
    "connectorEndpoint": CONNECTOR,
    "marketplaceOrderStatus": "new",
    "marketplacePaymentValue": 10480,
    "allowFranchises": False,
    "items": [{"id": "1", "price": 4990, "quantity": 2}],
    "clientProfileData": {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": "+5521999999999",
        "document": "12345678900",
        "corporateDocument": None,
        "corporatePhone": None,
        "corporateName": None,
        "tradeName": None,
        "stateInscription": None,
    },
    "shippingData": {
        "logisticsInfo": [
            {
                "price": 500,
                "selectedDeliveryChannel": "delivery",
                "selectedSla": "Normal",
                "lockTTL": "5d",
                "shippingEstimate": "5bd",
                "deliveryIds": [{"warehouseId": "1_1"}],
            }
        ],
        "selectedAddresses": [
            {
                "addressType": "residential",
                "addressId": "home",
                "receiverName": "Ada Lovelace",
                "postalCode": "22250-040",
                "city": "Rio de Janeiro",
                "state": "RJ",
                "country": "BRA",
                "street": "Praia de Botafogo",
                "number": "300",
                "geoCoordinates": {"latitude": -22.94, "longitude": -43.18},
            }
        ],
        "isFob": False,
        "isMarketplaceFulfillment": False,
    },
    "invoiceData": {"userPaymentInfo": {"paymentMethods": ["creditCard"]}},
}
OMS_ID = f"MKP-2001{SUFFIX}"


def order(marketplace_order_id: str = "2001", **changes: Any) -> JSON:
    body = copy.deepcopy(ORDER) | {"marketplaceOrderId": marketplace_order_id}
    body.update(changes)
    return body


def one_item(sku_id: str, quantity: int, sla: str, payment: int, **changes: Any) -> JSON:
    body = order(**changes)
    body["items"] = [{"id": sku_id, "price": 100, "quantity": quantity}]
    body["shippingData"]["logisticsInfo"][0]["selectedSla"] = sla
    body["marketplacePaymentValue"] = payment
    return body


class Receiver:
    """The connector's notification endpoint: records (path, query, body) and answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.seen: list[tuple[str, str, JSON]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, request.url.query, await request.json()))
        return JSONResponse({}, self.status)

    @property
    def bodies(self) -> list[JSON]:
        for path, query, body in self.seen:
            assert (path, query) == (NOTIFICATION_PATH, "an=sandbox")
            assert_notification(body)
        return [body for _, _, body in self.seen]

    def codes(self) -> list[tuple[str, str]]:
        return [(body["flow"], body["code"]) for body in self.bodies]


def assert_notification(body: JSON) -> None:
    """The notification carries the answers' contract (collect-orders guide: "the same data contract").
    With errors, it is checked against `Deliverybyfranchiseseller`, the same contract without
    `Deliverybyseller`'s FMT001-FMT005 enum on `errors[].code` (the spec says the code comes from the
    source)."""
    assert set(body) == CONTRACT_KEYS
    if body["flow"] == "ApproveOrder":
        schema = "/components/schemas/Approveorder"
    else:
        schema = "/components/schemas/" + (
            "Deliverybyseller" if body["errors"] is None else "Deliverybyfranchiseseller"
        )
    assert_matches_spec(SPEC, schema, body)
    assert body["success"] is body["code"].startswith("S")
    assert (body["fields"] is not None) is body["success"]
    assert body["accountName"] == "sandbox" and body["operationId"]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest_asyncio.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[VtexSandbox]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as to_receiver:
        vtex = make_sandbox(
            callback_sender=client_sender(to_receiver),
            callback_retry_delays=(0.01, 0.02),
            order_integration_delay_seconds=0,
        )
        yield vtex
        vtex.reset()  # a failed test must not leave work running into the next one


@pytest_asyncio.fixture
async def client(sandbox: VtexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtex", headers=HEADERS) as http:
        yield http


async def enqueue(client: httpx.AsyncClient, body: Any, affiliate_id: str = "MKP", *, status: int = 200) -> JSON:
    query = {"affiliateId": affiliate_id, "an": "sandbox"}
    if status == 200:
        assert validate_request("POST", ENQUEUE_PATH, query, HEADERS, body, spec=SPEC) == "EnqueueNewOrder"
    response = await client.post(ENQUEUE_PATH, params=query, json=body)
    assert response.status_code == status, response.text
    answer: JSON = response.json()
    assert set(answer) == CONTRACT_KEYS
    assert_matches_spec(SPEC, ENQUEUE_ANSWER if status == 200 else ENQUEUE_ERROR, answer)
    if status == 200:
        assert (answer["code"], answer["flow"], answer["success"]) == ("SOI003", "PlaceOrder", True)
        assert answer["message"] == "Order successfully enqueued" and answer["operationId"]
        assert answer["accountName"] == "sandbox" and answer["errors"] is None and answer["fields"] is None
        assert answer["marketplaceOrderId"] in (None, body["marketplaceOrderId"])
    return answer


async def update(
    client: httpx.AsyncClient, marketplace_order_id: str = "2001", status: str = "approved", **changes: Any
) -> JSON:
    body = {
        "marketplaceOrderId": marketplace_order_id,
        "marketplaceOrderStatus": status,
        "connectorName": "Reference",
        "connectorEndpoint": CONNECTOR,
    } | changes
    assert validate_request("PUT", STATUS_PATH, {"an": "sandbox"}, HEADERS, body, spec=SPEC) == "UpdateOrderStatus"
    response = await client.put(STATUS_PATH, params={"an": "sandbox"}, json=body)
    assert response.status_code == 200, response.text
    answer: JSON = response.json()
    assert_matches_spec(SPEC, STATUS_ANSWER, answer)
    assert (answer["code"], answer["flow"], answer["marketplaceOrderId"]) == (
        "SOI003",
        "ApproveOrder",
        marketplace_order_id,
    )
    assert answer["operationId"]
    return answer


async def oms_status(client: httpx.AsyncClient, order_id: str = OMS_ID) -> str:
    response = await client.get(f"/api/oms/pvt/orders/{order_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_spec("Orders API", response_pointer("/api/oms/pvt/orders/{orderId}", "get"), body)
    assert (body["orderId"], body["marketplaceOrderId"], body["affiliateId"]) == (
        order_id,
        order_id.split("-")[1],
        "MKP",
    )
    status: str = body["status"]
    return status


async def result(sandbox: VtexSandbox, receiver: Receiver) -> JSON:
    """The one notification this test's last request caused."""
    await sandbox.drain_callbacks()
    assert receiver.bodies, "no notification arrived"
    return receiver.bodies[-1]


# --- happy paths -------------------------------------------------------------------------------------


async def test_new_order_is_integrated_waits_for_payment_then_is_approved(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await enqueue(client, order())
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001")]
    integrated = receiver.bodies[0]
    assert integrated["operationId"] == answer["operationId"]
    assert integrated["marketplaceOrderId"] == "2001"
    assert integrated["fields"] == {"mainOrderId": OMS_ID}
    assert integrated["message"] == "Order integrated successfully"
    assert await oms_status(client) == "payment-pending"

    approval = await update(client)
    await sandbox.drain_callbacks()
    assert receiver.codes()[1:] == [("ApproveOrder", "SOI002")]
    approved = receiver.bodies[1]
    assert approved["operationId"] == approval["operationId"] != answer["operationId"]
    assert approved["fields"]["mainOrderId"] == OMS_ID
    assert await oms_status(client) == "ready-for-handling"
    # Approving again is harmless.
    await update(client)
    assert (await result(sandbox, receiver))["code"] == "SOI002"


async def test_approved_order_is_integrated_then_approved_in_two_notifications(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await enqueue(client, order(marketplaceOrderStatus="APPROVED"))  # the guides' upper case
    sent = sandbox.requests[-1]
    assert validate_request(sent.method, sent.path, sent.query, sent.headers, sent.body, spec=SPEC) == "EnqueueNewOrder"
    assert sent.body["marketplaceOrderStatus"] == "APPROVED"  # recorded as sent
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001"), ("ApproveOrder", "SOI002")]
    assert {body["operationId"] for body in receiver.bodies} == {answer["operationId"]}
    assert await oms_status(client) == "ready-for-handling"


async def test_interest_and_an_empty_sla_are_accepted(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = order(marketplacePaymentValue=10780, marketplaceInterestValue=300)
    body["shippingData"]["logisticsInfo"][0]["selectedSla"] = ""  # Fulfillment picks one (guide, scenario 5)
    await enqueue(client, body)
    assert (await result(sandbox, receiver))["code"] == "SOI001"
    response = await client.get(f"/api/oms/pvt/orders/{OMS_ID}")
    assert response.json()["shippingData"]["logisticsInfo"][0]["selectedSla"] == "Normal"


async def test_default_endpoint_stands_in_for_the_app_template(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as to_receiver:
        vtex = make_sandbox(
            callback_sender=client_sender(to_receiver), order_integration_delay_seconds=0, connector_endpoint=CONNECTOR
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=vtex.app), base_url="http://vtex", headers=HEADERS
        ) as http:
            body = order()
            del body["connectorEndpoint"], body["connectorName"]  # optional on EnqueueNewOrder
            await enqueue(http, body)
            assert (await result(vtex, receiver))["code"] == "SOI001"


async def test_over_real_http_with_the_default_sender(receiver: Receiver) -> None:
    """Both ends on loopback sockets; the sandbox notifies with its own HTTP client."""
    async with HttpServer(receiver.app, name="connector-receiver") as connector:
        vtex = make_sandbox(order_integration_delay_seconds=0.05)
        async with (
            HttpServer(vtex.app, name="vtex-sandbox") as server,
            httpx.AsyncClient(base_url=server.url, headers=HEADERS) as http,
        ):
            endpoint = connector.url + "/vtex/tok3n"
            await enqueue(http, order(connectorEndpoint=endpoint, marketplaceOrderStatus="approved"))
            await vtex.drain_callbacks()
            assert receiver.codes() == [("PlaceOrder", "SOI001"), ("ApproveOrder", "SOI002")]
            assert await oms_status(http) == "ready-for-handling"


# --- business rules ------------------------------------------------------------------------------------


async def test_duplicate_marketplace_order_id_is_eoi007(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await enqueue(client, order())
    await enqueue(client, order())
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001"), ("PlaceOrder", "EOI007")]
    duplicate = receiver.bodies[1]
    assert duplicate["message"] == "Duplicated order" and duplicate["success"] is False
    assert duplicate["errors"][0]["code"] == "EOI007"
    assert len(sandbox.orders) == 1
    # Another affiliate may use the same marketplace order id.
    await enqueue(client, order(), affiliate_id="XYZ")
    assert (await result(sandbox, receiver))["fields"]["mainOrderId"] == f"XYZ-2001{SUFFIX}"


@pytest.mark.parametrize(
    ("body", "code", "underlying"),
    [
        (one_item("6", 1, "Normal", 90490), "EOI002", "ORD028"),  # out of stock
        (one_item("4", 1, "Normal", 4490), "EOI002", "ORD027"),  # inactive SKU
        (one_item("5", 1, "Normal", 50490), "EOI002", "ORD027"),  # outside the trade policy
        (one_item("7", 1, "Normal", 259990), "EOI002", "FMT003"),  # no carrier serves it
        (one_item("1", 1, "Teleport", 5490), "EOI002", "FMT010"),  # an SLA the seller does not have
        (one_item("3", 1, "Retirada Centro", 15990), "EOI002", "FMT010"),  # pickup point chosen as delivery
        (one_item("1", 1, "Normal", 9999), "EOI003", "FMT007"),  # price divergence, no authorization rule
        (one_item("999", 1, "Normal", 600), "EOI004", "ORD027"),  # not in the catalog
        (one_item("1", 0, "Normal", 500), "EOI005", "FMT0038"),  # quantity must be above zero
    ],
)
async def test_placement_rules_become_channel_order_codes(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver, body: JSON, code: str, underlying: str
) -> None:
    stock_before = dict(sandbox.stock)
    await enqueue(client, body)
    notification = await result(sandbox, receiver)
    assert (notification["flow"], notification["code"], notification["success"]) == ("PlaceOrder", code, False)
    assert [error["code"] for error in notification["errors"]] == [underlying]
    assert notification["errors"][0]["source"] in ("Checkout", "Fulfillment")
    assert notification["fields"] is None
    assert sandbox.orders == {} and sandbox.stock == stock_before
    missing = await client.get(f"/api/oms/pvt/orders/{OMS_ID}")
    assert missing.status_code == 404
    # The order was not created, so sending it again (fixed) is not a duplicate.
    await enqueue(client, order())
    assert (await result(sandbox, receiver))["code"] == "SOI001"


async def test_invalid_values_are_eoi005(sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver) -> None:
    bad_email = order(clientProfileData=ORDER["clientProfileData"] | {"email": "ada.example.com"})
    await enqueue(client, bad_email)
    assert (await result(sandbox, receiver))["errors"][0]["code"] == "FMT0032"
    two_items = order(items=[*ORDER["items"], {"id": "2", "price": 29990, "quantity": 1}])
    await enqueue(client, two_items)  # one logisticsInfo for two items
    notification = await result(sandbox, receiver)
    assert notification["code"] == "EOI005" and "logisticsInfo" in notification["errors"][0]["description"]


async def test_price_divergence_within_the_allowance_rate_is_integrated(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await enqueue(client, order(marketplacePaymentValue=10000, priceDivergenceAllowanceRate=0.05))
    assert (await result(sandbox, receiver))["code"] == "SOI001"
    assert await oms_status(client) == "payment-pending"
    await enqueue(client, order("2002", marketplacePaymentValue=9000, priceDivergenceAllowanceRate=0.05))
    assert (await result(sandbox, receiver))["code"] == "EOI003"


async def test_price_divergence_with_authorization_rules_waits_for_the_seller(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as to_receiver:
        vtex = make_sandbox(
            callback_sender=client_sender(to_receiver),
            order_integration_delay_seconds=0,
            price_divergence_affiliates=["MKP"],
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=vtex.app), base_url="http://vtex", headers=HEADERS
        ) as http:
            await enqueue(http, order(marketplacePaymentValue=9999))
            assert (await result(vtex, receiver))["code"] == "SOI001"
            assert await oms_status(http) == "waiting-for-manual-authorization"
            await update(http)
            waiting = await result(vtex, receiver)
            assert (waiting["flow"], waiting["code"], waiting["fields"]) == ("ApproveOrder", "EOI011", None)
            # Sent as approved: integrated, and its automatic approval waits too.
            await enqueue(http, order("2002", marketplacePaymentValue=9999, marketplaceOrderStatus="approved"))
            await vtex.drain_callbacks()
            assert receiver.codes()[-2:] == [("PlaceOrder", "SOI001"), ("ApproveOrder", "EOI011")]
            # The seller authorizes (the sandbox's admin stands in for VTEX's Admin); the retry goes through.
            authorized = await http.post("/_sandbox/orders/MKP-2001/status", json={"status": "payment-pending"})
            assert authorized.status_code == 200
            await update(http)
            assert (await result(vtex, receiver))["code"] == "SOI002"
            # Another affiliate has no rule: the same divergence fails.
            await enqueue(http, order(marketplacePaymentValue=9999), affiliate_id="XYZ")
            assert (await result(vtex, receiver))["code"] == "EOI003"


# --- approval errors -------------------------------------------------------------------------------------


async def test_approval_before_integration_is_eoi008(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await update(client, "never-sent")
    not_there = await result(sandbox, receiver)
    assert (not_there["flow"], not_there["code"], not_there["success"]) == ("ApproveOrder", "EOI008", False)
    assert not_there["marketplaceOrderId"] == "never-sent"
    # Still in the queue: the approval is processed first.
    sandbox.order_integration.delay_seconds = 0.5
    await enqueue(client, order())
    sandbox.order_integration.delay_seconds = 0
    await update(client)
    await sandbox.drain_callbacks()
    assert receiver.codes()[1:] == [("ApproveOrder", "EOI008"), ("PlaceOrder", "SOI001")]
    # A failed integration is not integrated either.
    await enqueue(client, one_item("6", 1, "Normal", 90490, marketplaceOrderId="2002"))
    await update(client, "2002")
    await sandbox.drain_callbacks()
    assert receiver.codes()[-2:] == [("PlaceOrder", "EOI002"), ("ApproveOrder", "EOI008")]


async def test_approving_a_canceled_order_is_eoi009(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await enqueue(client, order())
    await sandbox.drain_callbacks()
    canceled = await client.post(f"/_sandbox/orders/{OMS_ID}/status", json={"status": "canceled"})
    assert canceled.status_code == 200
    await update(client)
    refused = await result(sandbox, receiver)
    assert (refused["flow"], refused["code"], refused["fields"]) == ("ApproveOrder", "EOI009", None)
    assert refused["errors"][0]["source"] == "Order Integration"
    assert await oms_status(client) == "canceled"


async def test_status_update_to_new_changes_nothing(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await enqueue(client, order())
    await update(client, status="new")
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001"), ("ApproveOrder", "EOI001")]
    assert await oms_status(client) == "payment-pending"


# --- malformed requests and auth ----------------------------------------------------------------------------


def _without(path: str) -> JSON:
    body = order()
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without("marketplaceOrderId"), "marketplaceOrderId is required"),
        (_without("allowFranchises"), "allowFranchises is required"),
        (_without("shippingData.logisticsInfo.0.selectedSla"), "shippingData.logisticsInfo[0].selectedSla is required"),
        (
            _without("shippingData.selectedAddresses.0.addressId"),
            "shippingData.selectedAddresses[0].addressId is required",
        ),
        (_without("clientProfileData.corporateName"), "clientProfileData.corporateName is required"),
        (_without("invoiceData.userPaymentInfo"), "invoiceData.userPaymentInfo is required"),
        (order(marketplacePaymentValue="10480"), "marketplacePaymentValue must be an integer"),
        (order(items=[{"id": 1, "price": 4990, "quantity": 2}]), "items[0].id must be a string"),
        (
            order(customData={"customApps": [{"id": "x", "major": 1, "fields": {}}]}),
            "customData.customApps[0].fields.marketplacePaymentMethod is required",
        ),
        (order(marketplaceOrderStatus="paid"), "marketplaceOrderStatus must be new or approved"),
        (order(connectorEndpoint="connector.test/vtex"), "connectorEndpoint must be a URL"),
        ([order()], "body must be an object"),
    ],
)
async def test_malformed_enqueue_is_400_naming_the_field(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver, body: Any, field: str
) -> None:
    if "paid" not in str(body) and "connector.test/vtex" not in str(body):  # the spec's types cannot say these
        with pytest.raises(ContractViolation):
            validate_request("POST", ENQUEUE_PATH, {"affiliateId": "MKP"}, HEADERS, body, spec=SPEC)
    answer = await enqueue(client, body, status=400)
    assert (answer["code"], answer["flow"], answer["success"]) == ("EOI005", "PlaceOrder", False)
    assert field in answer["message"] and field in answer["errors"][0]["description"]
    await sandbox.drain_callbacks()
    assert receiver.seen == [] and sandbox.orders == {}


async def test_missing_affiliate_and_bad_status_updates_are_400(client: httpx.AsyncClient) -> None:
    with pytest.raises(ContractViolation):
        validate_request("POST", ENQUEUE_PATH, {}, HEADERS, order(), spec=SPEC)
    response = await client.post(ENQUEUE_PATH, json=order())
    assert response.status_code == 400 and "affiliateId" in response.json()["message"]
    assert_matches_spec(SPEC, ENQUEUE_ERROR, response.json())
    changed: list[tuple[JSON, str]] = [
        ({"connectorEndpoint": CONNECTOR + "?an=sandbox"}, "does not accept query strings"),
        ({"connectorName": None}, "connectorName must be a string"),
        ({"marketplaceOrderStatus": "invoiced"}, "marketplaceOrderStatus must be new or approved"),
    ]
    for changes, field in changed:
        body: JSON = {
            "marketplaceOrderId": "2001",
            "marketplaceOrderStatus": "approved",
            "connectorName": "R",
            "connectorEndpoint": CONNECTOR,
        } | changes
        answer = await client.put(STATUS_PATH, json=body)
        assert answer.status_code == 400
        assert (answer.json()["flow"], answer.json()["code"]) == ("ApproveOrder", "EOI005")
        assert field in answer.json()["message"]


async def test_channel_order_api_needs_the_app_key_and_json(sandbox: VtexSandbox) -> None:
    plain = {"Accept": "application/json", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex") as http:
        for method, path in (("POST", ENQUEUE_PATH), ("PUT", STATUS_PATH)):
            denied = await http.request(method, path, params={"affiliateId": "MKP"}, json=order(), headers=plain)
            assert denied.status_code == 401
            assert denied.json()["error"]["code"] == "CHK003"
        as_text = await http.put(STATUS_PATH, content=b"{}", headers=AUTH | {"Content-Type": "text/plain"})
        assert as_text.status_code == 400
    assert sandbox.order_integration.integrations == []


# --- request faults, as on every other route ----------------------------------------------------------------


async def test_request_faults_apply_to_the_channel_order_api(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.add_fault(FaultRule("POST", ENQUEUE_PATH, 429, retry_after=3))
    limited = await client.post(ENQUEUE_PATH, params={"affiliateId": "MKP"}, json=order())
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    sandbox.add_fault(FaultRule("PUT", STATUS_PATH, 503))
    assert (await client.put(STATUS_PATH, json={})).status_code == 503
    await sandbox.drain_callbacks()
    assert receiver.seen == [] and sandbox.orders == {}
    # The order is enqueued but the answer is lost; sending it again is a duplicate.
    sandbox.add_fault(FaultRule("POST", ENQUEUE_PATH, 504, after_effect=True))
    lost = await client.post(ENQUEUE_PATH, params={"affiliateId": "MKP"}, json=order())
    assert lost.status_code == 504
    await enqueue(client, order())
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001"), ("PlaceOrder", "EOI007")]
    assert [r.status for r in sandbox.requests if r.path == ENQUEUE_PATH] == [429, 504, 200]


# --- notification faults ---------------------------------------------------------------------------------------


async def test_dropped_notification_never_arrives_but_the_order_exists(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    added = await client.post("/_sandbox/notification-faults", json={"action": "drop", "code": "SOI001"})
    assert added.status_code == 201
    await enqueue(client, order(marketplaceOrderStatus="approved"))
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("ApproveOrder", "SOI002")]  # only the integration's was dropped
    assert await oms_status(client) == "ready-for-handling"
    seen = (await client.get("/_sandbox/notifications")).json()
    assert [(n["code"], n["fate"]) for n in seen] == [("SOI001", "dropped"), ("SOI002", "sent")]
    assert (await client.get("/_sandbox/notification-faults")).json() == []  # used up


async def test_duplicated_notification_arrives_twice(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.add_notification_fault(NotificationFault("duplicate", flow="PlaceOrder"))
    await enqueue(client, order())
    await sandbox.drain_callbacks()
    assert receiver.codes() == [("PlaceOrder", "SOI001")] * 2
    assert receiver.bodies[0] == receiver.bodies[1]


async def test_delayed_notification_arrives_late(
    sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    added = await client.post(
        "/_sandbox/notification-faults", json={"action": "delay", "delay_seconds": 0.3, "code": "SOI001"}
    )
    assert added.status_code == 201
    await enqueue(client, order(marketplaceOrderStatus="approved"))
    await sandbox.drain_callbacks()
    # The approval was not held back: it overtakes the delayed integration notice.
    assert receiver.codes() == [("ApproveOrder", "SOI002"), ("PlaceOrder", "SOI001")]
    sent = {attempt.body["code"]: attempt.sent_at for attempt in sandbox.callbacks}
    assert sent["SOI001"] - sent["SOI002"] >= 0.25


async def test_notification_faults_admin_checks_its_input(client: httpx.AsyncClient) -> None:
    bad_faults: list[Any] = [{"action": "lose"}, {"code": "SOI001"}, {"action": "drop", "times": 0}, {"x": 1}, []]
    for bad in bad_faults:
        response = await client.post("/_sandbox/notification-faults", json=bad)
        assert response.status_code == 400, bad
    assert (await client.post("/_sandbox/notification-faults", json={"action": "drop", "times": -1})).status_code == 201
    assert (await client.delete("/_sandbox/notification-faults")).status_code == 204
    assert (await client.get("/_sandbox/notification-faults")).json() == []


async def test_failed_delivery_is_retried(sandbox: VtexSandbox, client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.status = 503
    await enqueue(client, order())
    await sandbox.drain_callbacks()
    assert [attempt.attempt for attempt in sandbox.callbacks] == [1, 2, 3]
    assert {attempt.event for attempt in sandbox.callbacks} == {"processing-result"}


# --- variation -----------------------------------------------------------------------------------------------


async def test_default_processing_delay_varies_and_approval_may_overtake(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as to_receiver:
        vtex = make_sandbox(callback_sender=client_sender(to_receiver), seed=5)
        assert vtex.order_integration.delay_seconds is None
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=vtex.app), base_url="http://vtex", headers=HEADERS
        ) as http:
            for number in range(10):
                await enqueue(http, order(str(3000 + number)))
                await update(http, str(3000 + number))
            await vtex.drain_callbacks()
    outcomes = {(body["marketplaceOrderId"], body["code"]) for body in receiver.bodies}
    approvals = {code for _, code in outcomes if code in ("SOI002", "EOI008")}
    assert approvals == {"SOI002", "EOI008"}  # some approvals were processed before their order
    echoes = {VtexSandbox(seed=seed).order_integration.echo_order_id for seed in range(10)}
    assert echoes == {True, False}


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        VtexSandbox(order_integration_delay_seconds=-1)
