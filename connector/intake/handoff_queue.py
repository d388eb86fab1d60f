"""The intake's hand-off queue: a webhook is answered once its notification is queued in the store, and
this pump hands it to the order's workflow (signal-with-start) right after.

Why: answering only once Temporal accepted the signal-with-start made the acknowledgement as slow as the
busiest Temporal server (seconds under a burst on a shared machine, past a marketplace's 500 ms). The
queue is the store, so an accepted notification survives the intake's death; a Temporal outage keeps it
queued and retried (with backoff, logged) instead of refused. Each entry is claimed with a lease: an
intake that dies holding it leaves it to the next claim, so the worst case is a notification handed off
twice, which the workflow takes as one (notifications are idempotent, the workflow id is the order's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from pydantic import ValidationError
from temporalio.client import Client

from connector.connections import Connection
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.metrics import HANDOFF_QUEUE
from connector.models import MarketplaceNotification
from connector.quarantine import quarantine
from connector.starter import hand_off_order
from connector.store.base import OrderStore
from connector.store.models import QueuedHandoff

log = logging.getLogger(__name__)

BATCH = 100
LEASE_SECONDS = 60.0
IDLE_POLL_SECONDS = 1.0  # entries queued by another intake process, or due again after a failure
MAX_RETRY_DELAY_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0


class HandOffQueue:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        connections: Mapping[str, Connection],
        adapters: Mapping[str, MarketplaceAdapter],
        store: OrderStore,
        logbook: Logbook,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._connections = connections
        self._adapters = adapters
        self._store = store
        self._logbook = logbook
        self._queued = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False

    async def put(self, connection: str, notification: MarketplaceNotification) -> None:
        """Durably queued when this returns."""
        await self._store.queue_handoff(connection, notification.model_dump_json())
        self._queued.set()

    def start(self) -> None:
        self._stopping = False
        self._pump = asyncio.create_task(self._run(), name="hand-off queue")

    async def stop(self) -> None:
        """The batch being handed off gets STOP_GRACE_SECONDS to finish (else its entries wait out their
        lease); what is still queued stays in the store for the next start."""
        if self._pump is None:
            return
        self._stopping = True
        self._queued.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._pump), STOP_GRACE_SECONDS)
        except TimeoutError:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._pump = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._store.claim_handoffs(BATCH, LEASE_SECONDS)
            except Exception as exc:  # the store is down: nothing is lost, it is all still queued there
                log.error("hand-off queue: cannot read the store (%s); trying again in %g s", exc, IDLE_POLL_SECONDS)
                claimed = []
            if claimed:
                await asyncio.gather(*(self._hand_off(entry) for entry in claimed))
                continue
            await self._count()
            self._queued.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queued.wait(), IDLE_POLL_SECONDS)

    async def _count(self) -> None:
        """The queue's depth for the connector_handoff_queue gauge: above zero for long, something (Temporal)
        keeps notifications from their workflows; the warnings say what."""
        try:
            HANDOFF_QUEUE.set(await self._store.handoff_queue_depth())
        except Exception as exc:  # the claim just before says the same, at error level
            log.debug("hand-off queue: depth not counted (%s)", exc)

    async def _hand_off(self, entry: QueuedHandoff) -> None:
        connection = self._connections.get(entry.connection)
        adapter = self._adapters.get(entry.connection)
        try:
            notification = MarketplaceNotification.model_validate_json(entry.notification)
        except ValidationError as exc:
            # Written by this code, so a bug or a hand-edited row: say so loudly and keep the row.
            log.error("hand-off queue: entry %s is unreadable (%s); left in the queue", entry.id, exc)
            await self._later(entry)
            return
        if connection is None or adapter is None:
            log.error(
                "hand-off queue: order %s of connection %s, which this intake does not have; kept queued",
                notification.marketplace_order_id,
                entry.connection,
            )
            await self._later(entry)
            return
        try:
            keyed = await adapter.order_key(notification)
            if keyed is not None:
                await hand_off_order(
                    self._client,
                    task_queue=self._task_queue,
                    connection=connection,
                    notification=keyed,
                    logbook=self._logbook,
                    ledger=self._store,
                )
        except MarketplaceError as exc:
            if exc.transient:  # the marketplace (or its authorization) is down: queued, retried
                log.warning(
                    "hand-off queue: order %s (%s) waits for the marketplace, attempt %d: %s",
                    notification.marketplace_order_id,
                    entry.connection,
                    entry.attempts,
                    exc,
                )
                await self._later(entry)
                return
            # The marketplace will never say which order this is: set aside, visibly, and go on.
            await quarantine(
                self._logbook,
                connection=entry.connection,
                source="webhook",
                raw_id=notification.marketplace_order_id,
                reason=f"the marketplace cannot tell which order it is: {exc}",
            )
        except Exception as exc:  # Temporal (or the store) unavailable: queued, retried, never dropped
            log.warning(
                "hand-off queue: order %s (%s) not handed off yet, attempt %d: %s",
                notification.marketplace_order_id,
                entry.connection,
                entry.attempts,
                exc,
            )
            await self._later(entry)
            return
        try:
            await self._store.handoff_done(entry.id)
        except Exception as exc:  # harmless: after the lease it is handed off once more, a duplicate notify
            log.warning("hand-off queue: entry %s handed off but not removed (%s)", entry.id, exc)

    async def _later(self, entry: QueuedHandoff) -> None:
        delay = min(MAX_RETRY_DELAY_SECONDS, 2.0 ** min(entry.attempts, 6))
        try:
            await self._store.handoff_later(entry.id, delay)
        except Exception as exc:  # the lease makes it due again anyway
            log.warning("hand-off queue: entry %s kept for its lease (%s)", entry.id, exc)
