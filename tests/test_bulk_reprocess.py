"""A bulk reprocess is a workflow, not the console's memory: the job goes on and its page answers after the
console restarted, or died right after the seller confirmed; an order that cannot be reprocessed is shown
failed while the others go through; a job takes at most its cap of orders, a batch per activity; a retried
batch does not signal an order twice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import uuid
from pathlib import Path

import httpx
from sandboxes.vtex import FaultRule
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.bulk_reprocess import signal_bulk_orders
from connector.bulk_reprocess import (
    BulkItem,
    BulkReprocessInput,
    Progress,
    SignalBatch,
    bulk_workflow_id,
    job_marker,
)
from connector.console.filters import REPROCESSABLE_VALUES, OrderFilter
from connector.embedded import Sandboxes
from connector.models import OrderState, OrderStatus, order_workflow_id
from connector.stack import Stack, free_port
from tests.console_support import PASSWORD, csrf_of, logged_in, running_console
from tests.helpers import wait_for_state, wait_until_dispatched
from workflows.bulk_reprocess import BulkReprocessWorkflow
from workflows.support import CONNECTION, ERROR_CODE, MARKETPLACE_ORDER_ID, ORDER_STATUS

REPO = Path(__file__).resolve().parents[1]
PLACE = "/api/fulfillment/pvt/orders"


async def parked_orders(stack: Stack, box: Sandboxes, count: int) -> tuple[OrderFilter, list[str]]:
    """`count` orders parked with an error code of their own (VTEX refuses each once; the reprocess goes
    through), and the filter on that code: it matches these orders alone, once visibility shows them all."""
    code = f"BLK{uuid.uuid4().hex[:6].upper()}"
    box.vtex.add_fault(
        FaultRule(method="POST", path_contains=PLACE, status=400, code=code, times=count, message="refused")
    )
    order_ids = [str(box.marketplace.new_order(items=[("1", 1)])["id"]) for _ in range(count)]
    for order_id in order_ids:
        box.marketplace.notify(order_id)
    await asyncio.gather(*(wait_for_state(stack.client, "reference", o, is_parked) for o in order_ids))
    selected = OrderFilter(code=code)
    await until_visible(stack.client, selected, count)
    return selected, order_ids


def is_parked(state: OrderState) -> bool:
    return state.status is OrderStatus.PARKED


async def until_visible(client: Client, selected: OrderFilter, count: int) -> None:
    """Visibility follows the orders' search attributes a little behind."""
    for _ in range(100):
        if (await client.count_workflows(selected.query(REPROCESSABLE_VALUES))).count == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never showed {count} orders for {selected.params()}")


async def start_job(http: httpx.AsyncClient, selected: OrderFilter) -> str:
    """Confirm a bulk reprocess as the preview page's form does; the job's page."""
    token = csrf_of((await http.get("/")).text)
    form = {"csrf_token": token, "code": selected.code or ""}
    started = await http.post("/bulk", data=form)
    assert started.status_code == 303, started.text
    return started.headers["location"]


async def finished_page(http: httpx.AsyncClient, job_url: str) -> str:
    for _ in range(150):
        page = await http.get(job_url)
        assert page.status_code == 200, page.text
        if "finished" in page.text:
            return page.text
        await asyncio.sleep(0.2)
    raise AssertionError(f"the job never finished: {page.text}")


async def test_a_bulk_job_goes_on_and_shows_after_the_console_restarted(stack: Stack, box: Sandboxes) -> None:
    selected, order_ids = await parked_orders(stack, box, 2)
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        job_url = await start_job(http, selected)
        await http.aclose()
    # A console started anew, as after a restart: a new app, nothing carried over but the seller's link.
    async with running_console(stack) as restarted:
        http = await logged_in(restarted.url)
        page = await finished_page(http, job_url)
        await http.aclose()
    assert "done 2" in page and "failed 0" in page and all(order_id in page for order_id in order_ids)
    assert f"code={selected.code}" in page
    await wait_until_dispatched(stack.client, "reference", order_ids)


