"""The one classification of a failed step: what the order does about it.

Activities raise `ApplicationError`s whose `type` names what went wrong (the VTEX error table's
`Handling`, or the marketplace's); the workflow turns that type into a `Disposition` here and nowhere
else. A type not named below (a store outage, a bug, DNS) is *retried*: nothing unclassified ever asks
the seller to act.
"""

from __future__ import annotations

from enum import StrEnum

from connector.vtex.error_table import Handling

MARKETPLACE_UNAVAILABLE = "MarketplaceUnavailable"
MARKETPLACE_REJECTED = "MarketplaceRejected"
UNKNOWN_CONNECTION = "UnknownConnection"
# The shared VTEX rate had no slot soon enough (connector/vtex/rate_limit.py): a local step moves to the
# rate-limited queue, a queued one tries again later.
VTEX_THROTTLED = "VtexThrottled"
# A local placement or authorization refused to act: the connector handed the order a notification (a
# cancel, a change) after its marketplace read, which the workflow has not seen yet. Not a failure: the
# workflow waits for that signal and reads the order again (workflows/order.py).
UNREAD_NOTIFICATION = "UnreadNotification"


class Disposition(StrEnum):
    # Durable backoff in the reprocess queue, dead-lettered after `max_attempts` (still retried).
    RETRY = "retry"
    # The seller or operator must act; held with an ErrorCode until `reprocess` or a notification.
    PARK = "park"
    # VTEX canceled the order for good (FMT0060): nothing left to integrate.
    CANCELED_IN_VTEX = "canceled-in-vtex"
    # Not a failure: a notification came in after the order was read; read it again, then go on.
    READ_AGAIN = "read-again"


_BY_TYPE: dict[str, Disposition] = {
    Handling.TRANSIENT: Disposition.RETRY,
    Handling.REPROCESS: Disposition.RETRY,
    # Credentials are fixed once for every order: orders wait in the queue rather than each being parked.
    Handling.CREDENTIALS: Disposition.RETRY,
    Handling.PRICE_DIVERGENCE: Disposition.PARK,
    Handling.BUSINESS: Disposition.PARK,
    Handling.ALREADY_CANCELED: Disposition.CANCELED_IN_VTEX,
    MARKETPLACE_UNAVAILABLE: Disposition.RETRY,
    MARKETPLACE_REJECTED: Disposition.PARK,
    # A worker deployed without this connection: the next deployment fixes it, no order must act.
    UNKNOWN_CONNECTION: Disposition.RETRY,
    VTEX_THROTTLED: Disposition.RETRY,
    UNREAD_NOTIFICATION: Disposition.READ_AGAIN,
}


def disposition(failure_type: str | None) -> Disposition:
    return _BY_TYPE.get(failure_type or "", Disposition.RETRY)


# The connector's own order-log codes for failed VTEX calls (README, "Order log codes").
VTEX_FAILURE_LOG_CODES: dict[Handling, str] = {
    Handling.TRANSIENT: "X4",
    Handling.REPROCESS: "X5",
    Handling.PRICE_DIVERGENCE: "X8",
    Handling.CREDENTIALS: "X7",
    Handling.BUSINESS: "X9",
    Handling.ALREADY_CANCELED: "G",
    Handling.ALREADY_EXISTS: "A",
}
