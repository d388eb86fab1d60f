"""The reference marketplace sandbox: an order API plus an admin API to create, pay and cancel orders.

It speaks the contract in docs/reference-marketplace.openapi.yaml. Creating, paying or cancelling an order
notifies the connector's webhook the way real marketplaces do: a small signed JSON body naming the order,
sent after the change, retried a few times if the connector does not answer 2xx, and sometimes delivered
more than once. The connector's own calls (invoices, shipments, its cancellation) are stored on the order.
Every change stamps the order's `last_updated`, which the changed-orders listing (`GET /orders`) pages by.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes.catalog import NORMAL, SELLABLE_SKU_IDS, sku_by_id

log = logging.getLogger(__name__)

STATUSES = ("paid", "payment_pending", "cancelled")
INVOICE_TYPES = ("sale", "return")
# Money exactly as the marketplace writes it ("49.90"): cents, as a number or a string, are refused, so an
# adapter that forgets to convert fails here rather than in production.
AMOUNT = re.compile(r"\d+\.\d{2}")
# ASCII digits only (int() would take "+5", " 5" or other scripts' digits), and few enough to stay small.
COUNT = re.compile(r"[0-9]{1,9}")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
# The admin API's cap on duplicated deliveries of one webhook (Mercado Libre was seen sending five).
MAX_DUPLICATES = 10

SIGNATURE_HEADER = "X-Reference-Signature"
DELIVERY_HEADER = "X-Reference-Delivery"
TIMESTAMP_HEADER = "X-Reference-Timestamp"


class UnknownOrder(LookupError):
    """No order with that id (HTTP 404)."""


class Conflict(Exception):
    """The request does not fit the order's current state (HTTP 409)."""


class BadRequest(ValueError):
    """A body the marketplace refuses (HTTP 400)."""


def _money(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _now() -> str:
    return datetime.now(UTC).isoformat()


def sign(secret: str, timestamp: str, delivery_id: str, body: bytes) -> str:
    """The X-Reference-Signature value (docs/reference-marketplace.openapi.yaml): hex HMAC-SHA256, keyed
    with the UTF-8 secret, of `{timestamp}\\n{delivery id}\\n` followed by the raw body."""
    signed = timestamp.encode() + b"\n" + delivery_id.encode() + b"\n" + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"field '{name}' must be a non-empty string")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field '{name}' must be a string or null")
    return value


