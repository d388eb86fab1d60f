"""Record PollerWorkflow (and ImportWorkflow, BulkReprocessWorkflow) histories for the replay test:
`.venv/bin/python -m tests.record_intake_histories SCENARIO FILE_NAME` (SCENARIO: a key of SCENARIOS,
IMPORT_SCENARIOS or BULK_SCENARIOS).

A poller runs forever, so its recorded history is a running one cut after a few polls: polls that found
orders, polls during a marketplace outage and polls after it. Run it after a deliberate, patched change
to PollerWorkflow to add histories of the new version next to the old ones (never replace old ones).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandboxes.vtex import FaultRule
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from connector.bulk_reprocess import BulkReprocessInput, Progress, bulk_workflow_id
from connector.console.filters import REPROCESSABLE_VALUES, OrderFilter
from connector.devserver import temporal_binary
from connector.importing import ImportInput, ImportRequest, import_workflow_id
from connector.models import PollerSettings, poller_workflow_id
from connector.stack import Stack
from tests.conftest import embedded_settings
from workflows.bulk_reprocess import BulkReprocessWorkflow
from workflows.importer import ImportWorkflow
from workflows.poller import PollerWorkflow
from workflows.support import SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories" / "poller"
IMPORT_HISTORIES = Path(__file__).parent / "histories" / "importer"
BULK_HISTORIES = Path(__file__).parent / "histories" / "bulk_reprocess"


async def outage_and_recovery(stack: Stack) -> None:
    assert stack.sandboxes is not None
    marketplace = stack.sandboxes.marketplace
    for _ in range(3):
        marketplace.new_order(items=[("1", 1)])  # found by the poller only
    await asyncio.sleep(1.5)
    marketplace.outage(503)
    await asyncio.sleep(3)
    marketplace.end_outage()
    marketplace.new_order(items=[("1", 1)])
    await asyncio.sleep(3)


async def backlog_and_configure(stack: Stack) -> None:
    """Settings changed on the running poller, then a backlog longer than one poll's pages."""
    assert stack.sandboxes is not None
    handle = stack.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id("reference"))
    await asyncio.sleep(1)
    await handle.signal(
        PollerWorkflow.configure, PollerSettings(interval_seconds=0.5, overlap_seconds=1.0, page_size=10)
    )
    for _ in range(150):
        stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    await asyncio.sleep(6)


async def range_import_through_an_outage(stack: Stack) -> WorkflowHistory:
    """An import of 35 orders from the past, 10 a page, the marketplace down for a while in the middle."""
    assert stack.sandboxes is not None
    marketplace = stack.sandboxes.marketplace
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for number in range(35):
        order = marketplace.new_order(items=[("1", 1)])
        order["last_updated"] = (start + timedelta(seconds=number)).isoformat(timespec="microseconds")
    request = ImportRequest(connection="reference", since=start, until=start + timedelta(days=1), page_size=10)
    marketplace.outage(503)  # the first page fails past its attempts, the workflow backs off, then it goes on
    asyncio.get_running_loop().call_later(4.0, marketplace.end_outage)
    handle = await stack.client.start_workflow(
        ImportWorkflow.run,
        ImportInput(request=request, pages_per_run=3),
        id=import_workflow_id(request),
        task_queue=stack.settings.temporal_task_queue,
    )
    progress = await handle.result()
    assert progress.handed_off == 35, progress
    # The first run: it failed a page, then continued as new after three pages.
    first_run = await stack.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id).fetch_history()
    return first_run


async def bulk_reprocess_in_batches(stack: Stack) -> WorkflowHistory:
    """Three parked orders reprocessed by filter, two a batch, and followed until each went through."""
    assert stack.sandboxes is not None
    box = stack.sandboxes
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains="/api/fulfillment/pvt/orders", status=400, code="BLK001", times=3)
    )
    for _ in range(3):
        box.marketplace.notify(box.marketplace.new_order(items=[("1", 1)])["id"])
    selected = OrderFilter(code="BLK001")
    query = selected.query(REPROCESSABLE_VALUES)
    for _ in range(200):  # parked, and visible as such
        if (await stack.client.count_workflows(query)).count == 3:
            break
        await asyncio.sleep(0.1)
    start = BulkReprocessInput(
        job_id="0123456789abcdef", filter=selected.params(), query=query, reason="recorded", batch_size=2
    )
    handle = await stack.client.start_workflow(
        BulkReprocessWorkflow.run,
        start,
        id=bulk_workflow_id(start.job_id),
        task_queue=stack.settings.temporal_task_queue,
    )
    job = await handle.result()
    assert [item.progress for item in job.items] == [Progress.DONE] * 3, job
    return await handle.fetch_history()


SCENARIOS = {"polls_outage_and_recovery": outage_and_recovery, "backlog_and_configure": backlog_and_configure}
IMPORT_SCENARIOS = {"range_import_through_an_outage": range_import_through_an_outage}
BULK_SCENARIOS = {"bulk_reprocess_in_batches": bulk_reprocess_in_batches}


async def main(scenario: str, name: str) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded_settings(
            store_url=f"sqlite:///{folder}/connector.db",
            poll_interval_seconds=0.3,
            poll_overlap_seconds=1.0,
            poll_webhook_grace_seconds=0.0,
        )
        async with Stack(settings, env.client, pollers=True) as stack:
            if scenario in IMPORT_SCENARIOS:
                history, target = await IMPORT_SCENARIOS[scenario](stack), IMPORT_HISTORIES
            elif scenario in BULK_SCENARIOS:
                history, target = await BULK_SCENARIOS[scenario](stack), BULK_HISTORIES
            else:
                handle = env.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id("reference"))
                await SCENARIOS[scenario](stack)
                state = await handle.query(PollerWorkflow.status)
                assert state.handed_off >= 4, state
                history, target = await handle.fetch_history(), HISTORIES
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")
    await env.shutdown()


if __name__ == "__main__":
    # python -m tests.record_intake_histories SCENARIO FILE_NAME
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    sys.stdout.flush()
    os._exit(0)  # temporalio#300: skip interpreter teardown
