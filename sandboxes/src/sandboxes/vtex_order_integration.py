"""The Channel Order API (New Order Integration) of a VTEX seller account: enqueue an order, approve it,
and tell the connector how each went.

Sources of shapes and codes:
- `POST /api/order-integration/orders?affiliateId=` (spec operation EnqueueNewOrder) and
  `PUT /api/order-integration/orders/status` (UpdateOrderStatus): bodies checked in
  vtex_order_integration_schema; both answer 200 with SOI003 "Order successfully enqueued" (spec
  examples; collect-orders and update-order-status guides) in the `Deliverybyseller` / `Approveorder`
  contract, then work asynchronously.
- The notification `POST {connectorEndpoint}/order-integration/notification/processing-result?an={account}`
  with the same contract (collect-orders guide, "Order Processing Result" and "Response Body").
- Codes and messages: the collect-orders guide's "Response Codes" table and "Order Notification
  Results" (PlaceOrder: SOI001, EOI000-EOI007), the update-order-status guide's (ApproveOrder: SOI002,
  EOI008, EOI009; EOI011 in its prose). An order sent as `approved` gets SOI001 and then a second
  notification, SOI002 with flow ApproveOrder and the same operationId (collect-orders guide,
  Scenario 2). `fields.mainOrderId` only on success ("only returned if the response is successful",
  spec `Deliverybyseller.fields`).
- The business rules are the legacy placement's (vtex_fulfillment, vtex_fulfillment_schema), run on
  the order translated to a Place fulfillment order body; their codes map to the guide's meanings:
  unsellable item, stock, SLA/pickup point (ORD027, ORD028, FMT003/FMT004/FMT010) -> EOI002; price
  (FMT007) -> EOI003; an item unknown to the catalog -> EOI004; any field check -> EOI005; the same
  `marketplaceOrderId` for the affiliate (FMT009/FMT0060) -> EOI007 "Duplicated order". `errors[]`
  carries the underlying code with its `source` (Checkout, Fulfillment or Order Integration; the spec
  says the code comes from the source, although `Deliverybyseller` enumerates only FMT001-FMT005).

The sandbox's readings where the docs are silent ([INFERRED]):
- Orders go to the sandbox's default sales channel (1) as the affiliate's trade policy, and
  `logisticsInfo[i]` belongs to `items[i]` (the spec's LogisticsInfo has no itemIndex).
- Statuses: `new` -> `payment-pending` (waits for the approval), approved -> `ready-for-handling`. A price
  divergence the affiliate's Order Authorization rules accept (`price_divergence_affiliates`) ->
  `waiting-for-manual-authorization`; approving it answers EOI011 until the seller decides.
  `priceDivergenceAllowanceRate` is a fraction (0.05 = 5 %) of the store's value within which the
  marketplace's total is taken as is.
- Approving an order already approved answers SOI002 again; a status update to `new` answers EOI001.
- `fields.mainOrderId` is the OMS id (`{affiliateId}-{marketplaceOrderId}-{suffix}`); the guide's
  example (`MKP-123456789`) shows no suffix.
- Invoices and cancellations keep the legacy callbacks (release note: "The other steps ... have not
  been changed"), sent under `connectorEndpoint`.

Where the docs leave room, the sandbox varies: processing starts after a random 0-0.5 s per request
(`delay_seconds` pins it), so an approval sent right after the order may be processed first (EOI008);
whether the POST's SOI003 echoes `marketplaceOrderId` (the examples show null) is drawn per sandbox;
the sandbox's OMS lag applies, so Get order may still answer 404 when SOI001 arrives.
Notification faults (`NotificationFault`) drop, delay or duplicate notifications; a delayed one may be
overtaken by a later one, as nothing in the docs orders them. Processing faults (`ProcessingFault`) make
the next requests of a flow fail with a code the rules cannot produce (EOI000, EOI001, EOI006) or would
produce only with a store set up for it (EOI003, EOI004): nothing is placed or approved.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from sandboxes.catalog import SandboxSku
from sandboxes.vtex_callbacks import CallbackDispatcher, callback_url
from sandboxes.vtex_fulfillment import (
    CANCELED,
    READY_FOR_HANDLING,
    WAITING_AUTHORIZATION,
    WAITING_MANUAL_AUTHORIZATION,
    find_placed,
)
from sandboxes.vtex_fulfillment_schema import validate_place_order
from sandboxes.vtex_models import (
    ACCOUNT_NAME,
    DEFAULT_SALES_CHANNEL,
    JSON,
    SELLER_ID,
    SandboxOrder,
    VtexApiError,
    now_utc,
)
from sandboxes.vtex_oms import order_totals
from sandboxes.vtex_order_integration_schema import (
    ORDER_INTEGRATION,
    ChannelOrderRejected,
    contract,
    validate_enqueue,
    validate_update,
)

ENQUEUE_PATH = "/api/order-integration/orders"
STATUS_PATH = "/api/order-integration/orders/status"
PLACE_ORDER = "PlaceOrder"
APPROVE_ORDER = "ApproveOrder"
PAYMENT_PENDING = "payment-pending"
MAX_PROCESSING_DELAY = 0.5

MESSAGES = {
    "SOI001": "Order integrated successfully",
    "SOI002": "Order approved successfully",
    "SOI003": "Order successfully enqueued",
    "EOI000": "Unknown error",
    "EOI001": "Unmapped error",
    "EOI002": "SLA not available",
    "EOI003": "Price divergence",
    "EOI004": "Invalid cart",
    "EOI005": "Validation error",
    "EOI006": "VTEX unexpected error",
    "EOI007": "Duplicated order",
    "EOI008": "Cannot approve an order that is not integrated yet",
    "EOI009": "Order out of valid status to approve",
    "EOI011": "Order waiting for the seller's manual authorization of a price divergence",
}
# The placement rules' codes (vtex_fulfillment) -> the Channel Order API's; other codes are field checks.
_PLACEMENT_CODES = {
    "ORD027": "EOI002",
    "ORD028": "EOI002",
    "FMT003": "EOI002",
    "FMT004": "EOI002",
    "FMT010": "EOI002",
    "FMT007": "EOI003",
    "FMT009": "EOI007",
    "FMT0060": "EOI007",
}
_APPROVABLE = frozenset({PAYMENT_PENDING, WAITING_AUTHORIZATION})
_APPROVED = frozenset({READY_FOR_HANDLING, "start-handling", "handling", "invoiced"})

Action = Literal["drop", "delay", "duplicate"]
Place = Callable[[JSON, str, int], SandboxOrder]


@dataclass
class NotificationFault:
    """What to do to the next `times` processing-result notifications whose flow and code match
    (None: any): `drop` it, `delay` it by `delay_seconds`, or send it twice (`duplicate`)."""

    action: Action
    flow: str | None = None
    code: str | None = None
    times: int = 1
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ("drop", "delay", "duplicate"):
            raise ValueError("action must be drop, delay or duplicate")
        if self.times == 0 or self.times < -1:
            raise ValueError("times must be positive, or -1 for forever")
        if self.delay_seconds < 0:
            raise ValueError("delay_seconds must not be negative")

    def matches(self, flow: str, code: str) -> bool:
        return self.flow in (None, flow) and self.code in (None, code)

    def to_json(self) -> JSON:
        return asdict(self)


_NOTIFICATION_FAULT_TYPES: dict[str, tuple[type, ...]] = {
    "action": (str,),
    "flow": (str, type(None)),
    "code": (str, type(None)),
    "times": (int,),
    "delay_seconds": (int, float),
}


def notification_fault_from_json(data: object) -> NotificationFault:
    """Build a NotificationFault from the admin API's JSON; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object with NotificationFault fields")
    unknown = sorted(set(data) - {f.name for f in fields(NotificationFault)})
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)}")
    if "action" not in data:
        raise ValueError("action is required")
    for name, value in data.items():
        if not isinstance(value, _NOTIFICATION_FAULT_TYPES[name]) or isinstance(value, bool):
            raise ValueError(f"{name} has the wrong type")
    return NotificationFault(**data)


