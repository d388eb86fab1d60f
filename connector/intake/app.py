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
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from connector.connections import Connection
from connector.intake.bodies import BodyTooLarge, body_too_large, capped_body
from connector.intake.callbacks import callback_routes, redacted_path
from connector.intake.deliveries import DeliveryLocks
from connector.intake.handoff_queue import HandOffQueue
from connector.intake.logs import logs_routes
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter, NotificationRejected
from connector.metrics import WEBHOOK_SECONDS, WEBHOOKS
from connector.models import MarketplaceNotification, order_workflow_id
from connector.quarantine import quarantine
from connector.store.base import OrderStore
from connector.vtex.client import VtexClient

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
    vtex: VtexClient,
    log_credentials: tuple[str, str],
) -> Starlette:
    """`log_credentials`: the VTEX app key and token `/{account}/logs` callers must present."""
    logbook = Logbook(store, account=account)
    deliveries = DeliveryLocks()

    async def remember(name: str, delivery_id: str) -> None:
        """Only once queued: an intake that dies before this makes the redelivery a second hand-off (the
        workflow takes it as one), never a notification taken for a duplicate and lost."""
        try:
            await store.remember_delivery(name, delivery_id)
        except Exception as exc:  # it is queued: a redelivery would only be a harmless second hand-off
            log.warning("delivery %s of connection %s queued but not remembered: %r", delivery_id, name, exc)

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
        body = await capped_body(request, MAX_BODY_BYTES)
        headers = dict(request.headers)
        try:
            notification = adapter.parse_notification(headers, body)
        except NotificationRejected as exc:
            addressed = addressee(name, headers, body) if exc.status == 401 else None
            if addressed is None:
                return await refused(name, exc)
            name, notification = addressed
        notification = notification.model_copy(update={"received_at": datetime.now(UTC), "source": "webhook"})
        delivery_id = notification.delivery_id
        if delivery_id is None:
            await handoffs.put(name, notification)
        else:
            async with deliveries.hold(name, delivery_id):
                if await store.delivery_seen(name, delivery_id):
                    # The marketplace redelivered (or a captured delivery was replayed within the
                    # signature's window): the first one is queued already.
                    return JSONResponse({"status": "duplicate-delivery"}, status_code=200)
                await handoffs.put(name, notification)
                await remember(name, delivery_id)
        workflow_id = order_workflow_id(name, notification.marketplace_order_id)
        acknowledged = adapters[name].webhook_ack_status
        return JSONResponse({"status": "queued", "workflowId": workflow_id}, status_code=acknowledged)

    async def refused(name: str, exc: NotificationRejected) -> Response:
        if exc.order_id is not None:
            # A signed notification naming an order the connector cannot take: it must not vanish.
            await quarantine(logbook, connection=name, source="webhook", raw_id=exc.order_id, reason=str(exc))
        else:
            log.warning("refused a webhook for connection %s: %s", name, exc)
        return _error(exc.status, str(exc))

    def addressee(posted_to: str, headers: dict[str, str], body: bytes) -> tuple[str, MarketplaceNotification] | None:
        """Another connection of the same marketplace that takes a notification this one refused as not its
        own: one Mercado Libre application serving several sellers posts every seller's notifications to the
        one callback URL it has. Each connection still verifies it as it would at its own URL."""
        marketplace = connections[posted_to].marketplace
        for name, adapter in adapters.items():
            if name == posted_to or name not in connections or connections[name].marketplace != marketplace:
                continue
            try:
                return name, adapter.parse_notification(headers, body)
            except NotificationRejected:
                continue
        return None

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own refusals (no such route, wrong method) in the same JSON shape as ours.
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def unavailable(request: Request, exc: Exception) -> Response:
        # The store (or, for a VTEX callback, Temporal) failed us: the sender must deliver again, nothing dropped.
        log.error("intake could not process %s %s: %r", request.method, redacted_path(request), exc)
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
            *logs_routes(store, account=account, credentials=log_credentials),
            # VTEX's callbacks on marketplaceServicesEndpoint (invoice, tracking, cancellation).
            *callback_routes(client, connections=connections, store=store, logbook=logbook, vtex=vtex),
        ],
        exception_handlers={HTTPException: http_error, BodyTooLarge: body_too_large, Exception: unavailable},
    )
