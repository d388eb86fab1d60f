"""MercadoLibreMarketplace: Mercado Libre behind the connector's MarketplaceAdapter.

A connector order is a Mercado Libre cart (a pack of orders, or one order without a pack), keyed as
carts.py explains; notifications name Mercado Libre orders and claims, and `order_key` turns them into the
cart they concern after the webhook has answered. The rest is in the modules this one wires together.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import httpx
from pydantic import ValidationError

from connector.marketplaces.base import CartStore, MarketplaceError, TokenSource
from connector.marketplaces.mercadolibre.carts import Carts
from connector.marketplaces.mercadolibre.client import DEFAULT_BASE_URL, MercadoLibreClient
from connector.marketplaces.mercadolibre.followup import FollowUp
from connector.marketplaces.mercadolibre.invoices import MarketplaceInvoices
from connector.marketplaces.mercadolibre.mapping import NotIntegrable, cart_order
from connector.marketplaces.mercadolibre.notifications import CLAIM_PREFIX, CLAIMS_TOPIC, IGNORED_PREFIX, parse
from connector.marketplaces.mercadolibre.search import DEFAULT_WINDOW, OrderSearch
from connector.marketplaces.mercadolibre.shapes import unreadable
from connector.marketplaces.mercadolibre.sites import site as site_named
from connector.models import ChangesPage, Invoice, ListingPosition, MarketplaceNotification, MarketplaceOrder, Tracking

log = logging.getLogger(__name__)

Alert = Callable[[str, str], Awaitable[None]]

# Claims that cancel (or ask to cancel) the purchase: the cart's order is woken to read Mercado Libre again.
# `cancel_purchase` is the buyer's cancellation, `cancel_sale` a cancellation of the sale (Mercado Pago's
# claims reference lists both types); the order's status says when it is cancelled.
CANCEL_CLAIMS = frozenset({"cancel_purchase", "cancel_sale"})


def _numeric(value: str | int, what: str) -> str:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{what} must be a Mercado Libre numeric id, got {value!r}")
    return text.lstrip("0") or "0"


class MercadoLibreMarketplace:
    # Mercado Libre counts only a 200 (within 500 ms) as delivered; anything else is retried.
    webhook_ack_status = 200

    def __init__(
        self,
        *,
        connection: str,
        app_id: str | int,
        seller_id: str | int,
        site_id: str,
        tokens: TokenSource,
        carts: CartStore,
        alert: Alert,
        base_url: str = DEFAULT_BASE_URL,
        fulfillment_warehouse_id: str | None = None,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        download_transport: httpx.AsyncBaseTransport | None = None,
        listing_window: int = DEFAULT_WINDOW,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`connection`: the connection's name (the CartStore's namespace). `app_id`: the Mercado Libre app's
        client id (notifications carry it as `application_id`). `seller_id`: the Mercado Libre user id of the
        seller who authorized the app. `site_id`: MLB, MLA, MLM... `tokens`: the connection's OAuth tokens.
        `carts`: the store's carts. `alert(cart_key, message)`: writes an alert line the seller sees (claims
        to answer, an invoice to upload, a sale to cancel by hand). `fulfillment_warehouse_id`: the VTEX
        warehouse of Mercado Libre Full orders."""
        self._connection = connection
        self._app_id = _numeric(app_id, "app_id")
        self._seller_id = _numeric(seller_id, "seller_id")
        self._site = site_named(site_id)
        self._alert = alert
        self._warehouse = fulfillment_warehouse_id
        self._client = MercadoLibreClient(
            tokens=tokens, base_url=base_url, timeout_seconds=timeout_seconds, transport=transport
        )
        self._carts = Carts(client=self._client, store=carts, connection=connection, site=self._site)
        self._search = OrderSearch(self._client, seller_id=self._seller_id, window=listing_window)
        self._invoices = MarketplaceInvoices(
            client=self._client, carts=self._carts, site=self._site, seller_id=self._seller_id
        )
        extra = {"clock": clock} if clock is not None else {}
        self._followup = FollowUp(
            client=self._client,
            carts=self._carts,
            site=self._site,
            alert=alert,
            download_timeout_seconds=timeout_seconds,
            download_transport=download_transport,
            **extra,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._followup.aclose()

    # -- intake -----------------------------------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> MarketplaceNotification:
        """Mercado Libre's notification (unsigned: its application_id and user_id must be this connection's)."""
        return parse(body, app_id=self._app_id, seller_id=self._seller_id)

    async def order_key(self, notification: MarketplaceNotification) -> MarketplaceNotification | None:
        """The cart a notification concerns. Orders (webhook, poll, import): the order's cart. Claims: a
        cancellation claim wakes its order's cart; any other (return, mediation...) becomes an alert line for
        the seller and concerns no order. Topics the connector does not use: None."""
        order_id = notification.marketplace_order_id
        if order_id.startswith(IGNORED_PREFIX):
            log.info("Mercado Libre notification of topic %s (%s) ignored", notification.topic, self._connection)
            return None
        if notification.topic == CLAIMS_TOPIC and order_id.startswith(CLAIM_PREFIX):
            return await self._claim_key(notification, order_id.removeprefix(CLAIM_PREFIX))
        key = await self._carts.key_of(order_id)
        return notification.model_copy(update={"marketplace_order_id": key})

    async def _claim_key(self, notification: MarketplaceNotification, claim_id: str) -> MarketplaceNotification | None:
        claim = await self._carts.claim(claim_id)
        order_id = await self._carts.claim_order(claim)
        key = await self._carts.key_of(order_id)
        kind = claim.type.lower()
        if kind in CANCEL_CLAIMS:
            return notification.model_copy(update={"marketplace_order_id": key, "topic": CLAIMS_TOPIC})
        details = ", ".join(
            part
            for part in (
                f"stage {claim.stage}" if claim.stage else "",
                f"reason {claim.reason_id}" if claim.reason_id else "",
                f"related: {', '.join(claim.related_entities)}" if claim.related_entities else "",
            )
            if part
        )
        if (claim.status or "").lower() == "closed":
            outcome = (
                claim.resolution.reason if claim.resolution is not None and claim.resolution.reason else "no reason"
            )
            message = (
                f"Mercado Libre {kind} claim {claim.id} on sale {order_id} was closed ({outcome}"
                f"{'; ' + details if details else ''})."
            )
        else:
            message = (
                f"Mercado Libre {kind} claim {claim.id} on sale {order_id} is {claim.status or 'open'}"
                f"{' (' + details + ')' if details else ''}: answer it in Mercado Libre."
            )
        await self._alert(key, message)
        return None

    async def changed_orders_page(self, position: ListingPosition, *, limit: int) -> ChangesPage:
        """Mercado Libre ORDER ids changed from `position` on (the hand-off turns each into its cart)."""
        return await self._search.page(position, limit=limit)

    # -- the order ----------------------------------------------------------------------------------------------

    async def fetch_order(self, marketplace_order_id: str) -> MarketplaceOrder:
        """The cart `marketplace_order_id` (its key) as one order."""
        cart = await self._carts.read(marketplace_order_id)
        try:
            return cart_order(cart, self._site, fulfillment_warehouse_id=self._warehouse)
        except NotIntegrable as exc:
            raise MarketplaceError(str(exc), status=None, transient=False) from None
        except ValidationError as exc:  # the connector's model refused a value
            raise MarketplaceError(
                f"the Mercado Libre cart {marketplace_order_id} cannot be mapped: {unreadable(exc)}",
                status=None,
                transient=False,
            ) from None

    async def marketplace_invoices(self, marketplace_order_id: str) -> list[Invoice]:
        """The NF-e Mercado Libre's Faturador issued for the cart `marketplace_order_id` (its key) when Mercado
        Libre fulfills it from its warehouse in Brazil (Full), for VTEX; empty for every other cart and while
        none is issued (invoices.py)."""
        return await self._invoices.issued(marketplace_order_id)

    async def send_invoice(self, marketplace_order_id: str, invoice: Invoice) -> None:
        await self._followup.send_invoice(marketplace_order_id, invoice)

    async def send_tracking(self, marketplace_order_id: str, tracking: Tracking) -> None:
        await self._followup.send_tracking(marketplace_order_id, tracking)

    async def notify_cancellation(self, marketplace_order_id: str, reason: str) -> None:
        await self._followup.notify_cancellation(marketplace_order_id, reason)
