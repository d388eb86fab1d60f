"""The webhook intake: signatures, delivery dedup, clear 4xx for bad input, never a 500, no stray workflows."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from connector.intake.handoff_queue import HandOffQueue
from connector.logbook import Logbook
from connector.models import MarketplaceNotification, OrderStatus, order_workflow_id
from connector.stack import Stack
from connector.store.base import open_store
from tests.helpers import signed_headers, signed_webhook, wait_for_state

CONNECTION = "reference"


def notification(order_id: str) -> dict[str, Any]:
    return {"topic": "orders", "resource": f"/orders/{order_id}", "order_id": order_id}


async def test_bad_requests_get_a_4xx_with_a_reason(stack: Stack) -> None:
    webhook = stack.webhook_url(CONNECTION)
    secret = stack.connections[CONNECTION].webhook_secret
    async with httpx.AsyncClient() as http:
        unknown = await http.post(stack.webhook_url("nobody"), json=notification("1"))
        unsigned = await http.post(webhook, json=notification("1"))
        body, headers = signed_webhook("some-other-secret-value", notification("1"))
        forged = await http.post(webhook, content=body, headers=headers)
        body, headers = signed_webhook(secret, notification("1"))
        tampered = await http.post(webhook, content=body.replace(b'"1"', b'"2"'), headers=headers)
        not_json = await http.post(webhook, content=b"{nope", headers=signed_headers(secret, b"{nope"))
        body, headers = signed_webhook(secret, {"topic": "orders"})
        no_id = await http.post(webhook, content=body, headers=headers)
        body, headers = signed_webhook(secret, {"topic": "questions", "order_id": "1"})
        wrong_topic = await http.post(webhook, content=body, headers=headers)
        huge = await http.post(webhook, content=b"x" * 70_000)
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
    for refused in (unsigned, forged, tampered):
        assert refused.status_code == 401 and "signature" in refused.json()["error"].lower()
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    assert no_id.status_code == 400 and "order_id" in no_id.json()["error"]
    assert wrong_topic.status_code == 400 and "topic" in wrong_topic.json()["error"]
    assert huge.status_code == 413


async def test_a_redelivered_webhook_is_acknowledged_without_a_second_signal(stack: Stack) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    body, headers = signed_webhook(
        stack.connections[CONNECTION].webhook_secret, notification(order["id"]), delivery_id=str(uuid.uuid4())
    )
    async with httpx.AsyncClient() as http:
        answers = await asyncio.gather(
            *(http.post(stack.webhook_url(CONNECTION), content=body, headers=headers) for _ in range(3))
        )
    assert sorted(a.status_code for a in answers) == [200, 200, 202]
    assert {a.json()["status"] for a in answers if a.status_code == 200} == {"duplicate-delivery"}
    state = await wait_for_state(
        stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.notifications_received == 1


async def test_the_sandbox_marketplace_webhooks_pass_the_check(stack: Stack) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("2", 1)])
    stack.sandboxes.marketplace.notify(order["id"], times=3)  # a marketplace duplicating one delivery
    state = await wait_for_state(
        stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.notifications_received == 1


# -- fuzzing: whatever arrives, the answer is a 4xx and no workflow starts ------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
BAD_ORDER_IDS = (
    st.none()
    | st.booleans()
    | st.just("")
    | st.text(min_size=101)
    | st.just("a b")
    | st.just("../x")
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
MALFORMED_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    BAD_ORDER_IDS.map(lambda order_id: json.dumps({"topic": "orders", "order_id": order_id}).encode()),
    st.text(max_size=20)
    .filter(lambda t: t != "orders")
    .map(lambda topic: json.dumps({"topic": topic, "order_id": "123"}).encode()),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["X-Reference-Signature", "X-Reference-Delivery", "X-Reference-Timestamp", "Content-Type", "X-Other"]
    ),
    # Printable ASCII without edge spaces: what an HTTP client can put in a header at all.
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(str.strip),
    max_size=4,
)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=MALFORMED_BODIES, headers=HEADERS, sign_it=st.booleans())
async def test_malformed_webhooks_only_get_4xx(
    stack: Stack, body: bytes, headers: dict[str, str], sign_it: bool
) -> None:
    if sign_it:  # a correctly signed malformed body must be refused for its content
        headers = {**headers, **signed_headers(stack.connections[CONNECTION].webhook_secret, body)}
    async with httpx.AsyncClient() as http:
        response = await http.post(stack.webhook_url(CONNECTION), content=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, body, headers)
    assert "error" in response.json()


async def test_fuzzing_started_no_workflow(stack: Stack) -> None:
    """Runs after the fuzz test (file order): every workflow of the connection belongs to a real order."""
    assert stack.sandboxes is not None
    await asyncio.sleep(0.5)  # visibility lags the starts a little
    known = {order_workflow_id(CONNECTION, order_id) for order_id in stack.sandboxes.marketplace.orders}
    started = {execution.id async for execution in stack.client.list_workflows(f"Connection = '{CONNECTION}'")}
    assert started <= known


def test_order_workflow_ids_are_per_connection() -> None:
    assert order_workflow_id("a", "1") != order_workflow_id("b", "1")


async def test_a_webhook_for_an_unusable_order_id_is_refused_and_logged(stack: Stack) -> None:
    secret = stack.connections[CONNECTION].webhook_secret
    body, headers = signed_webhook(secret, notification("bad id/with spaces"))
    async with httpx.AsyncClient() as http:
        refused = await http.post(stack.webhook_url(CONNECTION), content=body, headers=headers)
    assert refused.status_code == 400 and "order_id" in refused.json()["error"]
    assert stack.store is not None
    logs = await stack.store.logs(
        account="sandbox", day=datetime.now(UTC).date(), marketplace_order_id="bad id/with spaces"
    )
    assert [m.code for m in logs] == ["X17"]


async def test_a_notification_queued_by_an_intake_that_died_is_handed_off_by_the_next(stack: Stack) -> None:
    # The webhook was answered once its notification was in the store's queue; the intake died before
    # handing it off. The next intake's queue (here: this stack's) hands it off from the store.
    assert stack.sandboxes is not None and stack.store is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    queued = MarketplaceNotification(marketplace_order_id=order["id"])
    await stack.store.queue_handoff(CONNECTION, queued.model_dump_json())
    await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    assert await stack.store.claim_handoffs(10, lease_seconds=0) == []  # handed off, then removed


async def test_a_queued_notification_that_cannot_be_handed_off_stays_queued_and_is_logged(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    queue = HandOffQueue(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connections=stack.connections,
        adapters={},
        store=store,
        logbook=Logbook(store, account="sandbox"),
    )
    await queue.put("no-such-connection", MarketplaceNotification(marketplace_order_id="1"))
    queue.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while "connection no-such-connection, which this intake does not have" not in caplog.text:
            assert asyncio.get_running_loop().time() < deadline, "the queue never tried it"
            await asyncio.sleep(0.05)
        # Counted once the queue is idle between attempts (this stack's own queue sets it to 0 meanwhile).
        while (REGISTRY.get_sample_value("connector_handoff_queue") or 0) < 1:
            assert asyncio.get_running_loop().time() < deadline, "the queue's depth was never counted"
            await asyncio.sleep(0.02)
        assert await store.handoff_queue_depth() == 1
    finally:
        await queue.stop()
    # Kept, due again after a backoff (2 s after the first attempt), never dropped.
    assert await store.claim_handoffs(10, lease_seconds=60) == []
    await asyncio.sleep(2.1)
    kept = await store.claim_handoffs(10, lease_seconds=60)
    assert [(entry.connection, entry.attempts) for entry in kept] == [("no-such-connection", 2)]
    await store.aclose()


async def test_a_captured_webhook_cannot_be_replayed(stack: Stack) -> None:
    """The issue's attack: one captured delivery, replayed later or under fresh delivery ids."""
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    secret = stack.connections[CONNECTION].webhook_secret
    body, captured = signed_webhook(secret, notification(order["id"]))
    _, stale = signed_webhook(secret, notification(order["id"]), timestamp=time.time() - 301)
    async with httpx.AsyncClient() as http:
        first = await http.post(stack.webhook_url(CONNECTION), content=body, headers=captured)
        assert first.status_code == 202
        await wait_for_state(
            stack.client, CONNECTION, order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        requests_before = about(stack, order["id"])
        fresh_ids = [
            await http.post(
                stack.webhook_url(CONNECTION),
                content=body,
                headers={**captured, "X-Reference-Delivery": str(uuid.uuid4())},
            )
            for _ in range(20)
        ]
        same_id = await http.post(stack.webhook_url(CONNECTION), content=body, headers=captured)
        late = await http.post(stack.webhook_url(CONNECTION), content=body, headers=stale)
    assert {r.status_code for r in fresh_ids} == {401}
    assert "does not match" in fresh_ids[0].json()["error"]
    assert (same_id.status_code, same_id.json()["status"]) == (200, "duplicate-delivery")  # within the window
    assert late.status_code == 401 and "s old" in late.json()["error"]
    state = await wait_for_state(stack.client, CONNECTION, order["id"], lambda s: True)
    assert state.notifications_received == 1
    assert about(stack, order["id"]) == requests_before  # no replay reached VTEX


def about(stack: Stack, order_id: str) -> int:
    """How many requests the VTEX sandbox received that name the order (path or body)."""
    assert stack.sandboxes is not None
    return sum(order_id in r.path or order_id in json.dumps(r.body) for r in stack.sandboxes.vtex.requests)
