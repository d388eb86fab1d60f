"""The first OrderWorkflow definition, kept registered under its name until the orders it runs drain.

Frozen: do not change it (recorded histories in tests/histories replay on it). New orders start the
`OrderLifecycle` workflow (workflows/order.py); README "Upgrading running orders" says how to drain.

Original description:

integration: fetch the marketplace order → validate (simulation + SKU contexts) → place the fulfillment
order → (to-be-paid orders: wait for payment within the window) → authorize dispatch.
follow-up: VTEX's invoice and tracking callbacks go to the marketplace; the order is *completed* once
fully invoiced with tracking sent. A cancellation (marketplace, operator, payment window, or VTEX) ends
it *canceled*, with the VTEX order canceled (after a return invoice if it was invoiced).

The workflow decides, activities act. A failure comes back typed by the error table and becomes a
setback: *retry later* (reprocess queue on a durable backoff, dead-lettered after `policy.max_attempts`,
never dropped) or *seller must act* (parked until a `reprocess` signal or a new notification).
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from connector.models import (
        AuthorizeDispatchInput,
        CancelOrderInput,
        CancelOutcome,
        CancelRequest,
        FetchOrderInput,
        FollowUpState,
        Invoice,
        InvoiceProgress,
        InvoiceType,
        MarketplaceCancellationInput,
        MarketplaceInvoiceInput,
        MarketplaceNotification,
        MarketplaceOrder,
        MarketplaceOrderStatus,
        MarketplaceTrackingInput,
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
        VtexCancellation,
        WorkflowLogInput,
        vtex_order_id,
    )
    from connector.vtex.error_table import Handling
    from workflows.support import ERROR_CODE, ORDER_STATUS, TIMELINE_LIMIT, VTEX_ORDER_ID, lock_ttl


# VTEX status of an order placed with isCreatedAsync until the seller approves the price.
MANUAL_APPROVAL = "waiting-for-manual-authorization"

# Failures worth trying again later without anyone acting (the guide's reprocess queue).
RETRY_LATER = frozenset(
    {Handling.TRANSIENT.value, Handling.REPROCESS.value, Handling.CREDENTIALS.value, "MarketplaceUnavailable"}
)

# Activities that call VTEX: they run on the rate-limited VTEX task queue when one is configured.
VTEX_ACTIVITIES = frozenset(
    {"validate_order", "place_order", "authorize_dispatch", "get_vtex_order_status", "cancel_vtex_order"}
)


class Setback(Exception):
    """This attempt cannot go on. `retry`: the reprocess queue takes it; otherwise the seller must act."""

    def __init__(self, *, step: str, retry: bool, code: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.retry = retry
        self.code = code
        self.reason = reason


class CanceledInVtex(Exception):
    """VTEX canceled the order (FMT0060, or the seller refused the price): nothing left to integrate."""


QUEUED = (OrderStatus.REPROCESSING, OrderStatus.PARKED, OrderStatus.DEAD_LETTERED)

T = TypeVar("T")


@workflow.defn(name="OrderWorkflow")
class OrderWorkflowV1:
    @workflow.init
    def __init__(self, request: OrderWorkflowInput) -> None:
        self._input = request
        self._policy = request.policy
        resume = request.resume
        self._state = (
            resume.state
            if resume
            else OrderState(connection=request.connection, marketplace_order_id=request.marketplace_order_id)
        )
        self._placed: PlacedOrder | None = resume.placed if resume else None
        self._order_value = resume.order_value if resume else 0
        self._invoices: dict[str, InvoiceProgress] = (
            {p.invoice.invoice_number: p for p in resume.invoices} if resume else {}
        )
        self._place_attempted = resume is not None
        self._wake = False  # a notification or reprocess request: look at the order again
        self._reprocess_requested = False
        self._cancel: CancelRequest | None = None
        self._vtex_canceled: VtexCancellation | None = None
        self._invoices_changed = False
        self._we_asked_vtex_to_cancel = False

    @workflow.run
    async def run(self, request: OrderWorkflowInput) -> OrderState:
        if request.resume is None:
            self._record("received", "success", "order workflow started")
            if not await self._integrate():
                return self._state
        await self._follow_up()
        return self._state

    # -- signals and query ------------------------------------------------------------------------

    @workflow.signal
    def notify(self, notification: MarketplaceNotification) -> None:
        """A marketplace notification (webhook or poll) for this order; duplicates are harmless."""
        self._state.notifications_received += 1
        if self._state.notifications_received > 1:
            self._record("notification", "success", f"{notification.source} notification received")
        self._wake = True

    @workflow.signal
    def reprocess(self, request: ReprocessRequest) -> None:
        """Try a parked, queued or dead-lettered order again now, with a fresh count of attempts."""
        self._record("reprocess", "pending", request.reason)
        self._reprocess_requested = True
        self._wake = True

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        """The order was canceled (in the marketplace, by an operator): cancel it in VTEX too."""
        if self._cancel is None:
            self._record("cancel", "pending", f"cancel requested by the {request.source}: {request.reason}")
            self._cancel = request

    @workflow.signal
    def vtex_invoice(self, invoice: Invoice) -> None:
        """VTEX's invoice callback: a new (possibly partial) invoice, or tracking for a known one."""
        known = self._invoices.get(invoice.invoice_number)
        if known is None:
            self._invoices[invoice.invoice_number] = InvoiceProgress(invoice=invoice)
        elif invoice.tracking_number and invoice.tracking_number != known.invoice.tracking_number:
            known.invoice = invoice
            known.tracking_sent = False
        else:
            return  # VTEX repeated a callback: nothing new
        self._record("invoice", "pending", f"invoice {invoice.invoice_number} received from VTEX")
        self._invoices_changed = True

    @workflow.signal
    def vtex_canceled(self, cancellation: VtexCancellation) -> None:
        """VTEX's cancellation callback: canceled there (by the seller, or confirming our request)."""
        if self._vtex_canceled is None:
            self._vtex_canceled = cancellation

    @workflow.query
    def status(self) -> OrderState:
        return self._state

    # -- integration --------------------------------------------------------------------------------

    def _interrupted(self) -> bool:
        return self._cancel is not None or self._vtex_canceled is not None

    async def _integrate(self) -> bool:
        """Attempts until dispatch is authorized (True) or the order ends canceled (False)."""
        while True:
            self._wake = False
            if self._reprocess_requested:
                self._reprocess_requested = False
                self._state.reprocess_attempts = 0
            try:
                if self._interrupted():
                    await self._end_canceled()
                    return False
                order = await self._fetch()
                if order.status is MarketplaceOrderStatus.CANCELED:
                    await self._canceled_in_marketplace()
                    return False
                paid = order.status is MarketplaceOrderStatus.PAID
                if not paid and not self._input.accept_unpaid_orders:
                    self._set_status(OrderStatus.AWAITING_PAYMENT)
                    self._record("fetch", "pending", "order not paid yet; it is placed once the marketplace says so")
                    await workflow.wait_condition(lambda: self._wake or self._interrupted())
                    continue
                if self._placed is None:
                    report = await self._validate(order)
                    if self._interrupted():
                        continue
                    self._place_attempted = True
                    self._placed = await self._place(order, report)
                if self._interrupted():
                    continue  # a cancel that raced the placement: the top of the loop cancels in VTEX
                if self._placed.awaiting_approval:
                    await self._await_price_approval(self._placed)
                if not paid and not await self._await_payment():
                    return False
                await self._authorize(order, self._placed)
                return True
            except CanceledInVtex:
                self._set_status(OrderStatus.CANCELED)
                return False
            except Setback as setback:
                if not await self._handle_setback(setback):
                    return False

    async def _handle_setback(self, setback: Setback) -> bool:
        """Park or queue the order, then wait for the next attempt. False: the order left the queue."""
        if setback.retry and setback.step != "fetch":
            # Guide scenarios 2-4: re-read the marketplace order; one canceled there leaves the queue.
            try:
                if (await self._fetch()).status is MarketplaceOrderStatus.CANCELED:
                    self._queue(setback)
                    await self._canceled_in_marketplace()
                    return False
            except Setback:
                pass  # the marketplace is down too: the backoff below covers both
        await self._wait(self._queue(setback))
        return True

    def _queue(self, setback: Setback) -> float | None:
        """Record the setback; the delay before the next attempt (None: until someone acts)."""
        self._state.error_code = setback.code
        if not setback.retry:
            self._park(OrderStatus.PARKED, setback)
            return None
        self._state.reprocess_attempts += 1
        if self._state.reprocess_attempts >= self._policy.max_attempts:
            self._park(OrderStatus.DEAD_LETTERED, setback)
            return self._policy.dead_letter_retry_seconds
        self._park(OrderStatus.REPROCESSING, setback)
        return self._policy.delay(self._state.reprocess_attempts)

    async def _wait(self, delay: float | None, *, until_interrupted: bool = True) -> None:
        """Sleep until the delay passes or someone acts (notification, reprocess; a cancel too, unless
        the cancel is what is being retried)."""
        if self._state.status is OrderStatus.DEAD_LETTERED:
            await self._log_decision(
                "X6",
                "alert",
                f"The order {self._input.marketplace_order_id} failed {self._state.reprocess_attempts} attempts "
                f"and was moved to the dead-letter queue: {self._state.parked_reason} It is retried every "
                f"{self._policy.dead_letter_retry_seconds / 3600:g} h, or now with `connector reprocess`.",
            )
        try:
            await workflow.wait_condition(
                lambda: self._wake or (until_interrupted and self._interrupted()),
                timeout=timedelta(seconds=delay) if delay is not None else None,
            )
        except builtins.TimeoutError:
            pass

    async def _await_price_approval(self, placed: PlacedOrder) -> None:
        """VTEX holds an isCreatedAsync order until the seller approves the price: look now and then."""
        while not self._interrupted():
            vtex_status = await self._call(
                "approval", "get_vtex_order_status", OrderStatusInput(vtex_order_id=placed.vtex_order_id), str
            )
            if vtex_status == "canceled":
                self._record("approval", "error", "the seller refused the price divergence: VTEX canceled it")
                raise CanceledInVtex
            if vtex_status != MANUAL_APPROVAL:
                self._record("approval", "success", "the seller approved the price divergence")
                return
            try:
                await workflow.wait_condition(
                    self._interrupted, timeout=timedelta(seconds=self._policy.approval_poll_seconds)
                )
            except builtins.TimeoutError:
                pass

    async def _await_payment(self) -> bool:
        """An unpaid order placed in VTEX (stock reserved): True once paid, False once canceled."""
        self._set_status(OrderStatus.AWAITING_PAYMENT)
        window = self._input.payment_window_seconds
        self._record("payment", "pending", f"placed unpaid; waiting up to {window / 3600:g} h for the payment")
        deadline = workflow.now() + timedelta(seconds=window)
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                await self._cancel_in_vtex(f"the payment window ({window / 3600:g} h) passed without payment")
                return False
            try:
                await workflow.wait_condition(
                    lambda: self._wake or self._interrupted(), timeout=timedelta(seconds=remaining)
                )
            except builtins.TimeoutError:
                continue
            if self._interrupted():
                await self._end_canceled()
                return False
            self._wake = False
            try:
                order = await self._fetch()
            except Setback:
                continue  # the marketplace is down: keep waiting, the window still applies
            if order.status is MarketplaceOrderStatus.PAID:
                self._record("payment", "success", "the marketplace confirmed the payment")
                return True
            if order.status is MarketplaceOrderStatus.CANCELED:
                await self._cancel_in_vtex("canceled in the marketplace before payment")
                return False

    # -- follow-up ----------------------------------------------------------------------------------

    async def _follow_up(self) -> None:
        """Invoices and tracking to the marketplace until completed; or a cancellation."""
        while True:
            await workflow.wait_condition(lambda: self._wake or self._interrupted() or self._invoices_changed)
            if self._interrupted():
                await self._end_canceled()
                return
            if self._invoices_changed:
                self._invoices_changed = False
                if await self._forward_invoices() and self._completed():
                    self._set_status(OrderStatus.COMPLETED)
                    self._record("complete", "success", "invoiced in full and tracking sent to the marketplace")
                    return
            if self._wake:
                self._wake = False
                try:
                    if (await self._fetch()).status is MarketplaceOrderStatus.CANCELED:
                        await self._cancel_in_vtex("canceled in the marketplace")
                        return
                except Setback:
                    pass  # a later notification looks again
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()

    async def _forward_invoices(self) -> bool:
        """Send what the marketplace has not had yet. False if it failed (retried after a backoff)."""
        # A snapshot: an invoice signal may arrive while an activity runs (it sets _invoices_changed).
        for progress in list(self._invoices.values()):
            try:
                if not progress.invoice_sent:
                    await self._execute("invoice", "send_invoice_to_marketplace", self._invoice_input(progress), None)
                    progress.invoice_sent = True
                    self._record(
                        "invoice",
                        "success",
                        f"invoice {progress.invoice.invoice_number} sent to the marketplace",
                    )
                tracking = progress.invoice.tracking
                if tracking is not None and not progress.tracking_sent:
                    await self._execute(
                        "tracking",
                        "send_tracking_to_marketplace",
                        MarketplaceTrackingInput(
                            connection=self._input.connection,
                            marketplace_order_id=self._input.marketplace_order_id,
                            vtex_order_id=self._state.vtex_order_id,
                            tracking=tracking,
                        ),
                        None,
                    )
                    progress.tracking_sent = True
                    self._record("tracking", "success", f"tracking {tracking.tracking_number} sent to the marketplace")
            except Setback as setback:
                self._invoices_changed = True  # try again after the backoff
                self._state.reprocess_attempts += 1
                await self._wait(self._policy.delay(self._state.reprocess_attempts) if setback.retry else None)
                return False
        if any(p.invoice_sent for p in self._invoices.values()):
            self._set_status(OrderStatus.INVOICED)
        return True

    def _invoice_input(self, progress: InvoiceProgress) -> MarketplaceInvoiceInput:
        return MarketplaceInvoiceInput(
            connection=self._input.connection,
            marketplace_order_id=self._input.marketplace_order_id,
            vtex_order_id=self._state.vtex_order_id,
            invoice=progress.invoice,
        )

    def _completed(self) -> bool:
        sales = [p for p in self._invoices.values() if p.invoice.type is InvoiceType.OUTPUT]
        invoiced = sum(p.invoice.invoice_value for p in sales)
        return bool(sales) and invoiced >= self._order_value and all(p.tracking_sent for p in sales)

    async def _continue_as_new(self) -> None:
        """Long-lived orders (many partial invoices, many notifications) start a fresh history."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._placed is not None
        self._state.timeline = self._state.timeline[-TIMELINE_LIMIT:]
        resume = FollowUpState(
            state=self._state,
            placed=self._placed,
            order_value=self._order_value,
            invoices=list(self._invoices.values()),
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # -- cancellation -------------------------------------------------------------------------------

    async def _end_canceled(self) -> None:
        """A cancel request or VTEX's cancellation arrived: act on it and end canceled."""
        if self._vtex_canceled is not None:
            if self._we_asked_vtex_to_cancel:
                self._set_status(OrderStatus.CANCELED)
                return
            reason = self._vtex_canceled.reason or "canceled in VTEX"
            self._record("cancel", "success", f"VTEX canceled the order: {reason}")
            await self._execute(
                "cancel",
                "notify_marketplace_of_cancellation",
                MarketplaceCancellationInput(
                    connection=self._input.connection,
                    marketplace_order_id=self._input.marketplace_order_id,
                    vtex_order_id=self._state.vtex_order_id,
                    reason=reason,
                ),
                None,
            )
            self._set_status(OrderStatus.CANCELED)
            return
        assert self._cancel is not None
        await self._cancel_in_vtex(self._cancel.reason)

    async def _canceled_in_marketplace(self) -> None:
        if self._state.status in QUEUED and self._placed is None:
            # Q: "couldn't reprocess the order ... since this order was cancelled manually in the
            # marketplace".
            await self._log_decision(
                "Q",
                "error",
                f"We couldn't reprocess the order {self._input.marketplace_order_id}, since this order was "
                "cancelled in the marketplace.",
            )
        await self._cancel_in_vtex("canceled in the marketplace")

    async def _cancel_in_vtex(self, reason: str) -> None:
        """Scenario 5. Not in VTEX: stop and log. In VTEX: (return invoice,) cancel. Ends canceled."""
        if self._placed is None and not self._place_attempted:
            await self._log_decision(
                "X10",
                "success",
                f"The order {self._input.marketplace_order_id} was canceled ({reason}) before it reached VTEX: "
                "nothing to cancel there.",
            )
            self._set_status(OrderStatus.CANCELED)
            return
        # A placement whose answer was lost may still have created the order: cancel by the derivable id.
        vtex_id = (
            self._placed.vtex_order_id
            if self._placed
            else vtex_order_id(self._input.affiliate_id, self._input.marketplace_order_id)
        )
        self._we_asked_vtex_to_cancel = True
        while True:
            try:
                outcome = await self._call(
                    "cancel",
                    "cancel_vtex_order",
                    CancelOrderInput(
                        connection=self._input.connection,
                        marketplace_order_id=self._input.marketplace_order_id,
                        vtex_order_id=vtex_id,
                        reason=reason,
                        sales_channel=self._input.sales_channel,
                    ),
                    CancelOutcome,
                )
                break
            except Setback as setback:
                self._wake = False
                await self._wait(self._queue(setback), until_interrupted=False)
        self._set_status(OrderStatus.CANCELED)
        if not outcome.existed:
            self._record("cancel", "success", f"canceled ({reason}); VTEX never had the order", "X10")
        elif outcome.already_canceled:
            self._record("cancel", "success", f"{vtex_id} was already canceled in VTEX", "G")
        else:
            returned = " after a return invoice" if outcome.return_invoice_number else ""
            self._record("cancel", "success", f"{vtex_id} canceled in VTEX{returned}: {reason}", "C")

    # -- steps --------------------------------------------------------------------------------------

    async def _fetch(self) -> MarketplaceOrder:
        order = await self._call(
            "fetch",
            "fetch_marketplace_order",
            FetchOrderInput(connection=self._input.connection, marketplace_order_id=self._input.marketplace_order_id),
            MarketplaceOrder,
        )
        self._order_value = order.payment_value
        self._record("fetch", "success", f"marketplace order read: {order.status.value}, {len(order.items)} line(s)")
        return order

    async def _validate(self, order: MarketplaceOrder) -> ValidationReport:
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
                lock_ttl=lock_ttl(self._input.payment_window_seconds),
            ),
            PlacedOrder,
        )
        self._state.vtex_order_id = placed.vtex_order_id
        status = OrderStatus.PENDING_APPROVAL if placed.awaiting_approval else OrderStatus.PLACED
        self._set_status(status, VTEX_ORDER_ID.value_set(placed.vtex_order_id))
        if placed.awaiting_approval:
            note, code = " with a price divergence; it waits for the seller's manual approval in VTEX", "B"
        else:
            note, code = (" (it already existed: not placed twice)" if placed.already_existed else ""), "A"
        self._record("place", "success", f"created in VTEX as {placed.vtex_order_id}{note}", code)
        return placed

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

    async def _execute(self, step: str, activity: str, argument: object, result_type: type[Any] | None) -> Any:
        policy = self._policy
        try:
            return await workflow.execute_activity(
                activity,
                argument,
                result_type=result_type,
                task_queue=self._input.vtex_task_queue if activity in VTEX_ACTIVITIES else None,
                start_to_close_timeout=timedelta(seconds=policy.activity_timeout_seconds),
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
            first = cause.details[0] if cause.details else None
            details: dict[str, Any] = first if isinstance(first, dict) else {}
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
        outcome = "pending" if status is OrderStatus.REPROCESSING else "alert"
        self._record(status.value, outcome, setback.reason, setback.code)

    def _set_status(self, status: OrderStatus, *extra: SearchAttributeUpdate[Any]) -> None:
        if status is self._state.status and not extra:
            return
        self._state.status = status
        updates: list[SearchAttributeUpdate[Any]] = [ORDER_STATUS.value_set(status.value), *extra]
        if status not in QUEUED:
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
