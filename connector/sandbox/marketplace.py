"""The reference marketplace sandbox: an order API plus an admin API to create, pay and cancel orders.

Creating, paying or cancelling an order notifies the connector's webhook the way real marketplaces do: a
small JSON body naming the order, sent after the change, retried a few times if the connector does not
answer 2xx. The connector's own calls (invoices, shipments, its cancellation) are stored on the order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox.catalog import NORMAL, SELLABLE_SKU_IDS, sku_by_id

log = logging.getLogger(__name__)

STATUSES = ("paid", "payment_pending", "cancelled")
INVOICE_TYPES = ("sale", "return")
# Money exactly as the marketplace writes it ("49.90"): cents, as a number or a string, are refused, so an
# adapter that forgets to convert fails here rather than in production.
AMOUNT = re.compile(r"\d+\.\d{2}")


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


def _error(status_code: int, error: str, message: str) -> Response:
    return JSONResponse({"error": error, "message": message}, status_code=status_code)


@dataclass
class MarketplaceSandbox:
    """State and HTTP app of the reference marketplace."""

    webhook_url: str | None = None
    notify_attempts: int = 3
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications_sent: int = 0
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Ids start from the clock so a restarted sandbox never reuses the id of an order that a
        # durable workflow already integrated.
        self._id_base = int(time.time() * 1000) * 1000
        self.app = Starlette(
            routes=[
                Route("/orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/orders/{order_id}/invoices", self._post_invoice, methods=["POST"]),
                Route("/orders/{order_id}/shipments", self._post_shipment, methods=["POST"]),
                Route("/orders/{order_id}/cancellation", self._post_cancellation, methods=["POST"]),
                Route("/admin/orders", self._create_order, methods=["POST"]),
                Route("/admin/orders", self._list_orders, methods=["GET"]),
                Route("/admin/orders/{order_id}/pay", self._pay, methods=["POST"]),
                Route("/admin/orders/{order_id}/cancel", self._cancel, methods=["POST"]),
            ],
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
        now = _now()
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
        order["last_updated"] = _now()
        return order

    def cancel(self, order_id: str) -> dict[str, Any]:
        """The buyer cancels the order. Does not notify."""
        order = self.order(order_id)
        if order["status"] == "cancelled":
            raise Conflict(f"order {order_id} is already cancelled")
        order["status"] = "cancelled"
        order["cancelled_by"] = "buyer"
        order["last_updated"] = _now()
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
            "received_at": _now(),
        }
        for known in order["invoices"]:
            if known["number"] == invoice["number"]:
                return known, False
        order["invoices"].append(invoice)
        order["last_updated"] = invoice["received_at"]
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
            "received_at": _now(),
        }
        if not any(invoice["number"] == invoice_number for invoice in order["invoices"]):
            raise Conflict(f"invoice {invoice_number} is unknown for order {order_id}")
        for known in order["shipments"]:
            if (known["invoice_number"], known["tracking_number"]) == (invoice_number, tracking_number):
                return known, False
        order["shipments"].append(shipment)
        order["last_updated"] = shipment["received_at"]
        return shipment, True

    def receive_cancellation(self, order_id: str, body: object) -> dict[str, Any]:
        """The seller cancelled the order; the first notice counts, repeats change nothing."""
        order = self.order(order_id)
        reason = _object(body, "body").get("reason")
        if not isinstance(reason, str):
            raise BadRequest("field 'reason' must be a string")
        if order["cancellation"] is not None:
            return order
        received_at = _now()
        order["cancellation"] = {"reason": reason, "received_at": received_at}
        # An order the buyer already cancelled keeps its cancelled_by: the seller's notice came second.
        if order["status"] != "cancelled":
            order["status"] = "cancelled"
            order["cancelled_by"] = "seller"
        order["last_updated"] = received_at
        return order

    def notify(self, order_id: str) -> None:
        """Send the webhook in the background, as a marketplace would."""
        if self.webhook_url is None:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(order_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, order_id: str) -> None:
        body = {"topic": "orders", "resource": f"/orders/{order_id}", "order_id": order_id}
        async with httpx.AsyncClient(timeout=5.0) as http:
            for attempt in range(self.notify_attempts):
                try:
                    response = await http.post(str(self.webhook_url), json=body)
                    if response.is_success:
                        self.notifications_sent += 1
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5 * 2**attempt)
        log.warning("webhook for order %s not delivered after %d attempts", order_id, self.notify_attempts)

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
