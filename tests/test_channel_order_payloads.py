"""Channel Order API bodies (New Order Integration): every body the connector builds fits the External
Marketplace Orders spec (tests/contract) and the VTEX sandbox's own check of it, and a body that misses
a required field is caught by both."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sandboxes.vtex_order_integration_schema import ChannelOrderRejected, validate_enqueue, validate_update

from connector.models import (
    Address,
    Customer,
    DeliveryChannel,
    Logistics,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderItem,
    Shipping,
    SlaChoice,
    ValidationReport,
)
from connector.vtex.payloads import channel_order_body, channel_order_status_body
from tests.contract.openapi import ContractViolation, validate_request

JSON = dict[str, Any]
ENQUEUE_PATH = "/api/order-integration/orders"
STATUS_PATH = "/api/order-integration/orders/status"
SPEC = "Marketplace Protocol - External Marketplace Orders"
HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "X-VTEX-API-AppKey": "vtexappkey-test-ABC",
    "X-VTEX-API-AppToken": "secret",
}
ENDPOINT = "https://connector.example/vtex/tok3n"
NAME = "reference"


def make_order(
    channel: DeliveryChannel = DeliveryChannel.DELIVERY,
    customer: Customer | None = None,
    address: Address | None = None,
) -> MarketplaceOrder:
    pickup = channel is DeliveryChannel.PICKUP_IN_POINT
    return MarketplaceOrder(
        marketplace_order_id="MKT-77",
        status=MarketplaceOrderStatus.PAID,
        items=[
            OrderItem(sku_id="1", quantity=2, unit_price=4990),
            OrderItem(sku_id="8", quantity=1, unit_price=7990),
        ],
        shipping=Shipping(
            address=address
            or Address(
                address_id="home",
                receiver_name="Ana Souza",
                postal_code="01310-100",
                city="São Paulo",
                state="SP",
                country="BRA",
                street="Av. Paulista",
                number="1000",
                neighborhood="Bela Vista",
                reference="near the park",
            ),
            price=0 if pickup else 2000,
            delivery_channel=channel,
            pickup_point_id="1_centro" if pickup else None,
        ),
        customer=customer
        or Customer(
            email="ana@example.com",
            first_name="Ana",
            last_name="Souza",
            document_type="cpf",
            document="12345678900",
            phone="+5511999999999",
        ),
        payment_value=2 * 4990 + 7990 + (0 if pickup else 2000),
    )


def make_report(channel: DeliveryChannel = DeliveryChannel.DELIVERY) -> ValidationReport:
    # Listed out of item order on purpose: logisticsInfo follows the items, not the report.
    if channel is DeliveryChannel.PICKUP_IN_POINT:
        choices = [
            SlaChoice(item_index=1, sla_id="Retirada Centro", price=0, shipping_estimate="2bd"),
            SlaChoice(item_index=0, sla_id="Retirada Centro", price=0, shipping_estimate="2bd"),
        ]
    else:
        choices = [
            SlaChoice(item_index=1, sla_id="Normal", price=500, shipping_estimate=None),
            SlaChoice(item_index=0, sla_id="Express", price=1500, shipping_estimate="1bd"),
        ]
    return ValidationReport(sla_choices=choices)


def body_for(
    order: MarketplaceOrder,
    report: ValidationReport,
    *,
    paid: bool = True,
    rate: float | None = None,
) -> JSON:
    return channel_order_body(
        order,
        report,
        connector_name=NAME,
        connector_endpoint=ENDPOINT,
        paid=paid,
        price_divergence_allowance_rate=rate,
        lock_ttl="2d",
    )


def assert_fits(body: JSON) -> None:
    """The spec (every required field, type and nullability) and the sandbox's own check both accept it."""
    operation = validate_request("POST", ENQUEUE_PATH, {"affiliateId": "MKP"}, HEADERS, body, spec=SPEC)
    assert operation == "EnqueueNewOrder"
    checked = validate_enqueue(copy.deepcopy(body), "PlaceOrder")
    assert checked["marketplaceOrderId"] == body["marketplaceOrderId"]


