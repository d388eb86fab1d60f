"""Domain models shared by workflows, activities, the intake app and the sandboxes.

Everything here is plain pydantic: it crosses the Temporal boundary through the pydantic data
converter, so a field added later must have a default (running workflows replay old payloads).
Money is always an integer number of cents, as in every VTEX API.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class MarketplaceOrderStatus(StrEnum):
    """The marketplace's view of an order, mapped by its adapter."""

    PAID = "paid"
    TO_BE_PAID = "to-be-paid"
    CANCELED = "canceled"


class VtexFlow(StrEnum):
    """How a connection places orders in VTEX (README, "Two ways into VTEX")."""

    # Place fulfillment order + authorize dispatch: the method VTEX's guides mark deprecated.
    FULFILLMENT = "fulfillment"
    # The Channel Order API (New Order Integration): enqueue, VTEX reports the result asynchronously.
    ORDER_INTEGRATION = "order-integration"


class DeliveryChannel(StrEnum):
    DELIVERY = "delivery"
    PICKUP_IN_POINT = "pickup-in-point"


class OrderItem(BaseModel):
    sku_id: str
    quantity: int = Field(gt=0)
    unit_price: int = Field(ge=0, description="Unit price in cents, as charged by the marketplace.")


class Customer(BaseModel):
    email: str
    first_name: str
    last_name: str
    document_type: str
    document: str
    phone: str | None = None
    corporate_name: str | None = None
    trade_name: str | None = None
    corporate_document: str | None = None
    state_inscription: str | None = None
    corporate_phone: str | None = None

    @property
    def is_corporate(self) -> bool:
        return self.corporate_document is not None


class Address(BaseModel):
    address_type: str = "residential"
    address_id: str | None = None
    receiver_name: str
    postal_code: str
    city: str
    state: str
    country: str = Field(min_length=3, max_length=3, description="ISO 3166-1 alpha-3.")
    street: str
    number: str
    neighborhood: str | None = None
    complement: str | None = None
    reference: str | None = None


class Logistics(StrEnum):
    """Who takes the order to the buyer (VTEX's external-marketplace scenarios 5, 7 and 8)."""

    # The seller ships with its own carriers: VTEX's SLA (scenario 5).
    SELLER = "seller"
    # The marketplace's carrier collects from the seller, with the marketplace's label: FOB (scenario 7).
    MARKETPLACE_CARRIER = "marketplace-carrier"
    # The marketplace ships from its own warehouse, with its stock: FOB and marketplace fulfillment
    # (scenario 8); `warehouse_id` names the seller's warehouse for such orders in VTEX.
    MARKETPLACE_FULFILLMENT = "marketplace-fulfillment"


class Shipping(BaseModel):
    address: Address
    price: int = Field(ge=0, description="Freight charged by the marketplace, in cents.")
    delivery_channel: DeliveryChannel = DeliveryChannel.DELIVERY
    selected_sla: str | None = None
    pickup_point_id: str | None = None
    logistics: Logistics = Logistics.SELLER
    warehouse_id: str | None = None
    # The marketplace's logistics tracks the shipment (Mercado Envíos 2: its label, its carrier, its app):
    # the seller has no tracking to give, so the order is complete once invoiced in full.
    marketplace_tracks: bool = False


class MarketplaceOrder(BaseModel):
    """An order as every marketplace adapter normalizes it."""

    marketplace_order_id: str
    group_id: str | None = None
    status: MarketplaceOrderStatus
    items: list[OrderItem] = Field(min_length=1)
    shipping: Shipping
    customer: Customer
    payment_value: int = Field(ge=0, description="What the customer paid the marketplace, in cents.")
    created_at: datetime | None = None
    # The marketplace's version of the order (its last-updated instant), when its API gives one: the
    # poller compares it with its listing to skip a change this read already covered.
    updated_at: datetime | None = None

    @property
    def items_total(self) -> int:
        return sum(item.unit_price * item.quantity for item in self.items)


class MarketplaceNotification(BaseModel):
    """What the intake hands to the order workflow: a marketplace said something changed."""

    marketplace_order_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    topic: str = "orders"
    received_at: datetime | None = None
    source: str = "webhook"
    # The marketplace's id of this delivery, when it sends one: a redelivery repeats it.
    delivery_id: str | None = Field(default=None, max_length=200)