@dataclass
class ProcessingFault:
    """The next `times` requests of `flow` fail with `code` (and one error naming it) instead of being
    processed by the rules."""

    code: str
    flow: str = PLACE_ORDER
    times: int = 1

    def __post_init__(self) -> None:
        if self.code not in MESSAGES or not self.code.startswith("EOI"):
            raise ValueError(f"code must be one of the EOI codes: {', '.join(c for c in MESSAGES if c[0] == 'E')}")
        if self.flow not in (PLACE_ORDER, APPROVE_ORDER):
            raise ValueError("flow must be PlaceOrder or ApproveOrder")
        if self.times < 1:
            raise ValueError("times must be positive")


@dataclass
class Notification:
    """A processing result VTEX had to tell, and what became of it: `sent`, `dropped`, `delayed`,
    `duplicated` (sent twice) or `no-endpoint` (neither the body nor the sandbox named one). The
    deliveries themselves are the sandbox's `callbacks` (event `processing-result`)."""

    flow: str
    code: str
    affiliate_id: str | None
    marketplace_order_id: str
    url: str | None
    body: JSON
    fate: str

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class Integration:
    """One EnqueueNewOrder request: `enqueued` until processed, then `integrated` or `failed`."""

    affiliate_id: str
    marketplace_order_id: str
    operation_id: str
    connector_name: str | None
    endpoint: str | None
    state: str = "enqueued"
    order_id: str | None = None


