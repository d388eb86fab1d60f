"""One marketplace adapter per connection, chosen by the connection's `marketplace`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from connector.codec import SecretSealer
from connector.connections import Connection
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter
from connector.marketplaces.mercadolibre.adapter import MercadoLibreMarketplace
from connector.marketplaces.mercadolibre.tokens import MercadoLibreTokens
from connector.marketplaces.reference import ReferenceMarketplace
from connector.settings import SettingsError
from connector.store.base import OrderStore
from connector.store.models import LogStatus

KNOWN = ("reference", "mercadolibre")
# X23 in the order log's table (README): something in the marketplace the seller must handle by hand.
MARKETPLACE_ALERT_CODE = "X23"


def build_adapters(
    connections: Mapping[str, Connection],
    *,
    store: OrderStore,
    logbook: Logbook,
    sealer: Callable[[], SecretSealer],
) -> dict[str, MarketplaceAdapter]:
    """`sealer` gives the key that seals OAuth tokens in the store (asked only by connections that have some)."""
    adapters: dict[str, MarketplaceAdapter] = {}
    for name, connection in connections.items():
        if connection.marketplace == "mercadolibre":
            adapters[name] = mercadolibre(connection, store=store, logbook=logbook, sealer=sealer())
        elif connection.marketplace == "reference" and connection.marketplace_base_url is not None:
            adapters[name] = ReferenceMarketplace(
                base_url=connection.marketplace_base_url,
                webhook_secret=connection.webhook_secret,
                replay_window_seconds=connection.webhook_replay_window_seconds,
            )
        else:
            known = ", ".join(KNOWN)
            raise SettingsError(f"connection {name}: unknown marketplace {connection.marketplace!r} (known: {known})")
    return adapters


def mercadolibre_tokens(
    connection: Connection, *, store: OrderStore, logbook: Logbook, sealer: SecretSealer
) -> MercadoLibreTokens:
    app_id, secret = connection.mercadolibre_app_id, connection.mercadolibre_client_secret
    if not app_id or not secret:
        raise SettingsError(
            f"connection {connection.name}: a Mercado Libre connection needs mercadolibre_app_id and "
            "mercadolibre_client_secret (the application's, from Mercado Libre's developer site)"
        )
    return MercadoLibreTokens(
        store,
        connection=connection.name,
        client_id=app_id,
        client_secret=secret,
        sealer=sealer,
        logbook=logbook,
        auth_base_url=connection.mercadolibre_auth_url,
    )


def mercadolibre(
    connection: Connection, *, store: OrderStore, logbook: Logbook, sealer: SecretSealer
) -> MercadoLibreMarketplace:
    if not connection.mercadolibre_seller_id or not connection.mercadolibre_site:
        raise SettingsError(
            f"connection {connection.name}: a Mercado Libre connection needs mercadolibre_seller_id (the "
            "seller's user id) and mercadolibre_site (MLB, MLA, MLM, ...)"
        )
    assert connection.marketplace_base_url is not None  # build_connections gives Mercado Libre's API by default
    return MercadoLibreMarketplace(
        connection=connection.name,
        app_id=connection.mercadolibre_app_id or "",
        seller_id=connection.mercadolibre_seller_id,
        site_id=connection.mercadolibre_site,
        tokens=mercadolibre_tokens(connection, store=store, logbook=logbook, sealer=sealer),
        carts=store,
        alert=marketplace_alert(logbook, connection.name),
        base_url=connection.marketplace_base_url,
        fulfillment_warehouse_id=connection.fulfillment_warehouse_id,
    )


def marketplace_alert(logbook: Logbook, connection: str) -> Callable[[str, str], Awaitable[None]]:
    """An alert line in the order log about something only the seller can settle in the marketplace."""

    async def alert(order_key: str, message: str) -> None:
        await logbook.record(
            code=MARKETPLACE_ALERT_CODE,
            operation="Marketplace event",
            direction="Marketplace to connector",
            status=LogStatus.ALERT,
            business_message=message,
            connection=connection,
            marketplace_order_id=order_key,
        )

    return alert
