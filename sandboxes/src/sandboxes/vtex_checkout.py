"""Fulfillment simulation (`POST /api/checkout/pub/orderForms/simulation`), shaped as the Checkout spec.

The External Marketplace spec nests `logisticsInfo` under `paymentData`, and the Checkout schema nests
`messages`/`totals` under `logisticsInfo[]`; both disagree with their own examples. The answer follows
the Checkout example: those lists sit at the top level.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sandboxes.catalog import SandboxSku, SandboxSla
from sandboxes.vtex_catalog import is_sellable
from sandboxes.vtex_models import JSON, SELLER_ID, bad_request, iso, now_utc

# The sandbox carriers only ship within Brazil.
SHIPS_TO = ("BRA",)
LOCK_TTL = "10d"


def sla_json(sla: SandboxSla) -> JSON:
    pickup = sla.delivery_channel == "pickup-in-point"
    return {
        "id": sla.id,
        "deliveryChannel": sla.delivery_channel,
        "name": sla.id,
        "deliveryIds": [
            {
                "courierId": "1",
                "warehouseId": "1_1",
                "dockId": "1",
                "courierName": "Sandbox Transportadora",
                "quantity": 1,
            }
        ],
        "shippingEstimate": sla.shipping_estimate,
        "shippingEstimateDate": None,
        "lockTTL": LOCK_TTL,
        "price": sla.price,
        "listPrice": sla.price,
        "tax": 0,
        "pickupStoreInfo": {
            "isPickupStore": pickup,
            "friendlyName": sla.id if pickup else None,
            "address": None,
            "additionalInfo": None,
            "dockId": "1" if pickup else None,
        },
        "pickupPointId": sla.pickup_point_id,
        "pickupDistance": 0,
        "polygonName": None,
        "transitTime": sla.shipping_estimate,
    }


def validate_simulation_body(body: Any) -> list[JSON]:
    """The request items, checked as Checkout does (CHK0022-CHK0024)."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise bad_request("items must be a non-empty array")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise bad_request("Invalid id for item", "CHK0022")
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise bad_request("Invalid quantity for item", "CHK0023")
        if not isinstance(item.get("seller"), str) or not item["seller"]:
            raise bad_request("Invalid seller for item", "CHK0024")
    return items


def _message(code: str, text: str) -> JSON:
    return {"code": code, "text": text, "status": "error", "fields": {}}


