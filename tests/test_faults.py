"""Short fault scenarios on the connector's real processes (bench/faults.py runs them with 200 orders):
every order ends dispatch-authorized in VTEX, none twice, none lost. One cluster serves all three."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bench.faults import flaky_vtex, kill_worker, restart_server
from bench.harness import Cluster

ORDERS = 20
WITHIN_SECONDS = 40.0


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    # A 1 s VTEX timeout makes the activities' start-to-close 8 s: a killed attempt is retried that soon.
    async with Cluster(tmp_path_factory.mktemp("faults"), settings={"VTEX_TIMEOUT_SECONDS": "1"}) as running:
        yield running


async def test_a_worker_killed_with_orders_in_flight_loses_nothing(cluster: Cluster) -> None:
    result = await kill_worker(cluster, ORDERS, within=WITHIN_SECONDS)
    assert result.tally.ok, result.line()


async def test_a_restarted_temporal_server_loses_nothing(cluster: Cluster) -> None:
    result = await restart_server(cluster, ORDERS, within=WITHIN_SECONDS, down=2.0)
    assert result.tally.ok, result.line()


async def test_a_flaky_vtex_makes_no_duplicate(cluster: Cluster) -> None:
    result = await flaky_vtex(cluster, ORDERS, within=WITHIN_SECONDS)
    assert result.tally.ok, result.line()
