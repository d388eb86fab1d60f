"""Pieces of the order workflow that are not the state machine: keys, setbacks, small pure rules."""

from __future__ import annotations

import math

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from connector.vtex.error_table import Handling

VTEX_ORDER_ID = SearchAttributeKey.for_keyword("VtexOrderId")
MARKETPLACE_ORDER_ID = SearchAttributeKey.for_keyword("MarketplaceOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CONNECTION = SearchAttributeKey.for_keyword("Connection")
ERROR_CODE = SearchAttributeKey.for_keyword("ErrorCode")
SEARCH_ATTRIBUTES = (VTEX_ORDER_ID, MARKETPLACE_ORDER_ID, ORDER_STATUS, CONNECTION, ERROR_CODE)

# VTEX status of an order placed with isCreatedAsync until the seller approves the price.
MANUAL_APPROVAL = "waiting-for-manual-authorization"

# Failures worth trying again later without anyone acting (the guide's reprocess queue).
RETRY_LATER = frozenset(
    {Handling.TRANSIENT.value, Handling.REPROCESS.value, Handling.CREDENTIALS.value, "MarketplaceUnavailable"}
)

# Activities that call VTEX: they run on the rate-limited VTEX task queue when one is configured.
VTEX_ACTIVITIES = frozenset(
    {"validate_order", "place_order", "authorize_dispatch", "get_vtex_order_status", "cancel_vtex_order"}
)

# Timeline entries kept in the state (the order log in the store keeps everything).
TIMELINE_LIMIT = 200


class Setback(Exception):
    """This attempt cannot go on. `retry`: the reprocess queue takes it; otherwise the seller must act."""

    def __init__(self, *, step: str, retry: bool, code: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.retry = retry
        self.code = code
        self.reason = reason


class CanceledInVtex(Exception):
    """VTEX canceled the order (FMT0060, or the seller refused the price): nothing left to integrate."""


def lock_ttl(payment_window_seconds: float) -> str:
    """VTEX's stock reservation (`lockTTL`, in days) long enough to cover the payment window."""
    return f"{max(1, math.ceil(payment_window_seconds / 86400))}d"
