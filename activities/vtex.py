"""VTEX activities: one per business step, each idempotent."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.failures import vtex_failure
from connector.models import (
    AuthorizeDispatchInput,
    PlacedOrder,
    PlaceOrderInput,
    ValidateOrderInput,
    ValidationReport,
    vtex_order_id,
)
from connector.validation import validate_order
from connector.vtex.client import VtexClient
from connector.vtex.errors import VtexError
from connector.vtex.payloads import fulfillment_order_body, simulation_body

# FMT009: "The request order with marketplace order id {0} for affiliate {1} already exists".
ORDER_ALREADY_EXISTS = "FMT009"


class VtexActivities:
    def __init__(self, client: VtexClient, *, seller_id: str, services_endpoints: dict[str, str]) -> None:
        self._vtex = client
        self._seller_id = seller_id
        self._services_endpoints = services_endpoints

    @activity.defn(name="validate_order")
    async def validate_order(self, request: ValidateOrderInput) -> ValidationReport:
        """Simulation plus every SKU's context, concurrently; all problems come back at once."""
        order = request.order
        sku_ids = list(dict.fromkeys(item.sku_id for item in order.items))
        try:
            simulation, contexts = await asyncio.gather(
                self._vtex.simulate(
                    simulation_body(order, seller_id=self._seller_id),
                    sales_channel=request.sales_channel,
                    affiliate_id=request.affiliate_id,
                ),
                asyncio.gather(
                    *(self._vtex.get_sku_context(sku, sales_channel=request.sales_channel) for sku in sku_ids)
                ),
            )
        except VtexError as exc:
            raise vtex_failure(exc) from None
        return validate_order(
            order, simulation, dict(zip(sku_ids, contexts, strict=True)), sales_channel=request.sales_channel
        )

    @activity.defn(name="place_order")
    async def place_order(self, request: PlaceOrderInput) -> PlacedOrder:
        order = request.order
        expected_id = vtex_order_id(request.affiliate_id, order.marketplace_order_id)
        try:
            # A retry may follow an attempt whose response was lost after VTEX created the order:
            # look before placing again. The first attempt skips the look-up (one call less per order).
            if activity.info().attempt > 1 and await self._vtex.get_order(expected_id) is not None:
                return PlacedOrder(vtex_order_id=expected_id, already_existed=True)
            body = fulfillment_order_body(
                order,
                request.report,
                seller_id=self._seller_id,
                services_endpoint=self._services_endpoints[request.connection],
            )
            response = await self._vtex.place_fulfillment_order(
                body, sales_channel=request.sales_channel, affiliate_id=request.affiliate_id
            )
        except VtexError as exc:
            if exc.code == ORDER_ALREADY_EXISTS:
                return PlacedOrder(vtex_order_id=expected_id, already_existed=True)
            raise vtex_failure(exc) from None
        return PlacedOrder(vtex_order_id=response.order_id or expected_id)

    @activity.defn(name="authorize_dispatch")
    async def authorize_dispatch(self, request: AuthorizeDispatchInput) -> None:
        try:
            await self._vtex.authorize_dispatch(
                request.marketplace_order_id,
                sales_channel=request.sales_channel,
                affiliate_id=request.affiliate_id,
            )
        except VtexError as exc:
            raise vtex_failure(exc) from None
