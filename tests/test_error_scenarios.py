"""VTEX's error scenarios end to end on a real dev server, driven by the VTEX sandbox's fault injection."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import httpx
import pytest
from sandboxes.vtex import FaultRule, ProcessingFault

from connector.embedded import Sandboxes
from connector.models import MarketplaceNotification, OrderStatus, VtexFlow
from connector.reprocess import reprocess_matching
from connector.stack import Stack
from connector.starter import hand_off_order
from connector.store.models import LogStatus
from tests.helpers import (
    ENQUEUE,
    charge_freight,
    clear_vtex_faults,
    fmt007,
    sell_out_while_vtex_processes,
    wait_for_state,
)
from tests.helpers import placements as requests_placing

CONNECTION = "reference"
PLACE = "/api/fulfillment/pvt/orders"
SIMULATION = "/api/checkout/pub/orderForms/simulation"
# Connector bug (workflows/order.py, _step and _await_channel_result): VTEX's asynchronous refusal is the
# look-up's failure, recorded under the step "place"; the next attempt's enqueue, also "place", succeeds and
# resets the attempt count. The count never passes 1: the backoff never grows and the order is never
# dead-lettered, however often VTEX refuses it (the eleventh attempt here goes through instead).
# What the 429 and timeout scenarios slow down: the simulation (fulfillment; its placement's own faults are
# tested above), the Channel Order API's enqueue (order-integration).
SLOWED = {VtexFlow.FULFILLMENT: SIMULATION, VtexFlow.ORDER_INTEGRATION: ENQUEUE}


def placements(box: Sandboxes, order_id: str, flow: VtexFlow = VtexFlow.FULFILLMENT) -> list[int]:
    return [r.status for r in requests_placing(box, order_id, flow)]


def vtex_orders(box: Sandboxes, order_id: str) -> int:
    return len([o for o in box.vtex.orders.values() if o.marketplace_order_id == order_id])


async def start(
    stack: Stack,
    box: Sandboxes,
    *items: tuple[str, int],
    rate: float | None = None,
    unit_prices: dict[str, int] | None = None,
    freight: int | None = None,
    pickup: bool = False,
) -> str:
    order = box.marketplace.new_order(items=list(items), unit_prices=unit_prices, pickup=pickup)
    if freight is not None:
        charge_freight(box, str(order["id"]), freight)
    connection = dataclasses.replace(stack.connections[CONNECTION], price_divergence_allowance_rate=rate)
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=connection,
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    return str(order["id"])


async def test_price_divergence_not_allowed_parks_with_both_prices(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    if flow is VtexFlow.FULFILLMENT:
        box.vtex.add_fault(fmt007(10990, 9990))
        order_id = await start(stack, box, ("1", 1))
    else:
        # The marketplace charged 55.00 of freight: 109.90 where VTEX's prices make 54.90. The order carries
        # no allowance rate and no Order Authorization rule covers it: VTEX's rules refuse it (EOI003).
        order_id = await start(stack, box, ("1", 1), freight=6000)
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PARKED)
    assert state.error_code == ("FMT007" if flow is VtexFlow.FULFILLMENT else "EOI003")
    assert state.parked_reason is not None
    desired = "99.90" if flow is VtexFlow.FULFILLMENT else "54.90"
    assert "109.90" in state.parked_reason and desired in state.parked_reason
    assert "PRICE_DIVERGENCE_ALLOWANCE_RATE" in state.parked_reason
    assert vtex_orders(box, order_id) == 0
    if flow is VtexFlow.ORDER_INTEGRATION:
        assert ["priceDivergenceAllowanceRate" in r.body for r in requests_placing(box, order_id, flow)] == [False]


async def test_price_divergence_within_the_allowance_is_placed_for_manual_approval(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    if flow is VtexFlow.FULFILLMENT:
        box.vtex.add_fault(fmt007(5490, 5490 - 100))  # 1.9% off
        order_id = await start(stack, box, ("1", 1), rate=0.05)
        await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
        bodies = [
            r.body
            for r in box.vtex.requests
            if r.path == PLACE and (r.body or {}).get("marketplaceOrderId") == order_id
        ]
        assert [b["isCreatedAsync"] for b in bodies] == [False, True]
    else:
        # 1.8% off (4.00 of freight where VTEX's SLA costs 5.00), within the allowance the order carries:
        # VTEX takes the order as it is; no manual approval.
        order_id = await start(stack, box, ("1", 1), rate=0.05, freight=400)
        state = await wait_for_state(
            stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        assert [r.body["priceDivergenceAllowanceRate"] for r in requests_placing(box, order_id, flow)] == [0.05]
        assert state.vtex_order_id is not None
        assert box.vtex.orders[state.vtex_order_id].status == "ready-for-handling"
        assert "B" not in [e.code for e in state.timeline]
    assert vtex_orders(box, order_id) == 1


async def test_divergent_item_prices_wait_for_the_sellers_approval(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, ("2", 1), rate=0.05, unit_prices={"2": 29990 + 500})
    if flow is VtexFlow.ORDER_INTEGRATION:
        # Within the allowance the order carries (1.7%), VTEX takes it as it is: nothing waits. (Beyond it,
        # VTEX's Order Authorization rules make it wait: tests/test_order_lifecycle.py, divergent_order.)
        state = await wait_for_state(
            stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        assert state.vtex_order_id is not None
        assert box.vtex.orders[state.vtex_order_id].status == "ready-for-handling"
        assert [r.body["priceDivergenceAllowanceRate"] for r in requests_placing(box, order_id, flow)] == [0.05]
        return
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PENDING_APPROVAL)
    assert state.vtex_order_id is not None
    placed = box.vtex.orders[state.vtex_order_id]
    assert placed.status == "waiting-for-manual-authorization" and placed.is_created_async
    placed.status = "waiting-ffmt-authorization"  # the seller approves the price in VTEX's admin
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)


async def test_divergent_item_prices_beyond_the_allowance_are_reported_per_sku(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    order_id = await start(stack, box, ("2", 1), rate=0.01, unit_prices={"2": 24990})
    state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.PARKED)
    assert state.parked_reason is not None and "SKU 2 at 249.90" in state.parked_reason
    assert "299.90" in state.parked_reason
    assert placements(box, order_id, flow) == []  # the connector's own check, before VTEX sees the order


async def test_out_of_stock_then_success_on_reprocess(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    if flow is VtexFlow.FULFILLMENT:
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
    else:
        # The stock runs out while VTEX processes the order: VTEX's own rules refuse it (EOI002).
        box.vtex.order_integration.delay_seconds = 0.3
        order_id = await start(stack, box, ("3", 1))
        await sell_out_while_vtex_processes(box, order_id, "3", restock=True)
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    refusal, first_answer = ("ORD027", 400) if flow is VtexFlow.FULFILLMENT else ("EOI002", 200)
    assert [e.code for e in state.timeline if e.step == "reprocessing"] == [refusal]
    assert placements(box, order_id, flow) == [first_answer, 200]
    assert state.error_code is None


# VTEX's refusal of a carrier or a pickup point at placement (guide scenarios 3-4). In the Channel Order flow
# it is a processing result, EOI002: the sandbox's rules give it only for a store without the SLA or the
# pickup point, which the connector's own validation finds first (the order is then never sent).
REFUSALS = {
    "carrier": ("FMT003", "There is no SLA for item 1(1)"),
    "pickup": ("FMT010", "The selected SLA for item 1(1) is not available"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_a_carrier_or_pickup_refusal_is_reprocessed_until_vtex_takes_the_order(
    stack: Stack, box: Sandboxes, flow: VtexFlow, refusal: str
) -> None:
    code, message = REFUSALS[refusal]
    if flow is VtexFlow.FULFILLMENT:
        box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE, status=400, code=code, message=message))
    else:
        box.vtex.add_processing_fault(ProcessingFault(code="EOI002"))
        code = "EOI002"
    order_id = await start(stack, box, ("1", 1), pickup=refusal == "pickup")
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert [e.code for e in state.timeline if e.step == "reprocessing"] == [code]
    assert placements(box, order_id, flow) == [400 if flow is VtexFlow.FULFILLMENT else 200, 200]
    assert state.vtex_order_id is not None
    [logistics] = box.vtex.orders[state.vtex_order_id].body["shippingData"]["logisticsInfo"]
    assert logistics["selectedSla"] == ("Retirada Centro" if refusal == "pickup" else "Normal")


async def test_out_of_stock_order_canceled_in_the_marketplace_leaves_the_queue(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    in_stock = box.vtex.stock["3"]
    try:
        if flow is VtexFlow.FULFILLMENT:
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
        else:
            # VTEX refuses it for stock (EOI002); the connector's own checks then see no stock either.
            box.vtex.order_integration.delay_seconds = 0.3
            order_id = await start(stack, box, ("3", 1))
            await sell_out_while_vtex_processes(box, order_id, "3", restock=False)
        await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.REPROCESSING)
        box.marketplace.orders[order_id]["status"] = "cancelled"
        state = await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.CANCELED)
    finally:
        box.vtex.stock["3"] = in_stock
    assert "Q" in [e.code for e in state.timeline]
    assert vtex_orders(box, order_id) == 0
    assert stack.store is not None
    logs = await stack.store.logs(account="sandbox", day=datetime.now(UTC).date(), marketplace_order_id=order_id)
    assert any(m.code == "Q" and m.status is LogStatus.ERROR for m in logs)


async def test_ten_failed_attempts_dead_letter_the_order_then_bulk_reprocess(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
    if flow is VtexFlow.FULFILLMENT:
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
    else:
        # VTEX's processing refuses every attempt for stock, each time after the connector's checks passed.
        box.vtex.add_processing_fault(ProcessingFault(code="EOI002", times=10))
    refusal = "ORD027" if flow is VtexFlow.FULFILLMENT else "EOI002"
    order_id = await start(stack, box, ("1", 1))
    state = await wait_for_state(
        stack.client,
        CONNECTION,
        order_id,
        lambda s: s.status in (OrderStatus.DEAD_LETTERED, OrderStatus.DISPATCH_AUTHORIZED),
        within=60,
    )
    assert state.status is OrderStatus.DEAD_LETTERED
    assert state.reprocess_attempts == 10
    assert len(placements(box, order_id, flow)) == 10
    clear_vtex_faults(box)
    for _ in range(100):  # visibility is eventually consistent
        signaled = await reprocess_matching(
            stack.client, status="dead-lettered", code=refusal, connection=CONNECTION, reason="stock fixed"
        )
        if any(order_id in workflow_id for workflow_id in signaled):
            break
        await asyncio.sleep(0.1)
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    assert vtex_orders(box, order_id) == 1


async def test_rate_limit_waits_for_retry_after(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    box.vtex.add_fault(FaultRule(method="POST", path_contains=SLOWED[flow], status=429, retry_after=2))
    order_id = await start(stack, box, ("8", 1))
    await wait_for_state(stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    if flow is VtexFlow.FULFILLMENT:
        calls = [r for r in box.vtex.requests if r.path == SIMULATION]
    else:
        calls = requests_placing(box, order_id, flow)
    limited = next(i for i, r in enumerate(calls) if r.status == 429)
    assert calls[limited + 1].received_at - calls[limited].received_at >= 2.0


async def test_vtex_timeouts_are_retried(stack: Stack, box: Sandboxes, flow: VtexFlow) -> None:
    # The connector's VTEX timeout is 1.5 s in tests: a 3 s answer is a timeout. A Channel Order request
    # that times out reached VTEX, which enqueued it: the order is sent again, and still made once.
    box.vtex.add_fault(
        FaultRule(
            method="POST",
            path_contains=SLOWED[flow],
            status=200,
            delay_seconds=3,
            after_effect=flow is VtexFlow.ORDER_INTEGRATION,
        )
    )
    order_id = await start(stack, box, ("1", 1))
    state = await wait_for_state(
        stack.client, CONNECTION, order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.error_code is None and vtex_orders(box, order_id) == 1


async def test_the_logs_endpoint_answers_vtex_contract_for_the_day(
    stack: Stack, box: Sandboxes, flow: VtexFlow
) -> None:
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
    if flow is VtexFlow.FULFILLMENT:
        assert [m["Code"] for m in mine] == ["X1", "X2", "A", "X3"]
        assert all(m["Status"] == "Success" for m in mine)
    else:
        # Sent to the Channel Order API (pending until VTEX reports), then integrated and approved.
        assert [(m["Code"], m["Status"]) for m in mine] == [
            ("X1", "Success"),
            ("X2", "Success"),
            ("X19", "Pending"),
            ("A", "Success"),
            ("X3", "Success"),
        ]
    assert "Ana" not in str(mine) and "12345678909" not in str(mine)  # no personal data in the log
    assert {m["Status"] for m in errors.json()["Messages"]} <= {"Error"}
    assert missing_date.status_code == 400
