"""Embedded mode's stand-ins: the VTEX, reference-marketplace and Mercado Libre sandboxes.

They are a distribution of their own (`sandboxes/`), installed by `make install` for development, demos
and tests and left out of the production image. The connector imports them only here and only when
embedded mode (or a sandbox command) asks for them, so a production install runs without them and says in
one sentence what to do when they are asked for.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.connections import connection_configs
from connector.http_server import HttpServer
from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sandboxes.marketplace import MarketplaceSandbox
    from sandboxes.mercadolibre import MercadoLibreSandbox
    from sandboxes.vtex import VtexSandbox

# Where `make run`'s sandboxes listen, and `connector sandboxes` by default.
VTEX_SANDBOX_PORT = 8101
MARKETPLACE_SANDBOX_PORT = 8102
INSTALL_HINT = (
    "install them (`make install`, or pip install -e ./sandboxes) or configure a real VTEX account "
    "(VTEX_ACCOUNT_NAME, VTEX_APP_KEY, VTEX_APP_TOKEN)"
)


def sandboxes_installed() -> bool:
    return importlib.util.find_spec("sandboxes") is not None


def require_sandboxes(what: str) -> None:
    """Refuse, in one sentence for the operator, when this install has no sandboxes."""
    if not sandboxes_installed():
        raise SettingsError(f"{what} needs the VTEX and marketplace sandboxes, which are not installed: {INSTALL_HINT}")


@dataclass
class Sandboxes:
    vtex: VtexSandbox
    vtex_server: HttpServer
    # One reference marketplace per connection that names no marketplace URL of its own.
    marketplaces: dict[str, MarketplaceSandbox] = field(default_factory=dict)
    marketplace_servers: dict[str, HttpServer] = field(default_factory=dict)
    # One Mercado Libre per `"marketplace": "mercadolibre"` connection without a URL (its API and OAuth).
    mercadolibre: dict[str, MercadoLibreSandbox] = field(default_factory=dict)
    mercadolibre_servers: dict[str, HttpServer] = field(default_factory=dict)

    def marketplace_urls(self) -> dict[str, str]:
        """Each sandboxed connection's marketplace base URL."""
        servers = {**self.marketplace_servers, **self.mercadolibre_servers}
        return {name: server.url for name, server in servers.items()}

    @property
    def marketplace(self) -> MarketplaceSandbox:
        """The first connection's marketplace (the only one with the default single connection)."""
        return next(iter(self.marketplaces.values()))

    @property
    def marketplace_server(self) -> HttpServer:
        return next(iter(self.marketplace_servers.values()))

    async def stop(self) -> None:
        for server in (*self.marketplace_servers.values(), *self.mercadolibre_servers.values()):
            await server.stop()
        await self.vtex_server.stop()


async def start_sandboxes(settings: Settings, *, ports: tuple[int, int], vtex_order_id_suffix: str | None) -> Sandboxes:
    """The VTEX sandbox and one marketplace sandbox per connection without a marketplace URL, listening on
    the intake's host (`ports` 0: any free port)."""
    require_sandboxes("embedded mode (no VTEX credentials configured)")
    from sandboxes.marketplace import MarketplaceSandbox
    from sandboxes.mercadolibre import MercadoLibreSandbox
    from sandboxes.vtex import VtexSandbox

    host = settings.intake_host
    vtex = VtexSandbox(order_id_suffix=vtex_order_id_suffix)
    sandboxes = Sandboxes(vtex, HttpServer(vtex.app, host=host, port=ports[0], name="vtex-sandbox"))
    await sandboxes.vtex_server.start()
    port = ports[1]
    for config in connection_configs(settings):
        if config.marketplace_base_url is not None:
            continue
        if config.marketplace == "mercadolibre":
            site = config.mercadolibre_site or "MLB"
            app_id, secret = config.mercadolibre_app_id, config.mercadolibre_client_secret
            # The configured application and seller, else the sandbox's own.
            account: dict[str, Any] = {"client_id": app_id, "client_secret": secret} if app_id and secret else {}
            if config.mercadolibre_seller_id:
                account["seller_id"] = int(config.mercadolibre_seller_id)
            meli = MercadoLibreSandbox(site_id=site, **account)
            server = HttpServer(meli.app, host=host, port=port, name=f"mercadolibre-sandbox-{config.name}")
            await server.start()
            sandboxes.mercadolibre[config.name] = meli
            sandboxes.mercadolibre_servers[config.name] = server
            port = port + 1 if port else 0
            continue
        marketplace = MarketplaceSandbox()
        server = HttpServer(marketplace.app, host=host, port=port, name=f"marketplace-sandbox-{config.name}")
        await server.start()
        sandboxes.marketplaces[config.name] = marketplace
        sandboxes.marketplace_servers[config.name] = server
        port = port + 1 if port else 0
    return sandboxes
