"""The Mercado Libre sandbox's admin API under `/_sandbox/`: the buyer's and Mercado Libre's side of a sale
(create orders and packs, pay, cancel, claims, pack splits and id changes, shipment moves, NF-e), the grant
(authorization codes, revocation, expiry), faults, and what the connector sent and was sent.

Every route answers JSON; a refusal is Mercado Libre's error shape (400 for a bad body, 404 for an unknown
id). Orders come back as GET /orders/{id} would show them after payment (the buyer's data revealed).

| route | body | does |
|---|---|---|
| POST /_sandbox/orders | {site_id, status, logistic_type, shipping_cost, items, notify} (1) | create_order |
| POST /_sandbox/packs | same, with `count` or `orders: [{items}]` | create_pack |
| GET /_sandbox/orders, GET /_sandbox/orders/{id} | | orders, revealed, with pack and shipment |
| POST /_sandbox/orders/{id}/pay | {payments, notify} | pay |
| POST /_sandbox/packs/{id}/pay | | pay_pack |
| POST /_sandbox/orders/{id}/cancel | {requested_by, notify} | cancel |
| POST /_sandbox/orders/{id}/status | {status, notify} | set_order_status |
| POST /_sandbox/orders/{id}/refund | {amount, notify} | refund |
| POST /_sandbox/orders/{id}/notify | {times} | notify_order |
| POST /_sandbox/orders/{id}/claims | {type, stage, reason_id, related_entities, notify} | open_claim |
| POST /_sandbox/claims/{id} | {stage, close_reason, notify} | update_claim |
| POST /_sandbox/orders/{id}/invoice | | issue_invoice |
| POST /_sandbox/packs/{id}/split | {groups: [[order ids]...], notify} | split_pack |
| POST /_sandbox/packs/{id}/change-id | {notify} | change_pack_id |
| POST /_sandbox/shipments/{id}/status | {status, substatus, tracking_number, notify} | set_shipment_status |
| POST /_sandbox/oauth/code | {code_challenge} | issue_authorization_code |
| POST /_sandbox/oauth/connect | | connect (code exchanged: the token response) |
| POST /_sandbox/oauth/revoke, POST /_sandbox/oauth/expire | | revoke_grant, expire_access_tokens |
| GET /_sandbox/oauth | | the grant's counters |
| PUT /_sandbox/callback | {url} | the notifications' callback URL (null: none) |
| POST, GET, DELETE /_sandbox/faults | FaultRule fields | add_fault, faults, clear_faults |
| GET /_sandbox/requests, /notifications, /seller-notifications | | what was seen and sent |
| GET /_sandbox/fiscal-documents, /invoices, /imported-nfe | | likewise (the last: the NF-e each shipment holds) |
| POST /_sandbox/reset | | reset |

(1) items: [{title, unit_price ("49.90"), quantity, seller_sku, variation_id, full_unit_price, item_id}];
without items, one drawn from the shared catalog.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandboxes.mercadolibre_models import (
    JSON,
    ItemSpec,
    MlApiError,
    OAuthError,
    error_body,
    fault_rule_from_json,
    to_decimal,
)
from sandboxes.mercadolibre_views import claim_json, invoice_json, pack_json, shipment_json

if TYPE_CHECKING:
    from sandboxes.mercadolibre import MercadoLibreSandbox

PREFIX = "/_sandbox"
# POSTs to these create something: 201.
_CREATING = ("/orders", "/packs", "/claims", "/faults")
Endpoint = Callable[[Request], Awaitable[Response]]


def admin_routes(sandbox: MercadoLibreSandbox) -> list[BaseRoute]:
    admin = _Admin(sandbox)
    table: list[tuple[str, str, Callable[[Request, JSON], Any]]] = [
        ("/orders", "POST", admin.create_order),
        ("/orders", "GET", admin.list_orders),
        ("/orders/{order_id}", "GET", admin.get_order),
        ("/packs", "POST", admin.create_pack),
        ("/orders/{order_id}/pay", "POST", admin.pay),
        ("/packs/{pack_id}/pay", "POST", admin.pay_pack),
        ("/orders/{order_id}/cancel", "POST", admin.cancel),
        ("/orders/{order_id}/status", "POST", admin.set_status),
        ("/orders/{order_id}/refund", "POST", admin.refund),
        ("/orders/{order_id}/notify", "POST", admin.notify),
        ("/orders/{order_id}/claims", "POST", admin.open_claim),
        ("/claims/{claim_id}", "POST", admin.update_claim),
        ("/orders/{order_id}/invoice", "POST", admin.issue_invoice),
        ("/packs/{pack_id}/split", "POST", admin.split_pack),
        ("/packs/{pack_id}/change-id", "POST", admin.change_pack_id),
        ("/shipments/{shipment_id}/status", "POST", admin.set_shipment_status),
        ("/oauth/code", "POST", admin.issue_code),
        ("/oauth/connect", "POST", admin.connect),
        ("/oauth/revoke", "POST", admin.revoke),
        ("/oauth/expire", "POST", admin.expire),
        ("/oauth", "GET", admin.oauth_state),
        ("/callback", "PUT", admin.set_callback),
        ("/faults", "POST", admin.add_fault),
        ("/faults", "GET", admin.list_faults),
        ("/faults", "DELETE", admin.clear_faults),
        ("/requests", "GET", admin.list_requests),
        ("/notifications", "GET", admin.list_notifications),
        ("/seller-notifications", "GET", admin.list_seller_notifications),
        ("/fiscal-documents", "GET", admin.list_fiscal_documents),
        ("/invoices", "GET", admin.list_invoices),
        ("/imported-nfe", "GET", admin.list_imported_nfe),
        ("/reset", "POST", admin.reset),
    ]
    return [Route(PREFIX + path, _endpoint(handler), methods=[method]) for path, method, handler in table]


def _endpoint(handler: Callable[[Request, JSON], Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        try:
            result = handler(request, body)
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        except (MlApiError, OAuthError) as exc:
            return JSONResponse(exc.payload, status_code=exc.status)
        if result is None:
            return Response(status_code=204)
        created = request.method == "POST" and request.url.path.endswith(_CREATING)
        return JSONResponse(result, status_code=201 if created else 200)

    return endpoint


def _error(status: int, message: str) -> Response:
    return JSONResponse(
        error_body(status, "bad_request" if status == 400 else "not_found", message), status_code=status
    )


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"{what} must be an integer")
    return int(value)


def _path_id(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()):
        raise KeyError(f"no {name.removesuffix('_id')} {raw}")
    return int(raw)


def _optional_str(body: JSON, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _flag(body: JSON, name: str, default: bool = True) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _items(value: object) -> list[ItemSpec] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError("items must be a non-empty list")
    specs = []
    for line in value:
        if not isinstance(line, dict):
            raise ValueError("each item must be an object")
        title = line.get("title")
        if not isinstance(title, str) or not title:
            raise ValueError("each item needs a title")
        variation = line.get("variation_id")
        full = line.get("full_unit_price")
        specs.append(
            ItemSpec(
                title=title,
                unit_price=to_decimal(line.get("unit_price"), "unit_price"),
                quantity=_int(line.get("quantity", 1), "quantity"),
                seller_sku=_optional_str(line, "seller_sku"),
                variation_id=_int(variation, "variation_id") if variation is not None else None,
                full_unit_price=to_decimal(full, "full_unit_price") if full is not None else None,
                item_id=_optional_str(line, "item_id"),
            )
        )
    return specs


def _money_arg(body: JSON, name: str) -> Decimal:
    return to_decimal(body.get(name, "0"), name)


class _Admin:
    def __init__(self, sandbox: MercadoLibreSandbox) -> None:
        self.sandbox = sandbox

    def _order(self, order_id: int) -> JSON:
        order = self.sandbox.order(order_id)
        return self.sandbox.order_json(order.id, reveal=True)

    def _cart_options(self, body: JSON) -> dict[str, Any]:
        logistic_type = body.get("logistic_type", "cross_docking")
        if logistic_type is not None and not isinstance(logistic_type, str):
            raise ValueError("logistic_type must be a string or null")
        status = body.get("status", "paid")
        if not isinstance(status, str):
            raise ValueError("status must be a string")
        return {
            "site_id": _optional_str(body, "site_id"),
            "status": status,
            "logistic_type": logistic_type,
            "shipping_cost": _money_arg(body, "shipping_cost"),
            "notify": _flag(body, "notify"),
        }

    def create_order(self, request: Request, body: JSON) -> JSON:
        order = self.sandbox.create_order(_items(body.get("items")), **self._cart_options(body))
        return self._order(order.id)

    def create_pack(self, request: Request, body: JSON) -> JSON:
        orders = body.get("orders")
        carts: int | list[list[ItemSpec] | None]
        if orders is not None:
            if not isinstance(orders, list) or not orders or not all(isinstance(o, dict) for o in orders):
                raise ValueError("orders must be a non-empty list of objects with items")
            carts = [_items(o.get("items")) for o in orders]
        else:
            carts = _int(body.get("count", 2), "count")
        pack = self.sandbox.create_pack(carts, **self._cart_options(body))
        return {"pack": pack_json(pack), "orders": [self._order(order_id) for order_id in pack.order_ids]}

    def list_orders(self, request: Request, body: JSON) -> list[JSON]:
        return [self._order(order_id) for order_id in self.sandbox.orders]

    def get_order(self, request: Request, body: JSON) -> JSON:
        order = self.sandbox.order(_path_id(request, "order_id"))
        shipment = self.sandbox.shipments.get(order.shipment_id) if order.shipment_id is not None else None
        pack = self.sandbox.packs.get(order.pack_id) if order.pack_id is not None else None
        return {
            "order": self._order(order.id),
            "pack": pack_json(pack) if pack is not None else None,
            "shipment": shipment_json(shipment, self.sandbox.orders, seller_id=self.sandbox.seller_id)
            if shipment is not None
            else None,
        }

    def pay(self, request: Request, body: JSON) -> JSON:
        order = self.sandbox.pay(
            _path_id(request, "order_id"),
            payments=_int(body.get("payments", 1), "payments"),
            notify=_flag(body, "notify"),
        )
        return self._order(order.id)

    def pay_pack(self, request: Request, body: JSON) -> JSON:
        pack = self.sandbox.pay_pack(_path_id(request, "pack_id"), notify=_flag(body, "notify"))
        return pack_json(pack)

    def cancel(self, request: Request, body: JSON) -> JSON:
        requested_by = _optional_str(body, "requested_by") or "buyer"
        order = self.sandbox.cancel(
            _path_id(request, "order_id"), requested_by=requested_by, notify=_flag(body, "notify")
        )
        return self._order(order.id)

    def set_status(self, request: Request, body: JSON) -> JSON:
        status = body.get("status")
        if not isinstance(status, str):
            raise ValueError("status is required")
        order = self.sandbox.set_order_status(_path_id(request, "order_id"), status, notify=_flag(body, "notify"))
        return self._order(order.id)

    def refund(self, request: Request, body: JSON) -> JSON:
        order = self.sandbox.refund(
            _path_id(request, "order_id"), _money_arg(body, "amount"), notify=_flag(body, "notify")
        )
        return self._order(order.id)

    def notify(self, request: Request, body: JSON) -> JSON:
        times = _int(body.get("times", 1), "times")
        if not 1 <= times <= 10:
            raise ValueError("times must be from 1 to 10")
        return {"ids": self.sandbox.notify_order(_path_id(request, "order_id"), times=times)}

    def open_claim(self, request: Request, body: JSON) -> JSON:
        related = body.get("related_entities", [])
        if not isinstance(related, list) or not all(isinstance(r, str) for r in related):
            raise ValueError("related_entities must be a list of strings")
        claim = self.sandbox.open_claim(
            _path_id(request, "order_id"),
            type=_optional_str(body, "type") or "mediations",
            stage=_optional_str(body, "stage") or "claim",
            reason_id=_optional_str(body, "reason_id") or "PDD9549",
            related_entities=related,
            notify=_flag(body, "notify"),
        )
        return claim_json(claim)

    def update_claim(self, request: Request, body: JSON) -> JSON:
        claim = self.sandbox.update_claim(
            _path_id(request, "claim_id"),
            stage=_optional_str(body, "stage"),
            close_reason=_optional_str(body, "close_reason"),
            notify=_flag(body, "notify"),
        )
        return claim_json(claim)

    def issue_invoice(self, request: Request, body: JSON) -> JSON:
        invoice = self.sandbox.issue_invoice(_path_id(request, "order_id"), notify=_flag(body, "notify"))
        return invoice_json(invoice, user_id=self.sandbox.seller_id)

    def split_pack(self, request: Request, body: JSON) -> list[JSON]:
        groups = body.get("groups")
        parsed = None
        if groups is not None:
            if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
                raise ValueError("groups must be a list of lists of order ids")
            parsed = [[_int(order_id, "order id") for order_id in group] for group in groups]
        children = self.sandbox.split_pack(_path_id(request, "pack_id"), parsed, notify=_flag(body, "notify"))
        return [pack_json(child) for child in children]

    def change_pack_id(self, request: Request, body: JSON) -> JSON:
        return pack_json(self.sandbox.change_pack_id(_path_id(request, "pack_id"), notify=_flag(body, "notify")))

    def set_shipment_status(self, request: Request, body: JSON) -> JSON:
        status = body.get("status")
        if not isinstance(status, str):
            raise ValueError("status is required")
        shipment = self.sandbox.set_shipment_status(
            _path_id(request, "shipment_id"),
            status,
            _optional_str(body, "substatus"),
            tracking_number=_optional_str(body, "tracking_number"),
            notify=_flag(body, "notify"),
        )
        return shipment_json(shipment, self.sandbox.orders, seller_id=self.sandbox.seller_id)

    def issue_code(self, request: Request, body: JSON) -> JSON:
        return {"code": self.sandbox.issue_authorization_code(_optional_str(body, "code_challenge"))}

    def connect(self, request: Request, body: JSON) -> JSON:
        return self.sandbox.connect()

    def revoke(self, request: Request, body: JSON) -> None:
        self.sandbox.revoke_grant()

    def expire(self, request: Request, body: JSON) -> None:
        self.sandbox.expire_access_tokens()

    def oauth_state(self, request: Request, body: JSON) -> JSON:
        return self.sandbox.oauth.state()

    def set_callback(self, request: Request, body: JSON) -> JSON:
        self.sandbox.callback_url = _optional_str(body, "url")
        return {"url": self.sandbox.callback_url}

    def add_fault(self, request: Request, body: JSON) -> JSON:
        rule = fault_rule_from_json(body)
        self.sandbox.add_fault(rule)
        return rule.to_json()

    def list_faults(self, request: Request, body: JSON) -> list[JSON]:
        return [rule.to_json() for rule in self.sandbox.faults]

    def clear_faults(self, request: Request, body: JSON) -> None:
        self.sandbox.clear_faults()

    def list_requests(self, request: Request, body: JSON) -> list[JSON]:
        return [recorded.to_json() for recorded in self.sandbox.requests]

    def list_notifications(self, request: Request, body: JSON) -> list[JSON]:
        return [notification.to_json() for notification in self.sandbox.notifications]

    def list_seller_notifications(self, request: Request, body: JSON) -> list[JSON]:
        return [sent.to_json() for sent in self.sandbox.seller_notifications]

    def list_fiscal_documents(self, request: Request, body: JSON) -> list[JSON]:
        return [document.to_json() for document in self.sandbox.fiscal_documents]

    def list_invoices(self, request: Request, body: JSON) -> list[JSON]:
        return [invoice_json(invoice, user_id=self.sandbox.seller_id) for invoice in self.sandbox.invoices.values()]

    def list_imported_nfe(self, request: Request, body: JSON) -> list[JSON]:
        return [nfe.to_json() for nfe in self.sandbox.imported_nfe.values()]

    def reset(self, request: Request, body: JSON) -> None:
        self.sandbox.reset()