class OrderIntegration:
    def __init__(
        self,
        *,
        place: Place,
        orders: Mapping[str, SandboxOrder],
        catalog: Mapping[str, SandboxSku],
        callbacks: CallbackDispatcher,
        rng: random.Random,
        delay_seconds: float | None = None,
        price_divergence_affiliates: Iterable[str] = (),
        connector_endpoint: str | None = None,
        echo_order_id: bool = False,
    ) -> None:
        """`place(fulfillment_order, affiliate_id, sales_channel)` stores an order by the legacy rules.
        `delay_seconds`: how long each request waits before it is processed (None: random 0-0.5 s).
        `connector_endpoint` stands in for the App Template's, for orders that name none."""
        if delay_seconds is not None and delay_seconds < 0:
            raise ValueError("delay_seconds must not be negative")
        self.delay_seconds = delay_seconds
        self.price_divergence_affiliates = set(price_divergence_affiliates)
        self.connector_endpoint = connector_endpoint
        self.echo_order_id = echo_order_id
        self.integrations: list[Integration] = []
        self.notifications: list[Notification] = []
        self.faults: list[NotificationFault] = []
        self.processing_faults: list[ProcessingFault] = []
        self._place = place
        self._orders = orders
        self._catalog = catalog
        self._callbacks = callbacks
        self._rng = rng
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.integrations.clear()
        self.notifications.clear()
        self.faults.clear()
        self.processing_faults.clear()

    async def drain(self) -> None:
        """Wait until every enqueued request was processed and every delayed notification handed over."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _delay(self) -> float:
        return self._rng.uniform(0, MAX_PROCESSING_DELAY) if self.delay_seconds is None else self.delay_seconds

    # -- the two endpoints (synchronous part) --------------------------------------------------------

    def enqueue(self, query: Mapping[str, str], body: Any) -> JSON:
        """EnqueueNewOrder: check, answer SOI003, process later."""
        affiliate_id = query.get("affiliateId")
        order = validate_enqueue(body, PLACE_ORDER)
        if not affiliate_id:
            raise ChannelOrderRejected(PLACE_ORDER, order["marketplaceOrderId"], "affiliateId is required (query)")
        marketplace_order_id: str = order["marketplaceOrderId"]
        integration = Integration(
            affiliate_id=affiliate_id,
            marketplace_order_id=marketplace_order_id,
            operation_id=str(uuid.uuid4()),
            connector_name=order.get("connectorName"),
            endpoint=order.get("connectorEndpoint") or self.connector_endpoint,
        )
        self.integrations.append(integration)
        self._start(self._process_order(integration, order, self._delay()))
        return contract(
            flow=PLACE_ORDER,
            code="SOI003",
            marketplace_order_id=marketplace_order_id if self.echo_order_id else None,
            operation_id=integration.operation_id,
            message=MESSAGES["SOI003"],
        )

    def update_status(self, body: Any) -> JSON:
        """UpdateOrderStatus: check, answer SOI003, process later."""
        update = validate_update(body, APPROVE_ORDER)
        operation_id = str(uuid.uuid4())
        self._start(self._process_update(update, operation_id, self._delay()))
        return contract(
            flow=APPROVE_ORDER,
            code="SOI003",
            marketplace_order_id=update["marketplaceOrderId"],
            operation_id=operation_id,
            message=MESSAGES["SOI003"],
            account_name=None,  # as the spec's and the guide's examples
        )

    # -- processing -----------------------------------------------------------------------------------

    async def _process_order(self, integration: Integration, order: JSON, delay: float) -> None:
        await asyncio.sleep(delay)
        code, errors, placed = self._take_processing_fault(PLACE_ORDER) or self._integrate(integration, order)
        integration.state = "integrated" if placed else "failed"
        integration.order_id = placed.order_id if placed else None
        self._notify(integration, PLACE_ORDER, code, errors, placed, integration.operation_id, integration.endpoint)
        if placed is not None and order["marketplaceOrderStatus"] == "approved":
            code, errors = approve(placed)
            self._notify(
                integration, APPROVE_ORDER, code, errors, placed, integration.operation_id, integration.endpoint
            )

    def _integrate(self, integration: Integration, order: JSON) -> tuple[str, list[JSON], SandboxOrder | None]:
        affiliate_id = integration.affiliate_id
        existing = find_placed(self._orders, affiliate_id, integration.marketplace_order_id)
        if existing is not None:
            what = f"Order {integration.marketplace_order_id} for affiliate {affiliate_id} already exists in VTEX"
            return "EOI007", [_error(ORDER_INTEGRATION, "EOI007", what)], None
        problem = _order_problem(order)
        if problem:
            return "EOI005", [_error(ORDER_INTEGRATION, "EOI005", problem)], None
        unknown = [item["id"] for item in order["items"] if item["id"] not in self._catalog]
        if unknown:
            return "EOI004", [_error("Checkout", "ORD027", f"Item {sku} not found") for sku in unknown], None
        fulfillment = to_fulfillment_order(order, integration.endpoint or "", self._catalog)
        try:
            validate_place_order(fulfillment)
        except VtexApiError as exc:
            return "EOI005", [_placement_error(exc)], None
        payment: int = fulfillment["marketplacePaymentValue"]
        items_value, store_freight = order_totals(_unsaved(fulfillment, affiliate_id), self._catalog)
        # FOB (scenarios 7 and 8): the marketplace carries the order, so the freight is the marketplace's.
        fob = bool(order["shippingData"].get("isFob"))
        freight = sum(info["price"] for info in order["shippingData"]["logisticsInfo"]) if fob else store_freight
        desired = items_value + freight
        rate = order.get("priceDivergenceAllowanceRate")
        within = rate is not None and desired > 0 and abs(payment - desired) / desired <= rate
        fulfillment["isCreatedAsync"] = payment != desired and (
            within or affiliate_id in self.price_divergence_affiliates
        )
        if fob:
            # The placement rules price the store's SLA: the marketplace's freight stands in for it there.
            fulfillment["marketplacePaymentValue"] = payment - freight + store_freight
        try:
            placed = self._place(fulfillment, affiliate_id, DEFAULT_SALES_CHANNEL)
        except VtexApiError as exc:
            return _PLACEMENT_CODES.get(exc.code or "", "EOI001"), [_placement_error(exc)], None
        if placed.status == WAITING_AUTHORIZATION or within:
            placed.status = PAYMENT_PENDING
        return "SOI001", [], placed

    async def _process_update(self, update: JSON, operation_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        marketplace_order_id: str = update["marketplaceOrderId"]
        integration = self._integrated(marketplace_order_id, update["connectorName"])
        placed = self._orders.get(integration.order_id or "") if integration else None
        failed = self._take_processing_fault(APPROVE_ORDER)
        if failed is not None:
            code, errors = failed[0], failed[1]
        elif update["marketplaceOrderStatus"] != "approved":
            text = "Only the approval (marketplaceOrderStatus approved) changes an order's status"
            code, errors = "EOI001", [_error(ORDER_INTEGRATION, "EOI001", text)]
        elif placed is None:
            code, errors = "EOI008", []
        else:
            code, errors = approve(placed)
        self._notify(
            integration,
            APPROVE_ORDER,
            code,
            errors,
            placed,
            operation_id,
            update["connectorEndpoint"],
            marketplace_order_id=marketplace_order_id,
        )

    def _take_processing_fault(self, flow: str) -> tuple[str, list[JSON], None] | None:
        for fault in self.processing_faults:
            if fault.flow == flow:
                fault.times -= 1
                if fault.times == 0:
                    self.processing_faults.remove(fault)
                return fault.code, [_error(ORDER_INTEGRATION, fault.code, MESSAGES[fault.code])], None
        return None

    def _integrated(self, marketplace_order_id: str, connector_name: str) -> Integration | None:
        """The integrated order under this id; the same connector's first when affiliates share ids."""
        found = [i for i in self.integrations if i.marketplace_order_id == marketplace_order_id and i.order_id]
        found.sort(key=lambda i: i.connector_name != connector_name)
        return found[0] if found else None

    # -- notifications --------------------------------------------------------------------------------

    def _notify(
        self,
        integration: Integration | None,
        flow: str,
        code: str,
        errors: list[JSON],
        placed: SandboxOrder | None,
        operation_id: str,
        endpoint: str | None,
        *,
        marketplace_order_id: str | None = None,
    ) -> None:
        order_key = marketplace_order_id or (integration.marketplace_order_id if integration else "")
        body = contract(
            flow=flow,
            code=code,
            marketplace_order_id=order_key,
            operation_id=operation_id,
            message=MESSAGES[code],
            errors=errors,
            main_order_id=placed.order_id if placed else None,
        )
        affiliate_id = integration.affiliate_id if integration else None
        # One order's notifications go out one after the other (the dispatcher's per-key order).
        key = f"{affiliate_id}-{order_key}" if affiliate_id else order_key
        query = {"an": ACCOUNT_NAME}
        url = callback_url(endpoint, "processing-result", key, query) if endpoint else None
        fault = self._take_fault(flow, code)
        fate = (
            "sent"
            if fault is None
            else {"drop": "dropped", "delay": "delayed", "duplicate": "duplicated"}[fault.action]
        )
        if url is None:
            fate = "no-endpoint"
        self.notifications.append(Notification(flow, code, affiliate_id, order_key, url, body, fate))
        if endpoint is None or fate in ("dropped", "no-endpoint"):
            return

        def send() -> None:
            assert endpoint is not None
            self._callbacks.send("processing-result", key, endpoint, body, query=query)

        if fault is not None and fault.action == "delay":
            self._start(_later(fault.delay_seconds, send))
            return
        send()
        if fate == "duplicated":
            send()

    def _take_fault(self, flow: str, code: str) -> NotificationFault | None:
        for fault in self.faults:
            if fault.matches(flow, code):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                return fault
        return None


