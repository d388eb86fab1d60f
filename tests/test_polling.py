"""The poller on a real dev server, with two connections side by side (each its own marketplace)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sandboxes.marketplace import MarketplaceSandbox
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from connector.connections import connection_configs
from connector.models import OrderStatus, PollerSettings, PollerState, order_workflow_id, poller_workflow_id
from connector.poller_start import start_pollers
from connector.settings import SettingsError
from connector.stack import Stack
from tests.conftest import embedded_settings
from tests.helpers import wait_for_state, wait_until_dispatched
from workflows.poller import PollerWorkflow

POLL_INTERVAL = 0.3
WEBHOOK_GRACE = 1.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def polled(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("polled")
    connections = data / "connections.json"
    connections.write_text(
        json.dumps(
            {
                "connections": [
                    {"name": "alpha", "affiliate_id": "MKA"},
                    {"name": "beta", "affiliate_id": "MKB", "sales_channel": "2"},
                ]
            }
        )
    )
    settings = embedded_settings(
        store_url=f"sqlite:///{data / 'connector.db'}",
        data_dir=data,
        connections_file=connections,
        poll_interval_seconds=POLL_INTERVAL,
        poll_overlap_seconds=1.0,
        poll_webhook_grace_seconds=WEBHOOK_GRACE,
    )
    async with Stack(settings, temporal_env.client, pollers=True) as stack:
        yield stack


def marketplace(stack: Stack, connection: str) -> MarketplaceSandbox:
    assert stack.sandboxes is not None
    return stack.sandboxes.marketplaces[connection]


def vtex_orders(stack: Stack, marketplace_order_id: str) -> dict[str, dict[str, Any]]:
    assert stack.sandboxes is not None
    return {
        vtex_id: order.body
        for vtex_id, order in stack.sandboxes.vtex.orders.items()
        if order.marketplace_order_id == marketplace_order_id
    }


async def poller_state(stack: Stack, connection: str) -> PollerState:
    handle = stack.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id(connection))
    return await handle.query(PollerWorkflow.status)


async def test_a_lost_notification_is_picked_up_by_the_poller(polled: Stack) -> None:
    order = marketplace(polled, "alpha").new_order(items=[("1", 1)])  # no webhook at all
    state = await wait_for_state(
        polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.vtex_order_id == f"MKA-{order['id']}{suffix_of(polled)}"


async def test_notification_poll_and_duplicate_deliveries_make_one_vtex_order(polled: Stack) -> None:
    alpha = marketplace(polled, "alpha")
    order = alpha.new_order(items=[("3", 1)])
    alpha.notify(order["id"])
    alpha.notify(order["id"], times=3)
    await wait_for_state(polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    await wait_for_state(polled.client, "alpha", order["id"], lambda s: s.notifications_received >= 2)
    assert list(vtex_orders(polled, order["id"])) == [f"MKA-{order['id']}{suffix_of(polled)}"]
    assert polled.sandboxes is not None
    placements = [
        r
        for r in polled.sandboxes.vtex.requests
        if r.path == "/api/fulfillment/pvt/orders" and (r.body or {}).get("marketplaceOrderId") == order["id"]
    ]
    assert len(placements) == 1


async def wait_for_failures(stack: Stack, connection: str, count: int) -> PollerState:
    for _ in range(200):
        state = await poller_state(stack, connection)
        if state.failures_in_a_row >= count:
            return state
        await asyncio.sleep(POLL_INTERVAL / 2)
    raise AssertionError(f"the poller of {connection} never failed {count} times in a row")


async def test_a_marketplace_outage_skips_nothing(polled: Stack) -> None:
    alpha = marketplace(polled, "alpha")
    alpha.outage(503)
    during = [alpha.new_order(items=[("8", 1)]) for _ in range(3)]  # their webhooks are lost too
    first_failure = await wait_for_failures(polled, "alpha", 1)
    later = await wait_for_failures(polled, "alpha", 3)
    assert later.cursor == first_failure.cursor  # a failed poll never moves the cursor
    assert later.last_error is not None
    alpha.end_outage()
    for order in during:
        await wait_for_state(
            polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED, within=60
        )
    recovered = await poller_state(polled, "alpha")
    assert recovered.failures_in_a_row == 0 and recovered.last_error is None
    assert recovered.cursor is not None and (first_failure.cursor is None or recovered.cursor > first_failure.cursor)


async def test_two_connections_run_side_by_side_without_crossing_orders(polled: Stack) -> None:
    alpha, beta = marketplace(polled, "alpha"), marketplace(polled, "beta")
    order_a = alpha.new_order(items=[("1", 2)])
    # The same marketplace order id exists in the other marketplace account, with other items.
    order_b = {**beta.new_order(items=[("2", 1)]), "id": order_a["id"]}
    beta.orders[order_a["id"]] = order_b
    alpha.notify(order_a["id"])
    beta.notify(order_a["id"])
    state_a = await wait_for_state(
        polled.client, "alpha", order_a["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    state_b = await wait_for_state(
        polled.client, "beta", order_a["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    suffix = suffix_of(polled)
    id_a, id_b = f"MKA-{order_a['id']}{suffix}", f"MKB-{order_a['id']}{suffix}"
    assert (state_a.vtex_order_id, state_b.vtex_order_id) == (id_a, id_b)
    placed = vtex_orders(polled, order_a["id"])
    items = {vtex_id: [(i["id"], i["quantity"]) for i in body["items"]] for vtex_id, body in placed.items()}
    assert items == {id_a: [("1", 2)], id_b: [("2", 1)]}
    assert "/vtex/alpha/" in placed[id_a]["marketplaceServicesEndpoint"]
    assert "/vtex/beta/" in placed[id_b]["marketplaceServicesEndpoint"]


def test_connection_files_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "connections.json"
    bad.write_text(json.dumps({"connections": [{"name": "a", "affiliate_id": "TOOLONG"}, {"name": "a"}]}))
    with pytest.raises(SettingsError, match="affiliate_id"):
        connection_configs(embedded_settings(connections_file=bad))


def suffix_of(stack: Stack) -> str:
    """The seller suffix the VTEX sandbox gives OMS ids (VTEX's choice: not always -01)."""
    assert stack.sandboxes is not None
    return stack.sandboxes.vtex.order_id_suffix


async def test_a_poisoned_order_is_quarantined_and_the_poll_moves_on(polled: Stack) -> None:
    alpha = marketplace(polled, "alpha")
    before = alpha.new_order(items=[("1", 1)])
    poisoned = alpha.orders.pop(alpha.new_order(items=[("1", 1)])["id"])
    bad_id = "bad id/with spaces"  # outside the accepted id pattern
    poisoned["id"] = bad_id
    alpha.orders[bad_id] = poisoned
    after = alpha.new_order(items=[("1", 1)])  # no webhooks: only the poller finds them
    for order in (before, after):
        await wait_for_state(polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    assert polled.store is not None
    logs = await polled.store.logs(account="sandbox", day=datetime.now(UTC).date(), connection="alpha")
    quarantined = [m for m in logs if m.code == "X17"]
    assert [m.marketplace_order_id for m in quarantined] == [bad_id]
    assert "bad id/with spaces" in quarantined[0].business_message
    assert (await poller_state(polled, "alpha")).last_error is None


async def test_a_new_poller_starts_at_now_and_imports_no_history(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path_factory.mktemp("history")
    settings = embedded_settings(
        store_url=f"sqlite:///{data / 'connector.db'}",
        data_dir=data,
        connection_name="history",
        poll_interval_seconds=POLL_INTERVAL,
        poll_overlap_seconds=1.0,
        poll_webhook_grace_seconds=WEBHOOK_GRACE,
    )
    async with Stack(settings, temporal_env.client, pollers=True) as stack:
        shop = marketplace(stack, "history")
        old = shop.new_order(items=[("1", 1)])
        old["last_updated"] = "2020-01-01T00:00:00+00:00"  # the account's history, from before the connector
        new = shop.new_order(items=[("1", 1)])
        await wait_for_state(stack.client, "history", new["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
        await asyncio.sleep(POLL_INTERVAL * 3)  # a few more polls
        assert (await poller_state(stack, "history")).handed_off == 1
        assert not vtex_orders(stack, old["id"])
        await stack.client.get_workflow_handle(poller_workflow_id("history")).terminate("test over")


async def extra_notifications(stack: Stack, connection: str, order_id: str) -> int:
    """Marketplace notifications an order's workflow received besides the one it was started with (VTEX's
    callbacks are signals too, but not the poller's)."""
    history = await stack.client.get_workflow_handle(order_workflow_id(connection, order_id)).fetch_history()
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    return signals.count("notify") - 1


async def test_orders_the_webhook_handed_off_are_not_signaled_again_by_the_poller(polled: Stack) -> None:
    """Webhook plus poller for the same 200 orders cost what the webhook alone costs: no extra signal."""
    alpha = marketplace(polled, "alpha")
    # The production default: 200 webhooks at once take longer than the fixture's short grace to arrive.
    await reconfigure(polled, "alpha", webhook_grace=30.0)
    before = await poller_state(polled, "alpha")
    orders = [alpha.new_order(items=[("1", 1)]) for _ in range(200)]
    for order in orders:
        alpha.notify(order["id"])
    await wait_until_dispatched(polled.client, "alpha", (o["id"] for o in orders), within=120)
    # Polls that list all 200 orders, with their workflows' reads recorded or still to come.
    after = before
    for _ in range(100):
        after = await poller_state(polled, "alpha")
        if after.skipped - before.skipped >= len(orders) and after.deferred == 0:
            break
        await asyncio.sleep(POLL_INTERVAL)
    assert after.skipped - before.skipped >= len(orders), after
    assert after.handed_off == before.handed_off, after
    assert [await extra_notifications(polled, "alpha", o["id"]) for o in orders] == [0] * len(orders)
    await reconfigure(polled, "alpha")


async def reconfigure(stack: Stack, name: str, *, webhook_grace: float | None = None) -> PollerState:
    """What a worker start with a changed configuration does; no change: back to the fixture's."""
    connection = stack.connections[name]
    if webhook_grace is not None:
        connection = dataclasses.replace(connection, poll_webhook_grace_seconds=webhook_grace)
    await start_pollers(stack.client, task_queue=stack.settings.temporal_task_queue, connections={name: connection})
    for _ in range(50):
        state = await poller_state(stack, name)
        if state.settings is not None and state.settings.webhook_grace_seconds == connection.poll_webhook_grace_seconds:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the poller of {name} was not reconfigured")


async def test_a_real_change_the_webhook_missed_is_still_handed_off(polled: Stack) -> None:
    alpha = marketplace(polled, "alpha")
    order = alpha.new_order(items=[("1", 1)])
    alpha.notify(order["id"])
    await wait_for_state(polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    alpha.cancel(order["id"])  # its webhook is lost: only the poller sees the new version
    await wait_for_state(polled.client, "alpha", order["id"], lambda s: s.status is OrderStatus.CANCELED, within=30)
    assert await extra_notifications(polled, "alpha", order["id"]) == 1


async def test_new_settings_reach_the_running_poller(polled: Stack) -> None:
    handle = polled.client.get_workflow_handle_for(PollerWorkflow.run, poller_workflow_id("beta"))
    run_before = (await handle.describe()).run_id
    state = await poller_state(polled, "beta")
    assert state.settings == PollerSettings(
        interval_seconds=POLL_INTERVAL,
        overlap_seconds=1.0,
        page_size=100,
        heartbeat_timeout_seconds=30.0,
        webhook_grace_seconds=WEBHOOK_GRACE,
    )
    changed = {
        "beta": dataclasses.replace(
            polled.connections["beta"], poll_interval_seconds=0.5, poll_overlap_seconds=3.0, poll_page_size=20
        )
    }
    # What a worker start with the changed configuration does.
    await start_pollers(polled.client, task_queue=polled.settings.temporal_task_queue, connections=changed)
    for _ in range(50):
        state = await poller_state(polled, "beta")
        if state.settings is not None and state.settings.page_size == 20:
            break
        await asyncio.sleep(0.1)
    assert state.settings == PollerSettings(
        interval_seconds=0.5,
        overlap_seconds=3.0,
        page_size=20,
        heartbeat_timeout_seconds=30.0,
        webhook_grace_seconds=WEBHOOK_GRACE,
    )
    assert (await handle.describe()).run_id == run_before  # not terminated, not restarted
    beta = marketplace(polled, "beta")
    orders = [beta.new_order(items=[("1", 1)]) for _ in range(45)]  # no webhooks: the poller finds them
    most_pages = 0
    for _ in range(100):
        state = await poller_state(polled, "beta")
        most_pages = max(most_pages, state.walk_pages)
        if state.walk_listed >= len(orders):
            break
        await asyncio.sleep(0.1)
    assert most_pages >= 3  # 45 changes or more, 20 a page
    await wait_until_dispatched(polled.client, "beta", (o["id"] for o in orders))
    await start_pollers(polled.client, task_queue=polled.settings.temporal_task_queue, connections=polled.connections)
