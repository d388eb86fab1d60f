"""`connector import` on a real dev server: history comes in only when asked, once, and nothing is lost
when the marketplace fails mid-import."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sandboxes.marketplace import MarketplaceSandbox
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from connector import cli
from connector.import_command import import_request, start_import
from connector.importing import ImportInput, ImportProgress, ImportRequest, import_workflow_id
from connector.lifecycle import ORDER_WORKFLOW_TYPES
from connector.models import OrderStatus, PollerState, poller_workflow_id
from connector.poller_start import start_pollers
from connector.quarantine import QUARANTINE_CODE
from connector.settings import Settings
from connector.stack import Stack
from tests.conftest import embedded_settings
from tests.helpers import wait_for_state, wait_until_dispatched
from tests.test_cli import connector
from workflows.importer import ImportWorkflow
from workflows.poller import PollerWorkflow

CONNECTION = "backlog"
HISTORY = 200
POLL_INTERVAL = 0.3
POLL_OVERLAP = 0.5


@dataclass
class Backlog:
    stack: Stack
    # The CLI's settings: the stack's, reaching the test dev server.
    settings: Settings
    # Just before the history orders were created; and their ids.
    history_since: datetime
    history: list[str]

    @property
    def shop(self) -> MarketplaceSandbox:
        assert self.stack.sandboxes is not None
        return self.stack.sandboxes.marketplaces[CONNECTION]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backlog(
    temporal_env: WorkflowEnvironment, session_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backlog]:
    """A marketplace account with 200 orders from before the connector, and a connector polling it."""
    data = tmp_path_factory.mktemp("import")
    settings = embedded_settings(
        store_url=f"sqlite:///{data / 'connector.db'}",
        # The CLI builds its own client: the session's payload key must be the one it reads.
        data_dir=session_data,
        connection_name=CONNECTION,
        poll_interval_seconds=POLL_INTERVAL,
        poll_overlap_seconds=POLL_OVERLAP,
        # No wait for a webhook: whatever the poller lists it hands off at once.
        poll_webhook_grace_seconds=0.0,
        # An order that met the marketplace outage below is retried within the test.
        dead_letter_retry_seconds=1.0,
    )
    async with Stack(settings, temporal_env.client) as stack:  # its poller starts below, once history exists
        assert stack.sandboxes is not None
        shop = stack.sandboxes.marketplaces[CONNECTION]
        since = datetime.now(UTC)
        history = [shop.new_order(items=[("1", 1)])["id"] for _ in range(HISTORY)]
        await asyncio.sleep(POLL_OVERLAP * 2)  # older than the first poll's overlap window
        await start_pollers(stack.client, task_queue=stack.settings.temporal_task_queue, connections=stack.connections)
        target = temporal_env.client.service_client.config.target_host
        yield Backlog(stack, stack.settings.model_copy(update={"temporal_address": target}), since, history)
        await stack.client.get_workflow_handle(poller_workflow_id(CONNECTION)).terminate("test over")


def backdated(shop: MarketplaceSandbox, count: int, start: datetime) -> list[str]:
    """Orders whose latest change is long past (one second apart): the poller never lists them."""
    ids = []
    for number in range(count):
        order = shop.new_order(items=[("1", 1)])
        order["last_updated"] = (start + timedelta(seconds=number)).isoformat(timespec="microseconds")
        ids.append(order["id"])
    return ids


async def cli_import(backlog: Backlog, *words: str) -> int:
    """`connector import ...` through the CLI's own handler, in this event loop (the worker runs here)."""
    invocation = cli.parse(["import", *words])
    assert isinstance(invocation, cli.Invocation)
    code: int = await asyncio.wait_for(invocation.run(backlog.settings), timeout=60)
    return code


def import_handle(request: ImportRequest, stack: Stack) -> WorkflowHandle[ImportWorkflow, ImportProgress]:
    return stack.client.get_workflow_handle_for(ImportWorkflow.run, import_workflow_id(request))


async def order_workflows(stack: Stack, status: OrderStatus | None = None) -> int:
    query = f"{ORDER_WORKFLOW_TYPES} AND Connection = '{CONNECTION}'"
    if status is not None:
        query += f" AND OrderStatus = '{status.value}'"
    return (await stack.client.count_workflows(query)).count


async def all_dispatched(stack: Stack, ids: list[str]) -> None:
    # Visibility first (one query for all), then each order's own state.
    for _ in range(600):
        if await order_workflows(stack, OrderStatus.DISPATCH_AUTHORIZED) >= len(ids):
            break
        await asyncio.sleep(0.1)
    await wait_until_dispatched(stack.client, CONNECTION, ids)