def test_delivery_order() -> None:
    body = body_for(make_order(), make_report())
    assert_fits(body)
    assert body == {
        "marketplaceOrderId": "MKT-77",
        "connectorName": NAME,
        "connectorEndpoint": ENDPOINT,
        "marketplaceOrderStatus": "approved",
        "marketplacePaymentValue": 2 * 4990 + 7990 + 2000,
        "allowFranchises": False,
        "items": [{"id": "1", "price": 4990, "quantity": 2}, {"id": "8", "price": 7990, "quantity": 1}],
        "clientProfileData": {
            "email": "ana@example.com",
            "firstName": "Ana",
            "lastName": "Souza",
            "phone": "+5511999999999",
            "document": "12345678900",
            "corporateDocument": None,
            "corporatePhone": None,
            "corporateName": None,
            "tradeName": None,
            "stateInscription": None,
        },
        "shippingData": {
            "logisticsInfo": [
                # items[0]: Express, 3/4 of the freight (the store's SLA prices 1500 and 500 weigh it).
                {
                    "price": 1500,
                    "selectedDeliveryChannel": "delivery",
                    "selectedSla": "Express",
                    "lockTTL": "2d",
                    "shippingEstimate": "1bd",
                    "deliveryIds": [],
                },
                # items[1]: no estimate known, yet the field is required and not nullable.
                {
                    "price": 500,
                    "selectedDeliveryChannel": "delivery",
                    "selectedSla": "Normal",
                    "lockTTL": "2d",
                    "shippingEstimate": "",
                    "deliveryIds": [],
                },
            ],
            "selectedAddresses": [
                {
                    "addressType": "residential",
                    "addressId": "home",
                    "receiverName": "Ana Souza",
                    "postalCode": "01310-100",
                    "city": "São Paulo",
                    "state": "SP",
                    "country": "BRA",
                    "street": "Av. Paulista",
                    "number": "1000",
                    "neighborhood": "Bela Vista",
                }
            ],
            "isFob": False,
            "isMarketplaceFulfillment": False,
        },
        "invoiceData": {"userPaymentInfo": {"paymentMethods": []}},
    }


def test_freight_parts_add_up_to_what_the_customer_paid() -> None:
    order = make_order()
    order = order.model_copy(update={"shipping": order.shipping.model_copy(update={"price": 1001})})
    logistics = body_for(order, make_report())["shippingData"]["logisticsInfo"]
    assert [entry["price"] for entry in logistics] == [750, 251]


def test_pickup_in_point_order() -> None:
    body = body_for(make_order(DeliveryChannel.PICKUP_IN_POINT), make_report(DeliveryChannel.PICKUP_IN_POINT))
    assert_fits(body)
    (address,) = body["shippingData"]["selectedAddresses"]
    assert (address["addressType"], address["addressId"]) == ("pickup", "1_centro")
    assert "geoCoordinates" not in address  # we have none; the object's own fields would be required
    for entry in body["shippingData"]["logisticsInfo"]:
        assert (entry["selectedDeliveryChannel"], entry["selectedSla"]) == ("pickup-in-point", "")
        assert (entry["price"], entry["shippingEstimate"]) == (0, "2bd")
    assert body["shippingData"]["isFob"] is False  # the guide: never with pickup-in-point


def test_unpaid_order_is_sent_new_and_the_divergence_rate_only_when_set() -> None:
    unpaid = body_for(make_order(), make_report(), paid=False)
    assert_fits(unpaid)
    assert unpaid["marketplaceOrderStatus"] == "new"
    assert "priceDivergenceAllowanceRate" not in unpaid
    allowed = body_for(make_order(), make_report(), paid=False, rate=0.05)
    assert_fits(allowed)
    assert allowed["priceDivergenceAllowanceRate"] == 0.05
    assert "marketplaceInterestValue" not in allowed


def test_customer_without_phone_and_an_address_without_id() -> None:
    customer = Customer(email="b@example.com", first_name="Bia", last_name="Lima", document_type="cpf", document="")
    address = Address(
        receiver_name="Bia", postal_code="20000-000", city="Rio", state="RJ", country="BRA", street="R", number="1"
    )
    body = body_for(make_order(customer=customer, address=address), make_report())
    assert_fits(body)
    profile = body["clientProfileData"]
    assert (profile["phone"], profile["document"]) == ("", "")
    (sent,) = body["shippingData"]["selectedAddresses"]
    assert sent["addressId"] == ""
    assert "neighborhood" not in sent and "complement" not in sent


def test_corporate_customer() -> None:
    customer = Customer(
        email="compras@acme.example",
        first_name="Carla",
        last_name="Dias",
        document_type="cnpj",
        document="12345678000199",
        phone="+551130000000",
        corporate_name="ACME Ltda",
        trade_name="ACME",
        corporate_document="12345678000199",
        state_inscription="123.456.789.000",
        corporate_phone="+551130000001",
    )
    body = body_for(make_order(customer=customer), make_report())
    assert_fits(body)
    assert body["clientProfileData"] == {
        "email": "compras@acme.example",
        "firstName": "Carla",
        "lastName": "Dias",
        "phone": "+551130000000",
        "document": "12345678000199",
        "corporateDocument": "12345678000199",
        "corporatePhone": "+551130000001",
        "corporateName": "ACME Ltda",
        "tradeName": "ACME",
        "stateInscription": "123.456.789.000",
    }


