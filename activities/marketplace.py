"""Marketplace activities: thin calls through the connection's adapter, each writing its log line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import marketplace_failure
from connector.failures import UNKNOWN_CONNECTION
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import (
    FetchOrderInput,
    Invoice,
    MarketplaceCancellationInput,
    MarketplaceInvoiceInput,
    MarketplaceOrder,
    MarketplaceTrackingInput,
)
from connector.store.base import OrderStore
from connector.store.models import LogStatus

OPERATION = "Get marketplace order"
DIRECTION = "Marketplace to connector"
TO_MARKETPLACE = "Connector to marketplace"


class MarketplaceActivities:
    def __init__(self, adapters: Mapping[str, MarketplaceAdapter], logbook: Logbook, *, ledger: OrderStore) -> None:
        self._adapters = adapters
        self._logbook = logbook
        self._ledger = ledger

    @activity.defn(name="fetch_marketplace_order")
    async def fetch_marketplace_order(self, request: FetchOrderInput) -> MarketplaceOrder:
        adapter = self._adapters.get(request.connection)
        if adapter is None:
            raise ApplicationError(
                f"connection {request.connection!r} is not configured on this worker",
                type=UNKNOWN_CONNECTION,
                non_retryable=True,
            )
        began = datetime.now(UTC)
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
        # The poller skips a listed change this read already covered (activities/polling.py).
        await self._ledger.note_read(request.connection, request.marketplace_order_id, began, order.updated_at)
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


class MarketplaceFollowUpActivities:
    """Invoice, tracking and cancellation from VTEX, handed to the marketplace."""

    def __init__(self, adapters: Mapping[str, MarketplaceAdapter], logbook: Logbook) -> None:
        self._adapters = adapters
        self._logbook = logbook

    @activity.defn(name="send_invoice_to_marketplace")
    async def send_invoice_to_marketplace(self, request: MarketplaceInvoiceInput) -> None:
        invoice = request.invoice
        await self._deliver(
            request.connection,
            request.marketplace_order_id,
            request.vtex_order_id,
            "Invoice sending",
            "X11",
            f"Invoice {invoice.invoice_number} ({invoice.type.value}, {invoice.invoice_value / 100:.2f}) sent to "
            "the marketplace.",
            lambda adapter: adapter.send_invoice(request.marketplace_order_id, invoice),
            invoice,
        )

    @activity.defn(name="fetch_marketplace_invoices")
    async def fetch_marketplace_invoices(self, request: FetchOrderInput) -> list[Invoice]:
        """Invoices the marketplace issued itself for an order it fulfills (Mercado Libre Full), for VTEX."""
        adapter = self._adapters.get(request.connection)
        if adapter is None:
            raise ApplicationError(
                f"connection {request.connection!r} is not configured on this worker",
                type=UNKNOWN_CONNECTION,
                non_retryable=True,
            )
        try:
            return await adapter.marketplace_invoices(request.marketplace_order_id)
        except MarketplaceError as exc:
            await self._logbook.record(
                code="L" if exc.transient else "N",
                operation="Invoice reading",
                direction="Marketplace to connector",
                status=LogStatus.ERROR,
                business_message=str(exc),
                connection=request.connection,
                marketplace_order_id=request.marketplace_order_id,
            )
            raise marketplace_failure(exc) from None

    @activity.defn(name="send_tracking_to_marketplace")
    async def send_tracking_to_marketplace(self, request: MarketplaceTrackingInput) -> None:
        tracking = request.tracking
        await self._deliver(
            request.connection,
            request.marketplace_order_id,
            request.vtex_order_id,
            "Tracking code sending",
            "X12",
            f"Tracking {tracking.tracking_number} of invoice {tracking.invoice_number} sent to the marketplace.",
            lambda adapter: adapter.send_tracking(request.marketplace_order_id, tracking),
            tracking,
        )

    @activity.defn(name="notify_marketplace_of_cancellation")
    async def notify_marketplace_of_cancellation(self, request: MarketplaceCancellationInput) -> None:
        await self._deliver(
            request.connection,
            request.marketplace_order_id,
            request.vtex_order_id,
            "Order status update",
            "X13",
            f"The marketplace was told that the order was canceled in VTEX ({request.reason}).",
            lambda adapter: adapter.notify_cancellation(request.marketplace_order_id, request.reason),
            {"reason": request.reason},
        )

    async def _deliver(
        self,
        connection: str,
        marketplace_order_id: str,
        vtex_order_id: str | None,
        operation: str,
        code: str,
        message: str,
        send: Callable[[MarketplaceAdapter], Awaitable[None]],
        content: object,
    ) -> None:
        adapter = self._adapters.get(connection)
        if adapter is None:
            raise ApplicationError(
                f"connection {connection!r} is not configured on this worker",
                type=UNKNOWN_CONNECTION,
                non_retryable=True,
            )
        try:
            await send(adapter)
        except MarketplaceError as exc:
            await self._logbook.record(
                code="L" if exc.transient else "N",
                operation=operation,
                direction=TO_MARKETPLACE,
                status=LogStatus.ERROR,
                business_message=str(exc),
                connection=connection,
                marketplace_order_id=marketplace_order_id,
                vtex_order_id=vtex_order_id,
                translated=content,
            )
            raise marketplace_failure(exc) from None
        await self._logbook.record(
            code=code,
            operation=operation,
            direction=TO_MARKETPLACE,
            status=LogStatus.SUCCESS,
            business_message=message,
            connection=connection,
            marketplace_order_id=marketplace_order_id,
            vtex_order_id=vtex_order_id,
            translated=content,
        )