def approve(order: SandboxOrder) -> tuple[str, list[JSON]]:
    """Advance an integrated order to ready-for-handling: SOI002, or why not (EOI011, EOI009)."""
    if order.status in _APPROVABLE:
        order.status = READY_FOR_HANDLING
        order.last_change = order.authorized_date = now_utc()
        return "SOI002", []
    if order.status in _APPROVED:
        return "SOI002", []
    if order.status == WAITING_MANUAL_AUTHORIZATION:
        return "EOI011", []
    text = f"Order {order.order_id} is {order.status}" + (" and cannot be approved" if order.status != CANCELED else "")
    return "EOI009", [_error(ORDER_INTEGRATION, "EOI009", text)]


def to_fulfillment_order(order: JSON, endpoint: str, catalog: Mapping[str, SandboxSku]) -> JSON:
    """The EnqueueNewOrder body as a Place fulfillment order body (`placeFulfillmentOrderRequest`), the
    shape the placement rules and OMS read. `logisticsInfo[i]` is item i's (the spec: "the SLAs
    responsible for delivering each item"); an empty `selectedSla` for delivery takes the cheapest
    (collect-orders guide, Scenario 5: "Fulfillment's service will choose an available SLA"); an empty one for
    pickup-in-point is the SLA of the pickup point the address names (Scenario 9)."""
    items: list[JSON] = order["items"]
    shipping: JSON = order["shippingData"]
    address: JSON = shipping["selectedAddresses"][0]
    geo = address.get("geoCoordinates")
    logistics = []
    for index, info in enumerate(shipping["logisticsInfo"]):
        sla = info["selectedSla"]
        channel = info["selectedDeliveryChannel"]
        sku = catalog.get(items[index]["id"]) if index < len(items) else None
        if not sla and channel == "delivery" and sku is not None:
            offered = [s for s in sku.slas if s.delivery_channel == channel]
            sla = min(offered, key=lambda s: s.price).id if offered else sla
        if not sla and channel == "pickup-in-point" and sku is not None:
            # Scenario 9: no SLA, the pickup point named by the address's addressId.
            point = address.get("addressId")
            sla = next((s.id for s in sku.slas if s.pickup_point_id and s.pickup_point_id == point), sla)
        logistics.append(
            {
                "itemIndex": index,
                "selectedSla": sla,
                "selectedDeliveryChannel": channel,
                "price": info["price"],
                "lockTTL": info["lockTTL"],
                "shippingEstimate": info["shippingEstimate"],
            }
        )
    profile: JSON = order["clientProfileData"]
    corporate = bool(profile.get("corporateDocument"))
    return {
        "marketplaceOrderId": order["marketplaceOrderId"],
        "marketplaceServicesEndpoint": endpoint,
        # The payment value "includes interest"; the store's value does not.
        "marketplacePaymentValue": order["marketplacePaymentValue"] - order.get("marketplaceInterestValue", 0),
        "isCreatedAsync": False,
        "items": [
            {"id": item["id"], "quantity": item["quantity"], "seller": SELLER_ID, "price": item["price"]}
            for item in items
        ],
        "clientProfileData": {**profile, "documentType": "cnpj" if corporate else "cpf", "isCorporate": corporate},
        "shippingData": {
            "address": {
                **{name: address.get(name) or "" for name in ("city", "state", "street", "number")},
                **address,
                "geoCoordinates": [geo["longitude"], geo["latitude"]] if isinstance(geo, dict) else [],
            },
            "logisticsInfo": logistics,
        },
        "paymentData": None,
        "openTextField": order.get("openTextField"),
    }


def _order_problem(order: JSON) -> str | None:
    """Checks the spec's types leave to processing (EOI005: "some field/value ... is invalid")."""
    shipping: JSON = order["shippingData"]
    if not order["items"]:
        return "items must not be empty"
    if not shipping["selectedAddresses"]:
        return "shippingData.selectedAddresses must hold the delivery address"
    if len(shipping["logisticsInfo"]) != len(order["items"]):
        return "shippingData.logisticsInfo must have one entry per item"
    return None


def _unsaved(fulfillment: JSON, affiliate_id: str) -> SandboxOrder:
    """A throwaway order, to price the request with OMS's own arithmetic."""
    created = now_utc()
    return SandboxOrder(
        "", fulfillment["marketplaceOrderId"], affiliate_id, DEFAULT_SALES_CHANNEL, "", fulfillment, created, False
    )


def _error(source: str, code: str, description: str) -> JSON:
    return {"source": source, "code": code, "description": description}


def _placement_error(exc: VtexApiError) -> JSON:
    code = exc.code or ""
    return _error("Fulfillment" if code.startswith("FMT") else "Checkout", code, exc.message)


async def _later(seconds: float, action: Callable[[], None]) -> None:
    await asyncio.sleep(seconds)
    action()
