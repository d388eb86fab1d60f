"""What the connector needs from a marketplace, whatever its API looks like."""

from __future__ import annotations

from typing import Protocol

from connector.models import Invoice, MarketplaceNotification, MarketplaceOrder, Tracking


class MarketplaceError(Exception):
    """A marketplace call that failed; `transient` says whether retrying unchanged can help."""

    def __init__(self, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class NotificationRejected(ValueError):
    """A notification body the adapter cannot use; the message says why, for the 4xx answer."""


class MarketplaceAdapter(Protocol):
    def parse_notification(self, body: bytes) -> MarketplaceNotification:
        """Turn a webhook body into a notification, or raise NotificationRejected."""
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
