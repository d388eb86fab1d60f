"""VTEX calls stay under the configured rate across workers: the server rate-limits the VTEX task queue,
and a slot of a rate shared in the store gates every VTEX step, local activities included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from connector.logbook import Logbook
from connector.marketplaces.factory import build_adapters
from connector.models import order_workflow_id
from connector.stack import Stack
from connector.store.base import open_store
from connector.temporal_client import secret_sealer
from connector.vtex.client import VtexClient
from tests.conftest import embedded_settings
from tests.helpers import wait_until_dispatched
from worker import create_workers

RATE = 4.0
ONE_PER_ACTIVITY = ("/api/checkout/pub/orderForms/simulation", "/api/fulfillment/pvt/orders")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("limited")
    settings = embedded_settings(
        store_url=f"sqlite:///{data / 'connector.db'}", data_dir=data, vtex_activities_per_second=RATE
    )
    async with Stack(settings, temporal_env.client) as stack:
        yield stack


async def test_vtex_activities_stay_under_the_configured_rate(limited: Stack) -> None:
    assert limited.sandboxes is not None
    marketplace = limited.sandboxes.marketplace
    orders = [marketplace.new_order(items=[("1", 1)]) for _ in range(5)]
    for order in orders:
        marketplace.notify(order["id"])
    await wait_until_dispatched(limited.client, "reference", (o["id"] for o in orders))
    # Simulation (validate), place and authorize each make exactly one such request per activity.
    times = sorted(r.received_at for r in limited.sandboxes.vtex.requests if r.path.startswith(ONE_PER_ACTIVITY))
    assert len(times) == 15
    # The server hands out tokens about once a second, so judge rates over a few seconds, with one
    # second's worth of burst: unlimited, these 15 activities take a fraction of a second.
    assert times[-1] - times[0] >= (len(times) - RATE) / RATE
    busiest = max(sum(1 for t in times if start <= t < start + 3.0) for start in times)
    assert busiest <= 3 * RATE + RATE


async def queued_validations(client: Client, order_id: str) -> int:
    history = await client.get_workflow_handle(order_workflow_id("reference", order_id)).fetch_history()
    return sum(
        event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "validate_order"
        for event in history.events
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def second_worker(limited: Stack) -> AsyncIterator[None]:
    """Another worker process's workers, in miniature: the same queues and store file, its own store
    connection, VTEX client and marketplace adapters."""
    assert limited.sandboxes is not None and limited.logbook is not None
    settings = limited.settings
    store = open_store(settings.store_url)
    vtex = VtexClient(
        base_url=settings.vtex_url(),
        app_key=limited.sandboxes.vtex.app_key,
        app_token=limited.sandboxes.vtex.app_token,
        timeout_seconds=settings.vtex_timeout_seconds,
    )
    logbook = Logbook(store, account=settings.account_name)
    adapters = build_adapters(limited.connections, store=store, logbook=logbook, sealer=lambda: secret_sealer(settings))
    # Its own connection to the server, as another process has (one client serves one worker per queue).
    client = await Client.connect(
        limited.client.service_client.config.target_host, data_converter=limited.client.data_converter
    )
    workers = create_workers(
        client,
        task_queue=settings.temporal_task_queue,
        vtex_task_queue=settings.vtex_task_queue,
        vtex_activities_per_second=settings.vtex_activities_per_second,
        vtex=vtex,
        logbook=logbook,
        store=store,
        vtex_rate_key=f"vtex:{settings.account_name}",
        seller_id=settings.vtex_seller_id,
        connections=limited.connections,
        adapters=adapters,
        graceful_shutdown=timedelta(seconds=1),
        max_cached_workflows=settings.worker_max_cached_workflows,
    )
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    yield
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(*tasks, return_exceptions=True)
    for adapter in adapters.values():
        await adapter.aclose()
    await vtex.aclose()
    await store.aclose()


async def test_two_workers_together_stay_under_the_rate_local_activities_included(
    limited: Stack, second_worker: None
) -> None:
    """Validation runs as a local activity, outside the server's queue limit: the store's shared rate
    holds it, in whichever worker the order's workflow runs."""
    assert limited.sandboxes is not None
    box = limited.sandboxes
    marketplace = box.marketplace
    before = len(box.vtex.requests)
    orders = [marketplace.new_order(items=[("1", 1)]) for _ in range(8)]
    for order in orders:
        marketplace.notify(order["id"])
    await wait_until_dispatched(limited.client, "reference", (o["id"] for o in orders), within=60)
    times = sorted(r.received_at for r in box.vtex.requests[before:] if r.path.startswith(ONE_PER_ACTIVITY))
    assert len(times) == 3 * len(orders)
    # Slots are handed out one every 1/RATE s from one row shared by both workers.
    assert times[-1] - times[0] >= (len(times) - RATE) / RATE
    busiest = max(sum(1 for t in times if start <= t < start + 3.0) for start in times)
    assert busiest <= 3 * RATE + RATE
    # Eight validations at once, four slots a second: those with no slot within a second moved to the
    # rate-limited queue, and their orders went through all the same.
    queued = [await queued_validations(limited.client, o["id"]) for o in orders]
    assert 0 < sum(queued) < len(orders)
