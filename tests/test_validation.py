"""Order validation reports every problem of every SKU at once, with the seller's action."""

from __future__ import annotations

from connector.models import (
    Address,
    Customer,
    DeliveryChannel,
    Logistics,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderItem,
    ProblemKind,
    Shipping,
)
from connector.validation import validate_order
from connector.vtex.responses import SimulationResponse, SkuContext


def make_order(*skus: str, channel: DeliveryChannel = DeliveryChannel.DELIVERY) -> MarketplaceOrder:
    return MarketplaceOrder(
        marketplace_order_id="100",
        status=MarketplaceOrderStatus.PAID,
        items=[OrderItem(sku_id=sku, quantity=2, unit_price=1000) for sku in skus],
        shipping=Shipping(
            address=Address(
                receiver_name="Ana",
                postal_code="01310-100",
                city="São Paulo",
                state="SP",
                country="BRA",
                street="Av. Paulista",
                number="1000",
            ),
            price=1000,
            delivery_channel=channel,
            pickup_point_id="1_centro" if channel is DeliveryChannel.PICKUP_IN_POINT else None,
        ),
        customer=Customer(email="a@b.c", first_name="Ana", last_name="S", document_type="CPF", document="1"),
        payment_value=5000,
    )


def context(sku: str, *, active: bool = True, channels: tuple[int, ...] = (1,)) -> SkuContext:
    return SkuContext.model_validate(
        {"Id": int(sku), "IsActive": active, "IsProductActive": True, "SalesChannels": list(channels)}
    )


def simulation(items: list[dict[str, object]], logistics: list[dict[str, object]]) -> SimulationResponse:
    return SimulationResponse.model_validate({"items": items, "logisticsInfo": logistics, "messages": []})


DELIVERY_SLAS = [
    {"id": "Express", "deliveryChannel": "delivery", "price": 1500, "shippingEstimate": "1bd"},
    {"id": "Normal", "deliveryChannel": "delivery", "price": 500, "shippingEstimate": "5bd"},
    {"id": "Retirada", "deliveryChannel": "pickup-in-point", "price": 0, "pickupPointId": "1_centro"},
]


def test_good_order_picks_the_cheapest_matching_sla() -> None:
    order = make_order("1", "2")
    sim = simulation(
        [
            {"id": "1", "requestIndex": 0, "availability": "available"},
            {"id": "2", "requestIndex": 1, "availability": "available"},
        ],
        [{"itemIndex": 0, "slas": DELIVERY_SLAS}, {"itemIndex": 1, "slas": DELIVERY_SLAS}],
    )
    report = validate_order(order, sim, {"1": context("1"), "2": context("2")}, sales_channel="1")
    assert report.ok
    assert [c.sla_id for c in report.sla_choices] == ["Normal", "Normal"]


def test_pickup_order_uses_the_pickup_point_sla() -> None:
    order = make_order("1", channel=DeliveryChannel.PICKUP_IN_POINT)
    sim = simulation(
        [{"id": "1", "requestIndex": 0, "availability": "available"}],
        [{"itemIndex": 0, "slas": DELIVERY_SLAS}],
    )
    report = validate_order(order, sim, {"1": context("1")}, sales_channel="1")
    assert report.choice_for(0).sla_id == "Retirada"


def test_every_problem_of_every_sku_is_reported_once() -> None:
    order = make_order("4", "5", "6", "7", "9")
    sim = simulation(
        [
            {"id": "6", "requestIndex": 2, "availability": "withoutStock"},
            {"id": "7", "requestIndex": 3, "availability": "cannotBeDelivered"},
        ],
        # logisticsInfo[].itemIndex points into the answer's items (6 is at 0, 7 at 1), not the request.
        # VTEX offers no SLA for an item out of stock: that must not add a carrier action for SKU 6.
        [{"itemIndex": 0, "slas": []}, {"itemIndex": 1, "slas": []}],
    )
    contexts = {
        "4": context("4", active=False),
        "5": context("5", channels=(2,)),
        "6": context("6"),
        "7": context("7"),
        "9": None,
    }
    report = validate_order(order, sim, contexts, sales_channel="1")
    kinds = {(p.sku_id, p.kind) for p in report.problems}
    assert len(report.problems) == len(kinds)
    assert kinds == {
        ("4", ProblemKind.SKU_INACTIVE),
        ("5", ProblemKind.NOT_IN_SALES_CHANNEL),
        ("6", ProblemKind.UNAVAILABLE),
        ("7", ProblemKind.NO_SLA),
        ("9", ProblemKind.SKU_NOT_FOUND),
    }
    message = report.seller_message("100")
    for text in (
        "activate SKU 4",
        "sales channel (trade policy) 1",
        "add stock for SKU 6",
        "carrier",
        "create SKU 9",
    ):
        assert text in message


