"""Place fulfillment order and Authorize dispatch (External Marketplace Orders spec, legacy flow).

Business checks run in the order VTEX's Fulfillment reports them: duplicate order, unknown item,
stock, carriers (SLA), then price. Error texts are the Checkout error table's.

The OMS id is `{affiliateId}-{marketplaceOrderId}-{NN}`. The specs and guides only ever show `-01`,
but the suffix is VTEX's (the seller's sequence in a multi-seller order), so the sandbox uses the
suffix it was given, not a fixed `-01`: callers must read the id from the placement answer.

Invented by the sandbox (the docs say nothing): Authorize dispatch on a canceled order, or one whose
cancellation was requested, answers 400 FMT0056 ("Incompleted orders cannot change status", the
Checkout table's code for a status change an order cannot take), as for an order still waiting for
the seller's manual price approval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, MutableMapping

from sandboxes.catalog import SandboxSku, SandboxSla
from sandboxes.vtex_catalog import is_sellable
from sandboxes.vtex_models import JSON, SandboxOrder, VtexApiError, bad_request, iso, now_utc

WAITING_AUTHORIZATION = "waiting-ffmt-authorization"
WAITING_MANUAL_AUTHORIZATION = "waiting-for-manual-authorization"
READY_FOR_HANDLING = "ready-for-handling"
CANCELED = "canceled"
# Statuses at or past dispatch authorization: authorizing again changes nothing.
_AUTHORIZED = frozenset({READY_FOR_HANDLING, "start-handling", "handling", "invoiced"})


def oms_order_id(affiliate_id: str, marketplace_order_id: str, suffix: str) -> str:
    """`suffix` is VTEX's seller suffix, dash included (`-01`, `-02`...)."""
    return f"{affiliate_id}-{marketplace_order_id}{suffix}"


def find_placed(
    orders: Mapping[str, SandboxOrder], affiliate_id: str, marketplace_order_id: str
) -> SandboxOrder | None:
    """The order an affiliate placed under a marketplace order id, whatever its OMS suffix."""
    wanted = (affiliate_id, marketplace_order_id)
    return next((o for o in orders.values() if (o.affiliate_id, o.marketplace_order_id) == wanted), None)


def place_order(
    order: JSON,
    *,
    affiliate_id: str,
    sales_channel: int,
    catalog: Mapping[str, SandboxSku],
    stock: MutableMapping[str, int],
    orders: MutableMapping[str, SandboxOrder],
    sequence: int,
    order_id_suffix: str,
) -> SandboxOrder:
    """Check, reserve stock and store the order; `order` was already validated against the schema."""
    marketplace_order_id: str = order["marketplaceOrderId"]
    order_id = oms_order_id(affiliate_id, marketplace_order_id, order_id_suffix)
    existing = find_placed(orders, affiliate_id, marketplace_order_id)
    if existing is not None:
        what = f"The request order with marketplace order id {marketplace_order_id} for affiliate {affiliate_id}"
        if existing.status == CANCELED:
            raise bad_request(f"{what} is already canceled and cannot be recreated", "FMT0060")
        raise bad_request(f"{what} already exists", "FMT009")

    items: list[JSON] = order["items"]
    skus = [_sellable_sku(item, catalog, sales_channel) for item in items]
    needed = Counter[str]()
    for item, sku in zip(items, skus, strict=True):
        needed[sku.id] += item["quantity"]
    for item, sku in zip(items, skus, strict=True):
        if stock.get(sku.id, 0) < needed[sku.id]:
            raise bad_request(f"Item {sku.id}({item['seller']}) is not available", "ORD028")

    selected = _selected_slas(order, items, skus)
    desired = sum(sku.price * item["quantity"] for item, sku in zip(items, skus, strict=True))
    desired += sum(sla.price for sla in selected)
    payment: int = order["marketplacePaymentValue"]
    is_async = order.get("isCreatedAsync") is True
    if payment != desired and not is_async:
        raise bad_request(f"Payment total ({payment}) differs from store desired value ({desired})", "FMT007")

    for sku_id, quantity in needed.items():
        stock[sku_id] -= quantity
    created = now_utc()
    placed = SandboxOrder(
        order_id=order_id,
        marketplace_order_id=marketplace_order_id,
        affiliate_id=affiliate_id,
        sales_channel=sales_channel,
        # A divergent price accepted via isCreatedAsync waits for the seller's manual approval.
        status=WAITING_MANUAL_AUTHORIZATION if payment != desired else WAITING_AUTHORIZATION,
        body=order,
        creation_date=created,
        is_created_async=is_async,
        sequence=str(sequence),
        last_change=created,
    )
    orders[order_id] = placed
    return placed


