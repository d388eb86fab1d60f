"""A Mercado Libre seller account in one process (Mercado Libre has no sandbox of its own: "We do not have
a test environment or sandbox", https://developers.mercadolivre.com.br/en_us/register-your-application/start-testing).

It serves Mercado Libre's documented shapes; every module names its sources:
- mercadolibre_oauth: `POST /oauth/token` (authorization code, rotating refresh tokens, invalid_grant) and
  the bearer check on every resource call (401 in Mercado Libre's error shape).
- mercadolibre_views: orders, order search, packs, shipments (`x-format-new: true` and the older shape),
  shipment items, claims, billing data, Faturador invoices.
- mercadolibre_notifications: the POSTed notifications (orders_v2, shipments, claims, invoices), their
  retries, duplicates and `GET /missed_feeds`.
- mercadolibre_store: the marketplace's state and the buyer's and Mercado Libre's changes to it (the
  Python API below), each followed by its notification.
- mercadolibre_seller: what the seller sends: ME1/custom tracking, fiscal documents, the NF-e it imports
  into a Brazilian shipment (`/shipments/{id}/invoice_data`), and the Faturador's NF-e.
- mercadolibre_models: sites and currencies, dates, money, the error table, fault rules.
- mercadolibre_admin: the admin API under `/_sandbox/` (tests in another process, `make run`).

Every API request goes through one gateway that records it, applies injected faults, checks the bearer
token (all but `/oauth/token`), then calls a handler. This class is also the Python API for in-process
tests: create orders and packs, pay, cancel, open claims, split packs, change pack ids, revoke the grant,
inject faults, and read what the connector sent.

Where the docs leave room, the sandbox takes it, so a connector that assumes more than the docs promise
is caught (each is a constructor argument; a `seed` makes the draws repeatable):
- Every order belongs to a pack from 2024 on ("all orders will be associated with a pack_id"), yet the
  fiscal-documents guide still says "if the pack id contains a null value, take the order id":
  `pack_single_orders` (drawn once per sandbox unless pinned) decides whether a one-order cart has a pack.
- Order search is an index: a change shows there after `search_index_delay_seconds` (random up to 0.5 s
  per change by default) [INFERRED; Mercado Libre documents none]. Search pages hold at most
  `search_max_limit` orders (51 [INFERRED]: the guides document the default, 50, but no maximum; a larger
  `limit` is clamped and `paging.limit` says so). `sort=date_asc|date_desc` orders by creation date
  (the sales guide's "sort by date"), not by the last change the date filter uses.
- The token endpoint answers after `token_latency_seconds` (random up to 50 ms by default).
- Notifications leave after a random delay, sometimes twice (`duplicate_probability`), and are retried
  until the receiver answers exactly 200 within `answer_timeout_seconds` (0.5 s, as documented).
- Claims notify with topic `claims` (`claims_topic`), or with the `post_purchase` + `actions` model.
- A shipment's NF-e (`GET /shipments/{id}/invoice_data`) carries its access key in `fiscal_key` or in
  `invoice_key` (`invoice_data_key_field`), and an NF-e import refusal its code in `error` or in a cause's
  `code` (`nfe_error_code_in`): integrators read both ways, Mercado Libre documents neither.
- Dates are local -04:00 with milliseconds, ids are JSON numbers, amounts JSON numbers (`49.9`), pack
  ids and order ids come from the same number space.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from sandboxes.mercadolibre_admin import admin_routes
from sandboxes.mercadolibre_models import (
    JSON,
    SITES,
    Claim,
    FaultRule,
    FiscalDocument,
    ImportedNfe,
    Invoice,
    ItemSpec,
    MlApiError,
    OAuthError,
    Order,
    Pack,
    RecordedRequest,
    SellerNotification,
    Shipment,
    bad_request,
    error_body,
    not_found,
    oauth_error_body,
)
from sandboxes.mercadolibre_notifications import (
    ANSWER_TIMEOUT_SECONDS,
    DEFAULT_RETRY_DELAYS,
    Notification,
    NotificationAttempt,
    NotificationDispatcher,
    Sender,
    client_sender,
    post_json,
)
from sandboxes.mercadolibre_oauth import OAuthServer, parse_form
from sandboxes.mercadolibre_seller import (
    NFE_CONTENT_TYPES,
    apply_tracking,
    fiscal_documents,
    nfe_refusal,
    parse_multipart,
)
from sandboxes.mercadolibre_store import INVOICE_DATA_KEY_FIELDS, NFE_ERROR_CODE_PLACES, MercadoLibreStore
from sandboxes.mercadolibre_views import (
    SORTS,
    billing_info_json,
    claim_json,
    invoice_data_json,
    invoice_json,
    order_json,
    pack_json,
    search_json,
    shipment_items_json,
    shipment_json,
    shipment_legacy_json,
)

__all__ = [
    "Claim",
    "FaultRule",
    "FiscalDocument",
    "ImportedNfe",
    "Invoice",
    "ItemSpec",
    "MercadoLibreSandbox",
    "Notification",
    "NotificationAttempt",
    "Order",
    "Pack",
    "SellerNotification",
    "Sender",
    "Shipment",
    "client_sender",
    "post_json",
]

ADMIN_PREFIX = "/_sandbox/"
MAX_RECORDED_REQUESTS = 10_000
DEFAULT_SEARCH_LIMIT = 50
DEFAULT_SEARCH_MAX_LIMIT = 51
MAX_TOKEN_LATENCY = 0.05
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_MASKED_HEADERS = frozenset({"authorization"})
_MASKED_FORM_FIELDS = frozenset({"client_secret", "refresh_token", "code", "code_verifier"})


@dataclass(frozen=True)
class Call:
    """What a handler needs from the request once the gateway accepted it."""

    request: Request
    path_params: dict[str, str]
    query: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON, or None


Answer = tuple[int, Any] | Response
Handler = Callable[[Call], Awaitable[Answer]]


class MercadoLibreSandbox(MercadoLibreStore):
    def __init__(
        self,
        *,
        client_id: str = "5069405921864711",
        client_secret: str = "ml-sandbox-client-secret",
        redirect_uri: str = "https://connector.example.com/mercadolibre/callback",
        seller_id: int = 241983636,
        application_id: int | None = None,
        site_id: str = "MLB",
        callback_url: str | None = None,
        sender: Sender = post_json,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS,
        duplicate_probability: float = 0.1,
        notification_delay_seconds: float | None = None,
        claims_topic: str = "claims",
        pack_single_orders: bool | None = None,
        search_max_limit: int = DEFAULT_SEARCH_MAX_LIMIT,
        search_index_delay_seconds: float | None = None,
        token_latency_seconds: float | None = None,
        invoice_delay_seconds: float | None = None,
        invoice_data_key_field: str | None = None,
        nfe_error_code_in: str | None = None,
        seed: int | None = None,
        fault_seed: int = 0,
        id_base: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` (seconds since the epoch) is what token lifetimes, the search index lag and every date
        the sandbox writes are measured on; tests move it to expire tokens. `seed` makes the random
        choices (ids, delays, duplicates, pack_single_orders, the NF-e import's shapes) repeatable. `id_base`
        pins the first ids."""
        if search_max_limit < 1:
            raise ValueError("search_max_limit must be positive")
        dispatcher = NotificationDispatcher(
            sender=sender,
            retry_delays=retry_delays,
            answer_timeout=answer_timeout_seconds,
            duplicate_probability=duplicate_probability,
            first_delay=notification_delay_seconds,
            rng=random.Random(None if seed is None else seed + 1),
        )
        dispatcher.callback_url = callback_url
        shapes = random.Random(None if seed is None else seed + 3)
        drawn_key_field, drawn_code_in = shapes.choice(INVOICE_DATA_KEY_FIELDS), shapes.choice(NFE_ERROR_CODE_PLACES)
        super().__init__(
            site_id=site_id,
            seller_id=seller_id,
            application_id=application_id if application_id is not None else int(client_id),
            dispatcher=dispatcher,
            claims_topic=claims_topic,
            pack_single_orders=(
                pack_single_orders if pack_single_orders is not None else random.Random(seed).random() < 0.5
            ),
            search_index_delay_seconds=search_index_delay_seconds,
            invoice_delay_seconds=invoice_delay_seconds,
            invoice_data_key_field=invoice_data_key_field or drawn_key_field,
            nfe_error_code_in=nfe_error_code_in or drawn_code_in,
            seed=seed,
            id_base=id_base if id_base is not None else 2_000_000_000_000_000 + int(clock() * 1000) % 10**9 * 1000,
            clock=clock,
        )
        self.search_max_limit = search_max_limit
        self._token_latency = token_latency_seconds
        self._latency_random = random.Random(None if seed is None else seed + 2)
        self.oauth = OAuthServer(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            user_id=seller_id,
            clock=clock,
        )
        self._fault_seed = fault_seed
        self._fault_random = random.Random(fault_seed)
        self._faults: list[FaultRule] = []
        self.requests: list[RecordedRequest] = []
        self.seller_notifications: list[SellerNotification] = []
        self.fiscal_documents: list[FiscalDocument] = []
        self._api_routes: list[BaseRoute] = [
            self._route("/oauth/token", "POST", self._token, auth=False),
            self._route("/users/me", "GET", self._users_me),
            self._route("/orders/search", "GET", self._search_orders),
            self._route("/orders/{order_id}", "GET", self._get_order),
            self._route("/orders/{order_id}/billing_info", "GET", self._billing_info),
            self._route("/orders/{order_id}/shipments", "GET", self._order_shipments),
            self._route("/packs/{pack_id}", "GET", self._get_pack),
            self._route("/packs/{pack_id}/fiscal_documents", "POST", self._upload_fiscal_documents),
            self._route("/shipments/{shipment_id}", "GET", self._get_shipment),
            self._route("/shipments/{shipment_id}/items", "GET", self._shipment_items),
            self._route("/shipments/{shipment_id}/seller_notifications", "POST", self._seller_notification),
            # Integrators write the path with and without a trailing slash.
            *(
                self._route(f"/shipments/{{shipment_id}}/invoice_data{slash}", method, handler)
                for slash in ("", "/")
                for method, handler in (
                    ("GET", self._get_invoice_data),
                    ("POST", self._import_invoice_data),
                    ("PUT", self._replace_invoice_data),
                )
            ),
            self._route("/post-purchase/v1/claims/{claim_id}", "GET", self._get_claim),
            self._route("/users/{user_id}/invoices/orders/{order_id}", "GET", self._get_invoice),
            self._route("/users/{user_id}/invoices/shipments/{shipment_id}", "GET", self._get_shipment_invoice),
            self._route("/users/{user_id}/invoices/{invoice_id}", "GET", self._get_invoice_by_id),
            self._route(
                "/users/{user_id}/invoices/documents/xml/{invoice_id}/authorized", "GET", self._get_invoice_xml
            ),
            self._route("/missed_feeds", "GET", self._missed_feeds),
        ]
        self.app = Starlette(
            routes=[
                *admin_routes(self),
                *self._api_routes,
                # Unknown paths still go through the gateway: recorded, faultable, 404 in ML's shape.
                Route("/{path:path}", self._gateway(self._not_found, auth=False), methods=_ALL_METHODS),
            ]
        )

    # -- public API: reset, faults, OAuth ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every order, pack, shipment, claim, NF-e, notification, request, fault and token; containers
        are cleared in place so references others hold stay live."""
        self._restart()
        self.oauth.reset()
        self.requests.clear()
        self.seller_notifications.clear()
        self.fiscal_documents.clear()
        self._faults.clear()
        self._fault_random.seed(self._fault_seed)

    def add_fault(self, rule: FaultRule) -> None:
        self._faults.append(rule)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        return list(self._faults)

    def issue_authorization_code(self, code_challenge: str | None = None) -> str:
        """The code the seller's browser brings to the redirect URI after authorizing the app."""
        return self.oauth.issue_code(code_challenge)

    def connect(self) -> JSON:
        """The first connection, done here: a code exchanged for tokens (the token response)."""
        code = self.oauth.issue_code()
        return self.oauth.exchange(
            {
                "grant_type": "authorization_code",
                "client_id": self.oauth.client_id,
                "client_secret": self.oauth.client_secret,
                "code": code,
                "redirect_uri": self.oauth.redirect_uri,
            }
        )

    def revoke_grant(self) -> None:
        """The seller removed the app: every refresh is invalid_grant and every token 401 until a new
        authorization code is exchanged."""
        self.oauth.revoke()

    def expire_access_tokens(self) -> None:
        self.oauth.expire_access_tokens()

    # -- gateway ----------------------------------------------------------------------------------------------

    def _route(self, path: str, method: str, handler: Handler, *, auth: bool = True) -> Route:
        return Route(path, self._gateway(handler, auth=auth), methods=[method])

    def _gateway(self, handler: Handler, *, auth: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if request.url.path.startswith(ADMIN_PREFIX):
                return JSONResponse(error_body(404, "not_found", "Unknown sandbox admin route"), status_code=404)
            raw = await request.body()
            body = _parse_json(raw)
            record = RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={
                    name: ("***" if name in _MASKED_HEADERS else value) for name, value in request.headers.items()
                },
                body=_recorded_body(raw, request.headers.get("content-type", ""), body),
                status=0,
                received_at=asyncio.get_running_loop().time(),
            )
            self.requests.append(record)
            if len(self.requests) > MAX_RECORDED_REQUESTS:
                del self.requests[: len(self.requests) - MAX_RECORDED_REQUESTS]
            fault = self._take_fault(request.method, request.url.path)
            if fault is not None and not fault.after_effect:
                return await self._answer_fault(fault, record)
            response = await self._handle(request, handler, raw, body, auth)
            if fault is not None:
                return await self._answer_fault(fault, record)
            record.status = response.status_code
            return response

        return endpoint

    async def _handle(self, request: Request, handler: Handler, raw: bytes, body: Any, auth: bool) -> Response:
        try:
            if auth:
                try:
                    self.oauth.authenticate(request.headers.get("authorization"))
                except MlApiError as exc:
                    if request.url.path.startswith("/post-purchase/"):
                        raise MlApiError(401) from None  # the claims error table's 401
                    raise exc
            answer = await handler(Call(request, dict(request.path_params), dict(request.query_params), raw, body))
        except MlApiError as exc:
            return JSONResponse(exc.payload, status_code=exc.status)
        except OAuthError as exc:
            return JSONResponse(exc.payload, status_code=exc.status)
        if isinstance(answer, Response):
            return answer
        status, payload = answer
        return JSONResponse(payload, status_code=status)

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

    async def _answer_fault(self, rule: FaultRule, record: RecordedRequest) -> Response:
        record.status = rule.status
        if rule.delay_seconds:
            await asyncio.sleep(rule.delay_seconds)
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
        if rule.body is not None:
            payload: JSON = rule.body
        elif record.path == "/oauth/token" and rule.status == 429:
            # The token endpoint's own 429 (its error table: local_rate_limited).
            payload = oauth_error_body(
                429, "local_rate_limited", "The call does not authorize access, please try again"
            )
        else:
            payload = error_body(rule.status)
        return JSONResponse(payload, status_code=rule.status, headers=headers)

    # -- API endpoints ----------------------------------------------------------------------------------------

    async def _token(self, call: Call) -> Answer:
        form = parse_form(call.raw, call.request.headers.get("content-type", ""))
        latency = self._token_latency
        if latency is None:
            latency = self._latency_random.uniform(0, MAX_TOKEN_LATENCY)
        if latency:
            await asyncio.sleep(latency)
        return 200, self.oauth.exchange(form)

    async def _users_me(self, call: Call) -> Answer:
        site = SITES[self.site_id]
        return 200, {
            "id": self.seller_id,
            "nickname": f"SANDBOXSELLER{self.seller_id % 1000}",
            "site_id": self.site_id,
            "country_id": site.country_id,
            "user_type": "normal",
            "tags": ["normal", "user_info_verified"],
            "status": {"site_status": "active"},
        }

    async def _get_order(self, call: Call) -> Answer:
        order = self._find_order(call.path_params["order_id"])
        return 200, order_json(order, cart=self._in_cart(order))

    async def _billing_info(self, call: Call) -> Answer:
        order = self._find_order(call.path_params["order_id"])
        return 200, billing_info_json(order, version=call.request.headers.get("x-version"))

    async def _order_shipments(self, call: Call) -> Answer:
        order = self._find_order(call.path_params["order_id"])
        shipment = self._shipment_of(order)
        if shipment is None:
            raise not_found(f"Shipment of order {order.id}")
        return 200, shipment_legacy_json(shipment, self.orders, seller_id=self.seller_id)

    async def _search_orders(self, call: Call) -> Answer:
        query = call.query
        seller = query.get("seller")
        if seller is None:
            raise bad_request("The seller parameter is required")
        if seller != str(self.seller_id):
            raise MlApiError(403, "forbidden", "caller.id does not match the seller")
        sort = query.get("sort", "date_asc")
        if sort not in SORTS:
            raise bad_request(f"Invalid sort {sort}: use date_asc or date_desc")
        offset = _int_param(query, "offset", 0)
        limit = min(_int_param(query, "limit", DEFAULT_SEARCH_LIMIT), self.search_max_limit)
        if offset < 0 or limit < 1:
            raise bad_request("offset must be >= 0 and limit >= 1")
        bounds = {
            name: _date_param(query, name)
            for name in (
                "order.date_last_updated.from",
                "order.date_last_updated.to",
                "order.date_created.from",
                "order.date_created.to",
            )
        }
        statuses = set(query["order.status"].split(",")) if "order.status" in query else None
        now = self._clock()
        matching = []
        for order in self.orders.values():
            indexed = [last_updated for visible_at, last_updated in order.index if visible_at <= now]
            if not indexed:
                continue
            last_updated = indexed[-1]
            if statuses is not None and order.status not in statuses:
                continue
            if not _within(last_updated, bounds["order.date_last_updated.from"], bounds["order.date_last_updated.to"]):
                continue
            if not _within(order.date_created, bounds["order.date_created.from"], bounds["order.date_created.to"]):
                continue
            matching.append(order)
        matching.sort(key=lambda o: (o.date_created, o.id), reverse=sort == "date_desc")
        page = [order_json(o, cart=self._in_cart(o)) for o in matching[offset : offset + limit]]
        return 200, search_json(
            page, total=len(matching), offset=offset, limit=limit, sort=sort, seller_id=self.seller_id
        )

    async def _get_pack(self, call: Call) -> Answer:
        pack_id = _id_param(call.path_params["pack_id"], "Pack")
        pack = self.packs.get(pack_id)
        if pack is None:
            raise not_found(f"Pack {pack_id}")
        return 200, pack_json(pack)

    async def _get_shipment(self, call: Call) -> Answer:
        shipment = self._find_shipment(call.path_params["shipment_id"])
        if call.request.headers.get("x-format-new", "").lower() == "true":
            return 200, shipment_json(shipment, self.orders, seller_id=self.seller_id)
        return 200, shipment_legacy_json(shipment, self.orders, seller_id=self.seller_id)

    async def _shipment_items(self, call: Call) -> Answer:
        shipment = self._find_shipment(call.path_params["shipment_id"])
        return 200, shipment_items_json(shipment, self.orders)

    async def _seller_notification(self, call: Call) -> Answer:
        shipment = self._find_shipment(call.path_params["shipment_id"])
        if call.body is None:
            raise bad_request("A JSON body is required")
        stored = apply_tracking(shipment, call.body)
        now = self._now()
        shipment.last_updated = now
        self.seller_notifications.append(SellerNotification(shipment.id, stored, now))
        self._notify("shipments", f"/shipments/{shipment.id}")
        return 200, {"status": "OK"}

    async def _get_invoice_data(self, call: Call) -> Answer:
        shipment = self._nfe_shipment(call)
        nfe = self.imported_nfe.get(shipment.id)
        if nfe is None:
            raise nfe_refusal("not_found_shipment_invoice", in_cause=self.nfe_error_code_in == "cause")
        return 200, invoice_data_json(nfe, key_field=self.invoice_data_key_field)

    async def _import_invoice_data(self, call: Call) -> Answer:
        return self._take_nfe(call, replace=False)

    async def _replace_invoice_data(self, call: Call) -> Answer:
        return self._take_nfe(call, replace=True)

    def _take_nfe(self, call: Call, *, replace: bool) -> Answer:
        shipment = self._nfe_shipment(call)
        content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in NFE_CONTENT_TYPES:
            raise nfe_refusal("unsupported_media_type", in_cause=self.nfe_error_code_in == "cause")
        nfe = self.import_nfe(shipment.id, call.raw, content_type=content_type, replace=replace)
        return 200, invoice_data_json(nfe, key_field=self.invoice_data_key_field)

    def _nfe_shipment(self, call: Call) -> Shipment:
        """The shipment of an invoice_data call, which must name Brazil's site (`siteId=MLB`)."""
        if call.query.get("siteId") != "MLB":
            detail = "the siteId=MLB parameter is required"
            raise nfe_refusal(
                "invalid_operation_for_site_id", in_cause=self.nfe_error_code_in == "cause", detail=detail
            )
        return self._find_shipment(call.path_params["shipment_id"])

    async def _upload_fiscal_documents(self, call: Call) -> Answer:
        pack_id = _id_param(call.path_params["pack_id"], "Pack")
        pack = self.packs.get(pack_id)
        order = self.orders.get(pack_id)
        # An order without pack_id uses its own id in the packs path (upload-invoices guide).
        if pack is None and (order is None or order.pack_id is not None):
            raise not_found(f"Pack {pack_id}")
        first = self.orders[pack.order_ids[0]] if pack is not None else order
        assert first is not None
        shipment = self._shipment_of(first)
        if any(document.pack_id == pack_id for document in self.fiscal_documents):
            raise MlApiError(409, "conflict", f"Pack {pack_id} already has a fiscal document")
        parts = parse_multipart(call.raw, call.request.headers.get("content-type", ""))
        documents = fiscal_documents(
            parts,
            pack_id=pack_id,
            site_id=first.site_id,
            logistic_type=shipment.logistic_type if shipment is not None else None,
            seller_id=self.seller_id,
            now=self._now(),
        )
        self.fiscal_documents.extend(documents)
        return 200, {"ids": [document.id for document in documents]}

    async def _get_claim(self, call: Call) -> Answer:
        claim_id = _id_param(call.path_params["claim_id"], "Claim", error="business_logic_error")
        claim = self.claims.get(claim_id)
        if claim is None:
            raise MlApiError(404)  # the claims error table's 404
        return 200, claim_json(claim)

    async def _get_invoice(self, call: Call) -> Answer:
        self._check_user(call.path_params["user_id"])
        order = self._find_order(call.path_params["order_id"])
        invoice = self._invoice_for(order.id)
        if invoice is None:
            raise not_found(f"Invoice of order {order.id}")
        return 200, invoice_json(invoice, user_id=self.seller_id)

    async def _get_shipment_invoice(self, call: Call) -> Answer:
        self._check_user(call.path_params["user_id"])
        shipment = self._find_shipment(call.path_params["shipment_id"])
        invoice = next((i for order_id in shipment.order_ids if (i := self._invoice_for(order_id))), None)
        if invoice is None:
            raise not_found(f"Invoice of shipment {shipment.id}")
        return 200, invoice_json(invoice, user_id=self.seller_id)

    async def _get_invoice_by_id(self, call: Call) -> Answer:
        self._check_user(call.path_params["user_id"])
        return 200, invoice_json(self._find_invoice(call.path_params["invoice_id"]), user_id=self.seller_id)

    async def _get_invoice_xml(self, call: Call) -> Answer:
        self._check_user(call.path_params["user_id"])
        return Response(self._find_invoice(call.path_params["invoice_id"]).xml, media_type="application/xml")

    async def _missed_feeds(self, call: Call) -> Answer:
        return 200, self._dispatcher.missed_feeds(call.query, self.application_id)

    async def _not_found(self, call: Call) -> Answer:
        for route in self._api_routes:
            match, _ = route.matches(call.request.scope)
            if match is Match.PARTIAL:  # the path exists, the method does not
                raise MlApiError(405, "method_not_allowed", f"Method {call.request.method} not allowed")
        raise MlApiError(404, "not_found", f"Resource {call.request.url.path} not found")

    # -- lookups ----------------------------------------------------------------------------------------------

    def _find_order(self, raw_id: str) -> Order:
        order_id = _id_param(raw_id, "Order")
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(f"Order {order_id}")
        return order

    def _find_shipment(self, raw_id: str) -> Shipment:
        shipment_id = _id_param(raw_id, "Shipment")
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise not_found(f"Shipment {shipment_id}")
        return shipment

    def _find_invoice(self, raw_id: str) -> Invoice:
        invoice_id = _id_param(raw_id, "Invoice")
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise not_found(f"Invoice {invoice_id}")
        return invoice

    def _check_user(self, raw_id: str) -> None:
        if raw_id != str(self.seller_id):
            raise MlApiError(403, "forbidden", "caller.id does not match the user")


def _id_param(raw: str, what: str, *, error: str = "not_found") -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise MlApiError(404, error, f"{what} {raw} not found")
    return int(raw)


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 9:
        raise bad_request(f"The {name} parameter must be an integer")
    return int(raw)


def _date_param(query: dict[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_request(
            f"The {name} parameter must be an ISO 8601 date with an offset, like 2025-03-01T00:00:00.000-04:00"
        )
    return moment


def _within(moment: datetime, low: datetime | None, high: datetime | None) -> bool:
    return (low is None or moment >= low) and (high is None or moment <= high)


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _recorded_body(raw: bytes, content_type: str, parsed: Any) -> Any:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            form = parse_form(raw, content_type)
        except OAuthError:
            return None
        return {name: ("***" if name in _MASKED_FORM_FIELDS else value) for name, value in form.items()}
    if media_type == "multipart/form-data":
        return {"multipart_bytes": len(raw)}
    return parsed
