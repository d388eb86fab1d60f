"""VTEX activities: one per business step, each idempotent and each writing its order-log line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import vtex_failure
from activities.vtex_common import TO_VTEX, existing_order_id, refuse_if_unread_notification, vtex_call_failed
from connector.logbook import Logbook
from connector.models import (
    AuthorizeDispatchInput,
    CancelInVtexInput,
    CancelOrderInput,
    CancelOutcome,
    FindVtexOrderInput,
    OrderStatusInput,
    PlacedOrder,
    PlaceOrderInput,
    ReturnInvoiceInput,
    ValidateOrderInput,
    ValidationReport,
    VtexInvoiceInput,
    VtexOrderInfo,
    VtexOrderInput,
)
from connector.store.models import IdMapping, LogStatus
from connector.validation import validate_order
from connector.vtex.client import VtexClient
from connector.vtex.error_table import Handling, classify, divergent_prices
from connector.vtex.errors import VtexError
from connector.vtex.payloads import fulfillment_order_body, return_invoice_body, sale_invoice_body, simulation_body


class VtexActivities:
    def __init__(
        self, client: VtexClient, logbook: Logbook, *, seller_id: str, services_endpoints: dict[str, str]
    ) -> None:
        self._vtex = client
        self._logbook = logbook
        self._seller_id = seller_id
        self._services_endpoints = services_endpoints

    @activity.defn(name="validate_order")
    async def validate_order(self, request: ValidateOrderInput) -> ValidationReport:
        """Simulation plus every SKU's context, concurrently; all problems come back at once."""
        order = request.order
        sku_ids = list(dict.fromkeys(item.sku_id for item in order.items))
        body = simulation_body(order, seller_id=self._seller_id)
        try:
            simulation, contexts = await asyncio.gather(
                self._vtex.simulate(body, sales_channel=request.sales_channel, affiliate_id=request.affiliate_id),
                asyncio.gather(
                    *(self._vtex.get_sku_context(sku, sales_channel=request.sales_channel) for sku in sku_ids)
                ),
            )
        except VtexError as exc:
            raise await self._failed(
                request.connection,
                order.marketplace_order_id,
                None,
                "Validate order",
                exc,
                request.sales_channel,
                translated=body,
            ) from None
        report = validate_order(
            order,
            simulation,
            dict(zip(sku_ids, contexts, strict=True)),
            sales_channel=request.sales_channel,
            price_divergence_allowance_rate=request.price_divergence_allowance_rate,
            channel_order_api=request.channel_order_api,
        )
        if not report.ok and request.look_for_placed_order:
            placed = await self._placed_before(request)
            if placed is not None:
                return report.model_copy(update={"problems": [], "placed_vtex_order_id": placed})
        ok = report.ok
        # F (SKU inactive), D (SKU information missing) or I (every other or mixed list), all problems at
        # once as the guide asks: see Logbook.validation_line.
        code, status = Logbook.validation_line(report)
        await self._logbook.record(
            code=code,
            operation="Validate order",
            direction=TO_VTEX,
            status=status,
            business_message=(
                "Simulation and SKU checks passed." if ok else report.seller_message(order.marketplace_order_id)
            ),
            connection=request.connection,
            marketplace_order_id=order.marketplace_order_id,
            source=order,
            translated=body,
            destination=simulation,
        )
        return report

    async def _placed_before(self, request: ValidateOrderInput) -> str | None:
        """The VTEX id of this order if an earlier attempt placed it (its problems are then its own)."""
        marketplace_id = request.order.marketplace_order_id
        try:
            existing = await existing_order_id(
                self._vtex, self._logbook.store, request.connection, marketplace_id, request.affiliate_id
            )
        except VtexError:
            return None  # the failed validation stands; the order is retried and looks again
        if existing is None:
            return None
        await self._logbook.store.map_order(
            IdMapping(connection=request.connection, marketplace_order_id=marketplace_id, vtex_order_id=existing)
        )
        await self._logbook.record(
            code="A",
            operation="Validate order",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=(
                f"The order {marketplace_id} already exists in VTEX under the ID {existing} (an earlier attempt "
                "placed it); it is followed, not placed again."
            ),
            connection=request.connection,
            marketplace_order_id=marketplace_id,
            vtex_order_id=existing,
        )
        return existing

    @activity.defn(name="place_order")
    async def place_order(self, request: PlaceOrderInput) -> PlacedOrder:
        order = request.order
        if request.refuse_if_unread_notification:
            await refuse_if_unread_notification(self._logbook.store, request.connection, order.marketplace_order_id)
        try:
            # A retry may follow an attempt whose response was lost after VTEX created the order:
            # look before placing again. The first attempt skips the look-up (one call less per order).
            if activity.info().attempt > 1:
                existing = await existing_order_id(
                    self._vtex,
                    self._logbook.store,
                    request.connection,
                    order.marketplace_order_id,
                    request.affiliate_id,
                )
                if existing is not None:
                    return await self._placed(request, PlacedOrder(vtex_order_id=existing, already_existed=True))
            placed = await self._place(request, created_async=request.report.price_divergent)
        except VtexError as exc:
            handling = classify(exc.status, exc.code)
            if handling is Handling.ALREADY_EXISTS:
                # FMT009: placed before (a lost answer, or a new run of a terminated order).
                return await self._placed(request, await self._require_existing(request))
            if handling is Handling.PRICE_DIVERGENCE and _within_allowance(exc, request):
                # Scenario 1: the connection accepts this divergence, so VTEX queues the order for the
                # seller's manual approval instead of refusing it.
                try:
                    placed = await self._place(request, created_async=True)
                except VtexError as retry_exc:
                    exc = retry_exc
                else:
                    return await self._placed(request, placed)
            raise await self._failed(
                request.connection,
                order.marketplace_order_id,
                None,
                "Place order",
                exc,
                request.sales_channel,
            ) from None
        return await self._placed(request, placed)

    async def _place(self, request: PlaceOrderInput, *, created_async: bool) -> PlacedOrder:
        order = request.order
        body = fulfillment_order_body(
            order,
            request.report,
            seller_id=self._seller_id,
            services_endpoint=self._services_endpoints[request.connection],
            is_created_async=created_async,
            lock_ttl=request.lock_ttl,
        )
        response = await self._vtex.place_fulfillment_order(
            body, sales_channel=request.sales_channel, affiliate_id=request.affiliate_id
        )
        if response.order_id:
            return PlacedOrder(vtex_order_id=response.order_id, awaiting_approval=created_async)
        found = await self._require_existing(request)
        return found.model_copy(update={"already_existed": False, "awaiting_approval": created_async})

    async def _require_existing(self, request: PlaceOrderInput) -> PlacedOrder:
        marketplace_id = request.order.marketplace_order_id
        existing = await existing_order_id(
            self._vtex, self._logbook.store, request.connection, marketplace_id, request.affiliate_id
        )
        if existing is None:
            # VTEX has the order but OMS does not show it yet (it indexes new orders with a lag).
            raise ApplicationError(
                f"VTEX has the order {marketplace_id} but does not show it yet; looking again shortly",
                {
                    "status": None,
                    "code": "NOT_VISIBLE_YET",
                    "message": "order not visible in OMS yet",
                    "action": "Nothing to do: the connector looks for the order again shortly.",
                },
                type=Handling.TRANSIENT.value,
            )
        return PlacedOrder(vtex_order_id=existing, already_existed=True)

    @activity.defn(name="find_vtex_order")
    async def find_vtex_order(self, request: FindVtexOrderInput) -> str | None:
        """The id of the VTEX order of a marketplace order, or None if VTEX shows none (yet)."""
        try:
            found = await existing_order_id(
                self._vtex, self._logbook.store, request.connection, request.marketplace_order_id, request.affiliate_id
            )
        except VtexError as exc:
            raise vtex_failure(exc, sales_channel="") from None
        if found is not None:
            # VTEX's callbacks for this order (e.g. confirming the cancel) name it by this id.
            await self._logbook.store.map_order(
                IdMapping(
                    connection=request.connection,
                    marketplace_order_id=request.marketplace_order_id,
                    vtex_order_id=found,
                )
            )
        return found

    async def _placed(self, request: PlaceOrderInput, placed: PlacedOrder) -> PlacedOrder:
        order = request.order
        await self._logbook.store.map_order(
            IdMapping(
                connection=request.connection,
                marketplace_order_id=order.marketplace_order_id,
                vtex_order_id=placed.vtex_order_id,
            )
        )
        if placed.awaiting_approval:
            code, message = (
                "B",
                (
                    f"The order {order.marketplace_order_id} was created in VTEX under the ID "
                    f"{placed.vtex_order_id} with a price divergence; it waits for the seller's manual "
                    "approval in VTEX."
                ),
            )
        else:
            again = " (it already existed; it was not placed twice)" if placed.already_existed else ""
            code, message = (
                "A",
                (
                    f"The order {order.marketplace_order_id} was created in VTEX successfully under the ID "
                    f"{placed.vtex_order_id}{again}."
                ),
            )
        await self._logbook.record(
            code=code,
            operation="Place order",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=message,
            connection=request.connection,
            marketplace_order_id=order.marketplace_order_id,
            vtex_order_id=placed.vtex_order_id,
            source=order,
            destination=placed,
        )
        return placed

    @activity.defn(name="authorize_dispatch")
    async def authorize_dispatch(self, request: AuthorizeDispatchInput) -> None:
        if request.refuse_if_unread_notification:
            await refuse_if_unread_notification(self._logbook.store, request.connection, request.marketplace_order_id)
        try:
            await self._vtex.authorize_dispatch(
                request.marketplace_order_id,
                sales_channel=request.sales_channel,
                affiliate_id=request.affiliate_id,
            )
        except VtexError as exc:
            raise await self._failed(
                request.connection,
                request.marketplace_order_id,
                request.vtex_order_id,
                "Authorize dispatch",
                exc,
                request.sales_channel,
            ) from None
        await self._logbook.record(
            code="X3",
            operation="Authorize dispatch",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=f"Dispatch of the order {request.vtex_order_id} was authorized.",
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=request.vtex_order_id,
        )

    @activity.defn(name="get_vtex_order")
    async def get_vtex_order(self, request: VtexOrderInput) -> VtexOrderInfo | None:
        """The OMS status and return invoices of an order (None if VTEX does not show it)."""
        try:
            current = await self._vtex.get_order(request.vtex_order_id)
        except VtexError as exc:
            raise vtex_failure(exc, sales_channel=request.sales_channel) from None
        if current is None:
            return None
        return VtexOrderInfo(
            vtex_order_id=current.order_id, status=current.status, return_invoices=current.return_invoice_numbers()
        )

    @activity.defn(name="send_return_invoice")
    async def send_return_invoice(self, request: ReturnInvoiceInput) -> str:
        """Scenario 5: VTEX cancels an invoiced order only once a return invoice covers it. Skipped when
        VTEX already holds a return invoice (a retry, or the seller issued one)."""
        vtex_id = request.vtex_order_id
        try:
            current = await self._vtex.get_order(vtex_id)
            if current is not None and (held := current.return_invoice_numbers()):
                return held[0]
            if current is None:
                raise VtexError(operation="get order", status=404, code=None, message=f"order {vtex_id} not found")
            body = return_invoice_body(
                current, invoice_number=request.invoice_number, issuance_date=datetime.now(UTC).isoformat()
            )
            await self._vtex.send_invoice(vtex_id, body)
        except VtexError as exc:
            raise await self._failed(
                request.connection, request.marketplace_order_id, vtex_id, "Return invoice", exc, request.sales_channel
            ) from None
        await self._logbook.record(
            code="X14",
            operation="Return invoice",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=f"Return invoice {request.invoice_number} sent for the order {vtex_id}.",
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=vtex_id,
        )
        return request.invoice_number

    @activity.defn(name="send_invoice_to_vtex")
    async def send_invoice_to_vtex(self, request: VtexInvoiceInput) -> None:
        """Hand VTEX an invoice the marketplace issued; skipped when VTEX holds that number already (a retry)."""
        vtex_id, invoice = request.vtex_order_id, request.invoice
        try:
            current = await self._vtex.get_order(vtex_id)
            if current is None:
                raise VtexError(operation="get order", status=404, code=None, message=f"order {vtex_id} not found")
            held = {package.invoice_number for package in current.packages()}
            if invoice.invoice_number not in held:
                await self._vtex.send_invoice(vtex_id, sale_invoice_body(invoice))
        except VtexError as exc:
            raise await self._failed(
                request.connection, request.marketplace_order_id, vtex_id, "Invoice", exc, request.sales_channel
            ) from None
        await self._logbook.record(
            code="X24",
            operation="Invoice",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=(
                f"The marketplace's invoice {invoice.invoice_number} ({invoice.invoice_value / 100:.2f}) was sent to "
                f"VTEX for the order {vtex_id}."
            ),
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=vtex_id,
            translated={"invoiceNumber": invoice.invoice_number, "invoiceKey": invoice.invoice_key},
        )

    @activity.defn(name="cancel_in_vtex")
    async def cancel_in_vtex(self, request: CancelInVtexInput) -> CancelOutcome:
        """Cancel one VTEX order (any return invoice was sent before, by its own step)."""
        vtex_id = request.vtex_order_id
        try:
            current = await self._vtex.get_order(vtex_id)
            if current is None:
                outcome = CancelOutcome(existed=False)
            elif current.status == "canceled":
                outcome = CancelOutcome(already_canceled=True)
            else:
                await self._vtex.cancel_order(vtex_id, reason=request.reason)
                outcome = CancelOutcome()
        except VtexError as exc:
            raise await self._failed(
                request.connection, request.marketplace_order_id, vtex_id, "Cancel order", exc, request.sales_channel
            ) from None
        if outcome.existed:
            await self._log_cancel(
                CancelOrderInput(
                    connection=request.connection,
                    marketplace_order_id=request.marketplace_order_id,
                    vtex_order_id=vtex_id,
                    reason=request.reason,
                    sales_channel=request.sales_channel,
                ),
                outcome,
            )
        return outcome

    @activity.defn(name="cancel_vtex_order")
    async def cancel_vtex_order(self, request: CancelOrderInput) -> CancelOutcome:
        """For the first OrderWorkflow definition only (workflows/order_v1.py), until its orders drain:
        return invoice and cancel in one step. OrderLifecycle uses send_return_invoice + cancel_in_vtex."""
        vtex_id = request.vtex_order_id
        try:
            current = await self._vtex.get_order(vtex_id)
            if current is None:
                outcome = CancelOutcome(existed=False)
            elif current.status == "canceled":
                outcome = CancelOutcome(already_canceled=True)
            else:
                return_number = None
                if current.status == "invoiced":
                    # VTEX refuses to cancel an invoiced order until a return invoice covers it.
                    return_number = f"{vtex_id}-RETURN"
                    body = return_invoice_body(
                        current, invoice_number=return_number, issuance_date=datetime.now(UTC).isoformat()
                    )
                    await self._vtex.send_invoice(vtex_id, body)
                await self._vtex.cancel_order(vtex_id, reason=request.reason)
                outcome = CancelOutcome(return_invoice_number=return_number)
        except VtexError as exc:
            raise await self._failed(
                request.connection,
                request.marketplace_order_id,
                vtex_id,
                "Cancel order",
                exc,
                request.sales_channel,
            ) from None
        await self._log_cancel(request, outcome)
        return outcome

    async def _log_cancel(self, request: CancelOrderInput, outcome: CancelOutcome) -> None:
        vtex_id = request.vtex_order_id
        status = LogStatus.SUCCESS
        if not outcome.existed:
            code, message = (
                "X10",
                f"The order {request.marketplace_order_id} was not in VTEX: nothing to cancel.",
            )
        elif outcome.already_canceled:
            code, message = "G", f"The order {vtex_id} has already been cancelled in VTEX."
            status = LogStatus.ERROR
        else:
            returned = (
                f" after the return invoice {outcome.return_invoice_number}" if outcome.return_invoice_number else ""
            )
            code, message = (
                "C",
                f"The order {vtex_id} has been cancelled successfully{returned} ({request.reason}).",
            )
        await self._logbook.record(
            code=code,
            operation="Cancel order",
            direction=TO_VTEX,
            status=status,
            business_message=message,
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=vtex_id,
            destination=outcome,
        )

    @activity.defn(name="get_vtex_order_status")
    async def get_vtex_order_status(self, request: OrderStatusInput) -> str | None:
        """The OMS status of an order (None if VTEX does not know it)."""
        try:
            order = await self._vtex.get_order(request.vtex_order_id)
        except VtexError as exc:
            raise vtex_failure(exc, sales_channel="") from None
        return order.status if order is not None else None

    async def _failed(
        self,
        connection: str,
        marketplace_order_id: str,
        vtex_id: str | None,
        operation: str,
        exc: VtexError,
        sales_channel: str,
        translated: Any = None,
    ) -> ApplicationError:
        return await vtex_call_failed(
            self._logbook,
            connection=connection,
            marketplace_order_id=marketplace_order_id,
            vtex_id=vtex_id,
            operation=operation,
            exc=exc,
            sales_channel=sales_channel,
            translated=translated,
        )


def _within_allowance(exc: VtexError, request: PlaceOrderInput) -> bool:
    rate = request.price_divergence_allowance_rate
    prices = divergent_prices(exc.message)
    if rate is None or prices is None or prices[1] == 0:
        return False
    paid, desired = prices
    return abs(paid - desired) / desired <= rate
