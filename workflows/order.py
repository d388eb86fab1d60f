"""OrderWorkflow: one durable workflow per marketplace order.

fetch the marketplace order → validate (simulation + SKU contexts) → place the fulfillment order →
authorize dispatch → stay open for the follow-up lifecycle (invoice, tracking, cancellation).

The workflow decides, activities act. A failure comes back typed by the error table (connector/vtex/
error_table.py) and becomes one of two setbacks: *retry later* (reprocess queue on a durable backoff,
dead-lettered after `policy.max_attempts`, never dropped) or *seller must act* (parked until a
`reprocess` signal or a new marketplace notification). Every transition lands in the timeline the
`status` query returns; search attributes are upserted only when the status changes.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from connector.models import (
        AuthorizeDispatchInput,
        FetchOrderInput,
        MarketplaceNotification,
        MarketplaceOrder,
        MarketplaceOrderStatus,
        OrderState,
        OrderStatus,
        OrderStatusInput,
        OrderWorkflowInput,
        PlacedOrder,
        PlaceOrderInput,
        ReprocessRequest,
        TimelineEntry,
        ValidateOrderInput,
        ValidationReport,
        WorkflowLogInput,
    )
    from connector.vtex.error_table import Handling

VTEX_ORDER_ID = SearchAttributeKey.for_keyword("VtexOrderId")
MARKETPLACE_ORDER_ID = SearchAttributeKey.for_keyword("MarketplaceOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CONNECTION = SearchAttributeKey.for_keyword("Connection")
ERROR_CODE = SearchAttributeKey.for_keyword("ErrorCode")
SEARCH_ATTRIBUTES = (VTEX_ORDER_ID, MARKETPLACE_ORDER_ID, ORDER_STATUS, CONNECTION, ERROR_CODE)

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# VTEX status of an order placed with isCreatedAsync until the seller approves the price.
MANUAL_APPROVAL = "waiting-for-manual-authorization"

# Failures worth trying again later without anyone acting (the guide's reprocess queue).
RETRY_LATER = frozenset(
    {Handling.TRANSIENT.value, Handling.REPROCESS.value, Handling.CREDENTIALS.value, "MarketplaceUnavailable"}
)

T = TypeVar("T")


class Setback(Exception):
    """This attempt cannot go on. `retry`: the reprocess queue takes it; otherwise the seller must act."""

    def __init__(self, *, step: str, retry: bool, code: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.retry = retry
        self.code = code
        self.reason = reason


class CanceledInVtex(Exception):
    """VTEX canceled the order (FMT0060, or the seller refused it): nothing left to integrate."""


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, request: OrderWorkflowInput) -> None:
        self._input = request
        self._policy = request.policy
        self._state = OrderState(
            connection=request.connection, marketplace_order_id=request.marketplace_order_id
        )
        self._wake = False
        self._reprocess_requested = False
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

    @workflow.signal
    def reprocess(self, request: ReprocessRequest) -> None:
        """Try a parked, queued or dead-lettered order again now, with a fresh count of attempts."""
        self._record("reprocess", "pending", request.reason)
        self._reprocess_requested = True
        self._wake = True

    @workflow.query
    def status(self) -> OrderState:
        return self._state

    # -- the integration loop ---------------------------------------------------------------------

    async def _integrate(self) -> MarketplaceOrder | None:
        """Run attempts until the order is dispatch-authorized, or canceled before that."""
        while True:
            self._wake = False
            if self._reprocess_requested:
                self._reprocess_requested = False
                self._state.reprocess_attempts = 0
            try:
                order = await self._fetch()
                if order.status is MarketplaceOrderStatus.CANCELED:
                    await self._canceled_in_marketplace()
                    return None
                if order.status is MarketplaceOrderStatus.TO_BE_PAID:
                    self._set_status(OrderStatus.AWAITING_PAYMENT)
                    self._record("fetch", "pending", "order not paid yet; waiting for the marketplace")
                    await workflow.wait_condition(lambda: self._wake)
                    continue
                await self._place_and_authorize(order)
                return order
            except CanceledInVtex:
                self._set_status(OrderStatus.CANCELED)
                return None
            except Setback as setback:
                if not await self._handle_setback(setback):
                    return None

    async def _place_and_authorize(self, order: MarketplaceOrder) -> None:
        if self._placed is None:
            report = await self._validate(order)
            self._placed = await self._place(order, report)
        if self._placed.awaiting_approval:
            await self._await_price_approval(self._placed)
        await self._authorize(order, self._placed)

    async def _handle_setback(self, setback: Setback) -> bool:
        """Park or queue the order, then wait for the next attempt. False: the order left the queue."""
        self._state.error_code = setback.code
        if not setback.retry:
            self._park(OrderStatus.PARKED, setback)
            await workflow.wait_condition(lambda: self._wake)
            return True
        self._state.reprocess_attempts += 1
        if setback.step != "fetch":
            # Guide scenarios 2-4: re-read the marketplace order; one canceled there leaves the queue.
            try:
                if (await self._fetch()).status is MarketplaceOrderStatus.CANCELED:
                    await self._canceled_in_marketplace()
                    return False
            except Setback:
                pass  # the marketplace is down too: the backoff below covers both
        attempts = self._state.reprocess_attempts
        if attempts >= self._policy.max_attempts:
            self._park(OrderStatus.DEAD_LETTERED, setback)
            await self._log_decision(
                "X6",
                "alert",
                f"The order {self._input.marketplace_order_id} failed {attempts} attempts and was moved "
                f"to the dead-letter queue: {setback.reason} It is retried every "
                f"{self._policy.dead_letter_retry_seconds / 3600:g} h, or now with `connector reprocess`.",
            )
            delay = self._policy.dead_letter_retry_seconds
        else:
            self._park(OrderStatus.REPROCESSING, setback)
            delay = self._policy.delay(attempts)
        try:
            await workflow.wait_condition(lambda: self._wake, timeout=timedelta(seconds=delay))
        except builtins.TimeoutError:
            pass
        return True

    async def _canceled_in_marketplace(self) -> None:
        queued = self._state.status in (
            OrderStatus.REPROCESSING,
            OrderStatus.PARKED,
            OrderStatus.DEAD_LETTERED,
        )
        if queued:
            # Q: "couldn't reprocess the order ... since this order was cancelled manually in the
            # marketplace".
            await self._log_decision(
                "Q",
                "error",
                f"We couldn't reprocess the order {self._input.marketplace_order_id}, since this order was "
                "cancelled in the marketplace.",
            )
        self._set_status(OrderStatus.CANCELED)
        self._record(
            "fetch",
            "success",
            "order canceled in the marketplace before integration",
            "Q" if queued else None,
        )

    # -- steps --------------------------------------------------------------------------------------

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
                order=order,
                connection=self._input.connection,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
                price_divergence_allowance_rate=self._input.price_divergence_allowance_rate,
            ),
            ValidationReport,
        )
        if not report.ok:
            raise Setback(
                step="validate",
                retry=not report.needs_seller_action,
                code="VALIDATION",
                reason=report.seller_message(order.marketplace_order_id),
            )
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
                price_divergence_allowance_rate=self._input.price_divergence_allowance_rate,
            ),
            PlacedOrder,
        )
        self._state.vtex_order_id = placed.vtex_order_id
        status = OrderStatus.PENDING_APPROVAL if placed.awaiting_approval else OrderStatus.PLACED
        self._set_status(status, VTEX_ORDER_ID.value_set(placed.vtex_order_id))
        note = " (it already existed: not placed twice)" if placed.already_existed else ""
        if placed.awaiting_approval:
            note = " with a price divergence; it waits for the seller's manual approval in VTEX"
        self._record(
            "place",
            "success",
            f"created in VTEX as {placed.vtex_order_id}{note}",
            "B" if placed.awaiting_approval else "A",
        )
        return placed

    async def _await_price_approval(self, placed: PlacedOrder) -> None:
        """VTEX holds an isCreatedAsync order until the seller approves the price: look now and then."""
        while True:
            vtex_status = await self._call(
                "approval", "get_vtex_order_status", OrderStatusInput(vtex_order_id=placed.vtex_order_id), str
            )
            if vtex_status == "canceled":
                self._record(
                    "approval", "error", "the seller refused the price divergence: VTEX canceled the order"
                )
                raise CanceledInVtex
            if vtex_status != MANUAL_APPROVAL:
                self._record("approval", "success", "the seller approved the price divergence")
                return
            try:
                await workflow.wait_condition(
                    lambda: self._wake, timeout=timedelta(seconds=self._policy.approval_poll_seconds)
                )
            except builtins.TimeoutError:
                pass
            self._wake = False

    async def _authorize(self, order: MarketplaceOrder, placed: PlacedOrder) -> None:
        await self._execute(
            "authorize",
            "authorize_dispatch",
            AuthorizeDispatchInput(
                connection=self._input.connection,
                marketplace_order_id=order.marketplace_order_id,
                vtex_order_id=placed.vtex_order_id,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
            ),
            None,
        )
        self._set_status(OrderStatus.DISPATCH_AUTHORIZED)
        self._record("authorize", "success", f"dispatch authorized for {placed.vtex_order_id}")

    # -- plumbing -----------------------------------------------------------------------------------

    async def _call(self, step: str, activity: str, argument: object, result_type: type[T]) -> T:
        result: T = await self._execute(step, activity, argument, result_type)
        return result

    async def _execute(
        self, step: str, activity: str, argument: object, result_type: type[Any] | None
    ) -> Any:
        policy = self._policy
        try:
            return await workflow.execute_activity(
                activity,
                argument,
                result_type=result_type,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=policy.activity_initial_interval_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=policy.activity_attempts,
                ),
            )
        except ActivityError as exc:
            raise self._setback(step, exc) from None

    def _setback(self, step: str, exc: ActivityError) -> Exception:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            details: dict[str, Any] = (
                cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            )
            if cause.type == Handling.ALREADY_CANCELED.value:
                self._record(step, "error", "VTEX already canceled this order; it cannot be recreated", "G")
                return CanceledInVtex()
            code = str(details.get("code") or cause.type or "ERROR")
            reason = str(details.get("action") or cause.message)
            self._record(step, "error", reason, code)
            return Setback(step=step, retry=cause.type in RETRY_LATER, code=code, reason=reason)
        if isinstance(cause, TimeoutError):
            reason = f"{step} timed out repeatedly; it is retried later"
            self._record(step, "error", reason, "TIMEOUT")
            return Setback(step=step, retry=True, code="TIMEOUT", reason=reason)
        self._record(step, "error", str(cause or exc))
        return Setback(step=step, retry=True, code="ERROR", reason=str(cause or exc))

    async def _log_decision(self, code: str, status: str, message: str) -> None:
        await workflow.execute_activity(
            "record_order_log",
            WorkflowLogInput(
                connection=self._input.connection,
                marketplace_order_id=self._input.marketplace_order_id,
                vtex_order_id=self._state.vtex_order_id,
                code=code,
                status=status,
                business_message=message,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._record("log", status, message, code)

    def _park(self, status: OrderStatus, setback: Setback) -> None:
        self._state.parked_reason = setback.reason
        self._set_status(status, ERROR_CODE.value_set(setback.code))
        self._record(
            status.value,
            "alert" if status is not OrderStatus.REPROCESSING else "pending",
            setback.reason,
            setback.code,
        )

    def _set_status(self, status: OrderStatus, *extra: SearchAttributeUpdate[Any]) -> None:
        if status is self._state.status and not extra:
            return
        self._state.status = status
        updates: list[SearchAttributeUpdate[Any]] = [ORDER_STATUS.value_set(status.value), *extra]
        if status not in (OrderStatus.PARKED, OrderStatus.REPROCESSING, OrderStatus.DEAD_LETTERED):
            # Moving on clears the last problem (unsetting a never-set attribute is a no-op).
            self._state.parked_reason = None
            self._state.error_code = None
            updates.append(ERROR_CODE.value_unset())
        workflow.upsert_search_attributes(updates)

    def _record(self, step: str, outcome: str, message: str, code: str | None = None) -> None:
        workflow.logger.info("order %s %s %s: %s", self._input.marketplace_order_id, step, outcome, message)
        self._state.timeline.append(
            TimelineEntry(at=workflow.now(), step=step, outcome=outcome, message=message, code=code)
        )