class OrderChange(BaseModel):
    """One entry of a marketplace's "orders changed since" listing (what the poller reads)."""

    marketplace_order_id: str
    updated_at: datetime


class ListingPosition(BaseModel):
    """A place in the changed-orders listing, oldest change first: the changes at or after `since`,
    minus the first `skip` of those at exactly `since` (already read). None: the listing's start."""

    since: datetime | None = None
    skip: int = Field(default=0, ge=0)


class ChangesPage(BaseModel):
    changes: list[OrderChange]
    # Where the page after this one starts; after the last page, where the next walk goes on from.
    next: ListingPosition
    last: bool


# --- follow-up: invoices, tracking, cancellation ------------------------------------------------------


class InvoiceType(StrEnum):
    OUTPUT = "Output"  # a sale
    INPUT = "Input"  # a return: VTEX refunds; required before canceling an invoiced order


class InvoiceItem(BaseModel):
    sku_id: str
    quantity: int = Field(gt=0)
    price: int = Field(ge=0, description="Unit price in cents.")


class Tracking(BaseModel):
    invoice_number: str
    courier: str | None = None
    tracking_number: str
    tracking_url: str | None = None


class Invoice(BaseModel):
    """An invoice as VTEX reports it (and as the connector sends it to a marketplace). Cents."""

    type: InvoiceType = InvoiceType.OUTPUT
    invoice_number: str = Field(min_length=1)
    invoice_value: int = Field(ge=0)
    issuance_date: str | None = None
    invoice_url: str | None = None
    invoice_key: str | None = None
    embedded_invoice: str | None = None
    items: list[InvoiceItem] = Field(default_factory=list)
    courier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None

    @property
    def tracking(self) -> Tracking | None:
        if not self.tracking_number:
            return None
        return Tracking(
            invoice_number=self.invoice_number,
            courier=self.courier,
            tracking_number=self.tracking_number,
            tracking_url=self.tracking_url,
        )


# --- validation -------------------------------------------------------------------------------------


class ProblemKind(StrEnum):
    SKU_NOT_FOUND = "sku-not-found"
    SKU_INACTIVE = "sku-inactive"
    PRODUCT_INACTIVE = "product-inactive"
    NOT_IN_SALES_CHANNEL = "not-in-sales-channel"
    NOT_IN_SIMULATION = "not-in-simulation"
    UNAVAILABLE = "unavailable"
    NO_SLA = "no-sla"
    NO_PICKUP_POINT = "no-pickup-point"
    PRICE_DIVERGENCE = "price-divergence"
    # The marketplace delivers the order (FOB), which only the Channel Order API can place, or needs a
    # VTEX warehouse for its own fulfillment that the connection does not name.
    MARKETPLACE_DELIVERY = "marketplace-delivery"


# Problems that may go away by themselves (stock arrives, a carrier's capacity frees up): the order is
# reprocessed on a backoff. Every other problem needs the seller to act first.
SELF_HEALING_PROBLEMS = frozenset({ProblemKind.UNAVAILABLE, ProblemKind.NO_SLA, ProblemKind.NO_PICKUP_POINT})


class SkuProblem(BaseModel):
    sku_id: str
    kind: ProblemKind
    action: str = Field(description="What the seller must do in VTEX to fix it.")


class SlaChoice(BaseModel):
    """The SLA (carrier or pickup point) the simulation offers for one item line."""

    item_index: int
    sla_id: str
    price: int
    shipping_estimate: str | None = None


class ValidationReport(BaseModel):
    problems: list[SkuProblem] = Field(default_factory=list)
    sla_choices: list[SlaChoice] = Field(default_factory=list)
    # Item prices differ from VTEX's within the connection's allowance: place for manual approval.
    price_divergent: bool = False
    # The order turned out to exist in VTEX already (ValidateOrderInput.look_for_placed_order): follow it.
    placed_vtex_order_id: str | None = None

    @property
    def needs_seller_action(self) -> bool:
        return any(problem.kind not in SELF_HEALING_PROBLEMS for problem in self.problems)

    def choice_for(self, item_index: int) -> SlaChoice:
        for choice in self.sla_choices:
            if choice.item_index == item_index:
                return choice
        raise KeyError(f"no SLA chosen for item {item_index}")

    @property
    def ok(self) -> bool:
        return not self.problems

    def seller_message(self, marketplace_order_id: str) -> str:
        actions = "; ".join(f"SKU {p.sku_id}: {p.action}" for p in self.problems)
        return (
            f"Order {marketplace_order_id} cannot be integrated until these are fixed in VTEX "
            f"({len(self.problems)} problem(s)): {actions}"
        )