def place_order_response(placed: SandboxOrder) -> JSON:
    """`placeFulfillmentOrderResponse`: the OMS id plus the request echoed as `orderData`."""
    return {
        "orderId": placed.order_id,
        "status": "success",
        "message": "Order placed successfully",
        "orderData": placed.body,
    }


def _sellable_sku(item: JSON, catalog: Mapping[str, SandboxSku], sales_channel: int) -> SandboxSku:
    sku = catalog.get(item["id"])
    if sku is None or not is_sellable(sku, item["seller"], sales_channel):
        raise bad_request(f"Item {item['id']} not found or unavailable", "ORD027")
    return sku


def _selected_slas(order: JSON, items: list[JSON], skus: list[SandboxSku]) -> list[SandboxSla]:
    """The catalog SLA each item line selected; FMT003/FMT004/FMT010 when there is none to use."""
    logistics: list[JSON] = order["shippingData"].get("logisticsInfo") or []
    by_index = {info["itemIndex"]: info for info in logistics}
    selected = []
    for index, (item, sku) in enumerate(zip(items, skus, strict=True)):
        label = f"{sku.id}({item['seller']})"
        if not sku.slas:
            raise bad_request(f"There is no SLA for item {label}", "FMT003")
        info = by_index.get(index)
        if info is None:
            raise bad_request(f"There is no selected SLA for item {label}", "FMT004")
        sla = next((sla for sla in sku.slas if sla.id == info["selectedSla"]), None)
        channel = info.get("selectedDeliveryChannel")
        # A pickup SLA the item has no pickup point for is just an SLA it does not offer.
        if sla is None or channel not in (None, sla.delivery_channel):
            raise bad_request(f"The selected SLA for item {label} is not available", "FMT010")
        selected.append(sla)
    return selected


def find_for_dispatch(orders: Mapping[str, SandboxOrder], path_id: str, affiliate_id: str) -> SandboxOrder:
    """The spec's path id is `{affiliateId}-{marketplaceOrderId}`; the full OMS id is accepted too."""
    for order in orders.values():
        ids = (order.order_id, f"{order.affiliate_id}-{order.marketplace_order_id}")
        if order.affiliate_id == affiliate_id and path_id in ids:
            return order
    raise VtexApiError(404, None, f"Order {path_id} not found")


def authorize_dispatch(order: SandboxOrder, marketplace_order_id: str) -> JSON:
    """Move the order to ready-for-handling; `orderIDFulfillmentResponse` answer (201)."""
    if marketplace_order_id != order.marketplace_order_id:
        raise bad_request("Marketplace id do not match with original order", "FMT0071")
    if order.status == WAITING_AUTHORIZATION:
        order.status = READY_FOR_HANDLING
        order.last_change = order.authorized_date = now_utc()
    elif order.status not in _AUTHORIZED:
        # Canceled, or still waiting for the seller to accept a price divergence.
        raise bad_request("Incompleted orders cannot change status", "FMT0056")
    return {
        "status": "success",
        "message": "Order dispatch authorized",
        "orderId": order.order_id,
        "details": {
            "createdAt": iso(order.creation_date),
            "marketplaceOrderId": order.marketplace_order_id,
            "status": order.status,
        },
    }
