"""A VTEX seller account in one process: the endpoints the connector calls, as the specs describe them.

Every API request goes through one gateway that records it, applies injected faults, checks the app
key/token on `/pvt/` paths and the JSON content type on POSTs and PATCHes, then calls a plain handler.
Cancellations and invoices are told to the marketplace in the background, as VTEX does, through
`marketplaceServicesEndpoint` callbacks (vtex_callbacks). The admin API under `/_sandbox/` lets tests
in another process inject faults and read what the sandbox saw and sent.

Where the docs leave VTEX room, the sandbox takes it, so a connector that assumes more than the docs
promise is caught:
- OMS ids end in VTEX's seller suffix (`-01` in every example), chosen per sandbox among -01..-05
  unless pinned (`order_id_suffix`).
- A placed order reaches OMS (Get order, cancel, invoice) a moment later (`oms_visibility_delay_seconds`,
  random up to 0.3 s per order by default); before that OMS answers 404 as for an unknown order.
- List orders shows only indexed orders (`list_index_delay_seconds`, 0.5 s by default; VTEX documents
  about four minutes).
- The Channel Order API (vtex_order_integration) processes each request after a random 0 to 0.5 s
  (`order_integration_delay_seconds` pins it) and notifies `{connectorEndpoint}/order-integration/
  notification/processing-result`; notification faults drop, delay or duplicate those notifications.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from sandboxes.catalog import SKUS, SandboxSku
from sandboxes.vtex_callbacks import (
    DEFAULT_RETRY_DELAYS,
    CallbackAttempt,
    CallbackDispatcher,
    Sender,
    client_sender,
    post_json,
)
from sandboxes.vtex_cancel import (
    cancel_answer,
    finish_cancellation,
    parse_cancel,
    request_cancellation,
)
from sandboxes.vtex_catalog import sku_context
from sandboxes.vtex_checkout import simulate
from sandboxes.vtex_fulfillment import (
    authorize_dispatch,
    find_for_dispatch,
    place_order,
    place_order_response,
)
from sandboxes.vtex_fulfillment_schema import (
    require_affiliate,
    validate_authorize,
    validate_place_order,
)
from sandboxes.vtex_invoices import (
    OUTPUT,
    find_invoice,
    invoice_callback_body,
    parse_invoice,
    store_invoice,
    update_tracking,
)
from sandboxes.vtex_models import (
    FaultRule,
    RecordedRequest,
    SandboxInvoice,
    SandboxOrder,
    VtexApiError,
    bad_request,
    error_body,
    fault_rule_from_json,
    iso,
    now_utc,
    parse_sales_channel,
    receipt_body,
)
from sandboxes.vtex_oms import find_order, order_json, order_value
from sandboxes.vtex_oms_list import list_orders
from sandboxes.vtex_order_integration import (
    ENQUEUE_PATH,
    STATUS_PATH,
    NotificationFault,
    OrderIntegration,
    ProcessingFault,
    notification_fault_from_json,
)

__all__ = [
    "CallbackAttempt",
    "FaultRule",
    "NotificationFault",
    "ProcessingFault",
    "RecordedRequest",
    "SandboxOrder",
    "Sender",
    "VtexSandbox",
    "client_sender",
]

ADMIN_PREFIX = "/_sandbox/"
MAX_RECORDED_REQUESTS = 10_000
# VTEX always sends Retry-After with a 429 (RFC 6585); this is the fallback when a rule sets none.
DEFAULT_RETRY_AFTER = 1
# OMS sequences are six-digit numbers.
SEQUENCE_BASE = 500_000
_MASKED_HEADERS = frozenset({"x-vtex-api-apptoken", "vtexidclientautcookie"})
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_JSON_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})
# Paths that need the app key/token besides `/pvt/` ones (Channel Order API: collect-orders guide,
# "Authentication/authorization").
_AUTH_PREFIXES = ("/api/order-integration/",)
# The seller suffixes a sandbox picks from when none is pinned (VTEX's examples only show -01).
ORDER_ID_SUFFIXES = ("-01", "-02", "-03", "-04", "-05")
# Upper bound of the default, per-order random delay before OMS finds a new order.
MAX_OMS_VISIBILITY_DELAY = 0.3
DEFAULT_LIST_INDEX_DELAY = 0.5
_SUFFIX = re.compile(r"-?(\d{2})")


@dataclass(frozen=True)
class Call:
    """What a handler needs from the request, once the gateway accepted it."""

    request: Request
    path_params: dict[str, str]
    query: dict[str, str]
    body: Any


Handler = Callable[[Call], tuple[int, Any]]


class VtexSandbox:
    def __init__(
        self,
        *,
        app_key: str = "vtexappkey-sandbox-KEY",
        app_token: str = "sandbox-app-token",
        skus: Iterable[SandboxSku] = SKUS,
        callback_sender: Sender = post_json,
        callback_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        fault_seed: int = 0,
        order_id_suffix: str | None = None,
        oms_visibility_delay_seconds: float | None = None,
        list_index_delay_seconds: float = DEFAULT_LIST_INDEX_DELAY,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        order_integration_delay_seconds: float | None = None,
        price_divergence_affiliates: Iterable[str] = (),
        connector_endpoint: str | None = None,
    ) -> None:
        """`callback_sender` delivers the marketplace notifications (default: HTTP, 5 s timeout); a
        failed one is retried after each of `callback_retry_delays` seconds, then given up.
        `fault_seed` seeds the draws of faults with a `probability`, so a run can be repeated.

        `order_id_suffix` ("-02" or "02") pins the seller suffix of OMS ids; by default one of -01..-05
        is drawn once, here. `oms_visibility_delay_seconds` is how long a placed order stays unknown to
        OMS (default: a random 0 to 0.3 s per order; 0 disables). `list_index_delay_seconds` is how long
        it then takes to show in List orders. `seed` makes the random draws repeatable; `clock`
        (seconds) is what the delays are measured on.

        Channel Order API: `order_integration_delay_seconds` is how long each request waits before it
        is processed (default: a random 0 to 0.5 s per request); `price_divergence_affiliates` are the
        affiliates the seller's Order Authorization rules cover (a divergent price waits for manual
        authorization instead of failing EOI003); `connector_endpoint` stands in for the App
        Template's endpoint, for orders whose body names none."""
        if oms_visibility_delay_seconds is not None and oms_visibility_delay_seconds < 0:
            raise ValueError("oms_visibility_delay_seconds must not be negative")
        if list_index_delay_seconds < 0:
            raise ValueError("list_index_delay_seconds must not be negative")
        self._seed = seed
        self._delay_random = random.Random(seed)
        self.order_id_suffix = (
            _parse_suffix(order_id_suffix)
            if order_id_suffix is not None
            else random.Random(seed).choice(ORDER_ID_SUFFIXES)
        )
        self._oms_delay = oms_visibility_delay_seconds
        self._list_delay = list_index_delay_seconds
        self._clock = clock
        self.app_key = app_key
        self.app_token = app_token
        self._skus = tuple(skus)
        self._catalog = {sku.id: sku for sku in self._skus}
        self.stock: dict[str, int] = {}
        self.orders: dict[str, SandboxOrder] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: list[FaultRule] = []
        self._fault_seed = fault_seed
        self._fault_random = random.Random(fault_seed)
        self._placed = 0
        self._callbacks = CallbackDispatcher(callback_sender, callback_retry_delays)
        # Every notification attempt, in the order made.
        self.callbacks: list[CallbackAttempt] = self._callbacks.attempts
        self.order_integration = OrderIntegration(
            place=self._place,
            orders=self.orders,
            catalog=self._catalog,
            callbacks=self._callbacks,
            rng=self._delay_random,
            delay_seconds=order_integration_delay_seconds,
            price_divergence_affiliates=price_divergence_affiliates,
            connector_endpoint=connector_endpoint,
            # The spec's examples answer null; whether this sandbox echoes the id is drawn once.
            echo_order_id=random.Random(None if seed is None else seed + 1).random() < 0.5,
        )
        self.reset()
        self._api_routes: list[BaseRoute] = [
            self._route("/api/checkout/pub/orderForms/simulation", "POST", self._simulate),
            self._route("/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku_id}", "GET", self._sku_context),
            self._route("/api/fulfillment/pvt/orders", "POST", self._place_order),
            self._route("/api/fulfillment/pvt/orders/{order_id}/fulfill", "POST", self._authorize_dispatch),
            self._route("/api/oms/pvt/orders", "GET", self._list_orders),
            self._route("/api/oms/pvt/orders/{order_id}", "GET", self._get_order),
            self._route("/api/oms/pvt/orders/{order_id}/cancel", "POST", self._cancel_order),
            self._route("/api/oms/pvt/orders/{order_id}/invoice", "POST", self._invoice),
            self._route("/api/oms/pvt/orders/{order_id}/invoice/{invoice_number}", "PATCH", self._update_invoice),
            self._route(ENQUEUE_PATH, "POST", self._enqueue_order),
            self._route(STATUS_PATH, "PUT", self._update_order_status),
        ]
        self.app = Starlette(
            routes=[
                *self._admin_routes(),
                *self._api_routes,
                # Unknown paths still go through the gateway so they are recorded and can be faulted.
                Route("/{path:path}", self._gateway(self._not_found), methods=_ALL_METHODS),
            ]
        )

    # -- public API -------------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> None:
        self._faults.append(rule)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        return list(self._faults)

    async def drain_callbacks(self) -> None:
        """Wait until every Channel Order request so far was processed and every notification started
        so far was delivered or given up."""
        await self.order_integration.drain()
        await self._callbacks.drain()

    def reset(self) -> None:
        """Forget orders, requests, faults and callbacks (abandoning deliveries under way); put the
        seeded stock back. Containers are cleared in place so references other code holds stay live."""
        self._callbacks.reset()
        self.order_integration.reset()
        self.orders.clear()
        self.requests.clear()
        self._faults.clear()
        self._fault_random.seed(self._fault_seed)
        self._delay_random.seed(self._seed)
        self.stock.clear()
        self.stock.update({sku.id: sku.stock for sku in self._skus})
        self._placed = 0

    # -- gateway ----------------------------------------------------------------------------------

    def _route(self, path: str, method: str, handler: Handler) -> Route:
        return Route(path, self._gateway(handler), methods=[method])

    def _gateway(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if request.url.path.startswith(ADMIN_PREFIX):
                return _json(404, error_body(None, "Unknown sandbox admin route"))
            raw = await request.body()
            parsed, is_json = _parse_json(raw)
            record = RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={name: _mask(name, value) for name, value in request.headers.items()},
                body=parsed,
                status=0,
                received_at=asyncio.get_running_loop().time(),
            )
            self.requests.append(record)
            if len(self.requests) > MAX_RECORDED_REQUESTS:
                # A long `make run` must not grow without bound; tests look at recent requests only.
                del self.requests[: len(self.requests) - MAX_RECORDED_REQUESTS]
            fault = self._take_fault(request.method, request.url.path)
            if fault is not None and not fault.after_effect:
                return await _answer_fault(fault, record)
            response = self._handle(request, handler, parsed, is_json, raw)
            if fault is not None:
                # The operation took effect; only its answer is lost.
                return await _answer_fault(fault, record)
            record.status = response.status_code
            return response

        return endpoint

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        for rule in self._faults:
            if rule.matches(method, path):
                if rule.probability < 1 and self._fault_random.random() >= rule.probability:
                    continue
                if rule.times > 0:
                    rule.times -= 1
                    if rule.times == 0:
                        self._faults.remove(rule)
                return rule
        return None

    def _handle(self, request: Request, handler: Handler, body: Any, is_json: bool, raw: bytes) -> Response:
        try:
            needs_auth = "/pvt/" in request.url.path or request.url.path.startswith(_AUTH_PREFIXES)
            if needs_auth and not self._authorized(request):
                raise VtexApiError(401, "CHK003", "Access denied")
            if request.method in _JSON_BODY_METHODS:
                media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if media_type != "application/json":
                    raise bad_request("Content-Type must be application/json")
                if not is_json:
                    raise bad_request("A JSON body is required" if not raw else "The body is not valid JSON")
            call = Call(request, dict(request.path_params), dict(request.query_params), body)
            status, payload = handler(call)
        except VtexApiError as exc:
            status, payload = exc.status, exc.body()
        return _json(status, payload)

    def _authorized(self, request: Request) -> bool:
        key = request.headers.get("x-vtex-api-appkey", "")
        token = request.headers.get("x-vtex-api-apptoken", "")
        # Constant-time comparison, as for any secret.
        return hmac.compare_digest(key.encode(), self.app_key.encode()) and hmac.compare_digest(
            token.encode(), self.app_token.encode()
        )

    # -- VTEX endpoints ---------------------------------------------------------------------------

    def _simulate(self, call: Call) -> tuple[int, Any]:
        sales_channel = parse_sales_channel(call.query.get("sc"))
        return 200, simulate(call.body, sales_channel=sales_channel, catalog=self._catalog, stock=self.stock)

    def _sku_context(self, call: Call) -> tuple[int, Any]:
        sku = self._catalog.get(call.path_params["sku_id"])
        if sku is None:
            raise VtexApiError(404, None, f"SKU {call.path_params['sku_id']} not found")
        return 200, sku_context(sku)

    def _place_order(self, call: Call) -> tuple[int, Any]:
        affiliate_id = require_affiliate(call.query.get("affiliateId"))
        sales_channel = parse_sales_channel(call.query.get("sc"))
        order = validate_place_order(call.body)
        return 200, place_order_response(self._place(order, affiliate_id, sales_channel))

    def _place(self, order: dict[str, Any], affiliate_id: str, sales_channel: int) -> SandboxOrder:
        """Store a validated fulfillment order by the placement rules, with its OMS lag."""
        placed = place_order(
            order,
            affiliate_id=affiliate_id,
            sales_channel=sales_channel,
            catalog=self._catalog,
            stock=self.stock,
            orders=self.orders,
            sequence=SEQUENCE_BASE + self._placed + 1,
            order_id_suffix=self.order_id_suffix,
        )
        self._placed += 1
        delay = self._delay_random.uniform(0, MAX_OMS_VISIBILITY_DELAY) if self._oms_delay is None else self._oms_delay
        placed.oms_visible_at = self._clock() + delay
        placed.list_indexed_at = placed.oms_visible_at + self._list_delay
        return placed

    def _enqueue_order(self, call: Call) -> tuple[int, Any]:
        return 200, self.order_integration.enqueue(call.query, call.body)

    def _update_order_status(self, call: Call) -> tuple[int, Any]:
        return 200, self.order_integration.update_status(call.body)

    def _authorize_dispatch(self, call: Call) -> tuple[int, Any]:
        affiliate_id = require_affiliate(call.query.get("affiliateId"))
        parse_sales_channel(call.query.get("sc"))
        marketplace_order_id = validate_authorize(call.body)
        order = find_for_dispatch(self.orders, call.path_params["order_id"], affiliate_id)
        return 201, authorize_dispatch(order, marketplace_order_id)

    def _oms_order(self, order_id: str) -> SandboxOrder:
        """The order OMS knows under `order_id`: one placed too recently is not there yet."""
        order = find_order(self.orders, order_id)
        if order.oms_visible_at > self._clock():
            raise VtexApiError(404, None, f"Order {order_id} not found")
        return order

    def _list_orders(self, call: Call) -> tuple[int, Any]:
        now = self._clock()
        return 200, list_orders(
            self.orders.values(), call.query, now=now, value_of=lambda order: order_value(order, self._catalog)
        )

    def _get_order(self, call: Call) -> tuple[int, Any]:
        return 200, order_json(self._oms_order(call.path_params["order_id"]), self._catalog)

    def _cancel_order(self, call: Call) -> tuple[int, Any]:
        reason, by_user = parse_cancel(call.body)
        order = self._oms_order(call.path_params["order_id"])
        cancellation = request_cancellation(order, reason, by_user)
        if cancellation is not None:
            self._callbacks.send(
                "cancel",
                order.order_id,
                order.body["marketplaceServicesEndpoint"],
                {"reason": cancellation.reason},
                lambda delivered: finish_cancellation(order, cancellation, delivered),
            )
        return 200, cancel_answer(order)

    def _invoice(self, call: Call) -> tuple[int, Any]:
        order = self._oms_order(call.path_params["order_id"])
        invoice = parse_invoice(call.body, order)
        stored, is_new = store_invoice(order, invoice, order_value(order, self._catalog))
        if is_new:
            self._notify_invoice(order, stored)
        return 200, receipt_body(order.order_id, stored.receipt, iso(now_utc()))

    def _update_invoice(self, call: Call) -> tuple[int, Any]:
        order = self._oms_order(call.path_params["order_id"])
        invoice = find_invoice(order, call.path_params["invoice_number"])
        update_tracking(invoice, call.body)
        self._notify_invoice(order, invoice)
        return 200, receipt_body(order.order_id, invoice.receipt, iso(now_utc()))

    def _notify_invoice(self, order: SandboxOrder, invoice: SandboxInvoice) -> None:
        # Sales invoices are the marketplace's business; a return (Input) is settled between the seller
        # and VTEX and is not notified.
        if invoice.type == OUTPUT:
            endpoint = order.body["marketplaceServicesEndpoint"]
            self._callbacks.send("invoice", order.order_id, endpoint, invoice_callback_body(invoice))

    def _not_found(self, call: Call) -> tuple[int, Any]:
        for route in self._api_routes:
            match, _ = route.matches(call.request.scope)
            if match is Match.PARTIAL:  # the path exists, the method does not
                raise VtexApiError(405, None, f"Method {call.request.method} not allowed")
        raise VtexApiError(404, None, f"No route for {call.request.url.path}")

    # -- admin API --------------------------------------------------------------------------------

    def _admin_routes(self) -> list[BaseRoute]:
        return [
            Route(f"{ADMIN_PREFIX}faults", self._admin_add_fault, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}faults", self._admin_list_faults, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}faults", self._admin_clear_faults, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}orders", self._admin_orders, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}orders/{{order_id}}/status", self._admin_set_status, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}requests", self._admin_requests, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}callbacks", self._admin_callbacks, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}reset", self._admin_reset, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}notification-faults", self._admin_add_notification_fault, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}notification-faults", self._admin_list_notification_faults, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}notification-faults", self._admin_clear_notification_faults, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}notifications", self._admin_notifications, methods=["GET"]),
        ]

    async def _admin_add_fault(self, request: Request) -> Response:
        parsed, _ = _parse_json(await request.body())
        try:
            rule = fault_rule_from_json(parsed)
        except (TypeError, ValueError) as exc:
            return _json(400, error_body(None, str(exc)))
        self.add_fault(rule)
        return _json(201, rule.to_json())

    async def _admin_list_faults(self, request: Request) -> Response:
        return _json(200, [rule.to_json() for rule in self._faults])

    async def _admin_clear_faults(self, request: Request) -> Response:
        self._faults.clear()
        return Response(status_code=204)

    async def _admin_orders(self, request: Request) -> Response:
        return _json(200, [order.to_json() for order in self.orders.values()])

    async def _admin_set_status(self, request: Request) -> Response:
        # Stands in for the seller's Admin (cancel, approve a price divergence...) in end-to-end tests.
        # The OMS id or `{affiliateId}-{marketplaceOrderId}`: tests need not know the seller suffix.
        wanted = request.path_params["order_id"]
        order = self.orders.get(wanted) or next(
            (o for o in self.orders.values() if f"{o.affiliate_id}-{o.marketplace_order_id}" == wanted), None
        )
        parsed, _ = _parse_json(await request.body())
        if order is None:
            return _json(404, error_body(None, "Order not found"))
        if not isinstance(parsed, dict) or not isinstance(parsed.get("status"), str):
            return _json(400, error_body(None, 'body must be {"status": "<VTEX status>"}'))
        order.status = parsed["status"]
        order.last_change = now_utc()
        return _json(200, order.to_json())

    async def _admin_requests(self, request: Request) -> Response:
        return _json(200, [recorded.to_json() for recorded in self.requests])

    async def _admin_callbacks(self, request: Request) -> Response:
        return _json(200, [attempt.to_json() for attempt in self.callbacks])

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)

    def add_notification_fault(self, fault: NotificationFault) -> None:
        self.order_integration.faults.append(fault)

    def add_processing_fault(self, fault: ProcessingFault) -> None:
        self.order_integration.processing_faults.append(fault)

    async def _admin_add_notification_fault(self, request: Request) -> Response:
        parsed, _ = _parse_json(await request.body())
        try:
            fault = notification_fault_from_json(parsed)
        except (TypeError, ValueError) as exc:
            return _json(400, error_body(None, str(exc)))
        self.add_notification_fault(fault)
        return _json(201, fault.to_json())

    async def _admin_list_notification_faults(self, request: Request) -> Response:
        return _json(200, [fault.to_json() for fault in self.order_integration.faults])

    async def _admin_clear_notification_faults(self, request: Request) -> Response:
        self.order_integration.faults.clear()
        return Response(status_code=204)

    async def _admin_notifications(self, request: Request) -> Response:
        return _json(200, [notification.to_json() for notification in self.order_integration.notifications])


def _parse_suffix(value: str) -> str:
    match = _SUFFIX.fullmatch(value)
    if match is None or match.group(1) == "00":
        raise ValueError(f"order_id_suffix must be two digits from 01, like '-02' (got {value!r})")
    return f"-{match.group(1)}"


def _mask(name: str, value: str) -> str:
    # Recorded requests are shown to tests and over HTTP; secrets stay out of them.
    return "***" if name in _MASKED_HEADERS else value


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


async def _answer_fault(rule: FaultRule, record: RecordedRequest) -> Response:
    record.status = rule.status
    headers = {}
    retry_after = rule.retry_after
    if retry_after is None and rule.status == 429:
        retry_after = DEFAULT_RETRY_AFTER
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if rule.delay_seconds:
        await asyncio.sleep(rule.delay_seconds)
    return _json(rule.status, error_body(rule.code, rule.message), headers)
