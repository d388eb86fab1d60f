"""The one table from a VTEX response to what the connector does about it.

Sources: VTEX's deprecated "collect orders" guide (scenarios 1-5), the order-log guide (10 attempts, then
dead letter), the Checkout error-code table and the API response-code guide; for the Channel Order API
(New Order Integration), the collect-orders and update-order-status guides' response codes. The workflow
only ever sees a `Handling`; the code and message travel with it for the seller's message and the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol


class Handling(StrEnum):
    # 5xx, 429, timeouts, connection errors: retried by the activity (Retry-After honoured), then queued
    # for reprocessing on a durable backoff.
    TRANSIENT = "VtexTransient"
    # Stock, carrier or pickup point (guide scenarios 2-4): re-check the marketplace, reprocess on backoff.
    REPROCESS = "VtexReprocess"
    # FMT007 (scenario 1): place for manual approval when the connection allows divergence, else park.
    PRICE_DIVERGENCE = "VtexPriceDivergence"
    # FMT009: the order already exists; placing was done before, so it is a success.
    ALREADY_EXISTS = "VtexAlreadyExists"
    # FMT0060: VTEX canceled the order and will not recreate it.
    ALREADY_CANCELED = "VtexAlreadyCanceled"
    # 401/403: nothing is wrong with the order; an operator must fix credentials or roles.
    CREDENTIALS = "VtexCredentials"
    # Any other 4xx: never retried blindly; parked until the seller acts and asks to reprocess.
    BUSINESS = "VtexBusiness"


REPROCESS_CODES = frozenset({"ORD027", "ORD028", "FMT003", "FMT004", "FMT005", "FMT010"})
STOCK_CODES = frozenset({"ORD027", "ORD028", "FMT005"})
CARRIER_CODES = frozenset({"FMT003", "FMT004", "FMT010"})

BY_CODE = {
    "FMT007": Handling.PRICE_DIVERGENCE,
    "FMT009": Handling.ALREADY_EXISTS,
    "FMT0060": Handling.ALREADY_CANCELED,
    **{code: Handling.REPROCESS for code in REPROCESS_CODES},
}


def classify(status: int | None, code: str | None) -> Handling:
    if code in BY_CODE:
        return BY_CODE[code]
    if code is not None and (handling := CHANNEL_ORDER_BY_CODE.get(code)) is not None:
        return handling  # the Channel Order API's code in a synchronous answer (a 400's EOI005)
    if status is None or status == 429 or status >= 500:
        return Handling.TRANSIENT
    if status in (401, 403):
        return Handling.CREDENTIALS
    return Handling.BUSINESS


_PRICES = re.compile(r"Payment total \((?P<paid>-?\d+)\) differs from store desired value \((?P<desired>-?\d+)\)")


def divergent_prices(message: str) -> tuple[int, int] | None:
    """(what the marketplace charged, what VTEX wants) from an FMT007 message, in cents."""
    match = _PRICES.search(message)
    if match is None:
        return None
    return int(match["paid"]), int(match["desired"])


def seller_action(status: int | None, code: str | None, message: str, *, sales_channel: str) -> str:
    """What the seller (or operator) must do, in words, for a failed VTEX call."""
    if code is not None and code in CHANNEL_ORDER_BY_CODE:
        return channel_order_action(code, [], sales_channel=sales_channel, message=message)
    if code in STOCK_CODES:
        return f"VTEX reports an item without stock or unavailable ({code}: {message}); add stock in VTEX."
    if code in CARRIER_CODES:
        return (
            f"VTEX has no carrier or pickup point for an item ({code}: {message}); check the shipping "
            f"policies and pickup points of sales channel {sales_channel}."
        )
    if code == "FMT007":
        prices = divergent_prices(message)
        detail = (
            f"the marketplace charged {_money(prices[0])} and VTEX expects {_money(prices[1])}" if prices else message
        )
        return (
            f"Price divergence: {detail}. Align the prices in VTEX's price table for sales channel "
            f"{sales_channel}, or allow price divergence for this connection "
            "(PRICE_DIVERGENCE_ALLOWANCE_RATE) so VTEX queues such orders for manual approval; "
            "then reprocess."
        )
    if status == 401:
        return "VTEX refused the connector's credentials (401): check VTEX_APP_KEY and VTEX_APP_TOKEN."
    if status == 403:
        return (
            "The VTEX app key lacks a role (403): grant it 'IntegrationProfile - Fulfillment Oms' and "
            "'OMS - Full access' in License Manager."
        )
    where = f"HTTP {status}" if status is not None else "no response"
    return f"VTEX rejected the request ({where}{', ' + code if code else ''}): {message}"


def _money(cents: int) -> str:
    return f"{cents / 100:.2f} ({cents} cents)"


# --- Channel Order API (New Order Integration) ---------------------------------------------------------
#
# Its result codes come in the SOI003 answer, in a 400's body and in the processing-result notification
# (collect-orders guide, "Response Codes"). None: a success, or a state the workflow handles itself.
CHANNEL_ORDER_BY_CODE: dict[str, Handling | None] = {
    "SOI001": None,  # integrated (fields.mainOrderId)
    "SOI002": None,  # approved
    "SOI003": None,  # enqueued: the outcome comes later
    # Unknown error, "the solution would be contacting VTEX for support": retried on the backoff, then
    # dead-lettered with that advice.
    "EOI000": Handling.TRANSIENT,
    "EOI001": Handling.BUSINESS,  # unmapped error, details in errors[]
    "EOI002": Handling.REPROCESS,  # no stock, SLA or pickup point (old guide's scenarios 2-4)
    "EOI003": Handling.PRICE_DIVERGENCE,  # and no Order Authorization rule covers it
    "EOI004": Handling.BUSINESS,  # item not in the catalog, or the store's cart rules
    "EOI005": Handling.BUSINESS,  # a field is invalid
    "EOI006": Handling.TRANSIENT,  # a VTEX internal service failed: "send the request again later"
    "EOI007": Handling.ALREADY_EXISTS,  # duplicated order: placed before, so follow it
    "EOI008": Handling.TRANSIENT,  # approval before the order was integrated: approve again later
    "EOI009": None,  # not approvable in its status (e.g. canceled): the workflow checks the order
    "EOI010": Handling.TRANSIENT,  # VTEX's API timed out
    "EOI011": None,  # waiting for the seller's manual price authorization: the workflow waits
}


def channel_order_handling(code: str) -> Handling | None:
    """What the connector does about a Channel Order API result code; None: nothing to fix (a success, or
    EOI009/EOI011, which the workflow handles).

    A code the table does not know, of any prefix, parks the order (BUSINESS) so a person reads VTEX's
    text: retrying something unknown blindly could repeat a refusal forever, and treating an unknown
    SOI code as a success could lose an order."""
    return CHANNEL_ORDER_BY_CODE.get(code.strip().upper(), Handling.BUSINESS)


class ChannelOrderErrorLike(Protocol):
    """An `errors[]` entry as a model (connector.vtex.responses.ChannelOrderError and the like)."""

    @property
    def source(self) -> str | None: ...

    @property
    def code(self) -> str | None: ...

    @property
    def description(self) -> str | None: ...


# (source, code, description), any part possibly missing.
ErrorDetail = tuple[str | None, str | None, str | None]

_MAX_DETAIL = 300


def channel_order_action(
    code: str,
    errors: Iterable[ErrorDetail | ChannelOrderErrorLike],
    *,
    sales_channel: str,
    message: str | None = None,
    operation_id: str | None = None,
) -> str:
    """What the seller (or operator) must do about a Channel Order API result, naming VTEX's underlying
    errors (`errors[]`: source, code, description). `message`, the contract's own, is shown when there
    are no errors; `operation_id` is what VTEX support asks for."""
    normalized = code.strip().upper()
    entries = [_error_parts(error) for error in errors]
    details = _details(entries) or (message or "").strip()[:_MAX_DETAIL]
    said = f"{normalized}: {details}" if details else normalized
    channel = f"sales channel {sales_channel}"
    support = f"contact VTEX support with operationId {operation_id}" if operation_id else "contact VTEX support"
    if normalized == "SOI001":
        return "VTEX integrated the order (SOI001); nothing to do."
    if normalized == "SOI002":
        return "VTEX approved the order (SOI002); nothing to do."
    if normalized == "SOI003":
        return "VTEX enqueued the order (SOI003); its result comes later. Nothing to do."
    if normalized == "EOI000":
        return f"VTEX failed with an unknown error ({said}); the connector retries, and if it persists {support}."
    if normalized == "EOI001":
        return f"VTEX could not integrate the order, unmapped error ({said}); fix what VTEX names, then reprocess."
    if normalized == "EOI002":
        return (
            f"VTEX has no stock or delivery for the order ({said}): an item is out of stock, inactive, or not "
            f"in the trade policy of {channel}, or the chosen SLA or pickup point is unavailable. Check stock, "
            f"the catalog, and the shipping policies and pickup points of {channel}; the connector retries."
        )
    if normalized == "EOI003":
        prices = _divergent_prices_in(entries, message)
        amounts = (
            f": the marketplace charged {_money(prices[0])} and VTEX expects {_money(prices[1])}" if prices else ""
        )
        return (
            f"Price divergence ({said}){amounts}. Align the prices in VTEX's price table for {channel}, "
            "or allow price divergence for this connection (PRICE_DIVERGENCE_ALLOWANCE_RATE) and set up "
            "VTEX's Order Authorization rules so such orders wait for manual approval; then reprocess."
        )
    if normalized == "EOI004":
        return (
            f"VTEX refused the order's cart ({said}): an item is not in VTEX's catalog, or the order breaks "
            f"the store's cart rules (minimum value or quantity) for {channel}. Fix it in VTEX, then reprocess."
        )
    if normalized == "EOI005":
        return (
            f"VTEX rejected a field of the order ({said}). Correct that field in the marketplace's order "
            "or the store's settings VTEX checks it against, then reprocess."
        )
    if normalized == "EOI006":
        return f"A VTEX service failed ({said}); the connector sends the order again later. Nothing to do."
    if normalized == "EOI007":
        return f"The order already exists in VTEX ({said}); the connector follows that order. Nothing to do."
    if normalized == "EOI008":
        return f"VTEX has not integrated the order yet ({said}); the connector approves it again later."
    if normalized == "EOI009":
        return (
            f"VTEX cannot approve the order in its current status ({said}), e.g. it was canceled; "
            "check the order in VTEX's order management."
        )
    if normalized == "EOI010":
        return f"VTEX's Channel Order API timed out ({said}); the connector sends the request again later."
    if normalized == "EOI011":
        return (
            f"The order waits for the seller's manual authorization of its price divergence in VTEX ({said}): "
            "authorize or cancel it in VTEX's order management; the connector approves it once authorized."
        )
    return f"VTEX answered a code the connector does not know ({said}); check the order in VTEX, or {support}."


def _error_parts(error: ErrorDetail | ChannelOrderErrorLike) -> ErrorDetail:
    if isinstance(error, tuple):
        return error
    return error.source, error.code, error.description


def _details(errors: list[ErrorDetail]) -> str:
    """`errors[]` in words: "Fulfillment FMT005: Item 6 is not available; ..."."""
    parts = []
    for source, code, description in errors:
        label = " ".join(part for part in (source, code) if part)
        text = (description or "").strip()[:_MAX_DETAIL]
        if label or text:
            parts.append(f"{label}: {text}" if label and text else label or text)
    return "; ".join(parts)


def _divergent_prices_in(errors: list[ErrorDetail], message: str | None) -> tuple[int, int] | None:
    for text in [*(description or "" for _, _, description in errors), message or ""]:
        prices = divergent_prices(text)
        if prices is not None:
            return prices
    return None
