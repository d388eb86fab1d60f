"""What the connector needs from a marketplace, whatever its API looks like."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from connector.models import ChangesPage, Invoice, ListingPosition, MarketplaceNotification, MarketplaceOrder, Tracking


class MarketplaceError(Exception):
    """A marketplace call that failed; `transient` says whether retrying unchanged can help."""

    def __init__(self, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class NotificationRejected(ValueError):
    """A notification the adapter refuses; the message says why, for the 4xx answer.

    `status` is 401 for a missing or wrong signature, 400 for a body it cannot use.
    """

    def __init__(self, reason: str, *, status: int = 400, order_id: object = None) -> None:
        super().__init__(reason)
        self.status = status
        # The raw order id when the notification named one the connector cannot take (for the log).
        self.order_id = order_id


class MarketplaceAdapter(Protocol):
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> MarketplaceNotification:
        """Verify the webhook's signature over the raw body, then turn it into a notification, or raise
        NotificationRejected. `headers` has lower-case names. Pure: no I/O (the webhook must answer fast)."""
        ...

    async def changed_orders_page(self, position: ListingPosition, *, limit: int) -> ChangesPage:
        """At most `limit` entries of the orders changed from `position` on, oldest change first, and the
        position after them (`last` when no entry follows). MarketplaceError when the marketplace cannot
        answer or its listing cannot be walked."""
        ...

    async def fetch_order(self, marketplace_order_id: str) -> MarketplaceOrder:
        """The order in the connector's normalized model; MarketplaceError when it cannot."""
        ...

    async def send_invoice(self, marketplace_order_id: str, invoice: Invoice) -> None:
        """Hand an invoice (one of possibly several partial ones) to the marketplace; idempotent per
        invoice number. MarketplaceError when it cannot."""
        ...

    async def send_tracking(self, marketplace_order_id: str, tracking: Tracking) -> None:
        """Hand the tracking of one invoice to the marketplace; idempotent per invoice number."""
        ...

    async def notify_cancellation(self, marketplace_order_id: str, reason: str) -> None:
        """Tell the marketplace the seller canceled the order in VTEX; idempotent."""
        ...

    async def aclose(self) -> None: ...
