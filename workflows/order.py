"""OrderWorkflow: one durable workflow per marketplace order.

fetch the marketplace order → validate (simulation + SKU contexts) → place the fulfillment order →
authorize dispatch → stay open for the follow-up lifecycle (invoice, tracking, cancellation).

The workflow decides, activities act. Every transition lands in the timeline the `status` query
returns; search attributes are upserted only at milestones, since each upsert is a history event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.models import (
        AuthorizeDispatchInput,
        FetchOrderInput,
        MarketplaceNotification,
        MarketplaceOrder,
        MarketplaceOrderStatus,
        OrderState,
        OrderStatus,
        OrderWorkflowInput,
        PlacedOrder,
        PlaceOrderInput,
        TimelineEntry,
        ValidateOrderInput,
        ValidationReport,
    )

VTEX_ORDER_ID = SearchAttributeKey.for_keyword("VtexOrderId")
MARKETPLACE_ORDER_ID = SearchAttributeKey.for_keyword("MarketplaceOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CONNECTION = SearchAttributeKey.for_keyword("Connection")
SEARCH_ATTRIBUTES = (VTEX_ORDER_ID, MARKETPLACE_ORDER_ID, ORDER_STATUS, CONNECTION)

# Transient failures (5xx, 429, timeouts) retry here; business errors are non-retryable at the source.
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
)
ACTIVITY_TIMEOUT = timedelta(seconds=60)

T = TypeVar("T")


class OrderParked(Exception):
    """The order cannot go on until someone acts; `reason` is the message for the seller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, request: OrderWorkflowInput) -> None:
        self._input = request
        self._state = OrderState(
            connection=request.connection, marketplace_order_id=request.marketplace_order_id
        )
        self._wake = False
        self._placed: PlacedOrder | None = None

    @workflow.run
    async def run(self, request: OrderWorkflowInput) -> OrderState:
        self._record("received", "success", "order workflow started")
        order = await self._integrate()
        if order is not None:
            # Follow-up lifecycle (invoice, tracking, cancellation) arrives by signal; until then the
            # workflow waits without a timer, so an idle order costs no history events.
            await workflow.wait_condition(lambda: False)
        return self._state

    @workflow.signal
    def notify(self, notification: MarketplaceNotification) -> None:
        """A marketplace notification (webhook or poll) for this order; duplicates are harmless."""
        self._state.notifications_received += 1
        if self._state.notifications_received > 1:
            self._record("notification", "success", f"{notification.source} notification received again")
        self._wake = True

    @workflow.query
    def status(self) -> OrderState:
        return self._state

    async def _integrate(self) -> MarketplaceOrder | None:
        """Run the integration until the order is dispatch-authorized (or canceled first)."""
        while True:
            self._wake = False
            try:
                order = await self._fetch()
                if order.status is MarketplaceOrderStatus.CANCELED:
                    self._record("fetch", "success", "order canceled in the marketplace before integration")
                    return None
                if order.status is MarketplaceOrderStatus.TO_BE_PAID:
                    self._record("fetch", "pending", "order not paid yet; waiting for the marketplace")
                else:
                    if self._placed is None:
                        report = await self._validate(order)
                        self._placed = await self._place(order, report)
                    await self._authorize(order, self._placed)
                    return order
            except OrderParked as parked:
                self._park(parked.reason)
            # Parked or unpaid: a new notification (the order changed) is the cue to look again.
            await workflow.wait_condition(lambda: self._wake)

    async def _fetch(self) -> MarketplaceOrder:
        order = await self._call(
            "fetch",
            "fetch_marketplace_order",
            FetchOrderInput(
                connection=self._input.connection, marketplace_order_id=self._input.marketplace_order_id
            ),
            MarketplaceOrder,
        )
        self._record("fetch", "success", f"marketplace order read: {len(order.items)} item line(s)")
        return order

    async def _validate(self, order: MarketplaceOrder) -> ValidationReport:
        self._state.status = OrderStatus.VALIDATING
        report = await self._call(
            "validate",
            "validate_order",
            ValidateOrderInput(
                order=order, affiliate_id=self._input.affiliate_id, sales_channel=self._input.sales_channel
            ),
            ValidationReport,
        )
        if not report.ok:
            raise OrderParked(report.seller_message(order.marketplace_order_id))
        self._record("validate", "success", "simulation and SKU checks passed")
        return report

    async def _place(self, order: MarketplaceOrder, report: ValidationReport) -> PlacedOrder:
        self._state.status = OrderStatus.PLACING
        placed = await self._call(
            "place",
            "place_order",
            PlaceOrderInput(
                order=order,
                report=report,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
                connection=self._input.connection,
            ),
            PlacedOrder,
        )
        self._state.vtex_order_id = placed.vtex_order_id
        self._set_status(OrderStatus.PLACED, VTEX_ORDER_ID.value_set(placed.vtex_order_id))
        note = " (it already existed: not placed twice)" if placed.already_existed else ""
        self._record(
            "place",
            "success",
            f"The order {order.marketplace_order_id} was created in VTEX successfully under the ID "
            f"{placed.vtex_order_id}{note}.",
        )
        return placed

    async def _authorize(self, order: MarketplaceOrder, placed: PlacedOrder) -> None:
        await self._execute(
            "authorize",
            "authorize_dispatch",
            AuthorizeDispatchInput(
                marketplace_order_id=order.marketplace_order_id,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
            ),
            None,
        )
        self._set_status(OrderStatus.DISPATCH_AUTHORIZED)
        self._record("authorize", "success", f"dispatch authorized for {placed.vtex_order_id}")

    async def _call(self, step: str, activity: str, argument: object, result_type: type[T]) -> T:
        result: T = await self._execute(step, activity, argument, result_type)
        return result

    async def _execute(
        self, step: str, activity: str, argument: object, result_type: type[Any] | None
    ) -> Any:
        try:
            return await workflow.execute_activity(
                activity,
                argument,
                result_type=result_type,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                self._record(step, "error", f"{cause.type}: {cause.message}")
                raise OrderParked(f"{step} failed: {cause.message}") from None
            raise

    def _park(self, reason: str) -> None:
        self._state.parked_reason = reason
        self._set_status(OrderStatus.PARKED)
        self._record("parked", "alert", reason)

    def _set_status(self, status: OrderStatus, *extra: SearchAttributeUpdate[str]) -> None:
        self._state.status = status
        if status is not OrderStatus.PARKED:
            self._state.parked_reason = None
        workflow.upsert_search_attributes([ORDER_STATUS.value_set(status.value), *extra])

    def _record(self, step: str, outcome: str, message: str) -> None:
        workflow.logger.info("order %s %s %s: %s", self._input.marketplace_order_id, step, outcome, message)
        self._state.timeline.append(
            TimelineEntry(at=workflow.now(), step=step, outcome=outcome, message=message)
        )