def test_status_body() -> None:
    body = channel_order_status_body("MKT-77", connector_name=NAME, connector_endpoint=ENDPOINT)
    assert body == {
        "marketplaceOrderId": "MKT-77",
        "marketplaceOrderStatus": "approved",
        "connectorName": NAME,
        "connectorEndpoint": ENDPOINT,
    }
    assert validate_request("PUT", STATUS_PATH, {}, HEADERS, body, spec=SPEC) == "UpdateOrderStatus"
    assert validate_update(copy.deepcopy(body), "ApproveOrder")["marketplaceOrderStatus"] == "approved"


def _remove(body: JSON, path: str) -> None:
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        name, _, index = part.partition("[")
        node = node[name]
        if index:
            node = node[int(index.rstrip("]"))]
    del node[last]


@pytest.mark.parametrize(
    "path",
    [
        "invoiceData",
        "allowFranchises",
        "clientProfileData.phone",
        "clientProfileData.corporateDocument",  # nullable, still required
        "shippingData.isFob",
        "shippingData.logisticsInfo[1].shippingEstimate",
        "shippingData.logisticsInfo[0].deliveryIds",
        "shippingData.selectedAddresses[0].addressId",
        "invoiceData.userPaymentInfo.paymentMethods",
    ],
)
def test_a_missing_required_field_is_caught(path: str) -> None:
    body = body_for(make_order(), make_report())
    _remove(body, path)
    with pytest.raises(ContractViolation):
        validate_request("POST", ENQUEUE_PATH, {"affiliateId": "MKP"}, HEADERS, body, spec=SPEC)
    with pytest.raises(ChannelOrderRejected) as refused:
        validate_enqueue(body, "PlaceOrder")
    assert path.rsplit(".", 1)[-1] in refused.value.message


def test_null_where_the_spec_does_not_allow_it_is_caught() -> None:
    body = body_for(make_order(), make_report())
    body["clientProfileData"]["phone"] = None
    with pytest.raises(ContractViolation):
        validate_request("POST", ENQUEUE_PATH, {"affiliateId": "MKP"}, HEADERS, body, spec=SPEC)
    with pytest.raises(ChannelOrderRejected):
        validate_enqueue(body, "PlaceOrder")


@pytest.mark.parametrize("field", ["connectorName", "connectorEndpoint"])
def test_a_status_body_without_its_connector_is_caught(field: str) -> None:
    body = channel_order_status_body("MKT-77", connector_name=NAME, connector_endpoint=ENDPOINT)
    del body[field]
    with pytest.raises(ContractViolation):
        validate_request("PUT", STATUS_PATH, {}, HEADERS, body, spec=SPEC)
    with pytest.raises(ChannelOrderRejected):
        validate_update(body, "ApproveOrder")


def delivered_by(logistics: Logistics, warehouse_id: str | None = None) -> MarketplaceOrder:
    order = make_order()
    shipping = order.shipping.model_copy(update={"logistics": logistics, "warehouse_id": warehouse_id})
    return order.model_copy(update={"shipping": shipping})


def test_an_order_the_marketplaces_carrier_collects_is_fob_without_an_sla() -> None:
    body = body_for(delivered_by(Logistics.MARKETPLACE_CARRIER), make_report())
    assert_fits(body)
    shipping = body["shippingData"]
    assert (shipping["isFob"], shipping["isMarketplaceFulfillment"]) == (True, False)  # scenario 7
    assert [(i["selectedDeliveryChannel"], i["selectedSla"], i["deliveryIds"]) for i in shipping["logisticsInfo"]] == [
        ("delivery", "", []),
        ("delivery", "", []),
    ]


def test_an_order_the_marketplace_fulfills_names_the_sellers_warehouse() -> None:
    body = body_for(delivered_by(Logistics.MARKETPLACE_FULFILLMENT, "meli_full"), make_report())
    assert_fits(body)
    shipping = body["shippingData"]
    assert (shipping["isFob"], shipping["isMarketplaceFulfillment"]) == (True, True)  # scenario 8
    assert {(i["selectedSla"], str(i["deliveryIds"])) for i in shipping["logisticsInfo"]} == {
        ("", "[{'warehouseId': 'meli_full'}]")
    }


def test_an_order_the_seller_ships_is_not_fob() -> None:
    shipping = body_for(delivered_by(Logistics.SELLER), make_report())["shippingData"]
    assert (shipping["isFob"], shipping["isMarketplaceFulfillment"]) == (False, False)
