"""OMS List orders (`GET /api/oms/pvt/orders`, Orders API `ListOrders`) for sandbox orders.

The spec: the list holds only orders already indexed ("approximately four minutes" after they change;
the sandbox's lag is a constructor option), at most 30 pages of up to 100 orders (15 by default), and
no `items` since 2018. Supported query parameters, named as in the spec: `q`, `f_affiliateId`,
`f_status`, `orderBy`, `page` and `per_page`; the others are accepted and ignored.

`q` is a full-text search over the order id, client email, document and name. The sandbox matches
whole words: the order id split at `-` (so the marketplace order id alone, or `{affiliateId}-
{marketplaceOrderId}`, finds `{affiliateId}-{marketplaceOrderId}-{NN}`), the client's first and last
name, the email or the document, case-insensitively.

Invented by the sandbox (the spec names the limits, not what breaking them answers): a `page`
outside 1..30, a `per_page` outside 1..100, a non-integer value for either, or an `orderBy` the spec
does not list answers 400 with code null.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandboxes.vtex_models import JSON, SandboxOrder, VtexApiError, iso
from sandboxes.vtex_oms import STATUS_DESCRIPTIONS

MAX_PAGES = 30
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 15
_ORDER_FIELDS = ("creationDate", "orderId", "items", "totalValue", "origin")
_ORIGINS = ("Fulfillment", "Marketplace")
# Sandbox orders come from an external marketplace through the Fulfillment API.
ORIGIN = "Fulfillment"
CURRENCY = "BRL"


def list_orders(
    orders: Iterable[SandboxOrder],
    query: Mapping[str, str],
    *,
    now: float,
    value_of: Callable[[SandboxOrder], int],
) -> JSON:
    """The `ListOrders` answer for the orders indexed by `now` (sandbox clock) that match `query`."""
    page = _int_param(query, "page", 1, MAX_PAGES)
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    key, descending = _order_by(query.get("orderBy"))
    indexed = [order for order in orders if order.list_indexed_at <= now and _matches(order, query)]
    entries = [_entry(order, value_of(order)) for order in indexed]
    entries.sort(key=lambda entry: entry[key], reverse=descending)
    start = (page - 1) * per_page
    return {
        "list": entries[start : start + per_page],
        "facets": [],
        "paging": {
            "total": len(entries),
            "pages": math.ceil(len(entries) / per_page),
            "currentPage": page,
            "perPage": per_page,
        },
        "stats": {
            "stats": {
                "totalValue": _stats(entries, "totalValue"),
                "totalItems": _stats(entries, "totalItems"),
            }
        },
    }


def _int_param(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise VtexApiError(400, None, f"{name} must be an integer from 1 to {maximum}")
    return int(raw)


def _order_by(raw: str | None) -> tuple[str, bool]:
    """`orderBy={OrderField},{OrderType}`; the spec gives no default, VTEX's example lists newest first."""
    if not raw:
        return "creationDate", True
    field, _, direction = raw.partition(",")
    if field not in _ORDER_FIELDS or direction not in ("asc", "desc"):
        raise VtexApiError(400, None, f"Invalid orderBy {raw!r}: use {{OrderField}},{{asc|desc}}")
    return ("totalItems" if field == "items" else field), direction == "desc"


def _values(query: Mapping[str, str], name: str) -> set[str] | None:
    raw = query.get(name)
    if not raw:
        return None
    return {value.strip() for value in raw.split(",") if value.strip()}


def _matches(order: SandboxOrder, query: Mapping[str, str]) -> bool:
    affiliates = _values(query, "f_affiliateId")
    if affiliates is not None and order.affiliate_id not in affiliates:
        return False
    statuses = _values(query, "f_status")
    if statuses is not None and order.status not in statuses:
        return False
    text = (query.get("q") or "").strip().lower()
    return not text or _full_text_match(order, text)


def _full_text_match(order: SandboxOrder, text: str) -> bool:
    profile: JSON = order.body["clientProfileData"]
    if text in (str(profile.get("email", "")).lower(), str(profile.get("document", "")).lower()):
        return True
    words = text.replace("-", " ").split()
    id_words = order.order_id.lower().split("-")
    names = f"{profile.get('firstName', '')} {profile.get('lastName', '')}".lower().split()
    return _contains_run(id_words, words) or _contains_run(names, words)


def _contains_run(haystack: list[str], words: list[str]) -> bool:
    """Whether `words` appear one after another in `haystack`."""
    if not words:
        return False
    return any(haystack[i : i + len(words)] == words for i in range(len(haystack) - len(words) + 1))


def _entry(order: SandboxOrder, value: int) -> JSON:
    """One `List` element: a summary of the order, as the index holds it."""
    profile: JSON = order.body["clientProfileData"]
    lines: list[JSON] = order.body["items"]
    return {
        "orderId": order.order_id,
        "creationDate": iso(order.creation_date),
        "clientName": f"{profile['firstName']} {profile['lastName']}",
        "items": None,
        "totalValue": value,
        # The marketplace took the payment: a fulfillment order carries no payment method.
        "paymentNames": "",
        "status": order.status,
        "statusDescription": STATUS_DESCRIPTIONS.get(order.status, order.status),
        "marketPlaceOrderId": order.marketplace_order_id,
        "sequence": order.sequence,
        "salesChannel": str(order.sales_channel),
        "affiliateId": order.affiliate_id,
        "origin": ORIGIN,
        "workflowInErrorState": False,
        "workflowInRetry": False,
        "lastMessageUnread": None,
        "ShippingEstimatedDate": None,
        "ShippingEstimatedDateMax": None,
        "ShippingEstimatedDateMin": None,
        "orderIsComplete": True,
        "listId": None,
        "listType": None,
        "authorizedDate": iso(order.authorized_date) if order.authorized_date else None,
        "callCenterOperatorName": None,
        "totalItems": sum(int(line["quantity"]) for line in lines),
        "currencyCode": CURRENCY,
    }


def _stats(entries: list[JSON], name: str) -> JSON:
    """The spec's statistics block for one field, faceted by origin and currency."""
    values = [int(entry[name]) for entry in entries]
    by_origin = {origin: [int(e[name]) for e in entries if e["origin"] == origin] for origin in _ORIGINS}
    return {
        **_summary(values),
        "Facets": {
            "origin": {origin: {**_summary(by_origin[origin]), "Facets": None} for origin in _ORIGINS},
            "currencyCode": {CURRENCY: {**_summary(values), "Facets": None}},
        },
    }


def _summary(values: list[int]) -> dict[str, Any]:
    count = len(values)
    total = sum(values)
    squares = sum(value * value for value in values)
    mean = total / count if count else 0.0
    # The spec's example is the sample standard deviation.
    variance = (squares - count * mean * mean) / (count - 1) if count > 1 else 0.0
    return {
        "Count": count,
        "Max": max(values, default=0),
        "Mean": _number(mean),
        "Min": min(values, default=0),
        "Missing": 0,
        "StdDev": _number(math.sqrt(max(variance, 0.0))),
        "Sum": total,
        "SumOfSquares": squares,
    }


def _number(value: float) -> float | int:
    # Whole values are written without a fraction, as in the spec's examples (whose schema even types
    # the Fulfillment facet's totalItems Mean and StdDev as integers).
    return int(value) if value.is_integer() else value
