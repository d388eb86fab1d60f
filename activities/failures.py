"""Client errors turned into Temporal failures: the handling decided by the error table travels with it.

`type` is the `Handling` (VtexTransient, VtexReprocess, ...) or the marketplace's kind; the workflow
turns it into what the order does in one place (connector/failures.py);
`details[0]` carries the VTEX status, code, message and the seller's action.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from connector.failures import MARKETPLACE_REJECTED, MARKETPLACE_UNAVAILABLE
from connector.marketplaces.base import MarketplaceError
from connector.vtex.error_table import Handling, classify, seller_action
from connector.vtex.errors import VtexError


def error_code(exc: VtexError) -> str:
    """The code operators search by (ErrorCode search attribute): VTEX's, else the HTTP status."""
    if exc.code:
        return exc.code
    return f"HTTP{exc.status}" if exc.status is not None else "TIMEOUT"


def vtex_failure(exc: VtexError, *, sales_channel: str) -> ApplicationError:
    handling = classify(exc.status, exc.code)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(
        str(exc),
        {
            "status": exc.status,
            "code": error_code(exc),
            "message": exc.message,
            "action": seller_action(exc.status, exc.code, exc.message, sales_channel=sales_channel),
        },
        type=handling.value,
        non_retryable=handling is not Handling.TRANSIENT,
        next_retry_delay=delay,
    )


def marketplace_failure(exc: MarketplaceError) -> ApplicationError:
    kind = MARKETPLACE_UNAVAILABLE if exc.transient else MARKETPLACE_REJECTED
    action = (
        "The marketplace API is unavailable right now; the connector tries again in a few minutes."
        if exc.transient
        else f"The marketplace refused to give the order: {exc}"
    )
    return ApplicationError(
        str(exc),
        {"status": exc.status, "code": "MARKETPLACE", "message": str(exc), "action": action},
        type=kind,
        non_retryable=not exc.transient,
    )