def vtex_orders_per_order(stack: Stack, ids: list[str]) -> Counter[str]:
    assert stack.sandboxes is not None
    placed = Counter(order.marketplace_order_id for order in stack.sandboxes.vtex.orders.values())
    return Counter({order_id: placed[order_id] for order_id in ids})


def summary_counts(out: str) -> dict[str, int]:
    return {name: int(count) for name, count in re.findall(r"(handed off|already known|refused)\s+(\d+)", out)}


async def polled(stack: Stack, *, after: datetime | None) -> PollerState:
    """The poller's state once it has polled (after `after`)."""
    handle = stack.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id(CONNECTION))
    for _ in range(200):
        state = await handle.query(PollerWorkflow.status)
        if state.last_poll_at is not None and (after is None or state.last_poll_at > after):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the poller did not poll; last: {state}")


async def test_history_comes_in_only_when_an_import_asks_and_only_once(
    backlog: Backlog, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = backlog.stack
    first_poll = (await polled(stack, after=None)).last_poll_at
    await asyncio.sleep(POLL_INTERVAL * 3)
    poller = await polled(stack, after=first_poll)  # it polled again and again, and found nothing
    assert poller.last_error is None
    assert (poller.handed_off, poller.deferred) == (0, 0) and await order_workflows(stack) == 0

    since = backlog.history_since.isoformat()
    assert await cli_import(backlog, "--since", since) == 0
    assert summary_counts(capsys.readouterr().out) == {"handed off": HISTORY, "already known": 0, "refused": 0}
    request = ImportRequest(connection=CONNECTION, since=backlog.history_since)
    first = await import_handle(request, stack).result()
    assert (first.seen, first.handed_off, first.already_known, first.refused) == (HISTORY, HISTORY, 0, 0)
    await all_dispatched(stack, backlog.history)

    # The same command later: a new run of the same workflow id re-checks everything, starts nothing.
    assert await cli_import(backlog, "--since", since) == 0
    assert summary_counts(capsys.readouterr().out) == {"handed off": 0, "already known": HISTORY, "refused": 0}
    again = await import_handle(request, stack).result()
    assert (again.handed_off, again.already_known) == (0, HISTORY)
    assert set(vtex_orders_per_order(stack, backlog.history).values()) == {1}


async def test_an_import_by_ids_reports_each_refusal_with_its_reason(
    backlog: Backlog, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the summary table on one line per refusal
    stack = backlog.stack
    known, fresh = backdated(backlog.shop, 2, datetime(2025, 3, 1, tzinfo=UTC))
    backlog.shop.notify(known)  # its webhook: the connector knows it already
    await wait_for_state(stack.client, CONNECTION, known, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    unknown, invalid = "9999999999", "bad id!"

    assert await cli_import(backlog, fresh, unknown, invalid, known) == 0
    out = capsys.readouterr().out
    assert summary_counts(out) == {"handed off": 1, "already known": 1, "refused": 2}
    assert re.search(rf"{unknown}\s+.*not found in the marketplace", out)
    assert re.search(rf"{re.escape(invalid)}\s+.*not a valid order id", out)
    request = ImportRequest(connection=CONNECTION, order_ids=[fresh, unknown, invalid, known])
    summary = await import_handle(request, stack).result()
    reasons = {refusal.marketplace_order_id: refusal.reason for refusal in summary.refusals}
    assert reasons[unknown] == "not found in the marketplace"
    assert reasons[invalid].startswith("not a valid order id: String should match pattern")
    await all_dispatched(stack, [fresh])
    assert stack.store is not None
    today = datetime.now(UTC).date()
    logs = await stack.store.logs(account=stack.settings.account_name, day=today, connection=CONNECTION)
    assert [m.marketplace_order_id for m in logs if m.code == QUARANTINE_CODE] == [invalid]
    assert vtex_orders_per_order(stack, [known, fresh]) == Counter({known: 1, fresh: 1})


async def wait_for_progress(
    handle: WorkflowHandle[ImportWorkflow, ImportProgress], predicate: Callable[[ImportProgress], bool]
) -> ImportProgress:
    for _ in range(1500):
        progress = await handle.query(ImportWorkflow.progress)
        if predicate(progress):
            return progress
        await asyncio.sleep(0.02)
    raise AssertionError(f"the import never got there; last: {progress}")


async def test_a_marketplace_outage_mid_import_loses_nothing_and_doubles_nothing(backlog: Backlog) -> None:
    stack, shop = backlog.stack, backlog.shop
    start = datetime(2025, 4, 1, tzinfo=UTC)
    ids = backdated(shop, 40, start)
    request = ImportRequest(connection=CONNECTION, since=start, until=start + timedelta(days=1), page_size=1)
    handle = await start_import(
        stack.client, ImportInput(request=request, pages_per_run=10), task_queue=stack.settings.temporal_task_queue
    )
    await wait_for_progress(handle, lambda p: p.pages >= 5)
    shop.outage(503)
    try:
        failing = await wait_for_progress(handle, lambda p: p.last_error is not None)
    finally:
        shop.end_outage()
    assert not failing.done and failing.seen < len(ids)
    assert failing.last_error is not None and "HTTP 503" in failing.last_error
    summary = await asyncio.wait_for(handle.result(), timeout=60)
    assert (summary.seen, summary.handed_off, summary.already_known, summary.refused) == (len(ids), len(ids), 0, 0)
    assert summary.last_error is None
    # It continued as new on the way (every 10 pages), carrying its progress.
    assert (await stack.client.get_workflow_handle(handle.id).describe()).run_id != handle.first_execution_run_id
    await all_dispatched(stack, ids)
    assert set(vtex_orders_per_order(stack, ids).values()) == {1}


async def test_an_interrupted_watch_leaves_the_import_running_and_a_terminated_one_exits_1(
    backlog: Backlog, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["7001", "7002"]
    handle = import_handle(ImportRequest(connection=CONNECTION, order_ids=words), backlog.stack)
    backlog.shop.outage(503)  # the import cannot end meanwhile
    try:
        watching = asyncio.create_task(cli_import(backlog, *words))
        await asyncio.sleep(1.0)
        watching.cancel()  # what Ctrl-C does to the command's main task
        with pytest.raises(asyncio.CancelledError):
            await watching
        assert f"goes on. Watch it again with: connector import --connection {CONNECTION} -- 7001 7002" in (
            capsys.readouterr().err
        )
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        # The same command attaches to the running import; terminated, it exits 1.
        asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(handle.terminate("test over")))
        assert await cli_import(backlog, *words) == 1
        failed = f"connector import: the import {handle.id} did not finish: it was terminated\n"
        assert capsys.readouterr() == ("", failed)
    finally:
        backlog.shop.end_outage()


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--since", "2026-11-01T00:00:00"], "--since 2026-11-01T00:00:00 has no UTC offset"),
        (["--since", "last tuesday"], "--since 'last tuesday' is not an ISO 8601 date-time"),
        (["--since", "2026-11-01", "--until", "2026-11-01T12:00"], "--until 2026-11-01T12:00 has no UTC offset"),
        (["1001", "--since", "2026-11-01"], "not both"),
        ([], "give marketplace order ids, or --since"),
        (["--until", "2026-11-01"], "--until needs --since"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "--until is before --since"),
        (["--since", "2026-11-01", "--page-size", "101"], "the page size must be from 1 to 100"),
        (["1001", "--connection", "nowhere"], "no connection 'nowhere' is configured (configured: backlog)"),
    ],
)
async def test_argument_errors_are_one_sentence_and_exit_2(
    backlog: Backlog, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    assert await cli_import(backlog, *words) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("connector import: ") and message in err and err.count("\n") == 1


async def test_the_range_is_normalized_and_a_date_alone_is_midnight_utc(backlog: Backlog) -> None:
    invocation = cli.parse(["import", "--since", "2026-11-01"])
    assert isinstance(invocation, cli.Invocation)
    request = import_request(backlog.settings, invocation.args)
    assert request.since == datetime(2026, 11, 1, tzinfo=UTC)
    same = ImportRequest(connection=CONNECTION, since=datetime.fromisoformat("2026-10-31T21:00:00-03:00"))
    assert import_workflow_id(request) == import_workflow_id(same)
    assert import_workflow_id(request).startswith(f"import:{CONNECTION}:")
    other = ImportRequest(connection=CONNECTION, since=request.since, until=datetime(2026, 11, 2, tzinfo=UTC))
    assert import_workflow_id(other) != import_workflow_id(request)
    ids = ImportRequest(connection=CONNECTION, order_ids=["2", "1", "2"])
    assert ids.order_ids == ["2", "1"]
    assert import_workflow_id(ids) == import_workflow_id(ImportRequest(connection=CONNECTION, order_ids=["1", "2"]))


async def test_the_command_is_listed_and_refuses_garbage_without_a_traceback(tmp_path: Path) -> None:
    assert "import" in cli.command_names()
    code, out, err = await connector("import", "--since", "yesterday", env={}, cwd=tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith("connector import: --since 'yesterday' is not an ISO 8601") and err.count("\n") == 1