def _amount(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not AMOUNT.fullmatch(value):
        raise BadRequest(f"field '{name}' must be a decimal string like \"49.90\", got {value!r}")
    return value


def _invoice_item(value: object) -> dict[str, Any]:
    line = _object(value, "each invoice item")
    quantity = line.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise BadRequest("field 'quantity' must be a positive integer")
    return {"sku": _text(line, "sku"), "quantity": quantity, "unit_price": _amount(line, "unit_price")}


async def _json_body(request: Request) -> object:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("body is not valid JSON") from None


async def _optional_json_object(request: Request) -> dict[str, Any]:
    """An admin body whose fields all have defaults: an empty body is an empty object."""
    return _object(await _json_body(request), "body") if await request.body() else {}


def _error(status_code: int, error: str, message: str) -> Response:
    return JSONResponse({"error": error, "message": message}, status_code=status_code)


def _count(query: QueryParams, name: str, *, default: int, low: int, high: int | None = None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = int(raw) if COUNT.fullmatch(raw) else -1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"parameter '{name}' must be an integer {bounds}")
    return value


def _since(query: QueryParams) -> datetime | None:
    raw = query.get("updated_since")
    if raw is None:
        return None
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        since = None
    # A date-time without an offset means a different instant in every time zone: refused, not guessed.
    if since is None or since.tzinfo is None:
        raise BadRequest(
            "parameter 'updated_since' must be an ISO 8601 date-time with a UTC offset, like 2025-03-01T12:00:00Z"
        )
    return since


@dataclass
class MarketplaceSandbox:
    """State and HTTP app of the reference marketplace."""

    webhook_url: str | None = None
    # HMAC key for the X-Reference-Signature header; None sends webhooks unsigned.
    webhook_secret: str | None = None
    notify_attempts: int = 3
    # Shopify waits 5 s; Mercado Libre counts an answer slower than 500 ms as a failed delivery (and retries).
    webhook_timeout_seconds: float = 5.0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications_sent: int = 0
    # A real listing takes its time (and more for a deep page): tests slow it down to act mid-walk.
    listing_delay_seconds: float = 0.0
    listing_requests: int = 0
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Ids start from the clock so a restarted sandbox never reuses the id of an order that a
        # durable workflow already integrated.
        self._id_base = int(time.time() * 1000) * 1000
        self._last_change: datetime | None = None
        # (status, requests left or None for "until ended") while an outage is injected.
        self._outage: tuple[int, int | None] | None = None
        self.app = Starlette(
            routes=[
                Route("/orders", self._list_changes, methods=["GET"]),
                Route("/orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/orders/{order_id}/invoices", self._post_invoice, methods=["POST"]),
                Route("/orders/{order_id}/shipments", self._post_shipment, methods=["POST"]),
                Route("/orders/{order_id}/cancellation", self._post_cancellation, methods=["POST"]),
                Route("/admin/orders", self._create_order, methods=["POST"]),
                Route("/admin/orders", self._list_orders, methods=["GET"]),
                Route("/admin/orders/{order_id}/pay", self._pay, methods=["POST"]),
                Route("/admin/orders/{order_id}/cancel", self._cancel, methods=["POST"]),
                Route("/admin/orders/{order_id}/notify", self._notify, methods=["POST"]),
                Route("/admin/outage", self._start_outage, methods=["POST"]),
                Route("/admin/outage", self._end_outage, methods=["DELETE"]),
            ],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._outage_gate)],
            exception_handlers={
                UnknownOrder: lambda _, exc: _error(404, "not_found", "order not found"),
                Conflict: lambda _, exc: _error(409, "conflict", str(exc)),
                BadRequest: lambda _, exc: _error(400, "bad_request", str(exc)),
            },
        )

    def new_order(
        self,
        *,
        items: list[tuple[str, int]] | None = None,
        status: str = "paid",
        pickup: bool = False,
        unit_prices: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Create an order priced from the shared catalog (optionally with diverging prices)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        catalog = sku_by_id()
        number = self._id_base + next(self._sequence)
        if items is None:
            chosen = SELLABLE_SKU_IDS[number % len(SELLABLE_SKU_IDS)]
            items = [(chosen, 1 + number % 3)]
        lines = []
        items_total = 0
        for sku_id, quantity in items:
            sku = catalog.get(sku_id)
            price = (unit_prices or {}).get(sku_id, sku.price if sku else 1000)
            items_total += price * quantity
            lines.append({"sku": sku_id, "quantity": quantity, "unit_price": _money(price)})
        # Freight as the seller's "Normal" carrier charges it: one charge per line, none for pickup.
        freight = 0 if pickup else NORMAL.price * len(lines)
        now = self._stamp()
        order: dict[str, Any] = {
            "id": str(number),
            "pack_id": f"P{number}",
            "status": status,
            # The admin API stands for the buyer's side: an order created cancelled was cancelled there.
            "cancelled_by": "buyer" if status == "cancelled" else None,
            "date_created": now,
            "last_updated": now,
            "buyer": {
                "email": f"buyer{number % 10_000}@example.com",
                "first_name": "Ana",
                "last_name": "Souza",
                "doc_type": "CPF",
                "doc_number": "12345678909",
                "phone": "+5511999990000",
            },
            "items": lines,
            "shipping": {
                "mode": "pickup" if pickup else "delivery",
                "pickup_point_id": "1_centro" if pickup else None,
                "receiver_name": "Ana Souza",
                "zip_code": "01310-100",
                "city": "São Paulo",
                "state": "SP",
                "country": "BRA",
                "street_name": "Avenida Paulista",
                "street_number": "1000",
                "neighborhood": "Bela Vista",
                "complement": None,
                "cost": _money(freight),
            },
            "total_amount": _money(items_total + freight),
            "invoices": [],
            "shipments": [],
            "cancellation": None,
        }
        self.orders[order["id"]] = order
        return order

    def _stamp(self) -> str:
        """The time of a change, strictly later than the previous one even within one clock tick, so
        the changed-orders listing orders every change and an inclusive `updated_since` misses none."""
        now = datetime.now(UTC)
        if self._last_change is not None and now <= self._last_change:
            now = self._last_change + timedelta(microseconds=1)
        self._last_change = now
        # A fixed width (always microseconds) keeps the strings in time order too.
        return now.isoformat(timespec="microseconds")

    def order(self, order_id: str) -> dict[str, Any]:
        """The stored order; UnknownOrder if there is none."""
        found = self.orders.get(order_id)
        if found is None:
            raise UnknownOrder(order_id)
        return found

    def pay(self, order_id: str) -> dict[str, Any]:
        """The buyer's payment is approved: payment_pending becomes paid. Does not notify."""
        order = self.order(order_id)
        if order["status"] != "payment_pending":
            raise Conflict(f"order {order_id} is {order['status']}; only a payment_pending order can be paid")
        order["status"] = "paid"
        order["last_updated"] = self._stamp()
        return order

    def cancel(self, order_id: str) -> dict[str, Any]:
        """The buyer cancels the order. Does not notify."""
        order = self.order(order_id)
        if order["status"] == "cancelled":
            raise Conflict(f"order {order_id} is already cancelled")
        order["status"] = "cancelled"
        order["cancelled_by"] = "buyer"
        order["last_updated"] = self._stamp()
        return order

    def receive_invoice(self, order_id: str, body: object) -> tuple[dict[str, Any], bool]:
        """Store an invoice from the seller; returns it and whether it is new (its number was not seen)."""
        order = self.order(order_id)
        fields = _object(body, "body")
        if fields.get("type") not in INVOICE_TYPES:
            raise BadRequest(f"field 'type' must be one of {', '.join(INVOICE_TYPES)}")
        items = fields.get("items", [])
        if not isinstance(items, list):
            raise BadRequest("field 'items' must be a list")
        invoice = {
            "number": _text(fields, "number"),
            "type": fields["type"],
            "value": _amount(fields, "value"),
            "issued_at": _optional_text(fields, "issued_at"),
            "url": _optional_text(fields, "url"),
            "key": _optional_text(fields, "key"),
            "xml": _optional_text(fields, "xml"),
            "items": [_invoice_item(item) for item in items],
        }
        for known in order["invoices"]:
            if known["number"] == invoice["number"]:
                return known, False
        invoice["received_at"] = order["last_updated"] = self._stamp()
        order["invoices"].append(invoice)
        return invoice, True

    def receive_shipment(self, order_id: str, body: object) -> tuple[dict[str, Any], bool]:
        """Store the tracking of one invoice; returns it and whether it is new."""
        order = self.order(order_id)
        fields = _object(body, "body")
        invoice_number = _text(fields, "invoice_number")
        tracking_number = _text(fields, "tracking_number")
        shipment = {
            "invoice_number": invoice_number,
            "carrier": _optional_text(fields, "carrier"),
            "tracking_number": tracking_number,
            "tracking_url": _optional_text(fields, "tracking_url"),
        }
        if not any(invoice["number"] == invoice_number for invoice in order["invoices"]):
            raise Conflict(f"invoice {invoice_number} is unknown for order {order_id}")
        for known in order["shipments"]:
            if (known["invoice_number"], known["tracking_number"]) == (invoice_number, tracking_number):
                return known, False
        shipment["received_at"] = order["last_updated"] = self._stamp()
        order["shipments"].append(shipment)
        return shipment, True

    def receive_cancellation(self, order_id: str, body: object) -> dict[str, Any]:
        """The seller cancelled the order; the first notice counts, repeats change nothing."""
        order = self.order(order_id)
        reason = _object(body, "body").get("reason")
        if not isinstance(reason, str):
            raise BadRequest("field 'reason' must be a string")
        if order["cancellation"] is not None:
            return order
        received_at = self._stamp()
        order["cancellation"] = {"reason": reason, "received_at": received_at}
        # An order the buyer already cancelled keeps its cancelled_by: the seller's notice came second.
        if order["status"] != "cancelled":
            order["status"] = "cancelled"
            order["cancelled_by"] = "seller"
        order["last_updated"] = received_at
        return order

    def notify(self, order_id: str, *, times: int = 1) -> str | None:
        """Send the webhook in the background, as a marketplace would; returns its delivery id (None when
        no webhook URL is set). `times` > 1 sends that one delivery (same id, same body) that many times
        at once, as marketplaces do: Mercado Libre was seen sending five notifications for one sale."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if self.webhook_url is None:
            return None
        delivery_id = str(uuid.uuid4())
        # Serialized once: every retry and duplicate carries the same bytes, hence the same signature.
        body = json.dumps(
            {"topic": "orders", "resource": f"/orders/{order_id}", "order_id": order_id, "sent_at": _now()}
        ).encode()
        loop = asyncio.get_running_loop()
        for _ in range(times):
            task = loop.create_task(self._deliver(self.webhook_url, order_id, delivery_id, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return delivery_id

    async def _deliver(self, url: str, order_id: str, delivery_id: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id}
        async with httpx.AsyncClient(timeout=self.webhook_timeout_seconds) as http:
            for attempt in range(self.notify_attempts):
                if attempt:
                    await asyncio.sleep(0.5 * 2 ** (attempt - 1))
                # Every attempt is signed afresh: its own timestamp, the same delivery id and body.
                headers[TIMESTAMP_HEADER] = timestamp = str(int(time.time()))
                if self.webhook_secret is not None:
                    headers[SIGNATURE_HEADER] = sign(self.webhook_secret, timestamp, delivery_id, body)
                try:
                    response = await http.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    continue
                if response.is_success:
                    self.notifications_sent += 1
                    return
        log.warning("webhook for order %s not delivered after %d attempts", order_id, self.notify_attempts)

    def outage(self, status: int = 503, times: int | None = None) -> None:
        """Make the order API (`/orders...`, not `/admin`) answer `status` to the next `times` requests,
        or to every request until end_outage() when `times` is None."""
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status from 400 to 599")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or null")
        self._outage = (status, times)

    def end_outage(self) -> None:
        self._outage = None

    async def _outage_gate(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if self._outage is None or not (path == "/orders" or path.startswith("/orders/")):
            return await call_next(request)
        status, left = self._outage
        if left is not None:
            self._outage = (status, left - 1) if left > 1 else None
        return _error(status, "outage", f"the marketplace is unavailable (injected outage, HTTP {status})")

    async def _get_order(self, request: Request) -> Response:
        return JSONResponse(self.order(request.path_params["order_id"]))

    async def _post_invoice(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        self.order(order_id)  # an unknown order is a 404 whatever the body
        invoice, created = self.receive_invoice(order_id, await _json_body(request))
        return JSONResponse(invoice, status_code=201 if created else 200)

    async def _post_shipment(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        self.order(order_id)
        shipment, created = self.receive_shipment(order_id, await _json_body(request))
        return JSONResponse(shipment, status_code=201 if created else 200)

    async def _post_cancellation(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        self.order(order_id)
        return JSONResponse(self.receive_cancellation(order_id, await _json_body(request)))

    async def _pay(self, request: Request) -> Response:
        order = self.pay(request.path_params["order_id"])
        self.notify(order["id"])
        return JSONResponse(order)

    async def _cancel(self, request: Request) -> Response:
        order = self.cancel(request.path_params["order_id"])
        self.notify(order["id"])
        return JSONResponse(order)

    async def _list_changes(self, request: Request) -> Response:
        self.listing_requests += 1
        if self.listing_delay_seconds:
            await asyncio.sleep(self.listing_delay_seconds)
        since = _since(request.query_params)
        limit = _count(request.query_params, "limit", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
        offset = _count(request.query_params, "offset", default=0, low=0)
        changed = sorted(
            ((datetime.fromisoformat(order["last_updated"]), order["id"], order) for order in self.orders.values()),
            key=lambda entry: entry[:2],
        )
        # Compared as instants, not strings: updated_since may be written with any offset.
        if since is not None:
            changed = [entry for entry in changed if entry[0] >= since]
        page = [
            {"id": order["id"], "status": order["status"], "last_updated": order["last_updated"]}
            for _, _, order in changed[offset : offset + limit]
        ]
        return JSONResponse({"results": page, "paging": {"total": len(changed), "offset": offset, "limit": limit}})

    async def _notify(self, request: Request) -> Response:
        order = self.order(request.path_params["order_id"])
        times = (await _optional_json_object(request)).get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_DUPLICATES:
            raise BadRequest(f"field 'times' must be an integer from 1 to {MAX_DUPLICATES}")
        return JSONResponse({"delivery_id": self.notify(order["id"], times=times)}, status_code=202)

    async def _start_outage(self, request: Request) -> Response:
        spec = await _optional_json_object(request)
        status, times = spec.get("status", 503), spec.get("times")
        try:
            self.outage(status, times)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse({"status": status, "times": times})

    async def _end_outage(self, request: Request) -> Response:
        self.end_outage()
        return Response(status_code=204)

    async def _list_orders(self, request: Request) -> Response:
        return JSONResponse({"results": list(self.orders.values())})

    async def _create_order(self, request: Request) -> Response:
        try:
            spec = await request.json() if await request.body() else {}
            items = [(str(line["sku"]), int(line.get("quantity", 1))) for line in spec.get("items", [])] or None
            order = self.new_order(
                items=items,
                status=spec.get("status", "paid"),
                pickup=bool(spec.get("pickup", False)),
                unit_prices={str(k): int(v) for k, v in spec.get("unit_prices", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)
        if spec.get("notify", True):
            self.notify(order["id"])
        return JSONResponse(order, status_code=201)
