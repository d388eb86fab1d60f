"""Short fault scenarios on the connector's real processes (bench/faults.py runs them with 200 orders):
every order ends dispatch-authorized in VTEX, none twice, none lost. One cluster serves all three."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bench.faults import flaky_vtex, restart_server
from bench.harness import Cluster

ORDERS = 20
WITHIN_SECONDS = 40.0


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path_factory.mktemp("faults"), settings={"VTEX_TIMEOUT_SECONDS": "1"}) as running:
        yield running


async def test_a_worker_killed_with_orders_waiting_loses_nothing(cluster: Cluster) -> None:
    # The orders wait for their payment, with no activity running: a killed attempt would otherwise be
    # retried only after the workflow's 60 s start-to-close timeout (`make faults` kills mid-activity).
    ids = await cluster.create_orders(ORDERS, status="payment_pending")
    await cluster.notify_all(ids)
    waiting = "OrderStatus = 'awaiting-payment'"
    assert await cluster.wait_for_count(waiting, ORDERS, within=WITHIN_SECONDS) == ORDERS
    await cluster.worker.kill()
    for order_id in ids:
        # The marketplace notifies the intake; the signals wait in Temporal for a worker.
        await cluster.marketplace_action(order_id, "pay")
    await cluster.start_worker()
    await cluster.wait_for_dispatch(ids, within=WITHIN_SECONDS)
    tally = await cluster.tally(ids)
    assert tally.ok, tally.line()


async def test_a_restarted_temporal_server_loses_nothing(cluster: Cluster) -> None:
    result = await restart_server(cluster, ORDERS, within=WITHIN_SECONDS, down=2.0)
    assert result.tally.ok, result.line()


async def test_a_flaky_vtex_makes_no_duplicate(cluster: Cluster) -> None:
    result = await flaky_vtex(cluster, ORDERS, within=WITHIN_SECONDS)
    assert result.tally.ok, result.line()
