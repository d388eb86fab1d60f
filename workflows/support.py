"""Pieces the order workflows share that are not the state machine: search-attribute keys, small pure rules."""

from __future__ import annotations

import math

from temporalio.common import SearchAttributeKey

VTEX_ORDER_ID = SearchAttributeKey.for_keyword("VtexOrderId")
MARKETPLACE_ORDER_ID = SearchAttributeKey.for_keyword("MarketplaceOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CONNECTION = SearchAttributeKey.for_keyword("Connection")
ERROR_CODE = SearchAttributeKey.for_keyword("ErrorCode")
SEARCH_ATTRIBUTES = (VTEX_ORDER_ID, MARKETPLACE_ORDER_ID, ORDER_STATUS, CONNECTION, ERROR_CODE)

# Timeline entries kept in the state (the order log in the store keeps everything).
TIMELINE_LIMIT = 200


def lock_ttl(payment_window_seconds: float) -> str:
    """VTEX's stock reservation (`lockTTL`, in days) long enough to cover the payment window."""
    return f"{max(1, math.ceil(payment_window_seconds / 86400))}d"
