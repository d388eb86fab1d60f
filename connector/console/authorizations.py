"""The banner every console page shows for each Mercado Libre connection whose authorization is broken or was
never connected (issue 17: "authorization broken, reconnect" in the console, beside the X22 line and the
metric).

The state is the store's (connector/marketplaces/mercadolibre/tokens.py `authorization_status`: one row per
connection, nothing opened, no key needed). It is read once per Mercado Libre connection and kept `ttl`
seconds for every page and every seller (pages loaded together share one read; a reconnect shows within
that). A read that fails, or takes longer than `timeout`, shows no banner for that connection and logs a
warning: a page never fails or waits long on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connector.marketplaces.mercadolibre.tokens import authorization_status
from connector.store.base import OrderStore, StoreError

log = logging.getLogger(__name__)

MARKETPLACE = "mercadolibre"
KEPT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 2.0


def reconnect_command(connection: str) -> str:
    """What the seller runs once the app is authorized again (the code Mercado Libre sent to the redirect URI)."""
    return f"connector mercadolibre connect --connection {connection} --code CODE --redirect-uri URL"


@dataclass(frozen=True)
class AuthorizationBanner:
    """A connection the seller must (re)connect: what the layout shows (autoescaped, no token or secret)."""

    connection: str
    state: Literal["broken", "not connected"]
    # Why Mercado Libre refused it (the stored reason: the connector's words and Mercado Libre's description).
    reason: str | None = None
    broken_at: datetime | None = None

    @property
    def since(self) -> str | None:
        return self.broken_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if self.broken_at else None

    @property
    def command(self) -> str:
        return reconnect_command(self.connection)


class AuthorizationBanners:
    """The banners of the console's Mercado Libre connections, read from the store and kept `ttl` seconds."""

    def __init__(
        self,
        store: OrderStore,
        connections: Sequence[str],
        *,
        ttl: float = KEPT_SECONDS,
        timeout: float = READ_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._connections = tuple(connections)
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._kept: tuple[float, list[AuthorizationBanner]] | None = None
        self._reading = asyncio.Lock()

    async def get(self) -> list[AuthorizationBanner]:
        if not self._connections:
            return []
        kept = self._fresh()
        if kept is not None:
            return kept
        async with self._reading:  # pages loaded together wait for one read
            kept = self._fresh()
            if kept is not None:
                return kept
            found = await asyncio.gather(*(self._banner(name) for name in self._connections))
            banners = [banner for banner in found if banner is not None]
            # A failed read is kept too: a store that is down costs one warning per `ttl`, not one per page.
            self._kept = (self._clock() + self._ttl, banners)
            return banners

    def _fresh(self) -> list[AuthorizationBanner] | None:
        if self._kept is not None and self._kept[0] > self._clock():
            return self._kept[1]
        return None

    async def _banner(self, connection: str) -> AuthorizationBanner | None:
        try:
            status = await asyncio.wait_for(authorization_status(self._store, connection), self._timeout)
        except Exception as exc:  # the page renders without this banner
            if isinstance(exc, TimeoutError):
                why = f"no answer within {self._timeout:g} s"
            else:  # a StoreError's message is the operator's (it names no secret); anything else by its type only
                why = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
            log.warning(
                "console: could not read the Mercado Libre authorization of connection %s (%s): its banner is not "
                "shown",
                connection,
                why,
            )
            return None
        if status.state == "connected":
            return None
        return AuthorizationBanner(connection, status.state, reason=status.reason, broken_at=status.broken_at)
