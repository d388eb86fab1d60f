"""Adapter for the reference marketplace (the built-in marketplace sandbox speaks this API).

The contract is docs/reference-marketplace.openapi.yaml. The reference marketplace writes money as decimal
strings ("49.90") and its own status names, like most marketplace APIs; this module is where that becomes
the connector's model (integer cents, mapped statuses) and where invoices, tracking and cancellations go
back out in the marketplace's terms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from connector.http_pool import pooled_client
from connector.marketplaces.base import MarketplaceError, NotificationRejected
from connector.models import (
    Address,
    ChangesPage,
    Customer,
    DeliveryChannel,
    Invoice,
    InvoiceType,
    ListingPosition,
    MarketplaceNotification,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderChange,
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

# Header names as the intake hands them over (lower-case).
SIGNATURE_HEADER = "x-reference-signature"
DELIVERY_HEADER = "x-reference-delivery"
TIMESTAMP_HEADER = "x-reference-timestamp"
# ASCII hex only: hmac.compare_digest refuses non-ASCII text, and bytes.fromhex must not fail afterwards.
SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
# ASCII digits only (int() would take "+5", " 5" or other scripts' digits), few enough to stay an int.
TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_DELIVERY_ID = 200
# A signed delivery is taken this long around its timestamp; older ones are replays (README, threat model).
DEFAULT_REPLAY_WINDOW_SECONDS = 300.0


def signed_content(timestamp: str, delivery_id: str, body: bytes) -> bytes:
    """What the signature covers: the attempt's timestamp, the delivery id and the raw body. Header values
    cannot hold a newline, so the separators make the three parts unambiguous."""
    return f"{timestamp}\n{delivery_id}\n".encode() + body


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
        updated_at=_version(data.get("last_updated")),
    )


def _unreadable(exc: Exception) -> str:
    """Why an order body cannot be read, naming the field and never its value: a pydantic error's text
    carries the input (a customer's document, email, address), and this reason reaches the worker's log,
    the order's timeline and the workflow history's failure, none of them encrypted."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        return "; ".join(f"{exc.title}.{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors)
    if isinstance(exc, KeyError):
        return f"field {exc} is missing"
    return f"{type(exc).__name__}: {exc}"


def _version(value: object) -> datetime | None:
    """The order's `last_updated`, if usable: it only lets the poller skip a redundant hand-off, so an
    unreadable one costs a signal, never the order."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


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


class _ListedOrder(BaseModel):
    id: str | int
    # An offset is required: the listing is walked by comparing these instants.
    last_updated: AwareDatetime


class _Paging(BaseModel):
    total: int = Field(ge=0)


class _ListingPage(BaseModel):
    """One page of `GET /orders`; only what the walk reads (an entry's status is refetched with the order)."""

    results: list[_ListedOrder]
    paging: _Paging

    def changes(self) -> list[OrderChange]:
        return [
            OrderChange(marketplace_order_id=str(entry.id), updated_at=entry.last_updated) for entry in self.results
        ]


def _no_constant(name: str) -> NoReturn:
    # json.loads takes NaN and Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not JSON")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    # ValueError covers bad UTF-8, bad JSON and integers past Python's digit limit; RecursionError, nesting.
    except (ValueError, RecursionError):
        raise NotificationRejected("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise NotificationRejected("body must be a JSON object")
    return data


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
        webhook_secret: str,
        replay_window_seconds: float = DEFAULT_REPLAY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not webhook_secret:
            # An empty HMAC key is public: anyone could sign a webhook.
            raise ValueError("webhook_secret must not be empty")
        self._secret = webhook_secret.encode()
        self._replay_window = replay_window_seconds
        self._clock = clock
        self._http = pooled_client(base_url=base_url, timeout=timeout_seconds, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> MarketplaceNotification:
        delivery_id = self._verify_signature(headers, body)
        data = _json_object(body)
        if data.get("topic") != "orders":
            raise NotificationRejected("field 'topic' must be 'orders'")
        order_id = data.get("order_id")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not str(order_id).strip():
            raise NotificationRejected("field 'order_id' must be a non-empty string", order_id=order_id)
        try:
            return MarketplaceNotification(
                marketplace_order_id=str(order_id).strip(), topic="orders", delivery_id=delivery_id
            )
        except ValidationError as exc:
            raise NotificationRejected(
                f"field 'order_id' is invalid: {exc.errors()[0]['msg']}", order_id=order_id
            ) from None

    def _verify_signature(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check X-Reference-Signature over timestamp, delivery id and raw bytes, before anything reads the
        body, then the timestamp's window: a captured delivery replayed later, or with another delivery id,
        is refused. Returns the delivery id."""
        header = headers.get(SIGNATURE_HEADER)
        if header is None:
            raise NotificationRejected("header X-Reference-Signature is missing", status=401)
        match = SIGNATURE.fullmatch(header.strip())
        if match is None:
            raise NotificationRejected(
                "header X-Reference-Signature must be 'sha256=' and 64 hexadecimal digits", status=401
            )
        delivery_id = (headers.get(DELIVERY_HEADER) or "").strip()
        if not 0 < len(delivery_id) <= MAX_DELIVERY_ID:
            raise NotificationRejected(
                f"header X-Reference-Delivery (signed) must be 1 to {MAX_DELIVERY_ID} characters", status=401
            )
        timestamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
        if TIMESTAMP.fullmatch(timestamp) is None:
            raise NotificationRejected("header X-Reference-Timestamp (signed) must be Unix seconds", status=401)
        expected = hmac.new(self._secret, signed_content(timestamp, delivery_id, body), hashlib.sha256).digest()
        # Constant time: a timing difference would let a forger find the digest byte by byte.
        if not hmac.compare_digest(expected, bytes.fromhex(match.group(1))):
            raise NotificationRejected(
                "header X-Reference-Signature does not match the timestamp, delivery id and body", status=401
            )
        skew = self._clock() - int(timestamp)
        if abs(skew) > self._replay_window:
            raise NotificationRejected(
                f"X-Reference-Timestamp is {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'}; deliveries more "
                f"than {self._replay_window:g} s from the connector's clock are refused (sign each attempt afresh)",
                status=401,
            )
        return delivery_id

    async def marketplace_invoices(self, marketplace_order_id: str) -> list[Invoice]:
        """The reference marketplace never fulfills orders itself, so it issues no invoices."""
        return []

    # docs/reference-marketplace.openapi.yaml: 202, queued.
    webhook_ack_status = 202

    async def order_key(self, notification: MarketplaceNotification) -> MarketplaceNotification:
        """Each order of the reference marketplace is its own connector order."""
        return notification

    async def changed_orders_page(self, position: ListingPosition, *, limit: int) -> ChangesPage:
        """One page of `GET /orders`, walked by keyset rather than by offset alone: an order that changes
        during a walk moves to the end of the listing, which would shift an unread entry back into a page
        already read. A page starts at the last instant read (`updated_since`, inclusive) and skips, by
        `offset`, only the entries already read at exactly that instant."""
        params: dict[str, str | int] = {"limit": limit, "offset": position.skip}
        if position.since is not None:
            params["updated_since"] = position.since.isoformat()
        response = await self._send("GET", "/orders", what="the changed-orders listing", params=params)
        try:
            page = _ListingPage.model_validate_json(response.content)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "body"
            raise MarketplaceError(
                f"the marketplace's changed-orders listing cannot be read: {where}: {error['msg']}",
                status=None,
                transient=False,
            ) from None
        changes = page.changes()
        instants = [change.updated_at for change in changes]
        since = position.since
        if instants != sorted(instants) or (since is not None and instants and instants[0] < since):
            raise MarketplaceError(
                "the marketplace's changed-orders listing is not sorted by last_updated from updated_since",
                status=None,
                transient=False,
            )
        if not changes:
            return ChangesPage(changes=[], next=position, last=True)
        newest = instants[-1]
        skip = position.skip + len(changes) if newest == since else instants.count(newest)
        return ChangesPage(
            changes=changes,
            next=ListingPosition(since=newest, skip=skip),
            last=position.skip + len(changes) >= page.paging.total,
        )

    async def fetch_order(self, marketplace_order_id: str) -> MarketplaceOrder:
        response = await self._call(
            "GET", marketplace_order_id, "", what=f"the request for order {marketplace_order_id}"
        )
        try:
            return order_from_reference(response.json())
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise MarketplaceError(
                f"marketplace order {marketplace_order_id} cannot be read: {_unreadable(exc)}",
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
        return await self._send(
            method, path, what=what, json=json, not_found=f"order {marketplace_order_id} not found in the marketplace"
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: dict[str, Any] | None = None,
        params: dict[str, str | int] | None = None,
        not_found: str | None = None,
    ) -> httpx.Response:
        """One request; any failure becomes a MarketplaceError (transport, 5xx and 429 transient)."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"marketplace unreachable: {type(exc).__name__}", status=None, transient=True
            ) from None
        if response.is_success:
            return response
        status = response.status_code
        if status == 404 and not_found is not None:
            raise MarketplaceError(not_found, status=404, transient=False)
        raise MarketplaceError(
            f"marketplace answered HTTP {status} to {what}: {_reason(response)}",
            status=status,
            transient=status >= 500 or status == 429,
        )
