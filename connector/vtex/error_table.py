"""The one table from a VTEX response to what the connector does about it.

Sources: VTEX's deprecated "collect orders" guide (scenarios 1-5), the order-log guide (10 attempts, then
dead letter), the Checkout error-code table and the API response-code guide. The workflow only ever sees
a `Handling`; the code and message travel with it for the seller's message and the log.
"""

from __future__ import annotations

import re
from enum import StrEnum


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
