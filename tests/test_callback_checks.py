"""VTEX callbacks are checked with VTEX before they move an order; tokens rotate and never reach a log."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from connector.embedded import Sandboxes
from connector.intake.callbacks import UNVERIFIED_CALLBACK_CODE
from connector.models import OrderState, OrderStatus, order_workflow_id
from connector.stack import Stack
from connector.store.models import LogStatus
from tests.conftest import embedded_settings
from tests.helpers import dispatched_in_oms, seller, wait_for_state
from workflows.order import OrderLifecycle

CONNECTION = "reference"
ISSUED = datetime(2026, 11, 28, 10, tzinfo=UTC)


async def signals_of(stack: Stack, state: OrderState) -> list[str]:
    handle = stack.client.get_workflow_handle(order_workflow_id(CONNECTION, state.marketplace_order_id))
    history = await handle.fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def alerts(stack: Stack, state: OrderState) -> list[str]:
    assert stack.store is not None
    lines = await stack.store.logs(
        account="sandbox", day=datetime.now(UTC).date(), marketplace_order_id=state.marketplace_order_id
    )
    return [m.business_message for m in lines if m.code == UNVERIFIED_CALLBACK_CODE and m.status is LogStatus.ALERT]


async def test_a_forged_cancel_callback_does_not_reach_the_marketplace(stack: Stack, box: Sandboxes) -> None:
    state = await dispatched_in_oms(stack, box)
    endpoint = stack.connections[CONNECTION].services_endpoint
    async with httpx.AsyncClient() as http:
        forged = await http.post(f"{endpoint}/pvt/orders/{state.vtex_order_id}/cancel", json={"reason": "forged"})
    assert forged.status_code == 409 and "not confirmed by VTEX" in forged.json()["error"]
    assert "vtex_canceled" not in await signals_of(stack, state)
    marketplace_order = box.marketplace.orders[state.marketplace_order_id]
    assert marketplace_order["status"] == "paid" and marketplace_order["cancellation"] is None
    (alert,) = await alerts(stack, state)
    assert "did not check out with VTEX" in alert and "rotate CALLBACK_TOKEN" in alert
    assert "as 'ready-for-handling', not canceled" in forged.json()["error"]
    handle = stack.client.get_workflow_handle_for(
        OrderLifecycle.run, order_workflow_id(CONNECTION, state.marketplace_order_id)
    )
    assert (await handle.query(OrderLifecycle.status)).status is OrderStatus.DISPATCH_AUTHORIZED


async def test_a_forged_invoice_callback_forwards_nothing(stack: Stack, box: Sandboxes) -> None:
    state = await dispatched_in_oms(stack, box)
    endpoint = stack.connections[CONNECTION].services_endpoint
    body = invoice_notification("NF-FORGED", 100, items=[], tracking="EVIL-1", issued=ISSUED)
    body["trackingUrl"] = "https://phishing.example/track"
    async with httpx.AsyncClient() as http:
        forged = await http.post(f"{endpoint}/pub/orders/{state.vtex_order_id}/invoice", json=body)
    assert forged.status_code == 409 and "no invoice 'NF-FORGED'" in forged.json()["error"]
    assert "vtex_invoice" not in await signals_of(stack, state)
    assert box.marketplace.orders[state.marketplace_order_id]["invoices"] == []
    assert len(await alerts(stack, state)) == 1


async def test_the_marketplace_gets_vtexs_tracking_not_the_callbacks(stack: Stack, box: Sandboxes) -> None:
    state = await dispatched_in_oms(stack, box)
    vtex_id = state.vtex_order_id
    value = int(box.marketplace.orders[state.marketplace_order_id]["total_amount"].replace(".", ""))
    item = {"id": "1", "quantity": 1, "price": value}
    real = invoice_notification("NF-REAL", value, items=[item], tracking="TRK-REAL", issued=ISSUED)
    await seller(box, "POST", f"/api/oms/pvt/orders/{vtex_id}/invoice", real)
    await wait_for_state(
        stack.client, CONNECTION, state.marketplace_order_id, lambda s: s.status is OrderStatus.COMPLETED
    )
    # Someone who knows the URL re-sends the real invoice with their own tracking.
    tampered = {**real, "trackingNumber": "EVIL-2", "trackingUrl": "https://phishing.example/track"}
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{stack.connections[CONNECTION].services_endpoint}/pub/orders/{vtex_id}/invoice", json=tampered
        )
    assert answer.status_code == 200  # the invoice exists; VTEX's copy of it is what moves on
    shipments = box.marketplace.orders[state.marketplace_order_id]["shipments"]
    assert [(s["tracking_number"], s["tracking_url"]) for s in shipments] == [("TRK-REAL", None)]
    (alert,) = await alerts(stack, state)
    assert "differs from VTEX's copy (tracking_number, tracking_url)" in alert


async def test_vtex_unreachable_during_the_check_asks_for_the_callback_again(
    stack: Stack, box: Sandboxes, caplog: pytest.LogCaptureFixture
) -> None:
    state = await dispatched_in_oms(stack, box)
    vtex_id = state.vtex_order_id
    assert vtex_id is not None
    box.vtex.add_fault(FaultRule(method="GET", path_contains=f"/api/oms/pvt/orders/{vtex_id}", status=503, times=-1))
    endpoint = stack.connections[CONNECTION].services_endpoint
    token = endpoint.rsplit("/", 1)[1]
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{endpoint}/pvt/orders/{vtex_id}/cancel", json={"reason": "r"})
            wrong = await http.post(f"{endpoint[:-4]}xxxx/pvt/orders/{vtex_id}/cancel", json={"reason": "r"})
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert wrong.status_code == 404
    assert "vtex_canceled" not in await signals_of(stack, state)
    assert any("[token]" in record.getMessage() for record in caplog.records)  # the failure was logged...
    # ...without the token (httpx's own lines are this test's client, which `connector` keeps at WARNING).
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not [r for r in ours if token in r.getMessage()]


async def test_a_rotated_callback_token_still_opens_the_door(
    temporal_env: WorkflowEnvironment, tmp_path: object
) -> None:
    new, old = f"new-{uuid.uuid4().hex}", f"old-{uuid.uuid4().hex}"
    settings = embedded_settings(
        callback_token=SecretStr(f"{new},{old}"), store_url="sqlite:///:memory:", data_dir=tmp_path
    )
    async with Stack(settings, temporal_env.client) as stack:
        connection = stack.connections[CONNECTION]
        assert connection.services_endpoint.endswith(f"/{new}")  # new orders get the new token
        base = connection.services_endpoint.rsplit("/", 1)[0]
        async with httpx.AsyncClient() as http:
            answers = {
                token: await http.post(f"{base}/{token}/pvt/orders/unknown-order/cancel", json={})
                for token in (new, old, f"gone-{uuid.uuid4().hex}")
            }
    # Both tokens get past the door (to "unknown order"); any other gets the door's own 404.
    assert [answers[t].json()["error"] for t in (new, old)] == ["unknown order 'unknown-order'"] * 2
    assert [a.json()["error"] for a in answers.values()][2] == "not found"
