"""Marketplace activities: thin calls through the connection's adapter, each writing its log line."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import marketplace_failure
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import FetchOrderInput, MarketplaceOrder
from connector.store.models import LogStatus

OPERATION = "Get marketplace order"
DIRECTION = "Marketplace to connector"


class MarketplaceActivities:
    def __init__(self, adapters: Mapping[str, MarketplaceAdapter], logbook: Logbook) -> None:
        self._adapters = adapters
        self._logbook = logbook

    @activity.defn(name="fetch_marketplace_order")
    async def fetch_marketplace_order(self, request: FetchOrderInput) -> MarketplaceOrder:
        adapter = self._adapters.get(request.connection)
        if adapter is None:
            raise ApplicationError(
                f"connection {request.connection!r} is not configured on this worker",
                type="UnknownConnection",
                non_retryable=True,
            )
        try:
            order = await adapter.fetch_order(request.marketplace_order_id)
        except MarketplaceError as exc:
            # L: marketplace API unavailable; N: the marketplace rejected the request.
            await self._log(request, "L" if exc.transient else "N", LogStatus.ERROR, str(exc))
            raise marketplace_failure(exc) from None
        await self._log(
            request,
            "X1",
            LogStatus.SUCCESS,
            f"Order {order.marketplace_order_id} read from the marketplace ({order.status.value}).",
            source=order,
        )
        return order

    async def _log(
        self, request: FetchOrderInput, code: str, status: LogStatus, message: str, source: object = None
    ) -> None:
        await self._logbook.record(
            code=code,
            operation=OPERATION,
            direction=DIRECTION,
            status=status,
            business_message=message,
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            source=source,
        )
