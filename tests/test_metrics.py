"""Prometheus metrics: VTEX calls by endpoint and status, webhook latency, orders by status."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from connector.metrics import update_order_gauges
from connector.models import OrderStatus
from connector.stack import Stack, free_port
from connector.temporal_client import connect
from tests.conftest import embedded_settings
from tests.helpers import signed_webhook, wait_for_state


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_vtex_calls_webhooks_and_orders_are_counted(stack: Stack) -> None:
    assert stack.sandboxes is not None
    places = sample("connector_vtex_requests_total", operation="place fulfillment order", status="200")
    acks = sample("connector_webhook_seconds_count", connection="reference")
    refused = sample("connector_webhooks_total", connection="unknown", status="404")
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    body, headers = signed_webhook(
        stack.connections["reference"].webhook_secret, {"topic": "orders", "order_id": order["id"]}
    )
    async with httpx.AsyncClient() as http:
        assert (await http.post(stack.webhook_url("reference"), content=body, headers=headers)).status_code == 202
        assert (await http.post(stack.webhook_url("no-such-connection"), content=body)).status_code == 404
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)

    assert sample("connector_vtex_requests_total", operation="place fulfillment order", status="200") == places + 1
    assert sample("connector_vtex_request_seconds_count", operation="authorize dispatch") >= 1
    assert sample("connector_webhook_seconds_count", connection="reference") == acks + 1
    assert sample("connector_webhooks_total", connection="unknown", status="404") == refused + 1

    await update_order_gauges(stack.client)
    assert sample("connector_orders", status="dispatch-authorized") >= 1
    assert sample("connector_orders", status="dead-lettered") >= 0


async def test_the_sdk_runtime_exports_temporal_metrics(temporal_env: WorkflowEnvironment, session_data: Path) -> None:
    port = free_port()
    settings = embedded_settings(
        data_dir=session_data,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_metrics_port=port,
    )
    client = await connect(settings, with_metrics=True)
    await client.count_workflows()  # one request, so the client has something to report
    async with httpx.AsyncClient() as http:
        exported = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "temporal_request" in exported