def simulate(
    body: Any,
    *,
    sales_channel: int,
    catalog: Mapping[str, SandboxSku],
    stock: Mapping[str, int],
) -> JSON:
    items_in = validate_simulation_body(body)
    postal_code = body.get("postalCode")
    country = body.get("country")
    geo = body.get("geoCoordinates")
    # Without an address there is nothing to quote shipping for; VTEX returns no SLAs then.
    has_address = bool(postal_code) or (isinstance(geo, list) and len(geo) == 2)
    ships_here = country is None or country in SHIPS_TO
    requested_sla = body.get("selectedSla")

    items: list[JSON] = []
    logistics: list[JSON] = []
    messages: list[JSON] = []
    purchase_conditions: list[JSON] = []
    pickup_points: dict[str, JSON] = {}
    items_total = shipping_total = 0
    price_valid_until = iso(now_utc() + timedelta(days=365))

    for request_index, item in enumerate(items_in):
        sku_id: str = item["id"]
        sku = catalog.get(sku_id)
        if sku is None or not is_sellable(sku, item["seller"], sales_channel):
            # VTEX leaves unsellable SKUs out of `items` and says so in `messages`.
            messages.append(_message("ORD027", f"Item {sku_id} not found or unavailable"))
            continue
        quantity: int = item["quantity"]
        available = stock.get(sku.id, 0)
        if available == 0:
            availability = "withoutStock"
            messages.append(_message("withoutStock", f"Item {sku.name} is out of stock"))
        else:
            availability = "available"
            if available < quantity:
                # Checkout lowers the quantity to what is in stock and warns.
                messages.append(
                    _message(
                        "itemQuantityNotAvailable",
                        f"The requested quantity of item {sku.name} is not available; {available} kept",
                    )
                )
                quantity = available
        slas = list(sku.slas) if has_address and ships_here and availability == "available" else []
        if has_address and availability == "available" and not slas:
            availability = "cannotBeDelivered"
            messages.append(_message("cannotBeDelivered", f"Item {sku.name} cannot be delivered"))
        selected = _select_sla(slas, requested_sla)
        item_index = len(items)
        items.append(_item_json(sku, request_index, quantity, availability, price_valid_until))
        logistics.append(
            {
                "itemIndex": item_index,
                "addressId": None,
                "selectedSla": selected.id if selected else None,
                "selectedDeliveryChannel": selected.delivery_channel if selected else None,
                "quantity": quantity,
                "shipsTo": list(SHIPS_TO),
                "slas": [sla_json(sla) for sla in slas],
                "deliveryChannels": [{"id": channel} for channel in _channels(slas)],
            }
        )
        purchase_conditions.append(
            {
                "id": sku.id,
                "seller": SELLER_ID,
                "sellerChain": [SELLER_ID],
                "slas": [sla_json(sla) for sla in slas],
                "price": sku.price,
                "listPrice": sku.price,
            }
        )
        for sla in slas:
            if sla.pickup_point_id:
                pickup_points[sla.pickup_point_id] = _pickup_point(sla)
        if availability == "available":
            items_total += sku.price * quantity
            shipping_total += selected.price if selected else 0

    return {
        "items": items,
        "ratesAndBenefitsData": {"rateAndBenefitsIdentifiers": [], "teaser": []},
        "paymentData": {
            "installmentOptions": [],
            "paymentSystems": [],
            "payments": [],
            "giftCards": [],
            "giftCardMessages": [],
            "availableAccounts": [],
            "availableTokens": [],
            "availableAssociations": {},
        },
        "selectableGifts": [],
        "marketingData": body.get("marketingData"),
        "postalCode": postal_code,
        "country": country,
        "logisticsInfo": logistics,
        "messages": messages,
        "purchaseConditions": {"itemPurchaseConditions": purchase_conditions},
        "pickupPoints": list(pickup_points.values()),
        "subscriptionData": None,
        "totals": [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Shipping", "name": "Total do Frete", "value": shipping_total},
        ],
        "itemMetadata": {"items": [{"id": item["id"], "seller": SELLER_ID, "assemblyOptions": []} for item in items]},
    }


def _select_sla(slas: list[SandboxSla], requested: object) -> SandboxSla | None:
    # Checkout keeps a requested SLA when offered, otherwise preselects the cheapest delivery (pickup
    # is only ever chosen explicitly).
    for sla in slas:
        if sla.id == requested:
            return sla
    deliveries = [sla for sla in slas if sla.delivery_channel == "delivery"]
    return min(deliveries, key=lambda sla: sla.price, default=None)


def _channels(slas: list[SandboxSla]) -> list[str]:
    return list(dict.fromkeys(sla.delivery_channel for sla in slas))


def _item_json(sku: SandboxSku, request_index: int, quantity: int, availability: str, price_valid_until: str) -> JSON:
    return {
        "id": sku.id,
        "requestIndex": request_index,
        "quantity": quantity,
        "seller": SELLER_ID,
        "sellerChain": [SELLER_ID],
        "tax": 0,
        "priceValidUntil": price_valid_until,
        "price": sku.price,
        "listPrice": sku.price,
        "rewardValue": 0,
        "sellingPrice": sku.price,
        "offerings": [],
        "priceTags": [],
        "measurementUnit": "un",
        "unitMultiplier": 1,
        "parentItemIndex": None,
        "parentAssemblyBinding": None,
        "availability": availability,
        "priceDefinition": {
            "calculatedSellingPrice": sku.price,
            "total": sku.price * quantity,
            "sellingPrices": [{"value": sku.price, "quantity": quantity}],
        },
    }


def _pickup_point(sla: SandboxSla) -> JSON:
    return {
        "friendlyName": sla.id,
        "address": None,
        "additionalInfo": None,
        "id": sla.pickup_point_id,
        "businessHours": [],
    }
