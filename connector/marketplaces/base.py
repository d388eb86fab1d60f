"""What the connector needs from a marketplace, whatever its API looks like."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from connector.models import ChangesPage, Invoice, ListingPosition, MarketplaceNotification, MarketplaceOrder, Tracking


class MarketplaceError(Exception):
    """A marketplace call that failed; `transient` says whether retrying unchanged can help."""

    def __init__(self, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class AuthorizationBroken(MarketplaceError):
    """The marketplace refused the connection's authorization for good (OAuth `invalid_grant`: the refresh
    token was revoked, expired or already used): a person must reconnect the account. For the orders it is
    transient: they wait in the reprocess queue and resume once the account is reconnected."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, transient=True)


class TokenSource(Protocol):
    """A connection's OAuth access tokens, kept and refreshed for every worker at once."""

    async def access_token(self) -> str:
        """A token valid for a while yet (refreshed first, under a lease, when it is not); AuthorizationBroken
        when the marketplace refused the authorization, MarketplaceError when it cannot be reached."""
        ...

    async def rejected(self, token: str) -> None:
        """The marketplace answered 401 to `token` before its expiry: the next access_token refreshes."""
        ...


class CartStore(Protocol):
    """Which connector order (one workflow, one VTEX order) each marketplace order belongs to, for
    marketplaces whose carts hold several orders (Mercado Libre's packs). The first answer stands: a cart
    whose marketplace id changes or that splits keeps its orders in the connector order they started in."""

    async def cart_key(self, connection: str, marketplace_order_id: str) -> str | None:
        """The connector order of a marketplace order, None if not known yet."""
        ...

    async def join_cart(self, connection: str, cart_key: str, marketplace_order_ids: Collection[str]) -> dict[str, str]:
        """Put each order not known yet in `cart_key`'s cart; every given order's cart as stored (an order
        already in a cart stays there)."""
        ...

    async def cart_orders(self, connection: str, cart_key: str) -> list[str]:
        """The marketplace orders in a cart, in the order they joined it."""
        ...


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
    # What the webhook answers once a notification is queued: a marketplace may count only one status as
    # delivered (Mercado Libre: 200, anything else is retried for an hour).
    webhook_ack_status: int

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> MarketplaceNotification:
        """Verify the webhook's signature over the raw body, then turn it into a notification, or raise
        NotificationRejected. `headers` has lower-case names. Pure: no I/O (the webhook must answer fast)."""
        ...

    async def order_key(self, notification: MarketplaceNotification) -> MarketplaceNotification | None:
        """The notification addressed to the connector's order it concerns: `marketplace_order_id` becomes
        that order's id (for Mercado Libre the cart's, a pack of orders placed as one VTEX order). May read
        the marketplace (it runs after the webhook's answer, in the hand-off); MarketplaceError when it cannot
        (the hand-off tries again later). None: nothing for an order to do (the adapter logged why)."""
        ...

    async def changed_orders_page(self, position: ListingPosition, *, limit: int) -> ChangesPage:
        """At most `limit` entries of the orders changed from `position` on, oldest change first, and the
        position after them (`last` when no entry follows). MarketplaceError when the marketplace cannot
        answer or its listing cannot be walked."""
        ...

    async def fetch_order(self, marketplace_order_id: str) -> MarketplaceOrder:
        """The order in the connector's normalized model; MarketplaceError when it cannot."""
        ...

    async def marketplace_invoices(self, marketplace_order_id: str) -> list[Invoice]:
        """Invoices the marketplace itself issued for an order it fulfills from its own warehouse (Mercado
        Libre Full: the NF-e its invoicing service issues), which VTEX must be given; empty while there is
        none yet, and always for a marketplace that issues none. MarketplaceError when it cannot say."""
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
