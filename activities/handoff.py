"""What the poller's and the import's activities share: the connections, and handing an order off."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import marketplace_failure
from connector.connections import Connection
from connector.failures import UNKNOWN_CONNECTION
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import MarketplaceNotification
from connector.quarantine import quarantine
from connector.starter import Handoff, hand_off_order
from connector.store.base import OrderStore


class HandOffActivities:
    def __init__(
        self,
        connections: Mapping[str, Connection],
        adapters: Mapping[str, MarketplaceAdapter],
        *,
        task_queue: str,
        logbook: Logbook,
        ledger: OrderStore,
    ) -> None:
        self._connections = connections
        self._adapters = adapters
        self._task_queue = task_queue
        self._logbook = logbook
        self._ledger = ledger

    def _connection(self, name: str) -> tuple[Connection, MarketplaceAdapter]:
        connection, adapter = self._connections.get(name), self._adapters.get(name)
        if connection is None or adapter is None:
            raise ApplicationError(
                f"connection {name!r} is not configured on this worker", type=UNKNOWN_CONNECTION, non_retryable=True
            )
        return connection, adapter

    async def _keyed(
        self, connection: Connection, adapter: MarketplaceAdapter, notification: MarketplaceNotification
    ) -> MarketplaceNotification | None:
        """The notification addressed to its connector order (a cart, for Mercado Libre); None when the
        marketplace will never say which (set aside, visibly, as a bad id is)."""
        try:
            return await adapter.order_key(notification)
        except MarketplaceError as exc:
            if exc.transient:
                raise marketplace_failure(exc) from None
            await quarantine(
                self._logbook,
                connection=connection.name,
                source=notification.source,
                raw_id=notification.marketplace_order_id,
                reason=f"the marketplace cannot tell which order it is: {exc}",
            )
            return None

    async def _hand_off(
        self, connection: Connection, notification: MarketplaceNotification, *, if_new: bool = False
    ) -> Handoff:
        """Hand one order off; a notification that concerns no connector order counts as known."""
        _, adapter = self._connection(connection.name)
        keyed = await self._keyed(connection, adapter, notification)
        if keyed is None:
            return Handoff.ALREADY_KNOWN
        _, outcome = await hand_off_order(
            activity.client(),
            task_queue=self._task_queue,
            connection=connection,
            notification=keyed,
            logbook=self._logbook,
            ledger=self._ledger,
            if_new=if_new,
        )
        return outcome
