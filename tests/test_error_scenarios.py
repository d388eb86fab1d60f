"""VTEX's error scenarios end to end on a real dev server, driven by the VTEX sandbox's fault injection."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest_asyncio
from sandboxes.vtex import FaultRule

from connector.embedded import Sandboxes
from connector.models import MarketplaceNotification, OrderStatus
from connector.reprocess import reprocess_matching
from connector.stack import Stack
from connector.starter import hand_off_order
from connector.store.models import LogStatus
from tests.helpers import fmt007, wait_for_state

CONNECTION = "reference"
PLACE = "/api/fulfillment/pvt/orders"
SIMULATION = "/api/checkout/pub/orderForms/simulation"


@pytest_asyncio.fixture
async def box(stack: Stack) -> AsyncIterator[Sandboxes]:
    assert stack.sandboxes is not None
    yield stack.sandboxes
    stack.sandboxes.vtex.clear_faults()


def placements(box: Sandboxes, order_id: str) -> list[int]:
    return [
        r.status
        for r in box.vtex.requests
        if r.method == "POST" and r.path == PLACE and (r.body or {}).get("marketplaceOrderId") == order_id
    ]


def vtex_orders(box: Sandboxes, order_id: str) -> int:
    return len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id])


async def start(
    stack: Stack,
    box: Sandboxes,
    *items: tuple[str, int],
    rate: float | None = None,
    unit_prices: dict[str, int] | None = None,
) -> str:
    order = box.marketplace.new_order(items=list(items), unit_prices=unit_prices)
    connection = dataclasses.replace(stack.connections[CONNECTION], price_divergence_allowance_rate=rate)
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=connection,
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    return str(order["id"])


async def test_price_divergence_not_allowed_parks_with_both_prices(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(fmt007(10990, 9990))
    order_id = await start(stack, box, ("1", 1))
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PARKED)
    assert state.error_code == "FMT007"
    assert state.parked_reason is not None
    assert "109.90" in state.parked_reason and "99.90" in state.parked_reason
    assert "PRICE_DIVERGENCE_ALLOWANCE_RATE" in state.parked_reason
    assert vtex_orders(box, order_id) == 0


async def test_price_divergence_within_the_allowance_is_placed_for_manual_approval(
    stack: Stack, box: Sandboxes
) -> None:
    box.vtex.add_fault(fmt007(5490, 5490 - 100))  # 1.9% off
    order_id = await start(stack, box, ("1", 1), rate=0.05)
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    bodies = [
        r.body for r in box.vtex.requests if r.path == PLACE and (r.body or {}).get("marketplaceOrderId") == order_id
    ]
    assert [b["isCreatedAsync"] for b in bodies] == [False, True]
    assert vtex_orders(box, order_id) == 1


async def test_divergent_item_prices_wait_for_the_sellers_approval(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("2", 1), rate=0.05, unit_prices={"2": 29990 + 500})
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PENDING_APPROVAL)
    assert state.vtex_order_id is not None
    placed = box.vtex.orders[state.vtex_order_id]
    assert placed.status == "waiting-for-manual-authorization" and placed.is_created_async
    placed.status = "waiting-ffmt-authorization"  # the seller approves the price in VTEX's admin
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)


async def test_divergent_item_prices_beyond_the_allowance_are_reported_per_sku(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("2", 1), rate=0.01, unit_prices={"2": 24990})
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PARKED)
    assert state.parked_reason is not None and "SKU 2 at 249.90" in state.parked_reason
    assert "299.90" in state.parked_reason


async def test_out_of_stock_then_success_on_reprocess(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(
        FaultRule(
            method="POST",
            path_contains=PLACE,
            status=400,
            code="ORD027",
            message="Item 3 not found or unavailable",
        )
    )
    order_id = await start(stack, box, ("3", 1))
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert [e.code for e in state.timeline if e.step == "reprocessing"] == ["ORD027"]
    assert placements(box, order_id) == [400, 200]
    assert state.error_code is None


async def test_out_of_stock_order_canceled_in_the_marketplace_leaves_the_queue(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(
        FaultRule(
            method="POST",
            path_contains=PLACE,
            status=400,
            code="ORD027",
            times=-1,
            message="Item 3 not found or unavailable",
        )
    )
    order_id = await start(stack, box, ("3", 1))
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.REPROCESSING)
    box.marketplace.orders[order_id]["status"] = "cancelled"
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.CANCELED)
    assert "Q" in [e.code for e in state.timeline]
    assert vtex_orders(box, order_id) == 0
    assert stack.store is not None
    logs = await stack.store.logs(account="sandbox", day=datetime.now(UTC).date(), marketplace_order_id=order_id)
    assert any(m.code == "Q" and m.status is LogStatus.ERROR for m in logs)


async def test_ten_failed_attempts_dead_letter_the_order_then_bulk_reprocess(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(
        FaultRule(
            method="POST",
            path_contains=PLACE,
            status=400,
            code="ORD027",
            times=-1,
            message="Item 1 not found or unavailable",
        )
    )
    order_id = await start(stack, box, ("1", 1))
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DEAD_LETTERED, within=60
    )
    assert state.reprocess_attempts == 10
    assert len(placements(box, order_id)) == 10
    box.vtex.clear_faults()
    for _ in range(100):  # visibility is eventually consistent
        signaled = await reprocess_matching(
            stack.client, status="dead-lettered", code="ORD027", connection=CONNECTION, reason="stock fixed"
        )
        if any(order_id in workflow_id for workflow_id in signaled):
            break
        await asyncio.sleep(0.1)
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    assert vtex_orders(box, order_id) == 1


async def test_rate_limit_waits_for_retry_after(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(FaultRule(method="POST", path_contains=SIMULATION, status=429, retry_after=2))
    order_id = await start(stack, box, ("8", 1))
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    simulations = [r for r in box.vtex.requests if r.path == SIMULATION]
    limited = next(i for i, r in enumerate(simulations) if r.status == 429)
    assert simulations[limited + 1].received_at - simulations[limited].received_at >= 2.0


async def test_vtex_timeouts_are_retried(stack: Stack, box: Sandboxes) -> None:
    # The connector's VTEX timeout is 1.5 s in tests: a 3 s answer is a timeout.
    box.vtex.add_fault(FaultRule(method="POST", path_contains=SIMULATION, status=200, delay_seconds=3))
    order_id = await start(stack, box, ("1", 1))
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.error_code is None and vtex_orders(box, order_id) == 1


async def test_the_logs_endpoint_answers_vtex_contract_for_the_day(stack: Stack, box: Sandboxes) -> None:
    order_id = await start(stack, box, ("1", 1))
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    today = datetime.now(UTC).date().isoformat()
    vtex_pair = {"X-VTEX-API-AppKey": box.vtex.app_key, "X-VTEX-API-AppToken": box.vtex.app_token}
    messages: list[dict[str, str]] = []
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=vtex_pair) as http:
        page, more = 0, True
        while more:  # the whole session's day, page by page
            page += 1
            everything = await http.get(
                "/sandbox/logs", params={"DateAt": today, "status": "all", "page": page, "pageSize": 1000}
            )
            assert everything.status_code == 200
            messages += everything.json()["Messages"]
            more = everything.json()["Paging"]["hasMore"]
        errors = await http.get("/sandbox/logs", params={"DateAt": today, "status": "error"})
        missing_date = await http.get("/sandbox/logs", params={"status": "all"})
    mine = [m for m in messages if m.get("MarketplaceOrderId") == order_id]
    fields = {
        "id",
        "Operation",
        "Direction",
        "ContentSource",
        "ContentTransalted",
        "ContentDestination",
        "BusinessMessage",
        "Status",
    }
    assert mine and all(fields <= m.keys() for m in mine)
    assert [m["Code"] for m in mine] == ["X1", "X2", "A", "X3"]
    assert all(m["Status"] == "Success" for m in mine)
    assert "Ana" not in str(mine) and "12345678909" not in str(mine)  # no personal data in the log
    assert {m["Status"] for m in errors.json()["Messages"]} <= {"Error"}
    assert missing_date.status_code == 400
