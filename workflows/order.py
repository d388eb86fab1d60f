"""OrderLifecycle: one durable workflow per marketplace order, through the lifecycle of connector/lifecycle.py.

Four stages, each a method that returns the next:
- integration: fetch the marketplace order → validate → place → (price approval) → (payment) → authorize
  dispatch;
- follow-up: VTEX's invoices and tracking to the marketplace until completed;
- cancellation: scenario 5 (find the VTEX order, return invoice if invoiced, cancel, tell the marketplace
  when it did not ask), or tell the marketplace that VTEX canceled;
- after-sale window: a completed or canceled order stays open, idle on one timer, for returns, late
  payments and late callbacks.

One failure path: every activity call returns its result or a `Failure`; the failure's `Disposition`
(connector/failures.py) queues the order on a durable backoff (dead-lettered after `max_attempts`, still
retried), or parks it until someone acts. Nothing is raised out of `run()`: a bug parks the order with
ErrorCode CONNECTOR_ERROR until `reprocess`. Every wait may continue as new, carrying every pending signal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as StepTimeout

with workflow.unsafe.imports_passed_through():
    from activities.channel_orders import APPROVED_STATUSES as CHANNEL_APPROVED_STATUSES
    from activities.channel_orders import MANUAL_AUTHORIZATION, ChannelOrderActivities
    from activities.logbook import LogbookActivities
    from activities.marketplace import MarketplaceActivities, MarketplaceFollowUpActivities
    from activities.vtex import VtexActivities
    from activities.vtex_common import UNREAD_AFTER_AN_ATTEMPT
    from connector.failures import VTEX_THROTTLED, Disposition, disposition
    from connector.lifecycle import HELD, allowed
    from connector.models import (
        ApproveChannelOrderInput,
        AuthorizeDispatchInput,
        CancelInVtexInput,
        CancelOutcome,
        CancelRequest,
        ChannelOrderLook,
        ChannelOrderResult,
        EnqueueChannelOrderInput,
        FetchOrderInput,
        FindVtexOrderInput,
        Invoice,
        InvoiceProgress,
        InvoiceType,
        Logistics,
        LookUpChannelOrderInput,
        MarketplaceCancellationInput,
        MarketplaceInvoiceInput,
        MarketplaceNotification,
        MarketplaceOrder,
        MarketplaceOrderStatus,
        MarketplaceTrackingInput,
        OrderSnapshot,
        OrderState,
        OrderStatus,
        OrderWorkflowInput,
        PlacedOrder,
        PlaceOrderInput,
        ReprocessRequest,
        ReturnInvoiceInput,
        Stage,
        TimelineEntry,
        ValidateOrderInput,
        ValidationReport,
        VtexCancellation,
        VtexFlow,
        VtexInvoiceInput,
        VtexOrderInfo,
        VtexOrderInput,
        WorkflowLogInput,
    )
    from connector.vtex.error_table import Handling
    from workflows.outcomes import INTERRUPTED, Failure, Interrupted, Restart
    from workflows.support import ERROR_CODE, ORDER_STATUS, TIMELINE_LIMIT, VTEX_ORDER_ID, lock_ttl

S = OrderStatus
T = TypeVar("T")
A = TypeVar("A")
P = TypeVar("P", bound=PlaceOrderInput)

# OMS statuses of a fulfillment order once the seller approved a price divergence (Orders API statuses;
# `waiting-ffmt-authorization` is where a fulfillment order waits for authorize dispatch). Anything else,
# including "not visible in OMS yet", keeps the order waiting for the approval.
APPROVED_STATUSES = frozenset(
    {"waiting-ffmt-authorization", "payment-pending", "payment-approved", "ready-for-handling", "handling", "invoiced"}
)
CONNECTOR_ERROR = "CONNECTOR_ERROR"
# Activities that call VTEX: as regular activities they run on the rate-limited VTEX task queue.
VTEX_STEP_CLASSES = (VtexActivities, ChannelOrderActivities)
LATE_PAYMENT = "LATE_PAYMENT"
# workflow.patched: a marketplace read may complete an order invoiced in full (orders that were waiting for
# a tracking the marketplace keeps before Shipping.marketplace_tracks; their replay must not complete there).
COMPLETE_ON_READ = "complete-on-read"
# With lean_history, the marketplace read and the validation run as local activities, in one workflow
# task; placement and authorization stay regular activities, so the workflow-task boundary before each is
# where a signal that came in meanwhile (a cancel) is seen.
LOCAL_STEPS = (MarketplaceActivities.fetch_marketplace_order, VtexActivities.validate_order)
# With local_integration, placement and authorization join them: read, validate, place and authorize in
# one workflow task, one action. A signal sent during that task reaches the workflow only after it, so
# placement and authorization first ask the store whether the connector handed the order a notification
# since its read (a webhook, the poller, `connector cancel`); if so they refuse (READ_AGAIN) and the
# workflow waits for that signal, then reads the order again. A canceled order is thus never placed or
# authorized once its cancel is in the connector's hands.
INTEGRATION_LOCAL_STEPS = (
    *LOCAL_STEPS,
    VtexActivities.place_order,
    VtexActivities.authorize_dispatch,
    ChannelOrderActivities.enqueue_channel_order,
    ChannelOrderActivities.look_up_channel_order,
    ChannelOrderActivities.approve_channel_order,
)
# How long a refused step waits for the notification's signal (sent right after the store noted it) before
# reading the order again anyway.
UNREAD_NOTIFICATION_WAIT_SECONDS = 10.0
# The Channel Order API's flows (processing-result notifications, `flow`).
PLACE_ORDER = "PlaceOrder"
APPROVE_ORDER = "ApproveOrder"
DUPLICATED_ORDER = "EOI007"
# After a result names the order VTEX made, OMS shows it within seconds: look again sooner, this many times.
HINT_FIRST_LOOK_SECONDS = 0.5
HINT_LOOKS = 5
# Processing results kept for the order at most (a sender repeating itself must not grow the history).
MAX_PENDING_RESULTS = 10


@workflow.defn(name="OrderLifecycle")
class OrderLifecycle:
    @workflow.init
    def __init__(self, request: OrderWorkflowInput) -> None:
        self._input = request
        self._policy = request.policy
        snap = request.snapshot or OrderSnapshot(
            stage=Stage.INTEGRATION,
            state=OrderState(connection=request.connection, marketplace_order_id=request.marketplace_order_id),
        )
        self._stage = snap.stage
        self._state = snap.state
        self._placed: PlacedOrder | None = snap.placed
        self._place_attempted = snap.place_attempted
        self._price_approved = snap.price_approved
        self._order_value = snap.order_value
        self._invoices = {p.invoice.invoice_number: p for p in snap.invoices}
        self._invoices_changed = snap.invoices_changed
        self._payment_deadline = snap.payment_deadline
        self._after_sale_deadline = snap.after_sale_deadline
        self._wake = snap.wake
        self._reprocess_requested = snap.reprocess_requested
        self._cancel = snap.cancel
        self._vtex_canceled = snap.vtex_canceled
        self._we_asked_vtex_to_cancel = snap.we_asked_vtex_to_cancel
        self._return_invoice_number = snap.return_invoice_number
        self._enqueued_at = snap.enqueued_at
        self._enqueued_paid = snap.enqueued_paid
        self._operation_id = snap.operation_id
        self._marketplace_fulfilled = snap.marketplace_fulfilled
        self._marketplace_tracks = snap.marketplace_tracks
        self._approval_sent_at = snap.approval_sent_at
        self._results = snap.results
        self._held_step: str | None = None
        # Search-attribute updates not written yet (see _flush), by attribute name: the last one wins.
        self._unwritten: dict[str, SearchAttributeUpdate[Any]] = {}
        # Orders started before `lean_history` replay as they ran: one upsert per status change and the
        # marketplace read as a regular activity. Later ones write search attributes when the order comes
        # to rest and read the marketplace in a local activity (README, "Upgrading running orders").
        self._lean = request.lean_history
        self._local_steps = INTEGRATION_LOCAL_STEPS if request.local_integration else LOCAL_STEPS

    @workflow.run
    async def run(self, request: OrderWorkflowInput) -> OrderState:
        if request.snapshot is None:
            self._record("received", "success", "order workflow started")
        stage: Stage | None = self._stage
        while stage is not None:
            self._stage = stage
            try:
                stage = await self._run_stage(stage)
            except Restart:
                await self._continue_as_new()
            except Exception as bug:
                await self._contain(bug)
        self._flush()
        return self._state

    async def _run_stage(self, stage: Stage) -> Stage | None:
        if stage is Stage.INTEGRATION:
            return await self._integrate()
        if stage is Stage.FOLLOW_UP:
            return await self._follow_up()
        if stage is Stage.CANCELLATION:
            return await self._cancellation()
        return await self._after_sale()

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
        else:
            self._record("cancel", "success", f"cancel requested again by the {request.source}: already in hand")

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

    @workflow.signal
    def vtex_processing_result(self, result: ChannelOrderResult) -> None:
        """VTEX's processing-result notification (Channel Order API): where to look and what VTEX reports,
        checked with VTEX before it moves the order (the order never waits on it: it looks on a timer)."""
        if self._input.vtex_flow is not VtexFlow.ORDER_INTEGRATION:
            self._record(
                "vtex-result", "alert", f"VTEX reported {result.code} for an order not sent as a channel order"
            )
            return
        self._results = [*self._results, result][-MAX_PENDING_RESULTS:]
        self._record("vtex-result", "pending", f"VTEX reported {result.code} ({result.flow}); checking with VTEX")

    @workflow.query
    def status(self) -> OrderState:
        return self._state

    # -- integration --------------------------------------------------------------------------------

    def _interrupted(self) -> bool:
        return self._cancel is not None or (self._vtex_canceled is not None and not self._we_asked_vtex_to_cancel)

    def _take_reprocess_request(self) -> None:
        if self._reprocess_requested:
            self._reprocess_requested = False
            self._state.reprocess_attempts = 0

    async def _integrate(self) -> Stage:
        order: MarketplaceOrder | None = None
        while True:
            if self._interrupted():
                return Stage.CANCELLATION
            self._take_reprocess_request()
            if order is None or self._wake:
                self._wake = False
                fetched = await self._fetch()
                if isinstance(fetched, Failure):
                    order = None  # what woke the order is read again after the backoff, never dropped
                    await self._hold(fetched)
                    continue
                order = fetched
                if order.status is MarketplaceOrderStatus.CANCELED:
                    await self._canceled_in_marketplace()
                    return Stage.CANCELLATION
            paid = order.status is MarketplaceOrderStatus.PAID
            if not paid and self._placed is None and not self._input.accept_unpaid_orders:
                self._move(S.AWAITING_PAYMENT)
                self._record("fetch", "pending", "order not paid yet; it is placed once the marketplace says so")
                await self._pause(self._woken)
                continue
            if self._placed is None:
                placed = await self._validate_and_place(order)
                if isinstance(placed, Failure):
                    if placed.disposition is Disposition.READ_AGAIN:
                        await self._await_unread_notification()
                        continue
                    if placed.disposition is Disposition.CANCELED_IN_VTEX:
                        self._vtex_canceled = VtexCancellation(
                            reason="VTEX canceled this order and will not recreate it"
                        )
                        return Stage.CANCELLATION
                    await self._hold(placed)
                    order = None  # guide scenarios 2-4: read the marketplace order again before retrying
                    continue
                if placed is INTERRUPTED:
                    continue
            if self._interrupted():
                continue  # a cancel that raced the placement: the top of the loop leaves for the cancellation
            assert self._placed is not None
            if self._placed.awaiting_approval and not self._price_approved:
                if not await self._check_price_approval():
                    continue
            if not paid:
                if await self._payment_window_passed():
                    return Stage.CANCELLATION
                continue
            if self._state.status is S.AWAITING_PAYMENT:
                self._record("payment", "success", "the marketplace confirmed the payment")
            if self._input.vtex_flow is VtexFlow.ORDER_INTEGRATION:
                approved = await self._approve_through_channel(self._placed)
                if approved is INTERRUPTED:
                    continue
                authorized = approved
            else:
                authorized = await self._authorize(order, self._placed)
            if isinstance(authorized, Failure):
                if authorized.disposition is Disposition.READ_AGAIN:
                    await self._await_unread_notification()
                    continue
                await self._hold(authorized)
                order = None
                continue
            return Stage.FOLLOW_UP

    def _woken(self) -> bool:
        return self._wake or self._interrupted() or self._reprocess_requested

    async def _await_unread_notification(self) -> None:
        """A local step refused: the connector noted a notification this workflow has not seen. Wait for
        its signal (or a little while), then the integration loop reads the order again."""
        await self._pause(self._woken, seconds=UNREAD_NOTIFICATION_WAIT_SECONDS)
        self._wake = True

    async def _canceled_in_marketplace(self) -> None:
        if self._state.status in HELD and self._placed is None:
            # Q: "couldn't reprocess the order ... since this order was cancelled manually in the marketplace".
            await self._log_line(
                "Q",
                "error",
                f"We couldn't reprocess the order {self._input.marketplace_order_id}, since this order was "
                "cancelled in the marketplace.",
            )
        if self._cancel is None:
            self._cancel = CancelRequest(reason="canceled in the marketplace", source="marketplace")

    async def _validate_and_place(self, order: MarketplaceOrder) -> PlacedOrder | Failure | Interrupted:
        if self._enqueued_at is not None:
            return await self._await_channel_result()  # sent before a continue-as-new or a cancel's check
        self._move(S.VALIDATING)
        report = await self._step(
            "validate",
            VtexActivities.validate_order,
            ValidateOrderInput(
                order=order,
                connection=self._input.connection,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
                price_divergence_allowance_rate=self._input.price_divergence_allowance_rate,
                look_for_placed_order=self._input.local_integration,
                channel_order_api=self._input.vtex_flow is VtexFlow.ORDER_INTEGRATION,
            ),
        )
        if isinstance(report, Failure):
            return report
        if not report.ok:
            reason = report.seller_message(order.marketplace_order_id)
            self._record("validate", "error", reason, "VALIDATION")
            return Failure(
                "validate",
                Disposition.PARK if report.needs_seller_action else Disposition.RETRY,
                "VALIDATION",
                reason,
            )
        if report.placed_vtex_order_id is not None:
            # A worker died after placing it, before its workflow task was recorded: follow that order.
            return self._took_placed(PlacedOrder(vtex_order_id=report.placed_vtex_order_id, already_existed=True))
        self._record("validate", "success", "simulation and SKU checks passed")
        if self._interrupted():
            return INTERRUPTED
        if self._input.vtex_flow is VtexFlow.ORDER_INTEGRATION:
            return await self._place_through_channel(order, report)
        attempted_before, self._place_attempted = self._place_attempted, True
        placed = await self._step("place", VtexActivities.place_order, self._placement(PlaceOrderInput, order, report))
        if isinstance(placed, Failure):
            return self._placement_failed(placed, attempted_before)
        return self._took_placed(placed)

    def _placement(self, model: type[P], order: MarketplaceOrder, report: ValidationReport) -> P:
        """What either flow sends VTEX to place the order."""
        return model(
            order=order,
            report=report,
            affiliate_id=self._input.affiliate_id,
            sales_channel=self._input.sales_channel,
            connection=self._input.connection,
            price_divergence_allowance_rate=self._input.price_divergence_allowance_rate,
            lock_ttl=lock_ttl(self._input.payment_window_seconds),
            refuse_if_unread_notification=self._input.local_integration,
        )

    def _placement_failed(self, failure: Failure, attempted_before: bool) -> Failure:
        """Whether a cancel must look for the order in VTEX after a placement (either flow) failed."""
        if failure.disposition is Disposition.READ_AGAIN:
            # Refused before any call to VTEX; a retried attempt's earlier one may have reached it.
            self._place_attempted = attempted_before or failure.code == UNREAD_AFTER_AN_ATTEMPT
        else:
            # VTEX answered with a refusal: the order is known not to exist. Without an answer (timeouts,
            # 5xx) it may exist, and a cancel must look for it.
            self._place_attempted = failure.kind in ("", Handling.TRANSIENT.value)
        return failure

    async def _place_through_channel(
        self, order: MarketplaceOrder, report: ValidationReport
    ) -> PlacedOrder | Failure | Interrupted:
        """Send the order to the Channel Order API (approved when paid, else new), then wait for VTEX."""
        paid = order.status is MarketplaceOrderStatus.PAID
        attempted_before, self._place_attempted = self._place_attempted, True
        sent = await self._step(
            "place",
            ChannelOrderActivities.enqueue_channel_order,
            self._placement(EnqueueChannelOrderInput, order, report),
            settles=False,
        )
        if isinstance(sent, Failure):
            return self._placement_failed(sent, attempted_before)
        self._enqueued_at, self._enqueued_paid, self._operation_id = workflow.now(), paid, sent
        self._results = [r for r in self._results if r.flow != PLACE_ORDER]  # about an earlier send
        self._move(S.ENQUEUED)
        status = "approved" if paid else "new"
        self._record("place", "pending", f"sent to VTEX's Channel Order API as {status}; waiting for its result", "X19")
        return await self._await_channel_result()

    async def _await_channel_result(self) -> PlacedOrder | Failure | Interrupted:
        """Until VTEX shows the order: look now and then on a doubling timer, sooner when VTEX reports a
        result; an error VTEX reports holds only if VTEX shows no order (the look-up's to decide). Past the
        unknown-placement window with nothing to show, the order is sent again (EOI007 keeps it single)."""
        assert self._enqueued_at is not None
        window = self._input.unknown_placement_window_seconds
        checks = soon = 0
        hint: str | None = None  # where a result said the order is, until VTEX shows it there
        duplicate = False  # VTEX said it had the order already (EOI007): it is followed, not placed twice
        while True:
            result = await self._believable(self._take_result(PLACE_ORDER))
            if result is not None and result.main_order_id:
                hint = result.main_order_id
            duplicate = duplicate or (result is not None and result.code == DUPLICATED_ORDER)
            error = result if result is not None and not result.code.startswith("SOI") else None
            look = await self._look_up("place", hint, result=error)
            if isinstance(look, Failure):
                self._enqueued_at = None  # the next attempt sends it again
                # An error VTEX reported with no order behind it: known not to exist (a cancel need not look).
                self._place_attempted = look.kind in ("", Handling.TRANSIENT.value)
                return look
            if look.named_another_order:
                hint = None  # a false hint, logged (X18) by the look-up
            found = look.order
            if found is not None:
                self._held_step_done("place")
                self._enqueued_at = None
                placed = PlacedOrder(
                    vtex_order_id=found.vtex_order_id,
                    already_existed=duplicate,
                    awaiting_approval=found.status == MANUAL_AUTHORIZATION,
                )
                return self._took_placed(placed)
            waited = (workflow.now() - self._enqueued_at).total_seconds()
            if waited >= window:
                self._enqueued_at = None
                return await self._no_result("integrated", "the order is sent again (VTEX refuses a duplicate)")
            if hint is not None and soon < HINT_LOOKS:
                delay, soon = HINT_FIRST_LOOK_SECONDS * 2**soon, soon + 1
            else:
                delay, checks = self._policy.channel_order_check_seconds * 2**checks, checks + 1
            await self._pause(
                lambda: self._woken() or self._has_result(PLACE_ORDER), seconds=min(delay, window - waited)
            )
            if self._woken():
                return INTERRUPTED  # the integration loop reads the order again (a cancel?), then comes back

    async def _approve_through_channel(self, placed: PlacedOrder) -> Failure | Interrupted | None:
        """A paid order: VTEX approves one sent as approved by itself (SOI002); one sent as new, or one VTEX
        does not approve within a check, is approved on request. Done when VTEX shows it approved."""
        window = self._input.unknown_placement_window_seconds
        checks = 0
        while True:
            result = self._take_result(APPROVE_ORDER)
            look = await self._look_up("authorize", placed.vtex_order_id, approval=True)
            if isinstance(look, Failure):
                return look
            status = look.order.status if look.order is not None else None
            if status in CHANNEL_APPROVED_STATUSES:
                self._held_step_done("authorize")
                self._approval_sent_at = None
                self._move(S.DISPATCH_AUTHORIZED)
                self._record("authorize", "success", f"VTEX approved {placed.vtex_order_id}: dispatch authorized")
                return None
            if status == "canceled":
                self._vtex_canceled = VtexCancellation(reason="VTEX canceled the order before approving it")
                return INTERRUPTED
            if status == MANUAL_AUTHORIZATION:
                # EOI011: the seller has not decided on the price divergence yet.
                placed.awaiting_approval, self._price_approved = True, False
                return INTERRUPTED
            error = result if result is not None and result.code.startswith("EOI") else None
            due = self._approval_sent_at is None and (not self._enqueued_paid or checks > 0)
            if error is not None or due:
                sent = await self._step(
                    "authorize",
                    ChannelOrderActivities.approve_channel_order,
                    ApproveChannelOrderInput(
                        connection=self._input.connection,
                        marketplace_order_id=self._input.marketplace_order_id,
                        vtex_order_id=placed.vtex_order_id,
                        sales_channel=self._input.sales_channel,
                        refuse_if_unread_notification=self._input.local_integration,
                        result=error,
                    ),
                    settles=False,
                )
                if isinstance(sent, Failure):
                    self._approval_sent_at = None
                    return sent
                self._approval_sent_at = workflow.now()
                self._record("authorize", "pending", f"approval of {placed.vtex_order_id} sent to VTEX", "X21")
            elif self._approval_sent_at is not None:
                if (workflow.now() - self._approval_sent_at).total_seconds() >= window:
                    self._approval_sent_at = None
                    return await self._no_result("approved", "the approval is sent again")
            await self._pause(
                lambda: self._woken() or self._has_result(APPROVE_ORDER),
                seconds=min(self._policy.channel_order_check_seconds * 2**checks, window),
            )
            checks += 1
            if self._woken():
                return INTERRUPTED

    async def _look_up(
        self, step: str, main_order_id: str | None, *, result: ChannelOrderResult | None = None, approval: bool = False
    ) -> ChannelOrderLook | Failure:
        """Where VTEX stands on the order; a success settles nothing (VTEX may not have said yes yet)."""
        return await self._step(
            step,
            ChannelOrderActivities.look_up_channel_order,
            LookUpChannelOrderInput(
                connection=self._input.connection,
                marketplace_order_id=self._input.marketplace_order_id,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
                main_order_id=main_order_id,
                result=result,
                approval=approval,
            ),
            settles=False,
        )

    async def _no_result(self, what: str, then: str) -> Failure:
        minutes = f"{self._input.unknown_placement_window_seconds / 60:g} minutes"
        reason = (
            f"VTEX has not {what} the order {self._input.marketplace_order_id} {minutes} after the request and "
            f"reported no error; {then}."
        )
        await self._log_line("X20", "pending", reason)
        return Failure("place" if what == "integrated" else "authorize", Disposition.RETRY, "NO_RESULT", reason)

    async def _believable(self, result: ChannelOrderResult | None) -> ChannelOrderResult | None:
        """An error result holds only with the operationId VTEX gave the request (when it gave one): VTEX
        shows nothing to check an error against but the absence of the order."""
        if result is None or result.code.startswith("SOI") or self._operation_id in (None, result.operation_id):
            return result
        await self._log_line(
            "X18",
            "alert",
            f"A processing result {result.code} for the order {self._input.marketplace_order_id} names a request "
            "whose answer the connector never received; it was ignored and the order is checked with VTEX itself. "
            "An earlier attempt whose answer was lost explains it once; if it recurs, someone else knows the "
            "callback URL: rotate CALLBACK_TOKEN.",
        )
        return None

    def _has_result(self, flow: str) -> bool:
        return any(result.flow == flow for result in self._results)

    def _take_result(self, flow: str) -> ChannelOrderResult | None:
        """The most telling result VTEX reported for `flow` since the last look (a success over an error,
        else the latest), and forget the others: each look asks VTEX anyway."""
        mine = [result for result in self._results if result.flow == flow]
        if not mine:
            return None
        self._results = [result for result in self._results if result.flow != flow]
        successes = [result for result in mine if result.code.startswith("SOI")]
        return (successes or mine)[-1]

    def _took_placed(self, placed: PlacedOrder) -> PlacedOrder:
        self._placed = placed
        self._state.vtex_order_id = placed.vtex_order_id
        self._move(
            S.PENDING_APPROVAL if placed.awaiting_approval else S.PLACED, VTEX_ORDER_ID.value_set(placed.vtex_order_id)
        )
        if placed.awaiting_approval:
            note, code = " with a price divergence; it waits for the seller's manual approval in VTEX", "B"
        else:
            note, code = (" (it already existed: not placed twice)" if placed.already_existed else ""), "A"
        self._record("place", "success", f"created in VTEX as {placed.vtex_order_id}{note}", code)
        return placed

    async def _check_price_approval(self) -> bool:
        """VTEX holds an isCreatedAsync order until the seller decides. True once approved; False to look
        again later (a rejection or a cancel makes the integration loop leave for the cancellation)."""
        assert self._placed is not None
        info = await self._vtex_order("approval", self._placed.vtex_order_id)
        if isinstance(info, Failure):
            await self._hold(info)
            return False
        if info is not None and info.status == "canceled":
            self._record("approval", "error", "the seller refused the price divergence: VTEX canceled the order")
            self._vtex_canceled = VtexCancellation(reason="the seller refused the price divergence in VTEX")
            return False
        if info is not None and info.status in APPROVED_STATUSES:
            self._price_approved = True
            self._move(S.PLACED)
            self._record("approval", "success", "the seller approved the price divergence")
            return True
        self._move(S.PENDING_APPROVAL)
        await self._pause(self._interrupted, seconds=self._policy.approval_poll_seconds)
        return False

    async def _payment_window_passed(self) -> bool:
        """An unpaid order placed in VTEX (stock reserved): wait for the payment within the window."""
        window = self._input.payment_window_seconds
        if self._payment_deadline is None:
            self._payment_deadline = workflow.now() + timedelta(seconds=window)
            self._record("payment", "pending", f"placed unpaid; waiting up to {window / 3600:g} h for the payment")
        remaining = (self._payment_deadline - workflow.now()).total_seconds()
        if remaining <= 0:
            self._cancel = CancelRequest(
                reason=f"the payment window ({window / 3600:g} h) passed without payment", source="payment-window"
            )
            return True
        self._move(S.AWAITING_PAYMENT)
        await self._pause(self._woken, seconds=remaining)
        return False

    async def _authorize(self, order: MarketplaceOrder, placed: PlacedOrder) -> Failure | None:
        result = await self._step(
            "authorize",
            VtexActivities.authorize_dispatch,
            AuthorizeDispatchInput(
                connection=self._input.connection,
                marketplace_order_id=order.marketplace_order_id,
                vtex_order_id=placed.vtex_order_id,
                affiliate_id=self._input.affiliate_id,
                sales_channel=self._input.sales_channel,
                refuse_if_unread_notification=self._input.local_integration,
            ),
        )
        if isinstance(result, Failure):
            return result
        self._move(S.DISPATCH_AUTHORIZED)
        self._record("authorize", "success", f"dispatch authorized for {placed.vtex_order_id}")
        return None

    # -- follow-up ----------------------------------------------------------------------------------

    async def _follow_up(self) -> Stage:
        """Invoices and tracking to the marketplace until completed; or a cancellation. An order the
        marketplace fulfills gets its invoice from the marketplace instead, for VTEX."""
        while True:
            if self._interrupted():
                return Stage.CANCELLATION
            self._take_reprocess_request()
            awaiting_invoice = self._marketplace_fulfilled and not self._completed()
            if awaiting_invoice and not self._invoices_changed and not self._wake:
                if await self._invoices_from_marketplace() is INTERRUPTED:
                    continue
            if self._invoices_changed:
                self._invoices_changed = False
                if await self._forward_invoices() and self._completed():
                    return self._complete()
                continue
            if self._wake:
                self._wake = False
                fetched = await self._until_done("fetch", self._fetch, interruptible=True)
                if isinstance(fetched, MarketplaceOrder) and fetched.status is MarketplaceOrderStatus.CANCELED:
                    await self._canceled_in_marketplace()
                elif self._completed() and workflow.patched(COMPLETE_ON_READ):
                    # An order invoiced in full that waited for a tracking the marketplace keeps itself
                    # (before marketplace_tracks existed): its next read completes it.
                    return self._complete()
                continue
            await self._pause(
                lambda: self._woken() or self._invoices_changed,
                seconds=self._policy.marketplace_invoice_poll_seconds if awaiting_invoice else None,
            )

    def _complete(self) -> Stage:
        self._move(S.COMPLETED)
        shipped = (
            "the marketplace tracks the shipment"
            if self._marketplace_fulfilled or self._marketplace_tracks
            else "tracking sent to the marketplace"
        )
        self._record("complete", "success", f"invoiced in full and {shipped}")
        self._open_after_sale_window()
        return Stage.AFTER_SALE_WINDOW

    async def _invoices_from_marketplace(self) -> Interrupted | None:
        """The invoices the marketplace issued for an order it fulfills (Mercado Libre Full), handed to VTEX.
        VTEX's callback for them changes nothing: the marketplace has them already."""
        fetched = await self._until_done(
            "invoice",
            partial(
                self._step,
                "invoice",
                MarketplaceFollowUpActivities.fetch_marketplace_invoices,
                FetchOrderInput(
                    connection=self._input.connection, marketplace_order_id=self._input.marketplace_order_id
                ),
            ),
            interruptible=True,
        )
        if isinstance(fetched, Interrupted):
            return INTERRUPTED
        assert self._state.vtex_order_id is not None
        for invoice in fetched:
            if invoice.invoice_number in self._invoices:
                continue
            sent = await self._until_done(
                "invoice",
                partial(
                    self._step,
                    "invoice",
                    VtexActivities.send_invoice_to_vtex,
                    VtexInvoiceInput(
                        connection=self._input.connection,
                        marketplace_order_id=self._input.marketplace_order_id,
                        vtex_order_id=self._state.vtex_order_id,
                        sales_channel=self._input.sales_channel,
                        invoice=invoice,
                    ),
                ),
                interruptible=True,
            )
            if sent is INTERRUPTED:
                return INTERRUPTED
            # The marketplace issued it and ships the order: nothing to send it, no tracking of ours.
            self._invoices[invoice.invoice_number] = InvoiceProgress(
                invoice=invoice, invoice_sent=True, tracking_sent=True
            )
            self._invoices_changed = True
            self._record(
                "invoice", "success", f"the marketplace's invoice {invoice.invoice_number} sent to VTEX", "X24"
            )
        return None

    async def _forward_invoices(self, *, interruptible: bool = True) -> bool:
        """Send what the marketplace has not had yet. False when a cancel interrupted it."""
        # A snapshot: an invoice signal may arrive while an activity runs (it sets _invoices_changed).
        for progress in list(self._invoices.values()):
            if not progress.invoice_sent:
                sent = await self._until_done(
                    "invoice",
                    partial(
                        self._step,
                        "invoice",
                        MarketplaceFollowUpActivities.send_invoice_to_marketplace,
                        self._invoice_input(progress),
                    ),
                    interruptible=interruptible,
                )
                if sent is INTERRUPTED:
                    self._invoices_changed = True
                    return False
                progress.invoice_sent = True
                self._record("invoice", "success", f"invoice {progress.invoice.invoice_number} sent to the marketplace")
            tracking = progress.invoice.tracking
            if tracking is not None and not progress.tracking_sent:
                tracking_input = MarketplaceTrackingInput(
                    connection=self._input.connection,
                    marketplace_order_id=self._input.marketplace_order_id,
                    vtex_order_id=self._state.vtex_order_id,
                    tracking=tracking,
                )
                sent = await self._until_done(
                    "tracking",
                    partial(
                        self._step,
                        "tracking",
                        MarketplaceFollowUpActivities.send_tracking_to_marketplace,
                        tracking_input,
                    ),
                    interruptible=True,
                )
                if sent is INTERRUPTED:
                    self._invoices_changed = True
                    return False
                progress.tracking_sent = True
                self._record("tracking", "success", f"tracking {tracking.tracking_number} sent to the marketplace")
        if self._state.status is S.DISPATCH_AUTHORIZED and any(p.invoice_sent for p in self._invoices.values()):
            self._move(S.INVOICED)
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
        # An order the marketplace ships or tracks has no tracking of the seller's to send.
        tracked = self._marketplace_fulfilled or self._marketplace_tracks or all(p.tracking_sent for p in sales)
        return bool(sales) and invoiced >= self._order_value and tracked

    # -- cancellation -------------------------------------------------------------------------------

    async def _cancellation(self) -> Stage:
        if self._vtex_canceled is not None and not self._we_asked_vtex_to_cancel:
            reason = self._vtex_canceled.reason or "canceled in VTEX"
            self._record("cancel", "success", f"VTEX canceled the order: {reason}")
            self._move(S.AFTER_SALE if self._state.status in (S.COMPLETED, S.AFTER_SALE) else S.CANCELING)
            await self._tell_marketplace(reason)
            self._move(S.CANCELED)
            return self._settle()
        request = self._cancel or CancelRequest(reason="canceled", source="operator")
        self._cancel = request
        self._move(S.AFTER_SALE if self._state.status in (S.COMPLETED, S.AFTER_SALE) else S.CANCELING)
        vtex_id = await self._vtex_order_to_cancel()
        if vtex_id is None:
            where = "before it reached VTEX" if not self._place_attempted else "and VTEX never had the order"
            await self._log_line(
                "X10",
                "success",
                f"The order {self._input.marketplace_order_id} was canceled ({request.reason}) {where}: "
                "nothing to cancel there.",
            )
        else:
            await self._cancel_vtex_order(vtex_id, request.reason)
        if request.source != "marketplace":
            await self._tell_marketplace(request.reason)
        self._move(S.CANCELED)
        return self._settle()

    async def _vtex_order_to_cancel(self) -> str | None:
        """The VTEX id to cancel. A placement whose answer was lost may still have created the order, and
        OMS shows new orders with a lag: look again over a window (logging M) before concluding it is absent."""
        if self._placed is not None:
            return self._placed.vtex_order_id
        if not self._place_attempted:
            return None
        found = await self._look_over_window(
            partial(
                self._step,
                "cancel",
                VtexActivities.find_vtex_order,
                FindVtexOrderInput(
                    connection=self._input.connection,
                    marketplace_order_id=self._input.marketplace_order_id,
                    affiliate_id=self._input.affiliate_id,
                ),
            )
        )
        if found is not None:
            self._state.vtex_order_id = found
        return found

    async def _look_over_window(self, look: Callable[[], Awaitable[T | Failure | None]]) -> T | None:
        """Ask VTEX until it shows the order (None: it does not, yet) or the unknown-placement window
        passes; OMS shows new orders with a lag, so one 404 proves nothing. Logs M once while it waits."""
        deadline = workflow.now() + timedelta(seconds=self._input.unknown_placement_window_seconds)
        told = False
        while True:
            found = await self._until_done("cancel", look, interruptible=False)
            if found is not None and not isinstance(found, Interrupted):
                return found
            if workflow.now() >= deadline:
                return None
            if not told:
                told = True
                await self._log_line(
                    "M",
                    "pending",
                    f"Oops, the order {self._input.marketplace_order_id} has not been integrated in VTEX yet. "
                    "We'll try again later.",
                )
            await self._pause(lambda: False, seconds=self._policy.first_delay_seconds)

    async def _cancel_vtex_order(self, vtex_id: str, reason: str) -> None:
        """Scenario 5, one idempotent step at a time: return invoice (unless VTEX has one), then cancel."""
        self._we_asked_vtex_to_cancel = True
        info = await self._look_over_window(partial(self._vtex_order, "cancel", vtex_id))
        if info is None:
            self._record("cancel", "success", f"canceled ({reason}); VTEX never showed {vtex_id}", "X10")
            return
        if info.status == "canceled":
            self._record("cancel", "error", f"{vtex_id} was already canceled in VTEX", "G")
            return
        if info.status == "invoiced" and not info.return_invoices:
            number = self._return_invoice_number or f"{vtex_id}-RETURN"
            self._return_invoice_number = number
            await self._until_done(
                "return",
                lambda: self._step(
                    "return",
                    VtexActivities.send_return_invoice,
                    ReturnInvoiceInput(
                        connection=self._input.connection,
                        marketplace_order_id=self._input.marketplace_order_id,
                        vtex_order_id=vtex_id,
                        sales_channel=self._input.sales_channel,
                        invoice_number=number,
                    ),
                ),
                interruptible=False,
            )
            self._record("return", "success", f"return invoice {number} sent to VTEX")
        outcome = await self._until_done(
            "cancel",
            lambda: self._step(
                "cancel",
                VtexActivities.cancel_in_vtex,
                CancelInVtexInput(
                    connection=self._input.connection,
                    marketplace_order_id=self._input.marketplace_order_id,
                    vtex_order_id=vtex_id,
                    reason=reason,
                    sales_channel=self._input.sales_channel,
                ),
            ),
            interruptible=False,
        )
        assert isinstance(outcome, CancelOutcome)  # not interruptible: always an outcome
        if outcome.already_canceled:
            self._record("cancel", "error", f"{vtex_id} was already canceled in VTEX", "G")
        elif not outcome.existed:
            self._record("cancel", "success", f"canceled ({reason}); VTEX no longer shows {vtex_id}", "X10")
        else:
            self._record("cancel", "success", f"{vtex_id} canceled in VTEX: {reason}", "C")

    async def _tell_marketplace(self, reason: str) -> None:
        await self._until_done(
            "cancel",
            lambda: self._step(
                "cancel",
                MarketplaceFollowUpActivities.notify_marketplace_of_cancellation,
                MarketplaceCancellationInput(
                    connection=self._input.connection,
                    marketplace_order_id=self._input.marketplace_order_id,
                    vtex_order_id=self._state.vtex_order_id,
                    reason=reason,
                ),
            ),
            interruptible=False,
        )
        self._record("cancel", "success", "the marketplace was told the order is canceled")

    # -- after-sale window --------------------------------------------------------------------------

    def _open_after_sale_window(self) -> None:
        self._after_sale_deadline = workflow.now() + timedelta(seconds=self._input.after_sale_window_seconds)

    def _settle(self) -> Stage:
        if self._after_sale_deadline is None:
            self._open_after_sale_window()
        return Stage.AFTER_SALE_WINDOW

    async def _after_sale(self) -> Stage | None:
        """Idle on one timer until the window closes; act on returns, late payments and callbacks."""
        if self._after_sale_deadline is None:
            self._open_after_sale_window()
        assert self._after_sale_deadline is not None
        completed = self._state.status is S.COMPLETED
        while True:
            if completed and (self._cancel is not None or self._interrupted()):
                return Stage.CANCELLATION
            self._take_reprocess_request()
            if self._invoices_changed:
                self._invoices_changed = False
                await self._forward_invoices(interruptible=False)
            if self._wake:
                self._wake = False
                fetched = await self._until_done("fetch", self._fetch, interruptible=False)
                if isinstance(fetched, MarketplaceOrder):
                    if completed and fetched.status is MarketplaceOrderStatus.CANCELED:
                        self._cancel = CancelRequest(
                            reason="canceled or returned in the marketplace after completion", source="marketplace"
                        )
                        continue
                    if fetched.status is MarketplaceOrderStatus.PAID and self._paid_too_late():
                        await self._late_payment()
            remaining = (self._after_sale_deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                self._record("after-sale", "success", "after-sale window closed; the order's workflow ends")
                return None
            await self._pause(
                lambda: (
                    self._wake
                    or self._reprocess_requested
                    or self._invoices_changed
                    or (completed and (self._cancel is not None or self._interrupted()))
                ),
                seconds=remaining,
            )

    def _paid_too_late(self) -> bool:
        return self._state.status is S.CANCELED and self._cancel is not None and self._cancel.source == "payment-window"

    async def _late_payment(self) -> None:
        reason = (
            "The marketplace reports a payment after the payment window passed; the VTEX order was already "
            "canceled and cannot be placed again. Refund the buyer in the marketplace, or create the order "
            "again by hand."
        )
        self._state.parked_reason = reason
        self._state.error_code = LATE_PAYMENT
        self._move(S.LATE_PAYMENT, ERROR_CODE.value_set(LATE_PAYMENT))
        self._record("payment", "alert", reason, LATE_PAYMENT)
        await self._log_line("X15", "alert", f"Order {self._input.marketplace_order_id}: {reason}")

    # -- the failure path ---------------------------------------------------------------------------

    async def _step(
        self, step: str, activity: Callable[[Any, A], Awaitable[T]], argument: A, *, settles: bool = True
    ) -> T | Failure:
        """One activity call; its failure comes back as a value, classified in one place. A success settles
        the step (a fresh count of attempts) unless `settles` is False: a Channel Order request or look-up
        succeeds long before VTEX has said yes (the caller settles once it has)."""
        policy = self._policy
        vtex = any(getattr(steps, activity.__name__, None) is activity for steps in VTEX_STEP_CLASSES)
        timeout = timedelta(seconds=policy.activity_timeout_seconds)
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=policy.activity_initial_interval_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
            maximum_attempts=policy.activity_attempts,
        )
        local = self._lean and activity in self._local_steps
        try:
            if local:
                try:
                    # Seconds of work, retries included: one marker event instead of six, and no round trip
                    # through a task queue. The VTEX rate still holds (connector/vtex/rate_limit.py).
                    result: T = await workflow.execute_local_activity_method(
                        activity, argument, start_to_close_timeout=timeout, retry_policy=retry
                    )
                except ApplicationError as exc:
                    if exc.type != VTEX_THROTTLED:
                        raise
                    local = False  # the shared rate is busy: this step waits on the rate-limited queue
            if not local:
                result = await workflow.execute_activity_method(
                    activity,
                    argument,
                    task_queue=self._input.vtex_task_queue if vtex else None,
                    start_to_close_timeout=timeout,
                    retry_policy=retry,
                )
        except (ActivityError, ApplicationError, StepTimeout) as exc:
            # A regular activity's failure comes wrapped in an ActivityError; a local activity's bare.
            failure = self._classify(step, exc.cause if isinstance(exc, ActivityError) else exc)
            refused = failure.disposition is Disposition.READ_AGAIN
            self._record(step, "pending" if refused else "error", failure.reason, failure.code)
            return failure
        if settles:
            self._held_step_done(step)
        return result

    def _held_step_done(self, step: str) -> None:
        """The step the order was held on went through: a fresh count of attempts."""
        if step == self._held_step:
            self._held_step = None
            self._state.reprocess_attempts = 0

    def _classify(self, step: str, cause: BaseException | None) -> Failure:
        if isinstance(cause, ApplicationError):
            first = cause.details[0] if cause.details else None
            details: dict[str, Any] = first if isinstance(first, dict) else {}
            code = str(details.get("code") or cause.type or "ERROR")
            reason = str(details.get("action") or cause.message)
            return Failure(step, disposition(cause.type), code, reason, cause.type or "")
        if isinstance(cause, StepTimeout):
            return Failure(step, Disposition.RETRY, "TIMEOUT", f"{step} timed out repeatedly; it is retried later")
        return Failure(step, Disposition.RETRY, "ERROR", str(cause or f"{step} failed"))

    async def _until_done(
        self, step: str, call: Callable[[], Awaitable[T | Failure]], *, interruptible: bool
    ) -> T | Interrupted:
        """Retry one step through the failure path until it succeeds (or, if interruptible, a cancel
        arrives), then put the order back in the status it was in."""
        resume = self._state.status
        woken = False  # a notification that ended a wait is the stage's to act on, after this step
        try:
            while True:
                self._take_reprocess_request()
                outcome = await call()
                if not isinstance(outcome, Failure):
                    self._move(resume)
                    return outcome
                await self._hold(outcome, interruptible=interruptible)
                woken, self._wake = woken or self._wake, False
                if interruptible and self._interrupted():
                    self._move(resume)
                    return INTERRUPTED
        finally:
            self._wake = self._wake or woken

    async def _hold(self, failure: Failure, *, interruptible: bool = True) -> None:
        """Queue, park or dead-letter the order after a failed step, then wait for the next attempt."""
        self._held_step = failure.step
        self._state.error_code = failure.code
        self._state.parked_reason = failure.reason
        delay: float | None = None
        if failure.disposition is Disposition.RETRY:
            self._state.reprocess_attempts += 1
            if self._state.reprocess_attempts >= self._policy.max_attempts:
                status, delay = S.DEAD_LETTERED, self._policy.dead_letter_retry_seconds
            else:
                status, delay = S.REPROCESSING, self._policy.delay(self._state.reprocess_attempts)
        else:
            status = S.PARKED
        newly_dead = status is S.DEAD_LETTERED and self._state.status is not S.DEAD_LETTERED
        self._move(status, ERROR_CODE.value_set(failure.code))
        self._record(status.value, "pending" if status is S.REPROCESSING else "alert", failure.reason, failure.code)
        if newly_dead:
            await self._dead_letter_alert(failure)
        await self._pause(
            lambda: self._wake or self._reprocess_requested or (interruptible and self._interrupted()),
            seconds=delay,
        )

    async def _dead_letter_alert(self, failure: Failure) -> None:
        hours = f"{self._policy.dead_letter_retry_seconds / 3600:g} h"
        order = self._input.marketplace_order_id
        if self._stage is Stage.CANCELLATION:
            # E: the cancel keeps failing; "we'll try again later".
            await self._log_line(
                "E",
                "alert",
                f"We could not cancel the order {order} right now ({failure.reason}). We'll try again every "
                f"{hours}, or now with `connector reprocess`.",
            )
            return
        await self._log_line(
            "X6",
            "alert",
            f"The order {order} failed {self._state.reprocess_attempts} attempts and was moved to the "
            f"dead-letter queue: {failure.reason} It is retried every {hours}, or now with `connector reprocess`.",
        )

    async def _pause(self, condition: Callable[[], bool], *, seconds: float | None = None) -> None:
        """Every wait of the order. Past it is a safe point to continue as new (all state is in fields)."""
        self._flush()
        try:
            await workflow.wait_condition(
                condition, timeout=timedelta(seconds=seconds) if seconds is not None else None
            )
        except TimeoutError:
            pass
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() >= (
            self._input.continue_as_new_after_events
        ):
            raise Restart

    async def _continue_as_new(self) -> None:
        self._flush()  # the next run starts with the search attributes this one has
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.timeline = self._state.timeline[-TIMELINE_LIMIT:]
        self._state.run_number += 1
        snapshot = OrderSnapshot(
            stage=self._stage,
            state=self._state,
            placed=self._placed,
            place_attempted=self._place_attempted,
            price_approved=self._price_approved,
            order_value=self._order_value,
            invoices=list(self._invoices.values()),
            invoices_changed=self._invoices_changed,
            payment_deadline=self._payment_deadline,
            after_sale_deadline=self._after_sale_deadline,
            wake=self._wake,
            reprocess_requested=self._reprocess_requested,
            cancel=self._cancel,
            vtex_canceled=self._vtex_canceled,
            we_asked_vtex_to_cancel=self._we_asked_vtex_to_cancel,
            return_invoice_number=self._return_invoice_number,
            enqueued_at=self._enqueued_at,
            enqueued_paid=self._enqueued_paid,
            operation_id=self._operation_id,
            marketplace_fulfilled=self._marketplace_fulfilled,
            marketplace_tracks=self._marketplace_tracks,
            approval_sent_at=self._approval_sent_at,
            results=self._results,
        )
        workflow.continue_as_new(self._input.model_copy(update={"snapshot": snapshot, "resume": None}))

    async def _contain(self, bug: Exception) -> None:
        """A bug in the connector: park the order, visibly, until `reprocess` (no activity, no _pause:
        nothing here may fail again)."""
        reason = f"the connector hit an internal error ({type(bug).__name__}: {bug}); fix and reprocess"
        workflow.logger.error("order %s: %s", self._input.marketplace_order_id, reason)
        self._state.parked_reason = reason
        self._state.error_code = CONNECTOR_ERROR
        self._move(S.PARKED, ERROR_CODE.value_set(CONNECTOR_ERROR))
        self._record("parked", "alert", reason, CONNECTOR_ERROR)
        self._reprocess_requested = False
        self._flush()
        await workflow.wait_condition(lambda: self._reprocess_requested)

    # -- steps and bookkeeping ----------------------------------------------------------------------

    async def _fetch(self) -> MarketplaceOrder | Failure:
        order = await self._step(
            "fetch",
            MarketplaceActivities.fetch_marketplace_order,
            FetchOrderInput(connection=self._input.connection, marketplace_order_id=self._input.marketplace_order_id),
        )
        if isinstance(order, Failure):
            return order
        self._order_value = order.payment_value
        self._marketplace_fulfilled = order.shipping.logistics is Logistics.MARKETPLACE_FULFILLMENT
        # Recorded reads (orders started before the field) have none: False, as their run decided then.
        self._marketplace_tracks = order.shipping.marketplace_tracks
        self._record("fetch", "success", f"marketplace order read: {order.status.value}, {len(order.items)} line(s)")
        return order

    async def _vtex_order(self, step: str, vtex_id: str) -> VtexOrderInfo | Failure | None:
        return await self._step(
            step,
            VtexActivities.get_vtex_order,
            VtexOrderInput(
                connection=self._input.connection,
                marketplace_order_id=self._input.marketplace_order_id,
                vtex_order_id=vtex_id,
                sales_channel=self._input.sales_channel,
            ),
        )

    async def _log_line(self, code: str, status: str, message: str) -> None:
        """An order-log line for a decision the workflow took itself. A log that cannot be written does
        not hold the order: it stays in the timeline and the worker's log."""
        written = await self._step(
            "log",
            LogbookActivities.record_order_log,
            WorkflowLogInput(
                connection=self._input.connection,
                marketplace_order_id=self._input.marketplace_order_id,
                vtex_order_id=self._state.vtex_order_id,
                code=code,
                status=status,
                business_message=message,
            ),
        )
        if isinstance(written, Failure):
            workflow.logger.error(
                "order %s: log line %s not written: %s", self._input.marketplace_order_id, code, message
            )
        self._record("log", status, message, code)

    def _move(self, status: OrderStatus, *extra: SearchAttributeUpdate[Any]) -> None:
        """The one way the status changes: along connector/lifecycle.py, shown in query and (once the order
        rests, see _flush) in search."""
        current = self._state.status
        if status is current and not extra:
            return
        if not allowed(current, status):
            workflow.logger.error(
                "order %s: unexpected move %s -> %s", self._input.marketplace_order_id, current, status
            )
            self._record("lifecycle", "alert", f"unexpected move from {current.value} to {status.value}")
        self._state.status = status
        updates: list[SearchAttributeUpdate[Any]] = list(extra)
        if current in HELD and status not in HELD:
            self._state.parked_reason = None
            self._state.error_code = None
            updates.append(ERROR_CODE.value_unset())
        if status is S.VALIDATING and not updates:
            return  # a moment between steps that nobody searches for: no search-attribute update
        if not self._lean:
            workflow.upsert_search_attributes([ORDER_STATUS.value_set(status.value), *updates])
            return
        for update in (ORDER_STATUS.value_set(status.value), *updates):
            self._unwritten[update.key.name] = update

    def _flush(self) -> None:
        """Write the search attributes when the order comes to rest (before every wait, and at the end):
        a status passed through on the way (placed, on its way to dispatch authorized) costs no upsert,
        while every status an order stays in is searchable as soon as it stays."""
        if self._unwritten:
            workflow.upsert_search_attributes(list(self._unwritten.values()))
            self._unwritten.clear()

    def _record(self, step: str, outcome: str, message: str, code: str | None = None) -> None:
        workflow.logger.info(
            "order %s %s %s: %s",
            self._input.marketplace_order_id,
            step,
            outcome,
            message,
            extra={"vtex_order_id": self._state.vtex_order_id},  # a field of its own in JSON logs
        )
        self._state.timeline.append(
            TimelineEntry(at=workflow.now(), step=step, outcome=outcome, message=message, code=code)
        )
