"""Async VTEX client: one pooled httpx client per worker process.

Paths, query parameters, headers and casing follow the official OpenAPI specs (see README, "VTEX API
decisions"). Every non-2xx answer or transport failure raises `VtexError`; callers never see httpx.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from connector.http_pool import pooled_client
from connector.metrics import VTEX_REQUESTS, VTEX_SECONDS
from connector.vtex.errors import VtexError, error_from_response, error_from_transport
from connector.vtex.responses import (
    ChannelOrderAnswer,
    OmsOrder,
    OmsOrderList,
    PlaceOrderResponse,
    Receipt,
    SimulationResponse,
    SkuContext,
)

JSON = dict[str, Any]
# OMS List orders: at most 100 orders a page and 30 pages (Orders API spec).
_LIST_PAGE_SIZE = 100
_LIST_MAX_PAGES = 30


class VtexClient:
    def __init__(
        self,
        *,
        base_url: str,
        app_key: str,
        app_token: str,
        timeout_seconds: float = 20.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Idle connections expire before common servers close them, and a request caught by a server's
        # keep-alive close is retried once on a new connection (connector/http_pool.py).
        self._http = pooled_client(
            base_url=base_url,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-VTEX-API-AppKey": app_key,
                "X-VTEX-API-AppToken": app_token,
            },
            timeout=httpx.Timeout(timeout_seconds),
            max_connections=max_connections,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def simulate(self, body: JSON, *, sales_channel: str, affiliate_id: str) -> SimulationResponse:
        """Fulfillment simulation (External Marketplace Orders spec: `sc` and `affiliateId`)."""
        response = await self._send(
            "simulation",
            "POST",
            "/api/checkout/pub/orderForms/simulation",
            params={"sc": sales_channel, "affiliateId": affiliate_id},
            json=body,
        )
        return SimulationResponse.model_validate(response.json())

    async def get_sku_context(self, sku_id: str, *, sales_channel: str) -> SkuContext | None:
        """Get SKU and context; None when the catalog has no such SKU."""
        try:
            response = await self._send(
                "get SKU and context",
                "GET",
                f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku_id}",
                params={"sc": sales_channel},
            )
        except VtexError as exc:
            if exc.status == 404:
                return None
            raise
        return SkuContext.model_validate(response.json())

    async def place_fulfillment_order(self, body: JSON, *, sales_channel: str, affiliate_id: str) -> PlaceOrderResponse:
        # The spec's request body is one object; the guides' examples wrap it in an array. We follow
        # the spec (README, "VTEX API decisions").
        response = await self._send(
            "place fulfillment order",
            "POST",
            "/api/fulfillment/pvt/orders",
            params={"affiliateId": affiliate_id, "sc": sales_channel},
            json=body,
        )
        return PlaceOrderResponse.model_validate(response.json())

    async def authorize_dispatch(self, marketplace_order_id: str, *, sales_channel: str, affiliate_id: str) -> None:
        # The path id is `{affiliateId}-{marketplaceOrderId}` (spec), not the OMS `-01` id.
        await self._send(
            "authorize dispatch",
            "POST",
            f"/api/fulfillment/pvt/orders/{affiliate_id}-{marketplace_order_id}/fulfill",
            params={"affiliateId": affiliate_id, "sc": sales_channel},
            json={"marketplaceOrderId": marketplace_order_id},
        )

    async def enqueue_channel_order(self, body: JSON, *, affiliate_id: str) -> ChannelOrderAnswer:
        """Channel Order API, EnqueueNewOrder (`channel_order_body`). VTEX answers SOI003 ("enqueued") and
        reports the outcome later, by notification (SOI001, EOI002...). A 2xx answer is returned as is,
        whatever its code; a refused body (400, EOI005 naming the field) raises `VtexError`."""
        response = await self._send(
            "enqueue channel order",
            "POST",
            "/api/order-integration/orders",
            params={"affiliateId": affiliate_id},
            json=body,
        )
        return ChannelOrderAnswer.model_validate(response.json())

    async def update_channel_order_status(self, body: JSON) -> ChannelOrderAnswer:
        """Channel Order API, UpdateOrderStatus (`channel_order_status_body`): approve an integrated order.
        SOI003 now; SOI002, EOI008, EOI009 or EOI011 later, by notification."""
        response = await self._send(
            "update channel order status", "PUT", "/api/order-integration/orders/status", json=body
        )
        return ChannelOrderAnswer.model_validate(response.json())

    async def get_order(self, order_id: str) -> OmsOrder | None:
        """OMS Get order; None when VTEX has no such order."""
        try:
            response = await self._send("get order", "GET", f"/api/oms/pvt/orders/{order_id}")
        except VtexError as exc:
            if exc.status == 404:
                return None
            raise
        return OmsOrder.model_validate(response.json())

    async def find_order_ids(self, marketplace_order_id: str, *, affiliate_id: str) -> list[str]:
        """OMS ids (`{affiliateId}-{marketplaceOrderId}-{NN}`) of the orders placed for a marketplace order.

        OMS List orders, full-text search on the marketplace order id. The list holds only indexed
        orders (about four minutes behind, per the spec): an empty answer does not prove there is none.
        """
        prefix = f"{affiliate_id}-{marketplace_order_id}-"
        found: list[str] = []
        page = 1
        while True:
            response = await self._send(
                "list orders",
                "GET",
                "/api/oms/pvt/orders",
                params={
                    "q": marketplace_order_id,
                    "f_affiliateId": affiliate_id,
                    "page": str(page),
                    "per_page": str(_LIST_PAGE_SIZE),
                },
            )
            listed = OmsOrderList.model_validate(response.json())
            found += [o.order_id for o in listed.orders if o.order_id.startswith(prefix) and o.order_id not in found]
            if page >= min(listed.paging.pages, _LIST_MAX_PAGES):
                return found
            page += 1

    async def cancel_order(self, order_id: str, *, reason: str) -> Receipt:
        """OMS Cancel order. VTEX then confirms on marketplaceServicesEndpoint `/pvt/orders/{id}/cancel`."""
        response = await self._send(
            "cancel order", "POST", f"/api/oms/pvt/orders/{order_id}/cancel", json={"reason": reason}
        )
        return Receipt.model_validate(response.json())

    async def send_invoice(self, order_id: str, body: JSON) -> Receipt:
        """OMS Order invoice notification (the connector sends only return invoices, `type: Input`)."""
        response = await self._send(
            "invoice notification", "POST", f"/api/oms/pvt/orders/{order_id}/invoice", json=body
        )
        return Receipt.model_validate(response.json())

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JSON | None = None,
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            VTEX_REQUESTS.labels(operation=operation, status="none").inc()
            raise error_from_transport(operation, exc) from None
        finally:
            VTEX_SECONDS.labels(operation=operation).observe(time.perf_counter() - started)
        VTEX_REQUESTS.labels(operation=operation, status=str(response.status_code)).inc()
        if response.is_success:
            return response
        raise error_from_response(operation, response, sent=json)
