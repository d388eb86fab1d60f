"""Adapter for the reference marketplace (the built-in marketplace sandbox speaks this API).

The reference marketplace writes money as decimal strings ("49.90") and its own status names, like most
marketplace APIs; this module is where that becomes the connector's model (integer cents, mapped statuses).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from pydantic import ValidationError

from connector.marketplaces.base import MarketplaceError, NotificationRejected
from connector.models import (
    Address,
    Customer,
    DeliveryChannel,
    MarketplaceNotification,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderItem,
    Shipping,
)

STATUS_MAP = {
    "paid": MarketplaceOrderStatus.PAID,
    "payment_pending": MarketplaceOrderStatus.TO_BE_PAID,
    "cancelled": MarketplaceOrderStatus.CANCELED,
}


def to_cents(amount: object) -> int:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    return int((value * 100).to_integral_value())


def order_from_reference(data: dict[str, Any]) -> MarketplaceOrder:
    """Map the reference marketplace's order JSON to the normalized model."""
    buyer = data["buyer"]
    shipping = data["shipping"]
    pickup = shipping.get("mode") == "pickup"
    return MarketplaceOrder(
        marketplace_order_id=str(data["id"]),
        group_id=data.get("pack_id"),
        status=STATUS_MAP[data["status"]],
        items=[
            OrderItem(
                sku_id=str(item["sku"]), quantity=item["quantity"], unit_price=to_cents(item["unit_price"])
            )
            for item in data["items"]
        ],
        shipping=Shipping(
            address=Address(
                receiver_name=shipping["receiver_name"],
                postal_code=shipping["zip_code"],
                city=shipping["city"],
                state=shipping["state"],
                country=shipping["country"],
                street=shipping["street_name"],
                number=shipping["street_number"],
                neighborhood=shipping.get("neighborhood"),
                complement=shipping.get("complement"),
            ),
            price=to_cents(shipping["cost"]),
            delivery_channel=DeliveryChannel.PICKUP_IN_POINT if pickup else DeliveryChannel.DELIVERY,
            pickup_point_id=shipping.get("pickup_point_id"),
        ),
        customer=Customer(
            email=buyer["email"],
            first_name=buyer["first_name"],
            last_name=buyer["last_name"],
            document_type=buyer["doc_type"],
            document=buyer["doc_number"],
            phone=buyer.get("phone"),
        ),
        payment_value=to_cents(data["total_amount"]),
        created_at=data.get("date_created"),
    )


class ReferenceMarketplace:
    def __init__(self, *, base_url: str, timeout_seconds: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    def parse_notification(self, body: bytes) -> MarketplaceNotification:
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NotificationRejected("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise NotificationRejected("body must be a JSON object")
        if data.get("topic") != "orders":
            raise NotificationRejected("field 'topic' must be 'orders'")
        order_id = data.get("order_id")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not str(order_id).strip():
            raise NotificationRejected("field 'order_id' must be a non-empty string")
        try:
            return MarketplaceNotification(marketplace_order_id=str(order_id).strip(), topic="orders")
        except ValidationError as exc:
            raise NotificationRejected(f"field 'order_id' is invalid: {exc.errors()[0]['msg']}") from None

    async def fetch_order(self, marketplace_order_id: str) -> MarketplaceOrder:
        try:
            response = await self._http.get(f"/orders/{marketplace_order_id}")
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"marketplace unreachable: {type(exc).__name__}", status=None, transient=True
            ) from None
        if response.status_code == 404:
            raise MarketplaceError(
                f"order {marketplace_order_id} not found in the marketplace", status=404, transient=False
            )
        if not response.is_success:
            transient = response.status_code >= 500 or response.status_code == 429
            raise MarketplaceError(
                f"marketplace answered HTTP {response.status_code}",
                status=response.status_code,
                transient=transient,
            )
        try:
            return order_from_reference(response.json())
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise MarketplaceError(
                f"marketplace order {marketplace_order_id} cannot be read: {exc}",
                status=None,
                transient=False,
            ) from None