async def test_the_orders_are_reprocessed_though_the_console_died_right_after_the_seller_confirmed(
    stack: Stack, box: Sandboxes, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    selected, order_ids = await parked_orders(stack, box, 5)
    console = await console_process(stack, temporal_env, tmp_path)
    try:
        http = await logged_in(await console_url(console))
        job_url = await start_job(http, selected)
    finally:
        console.kill()  # the moment the seller's confirmation was answered: nothing of the console goes on
        await console.wait()
    await http.aclose()
    await wait_until_dispatched(stack.client, "reference", order_ids)
    async with running_console(stack) as restarted:
        http = await logged_in(restarted.url)
        page = await finished_page(http, job_url)
        await http.aclose()
    assert "done 5" in page and "failed 0" in page


async def console_process(stack: Stack, temporal_env: WorkflowEnvironment, folder: Path) -> asyncio.subprocess.Process:
    """`connector console` on the test stack's Temporal, store and task queue, in a process of its own."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": stack.settings.temporal_task_queue,
        "CONNECTION_NAME": "reference",
        "STORE_URL": stack.settings.store_url,
        "DATA_DIR": str(stack.settings.data_dir),  # the payload key
        "CONSOLE_PASSWORD": PASSWORD,
        "CONSOLE_PORT": str(free_port()),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "console", env=env, cwd=folder, stdout=asyncio.subprocess.PIPE
    )


async def console_url(console: asyncio.subprocess.Process) -> str:
    assert console.stdout is not None
    while line := (await asyncio.wait_for(console.stdout.readline(), timeout=30)).decode():
        if line.startswith("seller's console on "):
            return line.removeprefix("seller's console on ").split()[0]
    raise AssertionError("the console stopped before serving")


async def test_an_order_that_cannot_be_reprocessed_is_shown_failed_and_the_others_go_on(
    stack: Stack, box: Sandboxes
) -> None:
    selected, order_ids = await parked_orders(stack, box, 2)
    assert selected.code is not None
    # Listed by the filter like a parked order, but no order workflow answers to its id: it cannot be signaled.
    stray = f"stray-{uuid.uuid4().hex[:8]}"
    stand_in = await stack.client.start_workflow(
        "OrderLifecycle",
        id=f"stand-in:{stray}",
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(CONNECTION, "reference"),
                SearchAttributePair(MARKETPLACE_ORDER_ID, stray),
                SearchAttributePair(ORDER_STATUS, OrderStatus.PARKED.value),
                SearchAttributePair(ERROR_CODE, selected.code),
            ]
        ),
    )
    try:
        await until_visible(stack.client, selected, 3)
        async with running_console(stack) as console:
            http = await logged_in(console.url)
            page = await finished_page(http, await start_job(http, selected))
            await http.aclose()
    finally:
        await stand_in.terminate()
    assert "done 2" in page and "failed 1" in page
    assert stray in page and "not reprocessed: unknown" in page
    await wait_until_dispatched(stack.client, "reference", order_ids)


async def test_a_job_takes_at_most_its_cap_of_orders_a_batch_at_a_time(stack: Stack, box: Sandboxes) -> None:
    selected, order_ids = await parked_orders(stack, box, 3)
    job_id = uuid.uuid4().hex[:16]
    job = await stack.client.execute_workflow(
        BulkReprocessWorkflow.run,
        BulkReprocessInput(
            job_id=job_id,
            filter=selected.params(),
            query=selected.query(REPROCESSABLE_VALUES),
            reason="capped test job",
            max_orders=2,
            batch_size=1,
        ),
        id=bulk_workflow_id(job_id),
        task_queue=stack.settings.temporal_task_queue,
    )
    assert job.listed and job.capped and len(job.items) == 2
    assert {item.progress for item in job.items} == {Progress.DONE}
    taken = {item.marketplace_order_id for item in job.items}
    (left,) = set(order_ids) - taken
    await wait_until_dispatched(stack.client, "reference", sorted(taken))
    state = await wait_for_state(stack.client, "reference", left, lambda s: True)
    assert state.status is OrderStatus.PARKED and not any(job_marker(job_id) in e.message for e in state.timeline)


async def test_a_retried_signal_batch_does_not_signal_an_order_twice(stack: Stack, box: Sandboxes) -> None:
    _, (order_id,) = await parked_orders(stack, box, 1)
    marker = job_marker(uuid.uuid4().hex[:16])
    item = BulkItem(
        workflow_id=order_workflow_id("reference", order_id), connection="reference", marketplace_order_id=order_id
    )
    batch = SignalBatch(reason="retried test batch", marker=marker, items=[item])
    activities = ActivityEnvironment(client=stack.client)
    first = await activities.run(signal_bulk_orders, batch)
    # The first attempt signaled the order and then died (its result never reached the workflow): retried.
    activities.info = dataclasses.replace(activities.info, attempt=2)
    retried = await activities.run(signal_bulk_orders, batch)
    assert [o.progress for o in (*first.outcomes, *retried.outcomes)] == [Progress.RUNNING, Progress.RUNNING]
    (state,) = await wait_until_dispatched(stack.client, "reference", [order_id])
    requests = [e for e in state.timeline if e.step == "reprocess" and marker in e.message]
    assert len(requests) == 1
