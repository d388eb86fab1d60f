"""Order validation: every problem of every SKU, found in one pass.

VTEX's guide asks connectors to "make all validations at once" so the seller fixes everything in one
round instead of correct, publish, correct. This module is pure: the activity fetches the simulation
and the SKU contexts, this decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.models import (
    DeliveryChannel,
    Logistics,
    MarketplaceOrder,
    OrderItem,
    ProblemKind,
    SkuProblem,
    SlaChoice,
    ValidationReport,
)
from connector.vtex.responses import SimulationResponse, SimulationSla, SkuContext

# Simulation availability of an item in stock that no carrier or pickup point serves.
UNDELIVERABLE = "cannotBeDelivered"


def validate_order(
    order: MarketplaceOrder,
    simulation: SimulationResponse,
    contexts: Mapping[str, SkuContext | None],
    *,
    sales_channel: str,
    price_divergence_allowance_rate: float | None = None,
    channel_order_api: bool = False,
) -> ValidationReport:
    report = ValidationReport()
    delivery_problem = _marketplace_delivery_problem(order, channel_order_api)
    if delivery_problem is not None:
        report.problems.append(delivery_problem)
    vtex_prices: dict[int, int] = {}
    for index, item in enumerate(order.items):
        catalog_problems = _catalog_problems(item, contexts.get(item.sku_id), sales_channel)
        report.problems.extend(catalog_problems)
        simulation_problems, choice = _simulation_problems(order, index, item, simulation)
        # A SKU the catalog already rejects is absent from the simulation for that reason: saying
        # so twice would only bury the real action.
        if not catalog_problems:
            report.problems.extend(simulation_problems)
        if choice is not None:
            report.sla_choices.append(choice)
        found = simulation.item_for_request(index, item.sku_id)
        if found is not None:
            unit_price = found[1].selling_price if found[1].selling_price is not None else found[1].price
            if unit_price is not None:
                vtex_prices[index] = unit_price
    _check_prices(order, vtex_prices, report, sales_channel, price_divergence_allowance_rate)
    return report


def _check_prices(
    order: MarketplaceOrder,
    vtex_prices: Mapping[int, int],
    report: ValidationReport,
    sales_channel: str,
    allowance_rate: float | None,
) -> None:
    """Scenario 1 ahead of time: divergent item prices are fine within the connection's allowance
    (the order goes to VTEX's manual approval), otherwise each one is a problem for the seller."""
    divergent = [
        (index, item)
        for index, item in enumerate(order.items)
        if index in vtex_prices and vtex_prices[index] != item.unit_price
    ]
    if not divergent:
        return
    charged = sum(order.items[i].unit_price * order.items[i].quantity for i in vtex_prices)
    expected = sum(vtex_prices[i] * order.items[i].quantity for i in vtex_prices)
    rate = abs(charged - expected) / expected if expected else 1.0
    if allowance_rate is not None and rate <= allowance_rate:
        report.price_divergent = True
        return
    allowance = (
        f"more than the {allowance_rate:.0%} this connection allows"
        if allowance_rate is not None
        else "and this connection allows no price divergence"
    )
    for index, item in divergent:
        report.problems.append(
            SkuProblem(
                sku_id=item.sku_id,
                kind=ProblemKind.PRICE_DIVERGENCE,
                action=(
                    f"the marketplace sold SKU {item.sku_id} at {item.unit_price / 100:.2f} but VTEX's "
                    f"price in sales channel {sales_channel} is {vtex_prices[index] / 100:.2f} "
                    f"({rate:.1%} on the order, {allowance}): align the prices, or allow price "
                    "divergence for the connection"
                ),
            )
        )


def _catalog_problems(item: OrderItem, context: SkuContext | None, sales_channel: str) -> list[SkuProblem]:
    sku = item.sku_id
    if context is None:
        return [
            SkuProblem(
                sku_id=sku,
                kind=ProblemKind.SKU_NOT_FOUND,
                action=(f"create SKU {sku} in the catalog, or fix the SKU id mapped in the marketplace listing"),
            )
        ]
    problems = []
    if not context.is_active:
        problems.append(
            SkuProblem(sku_id=sku, kind=ProblemKind.SKU_INACTIVE, action=f"activate SKU {sku} in the catalog")
        )
    if not context.is_product_active:
        problems.append(
            SkuProblem(
                sku_id=sku,
                kind=ProblemKind.PRODUCT_INACTIVE,
                action=f"activate the product of SKU {sku} in the catalog",
            )
        )
    if int(sales_channel) not in context.sales_channels:
        problems.append(
            SkuProblem(
                sku_id=sku,
                kind=ProblemKind.NOT_IN_SALES_CHANNEL,
                action=f"add SKU {sku} to sales channel (trade policy) {sales_channel}",
            )
        )
    return problems


def _simulation_problems(
    order: MarketplaceOrder, index: int, item: OrderItem, simulation: SimulationResponse
) -> tuple[list[SkuProblem], SlaChoice | None]:
    sku = item.sku_id
    found = simulation.item_for_request(index, sku)
    if found is None:
        return [
            SkuProblem(
                sku_id=sku,
                kind=ProblemKind.NOT_IN_SIMULATION,
                action=(f"check that SKU {sku} has a price, stock and a carrier in the integration's trade policy"),
            )
        ], None
    position, simulated = found
    logistics = order.shipping.logistics
    if logistics is not Logistics.SELLER:
        # The marketplace delivers (FOB): no SLA of the seller's is chosen (scenarios 7 and 8 leave it
        # empty); with its own fulfillment the stock is the marketplace's, not VTEX's to check.
        if logistics is Logistics.MARKETPLACE_CARRIER and simulated.availability not in (
            None,
            "available",
            UNDELIVERABLE,
        ):
            return [_unavailable(sku, item.quantity)], None
        return [], SlaChoice(item_index=index, sla_id="", price=0)
    sla = _choose_sla(order, simulation.slas_for(position))
    if simulated.availability not in (None, "available", UNDELIVERABLE):
        # VTEX offers no SLA for an item it cannot sell: stock is the one action, not a carrier too.
        return [
            SkuProblem(
                sku_id=sku,
                kind=ProblemKind.UNAVAILABLE,
                action=f"add stock for SKU {sku} (the order needs {item.quantity})",
            )
        ], None
    if sla is None:
        return [_missing_sla_problem(order, sku)], None
    return [], SlaChoice(item_index=index, sla_id=sla.id, price=sla.price, shipping_estimate=sla.shipping_estimate)


def _unavailable(sku: str, quantity: int) -> SkuProblem:
    return SkuProblem(
        sku_id=sku, kind=ProblemKind.UNAVAILABLE, action=f"add stock for SKU {sku} (the order needs {quantity})"
    )


def _marketplace_delivery_problem(order: MarketplaceOrder, channel_order_api: bool) -> SkuProblem | None:
    """An order the marketplace delivers needs the Channel Order API (Place fulfillment order has no FOB),
    and, fulfilled from the marketplace's warehouse, the VTEX warehouse such orders go to."""
    shipping = order.shipping
    if shipping.logistics is Logistics.SELLER:
        return None
    sku = order.items[0].sku_id
    if not channel_order_api:
        return SkuProblem(
            sku_id=sku,
            kind=ProblemKind.MARKETPLACE_DELIVERY,
            action=(
                "the marketplace delivers this order, which only VTEX's Channel Order API can place: set the "
                "connection's vtex_flow to order-integration, then reprocess"
            ),
        )
    if shipping.logistics is Logistics.MARKETPLACE_FULFILLMENT and not shipping.warehouse_id:
        return SkuProblem(
            sku_id=sku,
            kind=ProblemKind.MARKETPLACE_DELIVERY,
            action=(
                "the marketplace ships this order from its own warehouse: name the VTEX warehouse for such "
                "orders in the connection (fulfillment_warehouse_id), then reprocess"
            ),
        )
    return None


def _choose_sla(order: MarketplaceOrder, slas: list[SimulationSla]) -> SimulationSla | None:
    shipping = order.shipping
    candidates = [sla for sla in slas if (sla.delivery_channel or "delivery") == shipping.delivery_channel]
    if shipping.delivery_channel is DeliveryChannel.PICKUP_IN_POINT and shipping.pickup_point_id:
        candidates = [sla for sla in candidates if sla.pickup_point_id == shipping.pickup_point_id]
    if shipping.selected_sla is not None:
        candidates = [sla for sla in candidates if sla.id == shipping.selected_sla]
    # The cheapest qualifying SLA: what a marketplace that only charged freight would expect.
    return min(candidates, key=lambda sla: sla.price, default=None)


def _missing_sla_problem(order: MarketplaceOrder, sku: str) -> SkuProblem:
    shipping = order.shipping
    if shipping.delivery_channel is DeliveryChannel.PICKUP_IN_POINT:
        point = shipping.pickup_point_id or "the customer's pickup point"
        return SkuProblem(
            sku_id=sku,
            kind=ProblemKind.NO_PICKUP_POINT,
            action=f"make pickup point {point} serve SKU {sku} (shipping policy and inventory)",
        )
    wanted = f" with SLA '{shipping.selected_sla}'" if shipping.selected_sla else ""
    return SkuProblem(
        sku_id=sku,
        kind=ProblemKind.NO_SLA,
        action=(f"configure a carrier{wanted} that delivers SKU {sku} to postal code {shipping.address.postal_code}"),
    )
