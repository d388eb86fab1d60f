"""The reference marketplace sandbox: an order API plus an admin API to create orders.

Creating an order notifies the connector's webhook the way real marketplaces do: a small JSON body
naming the order, sent after the order exists, retried a few times if the connector does not answer 2xx.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
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


def _money(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


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
                Route("/admin/orders", self._create_order, methods=["POST"]),
                Route("/admin/orders", self._list_orders, methods=["GET"]),
            ]
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
        now = datetime.now(UTC).isoformat()
        order: dict[str, Any] = {
            "id": str(number),
            "pack_id": f"P{number}",
            "status": status,
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
        }
        self.orders[order["id"]] = order
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
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "not_found", "message": "order not found"}, status_code=404)
        return JSONResponse(order)

    async def _list_orders(self, request: Request) -> Response:
        return JSONResponse({"results": list(self.orders.values())})

    async def _create_order(self, request: Request) -> Response:
        try:
            spec = await request.json() if await request.body() else {}
            items = [
                (str(line["sku"]), int(line.get("quantity", 1))) for line in spec.get("items", [])
            ] or None
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
