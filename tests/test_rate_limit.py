"""VTEX calls stay under the configured rate across workers: the server rate-limits the VTEX task queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from connector.models import OrderStatus
from connector.stack import Stack
from tests.conftest import embedded_settings
from tests.helpers import wait_for_state

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
    await asyncio.gather(
        *(
            wait_for_state(limited.client, "reference", o["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
            for o in orders
        )
    )
    # Simulation (validate), place and authorize each make exactly one such request per activity.
    times = sorted(r.received_at for r in limited.sandboxes.vtex.requests if r.path.startswith(ONE_PER_ACTIVITY))
    assert len(times) == 15
    # The server hands out tokens about once a second, so judge rates over a few seconds, with one
    # second's worth of burst: unlimited, these 15 activities take a fraction of a second.
    assert times[-1] - times[0] >= (len(times) - RATE) / RATE
    busiest = max(sum(1 for t in times if start <= t < start + 3.0) for start in times)
    assert busiest <= 3 * RATE + RATE
