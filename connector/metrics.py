"""The connector's own Prometheus metrics (the Temporal SDK's come from its runtime, see temporal_client).

- VTEX calls by operation and HTTP status, with their duration;
- webhook acknowledgements by connection and status, with their latency;
- orders by status, including parked and dead-lettered, counted from Temporal's visibility;
- whether a marketplace refuses a connection's authorization (Mercado Libre's OAuth, invalid_grant).
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from temporalio.client import Client

from connector.lifecycle import ORDER_WORKFLOW_TYPES
from connector.models import OrderStatus

log = logging.getLogger(__name__)

VTEX_REQUESTS = Counter(
    "connector_vtex_requests",
    "VTEX API calls by operation and HTTP status ('none': no response)",
    ["operation", "status"],
)
VTEX_SECONDS = Histogram("connector_vtex_request_seconds", "VTEX API call duration", ["operation"])
WEBHOOKS = Counter("connector_webhooks", "Marketplace webhooks by connection and answer", ["connection", "status"])
WEBHOOK_SECONDS = Histogram(
    "connector_webhook_seconds",
    "Time to acknowledge a marketplace webhook",
    ["connection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
QUARANTINED = Counter(
    "connector_quarantined_orders",
    "Orders that could not be handed off, by connection and source",
    ["connection", "source"],
)
HANDOFF_QUEUE = Gauge(
    "connector_handoff_queue",
    "Notifications the intake accepted and has not handed to their workflows yet (its queue in the store)",
)
ORDERS = Gauge("connector_orders", "Open order workflows by status (from Temporal visibility)", ["status"])
MARKETPLACE_AUTHORIZATION_BROKEN = Gauge(
    "connector_marketplace_authorization_broken",
    "1 while the marketplace refuses the connection's authorization or it was never connected (a person must "
    "connect the account: `connector mercadolibre connect`), 0 while it is fine; set whenever it is read or changed",
    ["connection"],
)

ORDER_STATUS_REFRESH_SECONDS = 30.0


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics for Prometheus on its own port (the worker has no other HTTP server)."""
    start_http_server(port, addr=host)


async def update_order_gauges(client: Client) -> None:
    """One count query per status sets `connector_orders{status}`."""
    for status in OrderStatus:
        query = f"{ORDER_WORKFLOW_TYPES} AND ExecutionStatus = 'Running' AND OrderStatus = '{status.value}'"
        try:
            ORDERS.labels(status=status.value).set((await client.count_workflows(query)).count)
        except Exception as exc:  # a visibility hiccup must not stop the worker
            log.warning("could not count %s orders: %s", status.value, exc)


async def refresh_order_gauges(client: Client, *, interval: float = ORDER_STATUS_REFRESH_SECONDS) -> None:
    while True:
        await update_order_gauges(client)
        await asyncio.sleep(interval)
