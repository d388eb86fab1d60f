"""VTEX's Channel Order API (New Order Integration), for connections with `vtex_flow` order-integration.

Three steps, each idempotent and each writing its order-log line:
- enqueue: POST /api/order-integration/orders; VTEX answers SOI003 ("enqueued") and works asynchronously.
  Sending the same order again is safe: VTEX refuses a duplicate (EOI007) and the order is looked up.
- look up: where VTEX stands, asked of VTEX itself (Get order, the id map, OMS's list), never taken from a
  processing-result notification alone: a notification only says where to look first, and an error it
  reports holds only when VTEX shows no order.
- approve: PUT /api/order-integration/orders/status `approved` once the marketplace confirms the payment.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import vtex_failure
from activities.vtex_common import TO_VTEX, existing_order_id, refuse_if_unread_notification, vtex_call_failed
from connector.logbook import Logbook
from connector.models import (
    ApproveChannelOrderInput,
    ChannelOrderLook,
    ChannelOrderResult,
    EnqueueChannelOrderInput,
    LookUpChannelOrderInput,
    VtexOrderInfo,
)
from connector.store.models import IdMapping, LogStatus
from connector.vtex.client import VtexClient
from connector.vtex.error_table import Handling, channel_order_action, channel_order_handling, classify
from connector.vtex.errors import VtexError
from connector.vtex.payloads import channel_order_body, channel_order_status_body
from connector.vtex.responses import OmsOrder

# The order-log code of a Channel Order error result, by how the order handles it (README, "The order log").
RESULT_LOG_CODES = {
    Handling.TRANSIENT: "X4",
    Handling.REPROCESS: "X5",
    Handling.PRICE_DIVERGENCE: "X8",
    Handling.BUSINESS: "X9",
    Handling.CREDENTIALS: "X7",
    Handling.ALREADY_CANCELED: "G",
}
# OMS status of an order VTEX integrated with a price divergence its Order Authorization rules hold.
MANUAL_AUTHORIZATION = "waiting-for-manual-authorization"
# OMS statuses of an approved order, free to be handled (Orders API order status list): for the Channel
# Order API, what dispatch authorized is in the fulfillment flow.
APPROVED_STATUSES = frozenset(
    {"payment-approved", "ready-for-handling", "start-handling", "handling", "invoice", "invoiced"}
)


class ChannelOrderActivities:
    def __init__(self, client: VtexClient, logbook: Logbook, *, services_endpoints: dict[str, str]) -> None:
        self._vtex = client
        self._logbook = logbook
        # connectorEndpoint: VTEX's callbacks and processing results come back under the connection's
        # own secret path (the Update call forbids a query string, so the secret cannot go there).
        self._endpoints = services_endpoints

    @activity.defn(name="enqueue_channel_order")
    async def enqueue_channel_order(self, request: EnqueueChannelOrderInput) -> str | None:
        """Send the order; the operation id VTEX gave (often none: the guide's examples answer null)."""
        order = request.order
        if request.refuse_if_unread_notification:
            await refuse_if_unread_notification(self._logbook.store, request.connection, order.marketplace_order_id)
        body = channel_order_body(
            order,
            request.report,
            connector_name=request.connection,
            connector_endpoint=self._endpoints[request.connection],
            paid=order.status.value == "paid",
            price_divergence_allowance_rate=request.price_divergence_allowance_rate,
            lock_ttl=request.lock_ttl,
        )
        try:
            answer = await self._vtex.enqueue_channel_order(body, affiliate_id=request.affiliate_id)
        except VtexError as exc:
            if classify(exc.status, exc.code) is Handling.ALREADY_EXISTS:
                return None  # VTEX has it (EOI007 said at once): the look-up that follows finds it
            raise await vtex_call_failed(
                self._logbook,
                connection=request.connection,
                marketplace_order_id=order.marketplace_order_id,
                vtex_id=None,
                operation="Place order",
                exc=exc,
                sales_channel=request.sales_channel,
                translated=body,
            ) from None
        await self._logbook.record(
            code="X19",
            operation="Place order",
            direction=TO_VTEX,
            status=LogStatus.PENDING,
            business_message=(
                f"The order {order.marketplace_order_id} was sent to VTEX's Channel Order API as "
                f"{body['marketplaceOrderStatus']} ({answer.code}: {answer.message}); VTEX integrates it and "
                "reports the result."
            ),
            connection=request.connection,
            marketplace_order_id=order.marketplace_order_id,
            source=order,
            translated=body,
            destination=answer,
        )
        return answer.operation_id

    @activity.defn(name="look_up_channel_order")
    async def look_up_channel_order(self, request: LookUpChannelOrderInput) -> ChannelOrderLook:
        """The VTEX order made for this marketplace order (None: VTEX shows none yet). A PlaceOrder error
        result with no VTEX order behind it fails the step the way the error table says."""
        marketplace_id = request.marketplace_order_id
        try:
            found, named_another_order = await self._find(request)
        except VtexError as exc:
            raise vtex_failure(exc, sales_channel=request.sales_channel) from None
        if found is not None:
            await self._logbook.store.map_order(
                IdMapping(
                    connection=request.connection, marketplace_order_id=marketplace_id, vtex_order_id=found.order_id
                )
            )
            if request.approval:
                await self._log_approved(request, found)
            else:
                await self._log_integrated(request, found)
            info = VtexOrderInfo(
                vtex_order_id=found.order_id, status=found.status, return_invoices=found.return_invoice_numbers()
            )
            return ChannelOrderLook(order=info, named_another_order=named_another_order)
        if request.result is not None:
            await self._fail_with(request, request.result)
        return ChannelOrderLook(named_another_order=named_another_order)

    async def _find(self, request: LookUpChannelOrderInput) -> tuple[OmsOrder | None, bool]:
        """The order, looked for where a result named it first; and whether that place holds another
        marketplace order's."""
        named_another_order = False
        if request.main_order_id:
            named = await self._vtex.get_order(request.main_order_id)
            if named is not None and named.marketplace_order_id == request.marketplace_order_id:
                return named, False
            if named is not None:
                await self._not_this_order(request, named)
                named_another_order = True
        found = await existing_order_id(
            self._vtex, self._logbook.store, request.connection, request.marketplace_order_id, request.affiliate_id
        )
        return (await self._vtex.get_order(found) if found is not None else None), named_another_order

    async def _not_this_order(self, request: LookUpChannelOrderInput, named: OmsOrder) -> None:
        """A processing result named a VTEX order of another marketplace order: forged, or VTEX's mistake."""
        await self._logbook.record(
            code="X18",
            operation="Place order",
            direction="VTEX to connector",
            status=LogStatus.ALERT,
            business_message=(
                f"A processing result for the order {request.marketplace_order_id} named the VTEX order "
                f"{named.order_id}, which belongs to the marketplace order {named.marketplace_order_id}; it was "
                "ignored. If it was not VTEX, someone knows the callback URL: rotate CALLBACK_TOKEN."
            ),
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
        )

    async def _log_integrated(self, request: LookUpChannelOrderInput, order: OmsOrder) -> None:
        if order.status == MANUAL_AUTHORIZATION:
            code, note = "B", " with a price divergence; it waits for the seller's manual approval in VTEX"
        else:
            code, note = "A", ""
        await self._logbook.record(
            code=code,
            operation="Place order",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=(
                f"The order {request.marketplace_order_id} was created in VTEX successfully under the ID "
                f"{order.order_id}{note}."
            ),
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=order.order_id,
            destination={"orderId": order.order_id, "status": order.status},
        )

    async def _log_approved(self, request: LookUpChannelOrderInput, order: OmsOrder) -> None:
        if order.status not in APPROVED_STATUSES:
            return
        await self._logbook.record(
            code="X3",
            operation="Authorize dispatch",
            direction=TO_VTEX,
            status=LogStatus.SUCCESS,
            business_message=f"VTEX approved the order {order.order_id} ({order.status}): dispatch is authorized.",
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=order.order_id,
            destination={"orderId": order.order_id, "status": order.status},
        )

    async def _fail_with(self, request: LookUpChannelOrderInput, result: ChannelOrderResult) -> None:
        """VTEX reported an error and shows no order: the error stands. EOI007 (duplicate) does not: VTEX
        has the order, OMS just does not show it yet, so the order keeps looking."""
        handling = channel_order_handling(result.code)
        if handling is None or handling is Handling.ALREADY_EXISTS:
            return
        await self._raise_result(
            request.connection,
            request.marketplace_order_id,
            None,
            "Place order",
            result,
            handling,
            request.sales_channel,
        )

    async def _raise_result(
        self,
        connection: str,
        marketplace_order_id: str,
        vtex_id: str | None,
        operation: str,
        result: ChannelOrderResult,
        handling: Handling,
        sales_channel: str,
    ) -> None:
        action = channel_order_action(
            result.code, result.errors, sales_channel=sales_channel, operation_id=result.operation_id
        )
        await self._logbook.record(
            code=RESULT_LOG_CODES.get(handling, "X9"),
            operation=operation,
            direction=TO_VTEX,
            status=LogStatus.ALERT if handling is Handling.CREDENTIALS else LogStatus.ERROR,
            business_message=action,
            connection=connection,
            marketplace_order_id=marketplace_order_id,
            vtex_order_id=vtex_id,
            destination=result,
        )
        raise ApplicationError(
            f"VTEX's Channel Order API reported {result.code} for the order {marketplace_order_id}",
            {"status": None, "code": result.code, "message": action, "action": action},
            type=handling.value,
            non_retryable=True,  # a report, not a call to try again now: the workflow holds the order
        )

    @activity.defn(name="approve_channel_order")
    async def approve_channel_order(self, request: ApproveChannelOrderInput) -> None:
        """Ask VTEX to approve the order; VTEX reports SOI002 (or why not) asynchronously. An ApproveOrder
        error since the last request is reported first (EOI009 for an order VTEX does not cancel, EOI008
        ...), and fails the step the way the error table says."""
        if request.result is not None:
            handling = channel_order_handling(request.result.code)
            if request.result.code == "EOI009":
                # Not approvable, and VTEX does not show it canceled (the workflow looked): a person must look.
                handling = Handling.BUSINESS
            if handling is not None and handling is not Handling.ALREADY_EXISTS:
                await self._raise_result(
                    request.connection,
                    request.marketplace_order_id,
                    request.vtex_order_id,
                    "Authorize dispatch",
                    request.result,
                    handling,
                    request.sales_channel,
                )
        if request.refuse_if_unread_notification:
            await refuse_if_unread_notification(self._logbook.store, request.connection, request.marketplace_order_id)
        body = channel_order_status_body(
            request.marketplace_order_id,
            connector_name=request.connection,
            connector_endpoint=self._endpoints[request.connection],
        )
        try:
            answer = await self._vtex.update_channel_order_status(body)
        except VtexError as exc:
            raise await vtex_call_failed(
                self._logbook,
                connection=request.connection,
                marketplace_order_id=request.marketplace_order_id,
                vtex_id=request.vtex_order_id,
                operation="Authorize dispatch",
                exc=exc,
                sales_channel=request.sales_channel,
            ) from None
        await self._logbook.record(
            code="X21",
            operation="Authorize dispatch",
            direction=TO_VTEX,
            status=LogStatus.PENDING,
            business_message=(
                f"The approval of the order {request.vtex_order_id} was sent to VTEX ({answer.code}: "
                f"{answer.message}); VTEX approves it and reports the result."
            ),
            connection=request.connection,
            marketplace_order_id=request.marketplace_order_id,
            vtex_order_id=request.vtex_order_id,
            destination=answer,
        )
