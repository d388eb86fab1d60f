"""The intake ASGI app: marketplace webhooks in, signal-with-start out.

The handler only parses and signals; it never calls VTEX or the marketplace, so it answers fast and a
slow VTEX never makes a marketplace give up on a notification.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.service import RPCError

from connector.connections import Connection
from connector.intake.callbacks import callback_routes
from connector.intake.logs import logs_routes
from connector.marketplaces.base import MarketplaceAdapter, NotificationRejected
from connector.starter import Handoff, hand_off_order
from connector.store.base import OrderStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_intake_app(
    client: Client,
    *,
    task_queue: str,
    connections: Mapping[str, Connection],
    adapters: Mapping[str, MarketplaceAdapter],
    store: OrderStore,
) -> Starlette:
    async def webhook(request: Request) -> Response:
        name = request.path_params["connection"]
        connection = connections.get(name)
        adapter = adapters.get(name)
        if connection is None or adapter is None:
            return _error(404, f"unknown connection {name!r}")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            notification = adapter.parse_notification(body)
        except NotificationRejected as exc:
            return _error(400, str(exc))
        notification = notification.model_copy(update={"received_at": datetime.now(UTC), "source": "webhook"})
        try:
            workflow_id, handoff = await hand_off_order(
                client, task_queue=task_queue, connection=connection, notification=notification
            )
        except RPCError as exc:
            # Temporal unreachable: tell the marketplace to deliver again rather than lose the order.
            log.error("could not hand off order %s: %s", notification.marketplace_order_id, exc.message)
            return JSONResponse(
                {"error": "temporarily unable to accept notifications"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        status = 202 if handoff is Handoff.ACCEPTED else 200
        return JSONResponse({"status": handoff.value, "workflowId": workflow_id}, status_code=status)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhooks/{connection}", webhook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            # VTEX's order-log contract: GET /{account}/logs?DateAt=yyyy-mm-dd&status=all
            *logs_routes(store),
            # VTEX's callbacks on marketplaceServicesEndpoint (invoice, tracking, cancellation).
            *callback_routes(client, connections=connections, store=store),
        ]
    )