# --- VTEX results ------------------------------------------------------------------------------------


class PlacedOrder(BaseModel):
    vtex_order_id: str
    already_existed: bool = False
    # Placed with isCreatedAsync: VTEX holds it for the seller's manual price approval.
    awaiting_approval: bool = False


# --- workflow state ---------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    """The connector's lifecycle status, also the `OrderStatus` search attribute."""

    RECEIVED = "received"
    AWAITING_PAYMENT = "awaiting-payment"
    VALIDATING = "validating"
    # Sent to VTEX's Channel Order API (New Order Integration); VTEX integrates it asynchronously.
    ENQUEUED = "enqueued"
    PENDING_APPROVAL = "pending-approval"
    PLACED = "placed"
    DISPATCH_AUTHORIZED = "dispatch-authorized"
    REPROCESSING = "reprocessing"
    PARKED = "parked"
    DEAD_LETTERED = "dead-lettered"
    INVOICED = "invoiced"
    COMPLETED = "completed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    # A completed order canceled or returned in the marketplace within the after-sale window.
    AFTER_SALE = "after-sale"
    # The marketplace reports a payment for an order canceled when its payment window passed.
    LATE_PAYMENT = "late-payment"


class ChannelOrderError(BaseModel):
    source: str | None = None
    code: str | None = None
    description: str | None = None


class ChannelOrderResult(BaseModel):
    """VTEX's processing-result notification (Channel Order API), as the intake hands it to the order: a
    hint the order checks with VTEX before it moves (workflows/order.py)."""

    flow: str = Field(description="PlaceOrder or ApproveOrder.")
    code: str = Field(description="SOI001, SOI002, or an EOI error code.")
    operation_id: str | None = None
    main_order_id: str | None = None
    errors: list[ChannelOrderError] = Field(default_factory=list)


class TimelineEntry(BaseModel):
    at: datetime
    step: str
    outcome: str = Field(description="success, error, alert or pending, as in VTEX's order logs.")
    message: str
    code: str | None = None


class ReprocessPolicy(BaseModel):
    """Retry timing, passed in as workflow input so tests can run it short (workflows read no env)."""

    activity_attempts: int = Field(default=5, ge=1, description="Tries of one call for transient errors.")
    activity_initial_interval_seconds: float = Field(default=1.0, gt=0)
    first_delay_seconds: float = Field(default=60.0, gt=0)
    max_delay_seconds: float = Field(default=3600.0, gt=0)
    # VTEX's order-log guide: "at least 10 attempts", then a dead-letter queue.
    max_attempts: int = Field(default=10, ge=1)
    dead_letter_retry_seconds: float = Field(default=6 * 3600.0, gt=0)
    approval_poll_seconds: float = Field(default=300.0, gt=0)
    # First look at VTEX after a Channel Order request, doubling up to the unknown-placement window: the
    # processing-result notification usually comes first, but completion never depends on it.
    channel_order_check_seconds: float = Field(default=15.0, gt=0)
    # How often an order the marketplace fulfills asks it for the invoice it issues (Mercado Libre Full).
    marketplace_invoice_poll_seconds: float = Field(default=900.0, gt=0)
    # Start-to-close of one activity attempt: how long a worker killed mid-activity delays the retry.
    activity_timeout_seconds: float = Field(default=60.0, gt=0)

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** max(0, attempt - 1))


class ReprocessRequest(BaseModel):
    reason: str = "reprocess requested"


class CancelRequest(BaseModel):
    """Cancel the order (the marketplace canceled it; sent by the intake, the CLI or `temporal`)."""

    reason: str = "canceled in the marketplace"
    source: str = "marketplace"


class VtexCancellation(BaseModel):
    """VTEX told us (cancel callback) that the order is canceled there."""

    reason: str | None = None


