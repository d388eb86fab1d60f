"""Shared fixtures: one real Temporal dev server and one connector stack per test process (make test runs four)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from connector.connections import Connection
from connector.devserver import temporal_binary
from connector.embedded import Sandboxes
from connector.models import VtexFlow
from connector.settings import Settings
from connector.stack import Stack
from connector.temporal_client import data_converter
from tests.helpers import clear_vtex_faults
from workflows.support import SEARCH_ATTRIBUTES

pytest_plugins = ["tests.hard_exit"]


def embedded_settings(**overrides: object) -> Settings:
    """Settings that ignore the developer's environment and .env: tests never reach a real VTEX."""
    values: dict[str, object] = {
        "vtex_app_key": None,
        "vtex_app_token": None,
        "vtex_base_url": None,
        "marketplace_base_url": None,
        "intake_port": 0,
        "temporal_task_queue": f"test-{uuid.uuid4().hex[:8]}",
        "connection_name": "reference",
        # Short retry timing so reprocess and dead-letter paths run in seconds.
        "vtex_timeout_seconds": 1.5,
        "activity_attempts": 3,
        "activity_initial_interval_seconds": 0.2,
        "reprocess_first_delay_seconds": 0.2,
        "reprocess_max_delay_seconds": 0.5,
        "price_approval_poll_seconds": 0.3,
        "channel_order_check_seconds": 0.3,
        "marketplace_invoice_poll_seconds": 0.5,
        # The VTEX sandbox shows new orders in OMS within 0.3 s and in its list within a second.
        "unknown_placement_window_seconds": 3.0,
        "worker_graceful_shutdown_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def session_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session stack's data folder: its generated secrets and payload key live here."""
    return tmp_path_factory.mktemp("data")


@pytest_asyncio.fixture(scope="session")
async def temporal_env(session_data: Path) -> AsyncIterator[WorkflowEnvironment]:
    # The same client the product builds: pydantic converter plus the payload encryption codec.
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(embedded_settings(data_dir=session_data)),
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
        ],
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def stack(temporal_env: WorkflowEnvironment, session_data: Path) -> AsyncIterator[Stack]:
    data = session_data
    settings = embedded_settings(store_url=f"sqlite:///{data / 'connector.db'}", data_dir=data)
    async with Stack(settings, temporal_env.client) as running:
        yield running


@pytest_asyncio.fixture
async def box(stack: Stack) -> AsyncIterator[Sandboxes]:
    """The session stack's sandboxes; what a test broke in them (VTEX faults, a marketplace outage) is
    mended after it."""
    assert stack.sandboxes is not None
    yield stack.sandboxes
    clear_vtex_faults(stack.sandboxes)
    stack.sandboxes.marketplace.end_outage()


@pytest.fixture(params=[VtexFlow.FULFILLMENT, VtexFlow.ORDER_INTEGRATION], ids=["fulfillment", "order-integration"])
def flow(request: pytest.FixtureRequest, stack: Stack) -> Iterator[VtexFlow]:
    """Each way into VTEX in turn: the session's connection `reference` is configured with it for the
    test, so every hand-off (webhook, poller, CLI, a test's own) starts orders in that flow."""
    connections = stack.connections
    assert isinstance(connections, dict)
    configured: Connection = connections["reference"]
    connections["reference"] = dataclasses.replace(configured, vtex_flow=request.param)
    try:
        yield request.param
    finally:
        connections["reference"] = configured
