"""Whatever reaches VTEX's callback routes, the answer is a 4xx and no order moves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType

from connector.models import OrderState, order_workflow_id
from connector.stack import Stack
from tests.helpers import dispatched_in_oms

CONNECTION = "reference"

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=12,
)
INVOICE_LIKE = st.fixed_dictionaries(
    {"invoiceNumber": st.text(max_size=12), "invoiceValue": st.integers(-5, 10**6) | st.text(max_size=6)},
    optional={
        "type": st.sampled_from(["Output", "Input", "x"]),
        "trackingNumber": st.text(max_size=10) | st.none(),
        "trackingUrl": st.text(max_size=20) | st.none(),
        "items": st.lists(
            st.fixed_dictionaries(
                {"id": st.text(max_size=3), "quantity": st.integers(-1, 3), "price": st.integers(-1, 9)}
            ),
            max_size=2,
        ),
    },
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    INVOICE_LIKE.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"reason": JSON_VALUES}).map(lambda value: json.dumps(value).encode()),
)
ROUTES = st.sampled_from(["pub/orders/{}/invoice", "pvt/orders/{}/invoice", "pvt/orders/{}/cancel"])


@pytest_asyncio.fixture(scope="module")
async def target(stack: Stack) -> AsyncIterator[OrderState]:
    """A dispatched order whose callbacks the fuzz aims at (with the right token), VTEX showing it."""
    assert stack.sandboxes is not None
    yield await dispatched_in_oms(stack, stack.sandboxes)


@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    route=ROUTES,
    which=st.sampled_from(["vtex", "marketplace", "other"]),
    other_id=st.text(max_size=30),
    right_token=st.booleans(),
)
async def test_fuzzed_callbacks_only_get_4xx(
    stack: Stack, target: OrderState, body: bytes, route: str, which: str, other_id: str, right_token: bool
) -> None:
    order_id = {"vtex": target.vtex_order_id, "marketplace": target.marketplace_order_id, "other": other_id}[which]
    endpoint = stack.connections[CONNECTION].services_endpoint
    if not right_token:
        endpoint = endpoint.rsplit("/", 1)[0] + "/" + "z" * 32
    url = f"{endpoint}/{route.format(quote(str(order_id), safe=''))}"
    async with httpx.AsyncClient() as http:
        response = await http.post(url, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, url, body)
    assert "error" in response.json()


async def test_the_fuzzing_moved_no_order(stack: Stack, target: OrderState) -> None:
    """Runs after the fuzz test (file order): the order got no callback signal and the marketplace nothing."""
    assert stack.sandboxes is not None
    handle = stack.client.get_workflow_handle(order_workflow_id(CONNECTION, target.marketplace_order_id))
    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert not {"vtex_invoice", "vtex_canceled"} & set(signals)
    marketplace_order = stack.sandboxes.marketplace.orders[target.marketplace_order_id]
    assert (marketplace_order["invoices"], marketplace_order["cancellation"]) == ([], None)
