"""A worker process that runs only the pollers (no order workflow): `python -m tests.poller_worker QUEUE`.

Settings come from the environment like the connector's own (TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE,
MARKETPLACE_BASE_URL, STORE_URL, DATA_DIR, ...); orders are handed off to QUEUE, which no worker serves, so
a test can hand off thousands of orders and count them without integrating any. A test kills it with
SIGKILL to see a poll survive the death of its worker.
"""

from __future__ import annotations

import asyncio
import os
import sys

from temporalio.worker import Worker

from activities.polling import PollingActivities
from connector.connections import build_connections
from connector.logbook import Logbook
from connector.marketplaces.factory import build_adapters
from connector.settings import load_settings
from connector.store.base import open_store
from connector.temporal_client import connect, secret_sealer
from workflows.poller import PollerWorkflow


async def main(order_queue: str) -> None:
    settings = load_settings()
    connections = build_connections(settings)
    store = open_store(settings.store_url)
    logbook = Logbook(store, account=settings.account_name)
    polling = PollingActivities(
        connections,
        build_adapters(connections, store=store, logbook=logbook, sealer=lambda: secret_sealer(settings)),
        task_queue=order_queue,
        logbook=logbook,
        ledger=store,
    )
    client = await connect(settings)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[PollerWorkflow],
        activities=[polling.poll_marketplace],
    )
    print("poller worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    os._exit(0)  # temporalio#300
