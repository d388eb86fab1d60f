"""Marketplace activities: thin calls through the connection's adapter."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import marketplace_failure
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import FetchOrderInput, MarketplaceOrder


class MarketplaceActivities:
    def __init__(self, adapters: Mapping[str, MarketplaceAdapter]) -> None:
        self._adapters = adapters

    @activity.defn(name="fetch_marketplace_order")
    async def fetch_marketplace_order(self, request: FetchOrderInput) -> MarketplaceOrder:
        adapter = self._adapters.get(request.connection)
        if adapter is None:
            raise ApplicationError(
                f"connection {request.connection!r} is not configured on this worker",
                type="Connector.UnknownConnection",
                non_retryable=True,
            )
        try:
            return await adapter.fetch_order(request.marketplace_order_id)
        except MarketplaceError as exc:
            raise marketplace_failure(exc) from None