class InvoiceProgress(BaseModel):
    invoice: Invoice
    invoice_sent: bool = False
    tracking_sent: bool = False


class FollowUpState(BaseModel):
    """What a continued-as-new run needs to pick the follow-up up where the previous run left it."""

    state: OrderState
    placed: PlacedOrder
    order_value: int
    invoices: list[InvoiceProgress] = Field(default_factory=list)


class Stage(StrEnum):
    """Where a continued-as-new run picks the order up (connector/lifecycle.py)."""

    INTEGRATION = "integration"
    FOLLOW_UP = "follow-up"
    CANCELLATION = "cancellation"
    AFTER_SALE_WINDOW = "after-sale-window"


class OrderSnapshot(BaseModel):
    """Everything a run of OrderLifecycle knows, carried across continue-as-new: progress, deadlines and
    every signal that arrived and was not acted on yet."""

    stage: Stage
    state: OrderState
    placed: PlacedOrder | None = None
    place_attempted: bool = False
    price_approved: bool = False
    order_value: int = 0
    invoices: list[InvoiceProgress] = Field(default_factory=list)
    invoices_changed: bool = False
    payment_deadline: datetime | None = None
    after_sale_deadline: datetime | None = None
    # Pending signals.
    wake: bool = False
    reprocess_requested: bool = False
    cancel: CancelRequest | None = None
    vtex_canceled: VtexCancellation | None = None
    we_asked_vtex_to_cancel: bool = False
    return_invoice_number: str | None = None
    # Channel Order API (vtex_flow order-integration): when the order was last sent, whether as paid,
    # when the approval was last sent, and the processing results not acted on yet.
    enqueued_at: datetime | None = None
    enqueued_paid: bool = False
    # The marketplace ships the order from its own warehouse and issues its invoice (Mercado Libre Full).
    marketplace_fulfilled: bool = False
    # The marketplace tracks the shipment: no tracking of the seller's is waited for (Shipping).
    marketplace_tracks: bool = False
    # The operationId VTEX gave the last request, when it gave one: an error result must carry it.
    operation_id: str | None = None
    approval_sent_at: datetime | None = None
    results: list[ChannelOrderResult] = Field(default_factory=list)


class OrderWorkflowInput(BaseModel):
    """Everything the workflow needs; it carries no secret (the worker holds credentials)."""

    connection: str
    marketplace_order_id: str
    affiliate_id: str
    sales_channel: str
    # None: price divergence not allowed. A rate (0.05 = 5%): orders within it go to manual approval.
    price_divergence_allowance_rate: float | None = None
    policy: ReprocessPolicy = Field(default_factory=ReprocessPolicy)
    # Orders to be paid: place them (stock reserved for the payment window), authorize once paid.
    accept_unpaid_orders: bool = False
    payment_window_seconds: float = Field(default=86400.0, gt=0)
    # Set when the (first) OrderWorkflow definition continued as new in the follow-up phase.
    resume: FollowUpState | None = None
    # Set when OrderLifecycle continued as new.
    snapshot: OrderSnapshot | None = None
    # How long a completed or canceled order's workflow stays open for returns, chargebacks and late
    # callbacks (README, "After-sale window").
    after_sale_window_seconds: float = Field(default=120 * 86400.0, gt=0)
    # How long a cancel keeps looking for an order whose placement outcome is unknown before it
    # concludes VTEX never had it (OMS shows new orders with a lag).
    unknown_placement_window_seconds: float = Field(default=600.0, gt=0)
    # Continue as new past this many history events (the server also suggests it; tests set it low).
    continue_as_new_after_events: int = Field(default=2000, ge=50)
    # Set by every hand-off since search attributes are written at rest and the marketplace read is a
    # local activity; a run started before keeps its command sequence (replay), so does its continuation.
    # An input flag rather than workflow.patched: a patch upserts TemporalChangeVersion, one action per order.
    lean_history: bool = False
    # Set by every hand-off since placement and authorization joined the read and the validation as local
    # activities of one workflow task (with lean_history). Same reason for an input flag.
    local_integration: bool = False
    # VTEX activities run on their own task queue, rate-limited server-side across all workers.
    vtex_task_queue: str | None = None
    # Orders started before the Channel Order API was offered lack it and replay as fulfillment orders.
    vtex_flow: VtexFlow = VtexFlow.FULFILLMENT


