"""A backlog of 5,000 changed orders, paged through by the poller while its worker process is killed.

Its own dev server: the 5,000 order workflows it starts are never run (their task queue has no worker),
and they must not weigh on the session server the other tests share.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sandboxes.marketplace import MarketplaceSandbox
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from connector.devserver import temporal_binary
from connector.http_server import HttpServer
from connector.models import PollerInput, PollerState, PollProgress, order_workflow_id, poller_workflow_id
from connector.temporal_client import data_converter
from tests.conftest import embedded_settings
from workflows.poller import PollerWorkflow
from workflows.support import SEARCH_ATTRIBUTES

ORDERS = 5000
PAGE_SIZE = 100
PAGES = ORDERS // PAGE_SIZE
CONNECTION = "backlog"
SECRET = "backlog-webhook-secret-0123456789"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[WorkflowEnvironment, Path]]:
    data = tmp_path_factory.mktemp("backlog")
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(embedded_settings(data_dir=data)),
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env, data
    await env.shutdown()


class PollerProcess:
    """`tests.poller_worker` in its own process, configured like a deployed worker."""

    def __init__(self, client: Client, data: Path, marketplace_url: str, task_queue: str) -> None:
        self._env = {
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "CONNECTION_NAME": CONNECTION,
            "MARKETPLACE_BASE_URL": marketplace_url,
            "WEBHOOK_SECRET": SECRET,
            "STORE_URL": f"sqlite:///{data / 'connector.db'}",
            "DATA_DIR": str(data),
        }
        self._log = data / "poller-worker.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.poller_worker", "unserved-orders"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)  # no graceful shutdown: the poll dies mid-page
        self._process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)


async def heartbeat_of_the_poll(client: Client) -> PollProgress | None:
    """The checkpoint the running poll last heartbeated, if a poll is running."""
    description = await client.get_workflow_handle(poller_workflow_id(CONNECTION)).describe()
    for pending in description.raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            (details,) = await client.data_converter.decode(pending.heartbeat_details.payloads, [PollProgress])
            assert isinstance(details, PollProgress)
            return details
    return None


async def notifications(client: Client, order_id: str, limit: asyncio.Semaphore) -> int:
    async with limit:
        history = await client.get_workflow_handle(order_workflow_id(CONNECTION, order_id)).fetch_history()
    return sum(event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for event in history.events)


async def test_a_backlog_is_paged_through_and_a_killed_poll_resumes_from_its_last_page(
    server: tuple[WorkflowEnvironment, Path],
) -> None:
    env, data = server
    client = env.client
    marketplace = MarketplaceSandbox(listing_delay_seconds=0.05)
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [marketplace.new_order(items=[("1", 1)])["id"] for _ in range(ORDERS)]
    task_queue = f"backlog-{uuid.uuid4().hex[:8]}"
    async with HttpServer(marketplace.app, port=0, name="backlog-marketplace") as http:
        worker = PollerProcess(client, data, http.url, task_queue)
        # The poller as a worker start makes it, but with its cursor before the backlog (an outage of the
        # intake, say, or a marketplace that published a batch at once).
        handle = await client.start_workflow(
            PollerWorkflow.run,
            PollerInput(
                connection=CONNECTION,
                interval_seconds=1.0,
                overlap_seconds=1.0,
                page_size=PAGE_SIZE,
                heartbeat_timeout_seconds=2.0,
                cursor=before,
            ),
            id=poller_workflow_id(CONNECTION),
            task_queue=task_queue,
        )
        worker.start()
        try:
            checkpoint = None
            for _ in range(600):
                checkpoint = await heartbeat_of_the_poll(client)
                if checkpoint is not None and checkpoint.pages >= 5:
                    break
                await asyncio.sleep(0.05)
            assert checkpoint is not None and checkpoint.pages >= 5, checkpoint
            worker.kill()
            read_by_the_first_worker = marketplace.listing_requests
            worker.start()
            state = await caught_up(client)
        finally:
            worker.stop()
        await handle.terminate("test over")
    # Nothing lost: every order has its workflow, from one hand-off each. The page the first worker was
    # on when it died was read again; its orders already signaled were owed a read, and waited.
    assert state.handed_off + state.deferred == ORDERS, state
    limit = asyncio.Semaphore(32)
    counts = await asyncio.gather(*(notifications(client, order_id, limit) for order_id in ids))
    assert counts == [1] * ORDERS
    # The second worker went on from the checkpoint: one page read twice at most, not the first ones.
    pages_read = marketplace.listing_requests
    assert pages_read - read_by_the_first_worker < PAGES - checkpoint.pages + 3, (pages_read, checkpoint.pages)
    assert state.walk_listed >= ORDERS - checkpoint.listed
    assert state.cursor is not None and state.cursor >= datetime.fromisoformat(
        marketplace.orders[ids[-1]]["last_updated"]
    )


async def caught_up(client: Client) -> PollerState:
    """The poller's state once it has read the whole backlog (its walk ended past the last order)."""
    handle = client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id(CONNECTION))
    state = await handle.query(PollerWorkflow.status)
    # 5,000 hand-offs take 40-90 s on two cores shared with the other test processes: a wide margin.
    for _ in range(3000):
        state = await handle.query(PollerWorkflow.status)
        if state.walk is None and state.handed_off + state.deferred >= ORDERS:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the poller never caught up: {state}")
