"""Client errors turned into Temporal failures: the retry decision travels with the error."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from connector.marketplaces.base import MarketplaceError
from connector.vtex.errors import VtexError


def vtex_failure(exc: VtexError) -> ApplicationError:
    """`type` is `Vtex.<code>` (e.g. Vtex.FMT007) or `Vtex.HTTP<status>` / `Vtex.NoResponse`."""
    if exc.code:
        kind = f"Vtex.{exc.code}"
    elif exc.status is not None:
        kind = f"Vtex.HTTP{exc.status}"
    else:
        kind = "Vtex.NoResponse"
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(
        str(exc),
        {"status": exc.status, "code": exc.code, "message": exc.message},
        type=kind,
        non_retryable=not exc.transient,
        next_retry_delay=delay,
    )


def marketplace_failure(exc: MarketplaceError) -> ApplicationError:
    kind = "Marketplace.Unavailable" if exc.transient else "Marketplace.Rejected"
    return ApplicationError(str(exc), {"status": exc.status}, type=kind, non_retryable=not exc.transient)