class OrderState(BaseModel):
    connection: str
    marketplace_order_id: str
    status: OrderStatus = OrderStatus.RECEIVED
    vtex_order_id: str | None = None
    parked_reason: str | None = None
    error_code: str | None = None
    reprocess_attempts: int = 0
    notifications_received: int = 0
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # Runs of this order's workflow so far (continue-as-new starts a new one).
    run_number: int = 1


def order_workflow_id(connection: str, marketplace_order_id: str) -> str:
    return f"order:{connection}:{marketplace_order_id}"


# --- activity inputs (one model each, so fields can be added compatibly) -------------------------------


class FetchOrderInput(BaseModel):
    connection: str
    marketplace_order_id: str


class ValidateOrderInput(BaseModel):
    order: MarketplaceOrder
    connection: str
    affiliate_id: str
    sales_channel: str
    price_divergence_allowance_rate: float | None = None
    # With local_integration a worker that dies after the placement but before the workflow task ends
    # The order goes through the Channel Order API, which takes orders the marketplace delivers (FOB).
    channel_order_api: bool = False
    # leaves no record of it: the next worker validates again, and the order's own reservation can then
    # fail the stock check. So a failed validation first looks for the order in VTEX.
    look_for_placed_order: bool = False


class PlaceOrderInput(BaseModel):
    order: MarketplaceOrder
    report: ValidationReport
    affiliate_id: str
    sales_channel: str
    connection: str
    price_divergence_allowance_rate: float | None = None
    lock_ttl: str = "1d"
    # Set when the placement shares a workflow task with the marketplace read (local_integration): a
    # signal sent meanwhile has not reached the workflow, so the store is asked instead.
    refuse_if_unread_notification: bool = False


class EnqueueChannelOrderInput(PlaceOrderInput):
    """Send an order to VTEX's Channel Order API (`marketplaceOrderStatus` approved when paid, else new):
    the same order and settings as a fulfillment placement."""


class LookUpChannelOrderInput(BaseModel):
    """Where VTEX stands on a Channel Order request: the VTEX order it made, if any."""

    connection: str
    marketplace_order_id: str
    affiliate_id: str
    sales_channel: str
    # Where a processing result says the order is (`fields.mainOrderId`), looked at first.
    main_order_id: str | None = None
    # A PlaceOrder error result to confirm: it holds only when VTEX shows no order.
    result: ChannelOrderResult | None = None
    # Looking for the approval (of an order VTEX has) rather than for the integration.
    approval: bool = False


class ApproveChannelOrderInput(BaseModel):
    """Ask VTEX to approve a Channel Order order (Update order status, `approved`): paid in the marketplace."""

    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    sales_channel: str
    refuse_if_unread_notification: bool = False
    # An ApproveOrder error result (EOI008, EOI009, ...) that came since the last request, to report.
    result: ChannelOrderResult | None = None


class CancelOrderInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    reason: str
    sales_channel: str


class CancelOutcome(BaseModel):
    existed: bool = True
    already_canceled: bool = False
    return_invoice_number: str | None = None


class MarketplaceInvoiceInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None = None
    invoice: Invoice


class MarketplaceTrackingInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None = None
    tracking: Tracking


class MarketplaceCancellationInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None = None
    reason: str


class AuthorizeDispatchInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    affiliate_id: str
    sales_channel: str
    # As in PlaceOrderInput.
    refuse_if_unread_notification: bool = False


class OrderStatusInput(BaseModel):
    vtex_order_id: str


class FindVtexOrderInput(BaseModel):
    connection: str
    marketplace_order_id: str
    affiliate_id: str


class VtexOrderInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    sales_channel: str


class VtexOrderInfo(BaseModel):
    """What the workflow needs to know of an OMS order (None from the activity: VTEX has no such order)."""

    vtex_order_id: str
    status: str
    # Numbers of the return (Input) invoices VTEX already holds.
    return_invoices: list[str] = Field(default_factory=list)


class ChannelOrderLook(BaseModel):
    """What a look at VTEX found: the order (None: VTEX shows none yet), and whether the place a processing
    result named holds another marketplace order's (a false hint: drop it)."""

    order: VtexOrderInfo | None = None
    named_another_order: bool = False


class ReturnInvoiceInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    sales_channel: str
    invoice_number: str


class VtexInvoiceInput(BaseModel):
    """An invoice the marketplace issued (it fulfilled the order), for VTEX's order."""

    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    sales_channel: str
    invoice: Invoice


class CancelInVtexInput(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str
    reason: str
    sales_channel: str


class WorkflowLogInput(BaseModel):
    """A log line for a decision the workflow took itself (dead letter, canceled while queued...)."""

    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None = None
    code: str
    status: str
    business_message: str


def vtex_order_id(affiliate_id: str, marketplace_order_id: str) -> str:
    """The OMS id VTEX usually gives a fulfillment order (seller suffix `-01`). Only a first guess when
    looking for an order whose placement answer was lost: the suffix is VTEX's to choose."""
    return f"{affiliate_id}-{marketplace_order_id}-01"


# --- poller --------------------------------------------------------------------------------------------


class PollerSettings(BaseModel):
    """What an operator may change on a running poller (the `configure` signal; README, "Intake")."""

    interval_seconds: float = Field(gt=0)
    overlap_seconds: float = Field(ge=0)
    page_size: int = Field(default=100, ge=1, le=100)
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    # A listed change the connector never heard of waits this long for its webhook before the poller
    # hands it off itself (connector/redundancy.py).
    webhook_grace_seconds: float = Field(default=0.0, ge=0)


class PollerInput(BaseModel):
    connection: str
    interval_seconds: float = Field(gt=0)
    overlap_seconds: float = Field(ge=0)
    page_size: int = Field(default=100, ge=1, le=100)
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    webhook_grace_seconds: float = Field(default=0.0, ge=0)
    # The newest `updated_at` read so far (the marketplace's clock, never ours).
    cursor: datetime | None = None
    # Where a walk with pages still unread stands (a backlog being worked through); None: caught up.
    walk: ListingPosition | None = None
    # Changes already handed off inside the overlap window ("id@updated_at"), so they are not signaled
    # again while the window is re-read.
    seen: list[str] = Field(default_factory=list)
    # Listed changes whose workflow had just been notified and had not read the order yet: checked again
    # at the next poll instead of being signaled twice.
    deferred: list[OrderChange] = Field(default_factory=list)
    handed_off: int = 0
    failures_in_a_row: int = 0
    skipped: int = 0
    quarantined: int = 0

    def settings(self) -> PollerSettings:
        return PollerSettings(
            interval_seconds=self.interval_seconds,
            overlap_seconds=self.overlap_seconds,
            page_size=self.page_size,
            heartbeat_timeout_seconds=self.heartbeat_timeout_seconds,
            webhook_grace_seconds=self.webhook_grace_seconds,
        )


class PollRequest(BaseModel):
    connection: str
    cursor: datetime | None
    overlap_seconds: float
    seen: list[str] = Field(default_factory=list)
    walk: ListingPosition | None = None
    deferred: list[OrderChange] = Field(default_factory=list)
    page_size: int = 100
    max_pages: int = 10
    webhook_grace_seconds: float = 0.0


class PollProgress(BaseModel):
    """A poll's work so far: its result, and its heartbeat checkpoint after every page."""

    cursor: datetime | None
    seen: list[str] = Field(default_factory=list)
    # None once the listing's end was reached.
    walk: ListingPosition | None = None
    deferred: list[OrderChange] = Field(default_factory=list)
    handed_off: int = 0
    # Listed changes the order's workflow had already read (by webhook, an earlier poll or an import).
    skipped: int = 0
    quarantined: int = 0
    pages: int = 0
    listed: int = 0
    deferred_checked: bool = False


class PollerState(BaseModel):
    connection: str
    cursor: datetime | None = None
    handed_off: int = 0
    last_poll_at: datetime | None = None
    last_error: str | None = None
    failures_in_a_row: int = 0
    settings: PollerSettings | None = None
    # A backlog being worked through: where its walk stands, and what this walk has read so far.
    walk: ListingPosition | None = None
    walk_pages: int = 0
    walk_listed: int = 0
    skipped: int = 0
    deferred: int = 0
    quarantined: int = 0


def poller_workflow_id(connection: str) -> str:
    return f"poller:{connection}"
