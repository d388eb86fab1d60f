"""What the poller's and the import's activities share: the connections, and handing an order off."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from connector.connections import Connection
from connector.failures import UNKNOWN_CONNECTION
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter
from connector.models import MarketplaceNotification
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

    async def _hand_off(
        self, connection: Connection, notification: MarketplaceNotification, *, if_new: bool = False
    ) -> Handoff:
        _, outcome = await hand_off_order(
            activity.client(),
            task_queue=self._task_queue,
            connection=connection,
            notification=notification,
            logbook=self._logbook,
            ledger=self._ledger,
            if_new=if_new,
        )
        return outcome
