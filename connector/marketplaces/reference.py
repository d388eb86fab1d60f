"""Adapter for the reference marketplace (the built-in marketplace sandbox speaks this API).

The reference marketplace writes money as decimal strings ("49.90") and its own status names, like most
marketplace APIs; this module is where that becomes the connector's model (integer cents, mapped statuses)
and where invoices, tracking and cancellations go back out in the marketplace's terms.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from connector.marketplaces.base import MarketplaceError, NotificationRejected
from connector.models import (
    Address,
    Customer,
    DeliveryChannel,
    Invoice,
    InvoiceType,
    MarketplaceNotification,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderItem,
    Shipping,
    Tracking,
)

STATUS_MAP = {
    "paid": MarketplaceOrderStatus.PAID,
    "payment_pending": MarketplaceOrderStatus.TO_BE_PAID,
    "cancelled": MarketplaceOrderStatus.CANCELED,
}

INVOICE_TYPES = {InvoiceType.OUTPUT: "sale", InvoiceType.INPUT: "return"}


def to_cents(amount: object) -> int:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    return int((value * 100).to_integral_value())


def to_amount(cents: int) -> str:
    """Cents as the reference marketplace writes money: a decimal string with two places."""
    return str(Decimal(cents).scaleb(-2))


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
            OrderItem(sku_id=str(item["sku"]), quantity=item["quantity"], unit_price=to_cents(item["unit_price"]))
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


def invoice_to_reference(invoice: Invoice) -> dict[str, Any]:
    """The body of `POST /orders/{id}/invoices`."""
    return {
        "number": invoice.invoice_number,
        "type": INVOICE_TYPES[invoice.type],
        "value": to_amount(invoice.invoice_value),
        "issued_at": invoice.issuance_date,
        "url": invoice.invoice_url,
        "key": invoice.invoice_key,
        "xml": invoice.embedded_invoice,
        "items": [
            {"sku": item.sku_id, "quantity": item.quantity, "unit_price": to_amount(item.price)}
            for item in invoice.items
        ],
    }


def tracking_to_reference(tracking: Tracking) -> dict[str, Any]:
    """The body of `POST /orders/{id}/shipments`."""
    return {
        "invoice_number": tracking.invoice_number,
        "carrier": tracking.courier,
        "tracking_number": tracking.tracking_number,
        "tracking_url": tracking.tracking_url,
    }


def _reason(response: httpx.Response) -> str:
    """The marketplace's own words for a refusal: its JSON `message`, else the body text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return response.text.strip()[:200] or response.reason_phrase


class ReferenceMarketplace:
    def __init__(
        self,
        *,
        base_url: str,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_seconds, transport=transport)

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
        response = await self._call(
            "GET", marketplace_order_id, "", what=f"the request for order {marketplace_order_id}"
        )
        try:
            return order_from_reference(response.json())
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise MarketplaceError(
                f"marketplace order {marketplace_order_id} cannot be read: {exc}",
                status=None,
                transient=False,
            ) from None

    async def send_invoice(self, marketplace_order_id: str, invoice: Invoice) -> None:
        # 201 and 200 (number already received) both mean the marketplace has it.
        await self._call(
            "POST",
            marketplace_order_id,
            "/invoices",
            what=f"invoice {invoice.invoice_number} of order {marketplace_order_id}",
            json=invoice_to_reference(invoice),
        )

    async def send_tracking(self, marketplace_order_id: str, tracking: Tracking) -> None:
        await self._call(
            "POST",
            marketplace_order_id,
            "/shipments",
            what=f"tracking of invoice {tracking.invoice_number} of order {marketplace_order_id}",
            json=tracking_to_reference(tracking),
        )

    async def notify_cancellation(self, marketplace_order_id: str, reason: str) -> None:
        await self._call(
            "POST",
            marketplace_order_id,
            "/cancellation",
            what=f"cancellation of order {marketplace_order_id}",
            json={"reason": reason},
        )

    async def _call(
        self,
        method: str,
        marketplace_order_id: str,
        subpath: str,
        *,
        what: str,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One request on an order's resource; any failure becomes a MarketplaceError."""
        path = f"/orders/{quote(marketplace_order_id, safe='')}{subpath}"
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"marketplace unreachable: {type(exc).__name__}", status=None, transient=True
            ) from None
        if response.is_success:
            return response
        status = response.status_code
        if status == 404:
            raise MarketplaceError(
                f"order {marketplace_order_id} not found in the marketplace", status=404, transient=False
            )
        raise MarketplaceError(
            f"marketplace answered HTTP {status} to {what}: {_reason(response)}",
            status=status,
            transient=status >= 500 or status == 429,
        )
