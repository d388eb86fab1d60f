"""The intake ASGI app: marketplace webhooks in, queued for hand-off; VTEX callbacks; the order log.

The webhook handler only verifies, deduplicates and queues the notification in the store (its hand-off
queue signals-with-start right after: connector/intake/handoff_queue.py); it never waits on Temporal,
VTEX or the marketplace, so it answers well within a marketplace's budget (Mercado Libre's is 500 ms)
even under a burst, and a slow VTEX never makes a marketplace give up on a notification. It answers 4xx
with a reason for what is wrong with the request, and 503 with Retry-After (never 500) when something on
our side fails (the store), so the marketplace delivers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from connector.connections import Connection
from connector.intake.callbacks import callback_routes
from connector.intake.handoff_queue import HandOffQueue
from connector.intake.logs import logs_routes
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, NotificationRejected
from connector.metrics import WEBHOOK_SECONDS, WEBHOOKS
from connector.models import order_workflow_id
from connector.quarantine import quarantine
from connector.store.base import OrderStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = "5"


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_intake_app(
    client: Client,
    *,
    handoffs: HandOffQueue,
    connections: Mapping[str, Connection],
    adapters: Mapping[str, MarketplaceAdapter],
    store: OrderStore,
    account: str,
) -> Starlette:
    logbook = Logbook(store, account=account)

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        response = await handle_webhook(request)
        name = request.path_params["connection"]
        label = name if name in connections else "unknown"  # bounded label values, whatever is posted
        WEBHOOKS.labels(connection=label, status=str(response.status_code)).inc()
        WEBHOOK_SECONDS.labels(connection=label).observe(time.perf_counter() - started)
        return response

    async def handle_webhook(request: Request) -> Response:
        name = request.path_params["connection"]
        connection = connections.get(name)
        adapter = adapters.get(name)
        if connection is None or adapter is None:
            return _error(404, f"unknown connection {name!r}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            notification = adapter.parse_notification(dict(request.headers), body)
        except NotificationRejected as exc:
            if exc.order_id is not None:
                # A signed notification naming an order the connector cannot take: it must not vanish.
                await quarantine(logbook, connection=name, source="webhook", raw_id=exc.order_id, reason=str(exc))
            else:
                log.warning("refused a webhook for connection %s: %s", name, exc)
            return _error(exc.status, str(exc))
        if notification.delivery_id is not None and not await store.remember_delivery(name, notification.delivery_id):
            # The marketplace redelivered: the first delivery was already handed off.
            return JSONResponse({"status": "duplicate-delivery"}, status_code=200)
        notification = notification.model_copy(update={"received_at": datetime.now(UTC), "source": "webhook"})
        try:
            await handoffs.put(name, notification)
        except Exception:
            if notification.delivery_id is not None:
                # The redelivery the 503 asks for must not be taken for a duplicate.
                await store.forget_delivery(name, notification.delivery_id)
            raise
        workflow_id = order_workflow_id(name, notification.marketplace_order_id)
        return JSONResponse({"status": "queued", "workflowId": workflow_id}, status_code=202)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def unavailable(request: Request, exc: Exception) -> Response:
        # The store (or, for a VTEX callback, Temporal) failed us: the sender must deliver again, nothing dropped.
        log.error("intake could not process %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse(
            {"error": "temporarily unable to accept this request; deliver it again"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    return Starlette(
        routes=[
            Route("/webhooks/{connection}", webhook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            # VTEX's order-log contract: GET /{account}/logs?DateAt=yyyy-mm-dd&status=all
            *logs_routes(store),
            # VTEX's callbacks on marketplaceServicesEndpoint (invoice, tracking, cancellation).
            *callback_routes(client, connections=connections, store=store, logbook=logbook),
        ],
        exception_handlers={Exception: unavailable},
    )