def test_missing_pickup_point_is_named() -> None:
    order = make_order("1", channel=DeliveryChannel.PICKUP_IN_POINT)
    sim = simulation(
        [{"id": "1", "requestIndex": 0, "availability": "available"}],
        [{"itemIndex": 0, "slas": DELIVERY_SLAS[:2]}],
    )
    report = validate_order(order, sim, {"1": context("1")}, sales_channel="1")
    assert [p.kind for p in report.problems] == [ProblemKind.NO_PICKUP_POINT]
    assert "1_centro" in report.problems[0].action


def test_slas_are_read_for_the_answer_position_when_vtex_leaves_a_sku_out() -> None:
    order = make_order("4", "1")
    # SKU 4 is left out of the answer, so SKU 1 (request index 1) sits at answer position 0.
    sim = simulation(
        [{"id": "1", "requestIndex": 1, "availability": "available"}],
        [{"itemIndex": 0, "slas": DELIVERY_SLAS}],
    )
    contexts = {"4": context("4", active=False), "1": context("1")}
    report = validate_order(order, sim, contexts, sales_channel="1")
    assert [(p.sku_id, p.kind) for p in report.problems] == [("4", ProblemKind.SKU_INACTIVE)]
    assert report.choice_for(1).sla_id == "Normal"


def delivered_by(logistics: Logistics, warehouse_id: str | None = None) -> MarketplaceOrder:
    order = make_order("1")
    shipping = order.shipping.model_copy(update={"logistics": logistics, "warehouse_id": warehouse_id})
    return order.model_copy(update={"shipping": shipping})


NO_CARRIER = simulation([{"id": "1", "requestIndex": 0, "availability": "available"}], [{"itemIndex": 0, "slas": []}])
NO_STOCK = simulation([{"id": "1", "requestIndex": 0, "availability": "withoutStock"}], [{"itemIndex": 0, "slas": []}])


def test_an_order_the_marketplace_delivers_needs_no_carrier_of_the_seller() -> None:
    for order in (delivered_by(Logistics.MARKETPLACE_CARRIER), delivered_by(Logistics.MARKETPLACE_FULFILLMENT, "w")):
        report = validate_order(order, NO_CARRIER, {"1": context("1")}, sales_channel="1", channel_order_api=True)
        assert report.ok, report.problems
        assert [(c.sla_id, c.price) for c in report.sla_choices] == [("", 0)]


def test_stock_is_the_sellers_to_have_unless_the_marketplace_fulfills() -> None:
    carrier = validate_order(
        delivered_by(Logistics.MARKETPLACE_CARRIER),
        NO_STOCK,
        {"1": context("1")},
        sales_channel="1",
        channel_order_api=True,
    )
    assert [p.kind for p in carrier.problems] == [ProblemKind.UNAVAILABLE]
    full = validate_order(
        delivered_by(Logistics.MARKETPLACE_FULFILLMENT, "w"),
        NO_STOCK,
        {"1": context("1")},
        sales_channel="1",
        channel_order_api=True,
    )
    assert full.ok


def test_an_order_the_marketplace_delivers_needs_the_channel_order_api_and_a_warehouse() -> None:
    legacy = validate_order(
        delivered_by(Logistics.MARKETPLACE_CARRIER), NO_CARRIER, {"1": context("1")}, sales_channel="1"
    )
    assert [p.kind for p in legacy.problems] == [ProblemKind.MARKETPLACE_DELIVERY]
    assert "vtex_flow" in legacy.problems[0].action and legacy.needs_seller_action
    no_warehouse = validate_order(
        delivered_by(Logistics.MARKETPLACE_FULFILLMENT),
        NO_CARRIER,
        {"1": context("1")},
        sales_channel="1",
        channel_order_api=True,
    )
    assert [p.kind for p in no_warehouse.problems] == [ProblemKind.MARKETPLACE_DELIVERY]
    assert "fulfillment_warehouse_id" in no_warehouse.problems[0].action
