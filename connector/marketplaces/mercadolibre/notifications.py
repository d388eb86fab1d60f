"""Mercado Libre's notification body as the webhook receives it. Pure: no I/O, so the webhook answers well
within Mercado Libre's 500 ms.

What Mercado Libre documents (https://developers.mercadolivre.com.br/pt_br/produto-receba-notificacoes,
https://developers.mercadolibre.cl/productos-recibe-notificaciones, 2025-02-20):
- An HTTP POST of `{"_id", "resource", "user_id", "topic", "application_id", "attempts", "sent",
  "received"}` that points at the resource (`/orders/{id}` for orders_v2); claims point at
  `/post-purchase/v1/claims/{id}` (the claims guide; `/v1/claims/{id}` before May 2024, still taken).
- Topics with sub-topics ("Post Purchase" with the `claims` and `claims_actions` filters, the claims guide
  https://developers.mercadolivre.com.br/pt_br/gerenciar-reclamacoes) carry `id` where the general model
  carries `_id`, and an `actions` list.
- Notifications are not signed. What identifies one as this connection's is its `application_id` (the
  app's client id) and its `user_id` (the seller who authorized the app): anything else is refused with
  401. A body the connector cannot use is refused with 400.
- The receiver must answer 200 within 500 ms, else Mercado Libre retries (for about an hour; the attempts
  are not published) and lists it in `GET /missed_feeds` for 2 days. So a 4xx is never a way to say "not
  interested": a topic the app is subscribed to but the connector has no use for (shipments, items,
  payments, questions...) is acknowledged like any other, as a notification whose `order_key` is None
  (`IGNORED_PREFIX` + topic: nothing reaches an order workflow), so Mercado Libre neither retries it for an
  hour nor fills missed_feeds with it.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from pydantic import ValidationError

from connector.marketplaces.base import NotificationRejected
from connector.models import MarketplaceNotification

ORDERS_TOPIC = "orders_v2"
CLAIMS_TOPIC = "claims"
# The older orders topic carries the same resource.
ORDER_TOPICS = frozenset({ORDERS_TOPIC, "orders"})
CLAIM_TOPICS = frozenset({CLAIMS_TOPIC, "claims_actions", "post_purchase"})
CLAIM_PREFIX = "claim-"
IGNORED_PREFIX = "ignored-"

_ORDER_RESOURCE = re.compile(r"/orders/([0-9]{1,30})")
_CLAIM_RESOURCE = re.compile(r"(?:/post-purchase)?/v1/claims/([0-9]{1,30})(?:/[A-Za-z0-9_/-]*)?")
_TOPIC = re.compile(r"[A-Za-z0-9_.-]{1,50}")
_MAX_DELIVERY_ID = 200


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise NotificationRejected("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise NotificationRejected("body must be a JSON object")
    return data


def _number(data: dict[str, Any], name: str) -> str:
    """A numeric id field, as digits; 400 when absent or not a number."""
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return value.strip().lstrip("0") or "0"
    raise NotificationRejected(f"field {name!r} must be a number")


def parse(body: bytes, *, app_id: str, seller_id: str) -> MarketplaceNotification:
    """The notification, or NotificationRejected (401: not this connection's app or seller; 400: a body
    the connector cannot use)."""
    data = _body(body)
    application = _number(data, "application_id")
    if application != app_id:
        raise NotificationRejected(
            f"application_id {application} is not this connection's Mercado Libre app", status=401
        )
    user = _number(data, "user_id")
    if user != seller_id:
        raise NotificationRejected(f"user_id {user} is not this connection's Mercado Libre seller", status=401)
    topic = data.get("topic")
    if not isinstance(topic, str) or _TOPIC.fullmatch(topic) is None:
        raise NotificationRejected("field 'topic' must be a Mercado Libre topic name")
    resource = data.get("resource")
    if not isinstance(resource, str) or not resource.strip():
        raise NotificationRejected("field 'resource' must be a non-empty string")
    resource = resource.strip()
    delivery = data.get("_id", data.get("id"))
    if isinstance(delivery, bool) or (delivery is not None and not isinstance(delivery, str | int)):
        raise NotificationRejected("field '_id' must be a string")
    delivery_id = str(delivery).strip() if delivery is not None else None
    if delivery_id is not None and not 0 < len(delivery_id) <= _MAX_DELIVERY_ID:
        raise NotificationRejected(f"field '_id' must be 1 to {_MAX_DELIVERY_ID} characters")
    if topic in ORDER_TOPICS:
        match = _ORDER_RESOURCE.fullmatch(resource)
        if match is None:
            raise NotificationRejected(
                f"topic {topic}: field 'resource' must be /orders/{{id}}", order_id=resource[:100]
            )
        return _notification(match.group(1), ORDERS_TOPIC, delivery_id)
    claim = _CLAIM_RESOURCE.fullmatch(resource)
    if topic in CLAIM_TOPICS and claim is not None:
        return _notification(CLAIM_PREFIX + claim.group(1), CLAIMS_TOPIC, delivery_id)
    if topic in (CLAIMS_TOPIC, "claims_actions"):
        raise NotificationRejected(f"topic {topic}: field 'resource' must be /post-purchase/v1/claims/{{id}}")
    # Acknowledged, never handed to an order (see the module's docstring).
    return _notification(IGNORED_PREFIX + topic, topic, delivery_id)


def _notification(order_id: str, topic: str, delivery_id: str | None) -> MarketplaceNotification:
    try:
        return MarketplaceNotification(marketplace_order_id=order_id, topic=topic, delivery_id=delivery_id)
    except ValidationError as exc:
        raise NotificationRejected(f"the notification cannot be taken: {exc.errors()[0]['msg']}") from None
