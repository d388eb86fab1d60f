"""VTEX's callbacks on marketplaceServicesEndpoint (the Channel Order API's connectorEndpoint, the same URL):
invoices, tracking, cancellations and processing results, as signals.

VTEX does not sign these calls, so the endpoint URL it was given carries an unguessable per-connection
token, compared in constant time (several during a rotation); a wrong token gets the same 404 as an
unknown path, and the token never reaches a log line. `{orderId}` may be the VTEX id or the marketplace
id: the id map resolves both. Then the claim is checked with VTEX itself (connector/intake/
callback_checks.py): one that does not check out gets 409, an alert in the order log, and changes
nothing; VTEX unreachable gets 503 (deliver again). The answer is VTEX's receipt contract, `{orderId,
receipt, date}`, given once the signal is accepted (the workflow does the rest).

A processing result of the Channel Order API (`/order-integration/notification/processing-result`) is not
checked here: it only tells the order where to look, and the order asks VTEX itself before it moves
(workflows/order.py), so a forged, repeated, late or lost one changes nothing wrong. One for an order the
connector is not integrating is answered and leaves an X18 alert.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from connector.connections import Connection
from connector.intake.bodies import capped_body
from connector.intake.callback_checks import Confirmed, cancellation_problem, confirm_invoice
from connector.logbook import Logbook
from connector.models import (
    ChannelOrderError,
    ChannelOrderResult,
    Invoice,
    InvoiceItem,
    InvoiceType,
    MarketplaceNotification,
    VtexCancellation,
    order_workflow_id,
)
from connector.starter import LATE_EVENT_CODE
from connector.store.base import OrderStore
from connector.store.models import IdMapping, LogStatus
from connector.vtex.client import VtexClient
from connector.vtex.responses import ChannelOrderAnswer

log = logging.getLogger(__name__)

PREFIX = "/vtex/{connection}/{token}"
# An invoice may embed its XML (embeddedInvoice); a cancellation is a reason at most.
MAX_INVOICE_BYTES = 512 * 1024
MAX_CANCEL_BYTES = 16 * 1024
MAX_RESULT_BYTES = 64 * 1024
# X18 in the order-log table (README): a VTEX callback VTEX itself does not confirm.
UNVERIFIED_CALLBACK_CODE = "X18"


class _VtexInvoiceItem(BaseModel):
    id: str
    quantity: int = Field(gt=0)
    price: int = Field(ge=0)


class VtexInvoiceCallback(BaseModel):
    """The invoice callback body, with VTEX's field names (invoiceValue comes as cents, int or string)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    type: InvoiceType = InvoiceType.OUTPUT
    invoice_number: str = Field(min_length=1)
    invoice_value: int = Field(ge=0)
    issuance_date: str | None = None
    invoice_url: str | None = None
    invoice_key: str | None = None
    embedded_invoice: str | None = None
    courier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    items: list[_VtexInvoiceItem] = Field(default_factory=list)

    @field_validator("invoice_value", mode="before")
    @classmethod
    def _cents(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    def to_invoice(self) -> Invoice:
        return Invoice(
            type=self.type,
            invoice_number=self.invoice_number,
            invoice_value=self.invoice_value,
            issuance_date=self.issuance_date,
            invoice_url=self.invoice_url,
            invoice_key=self.invoice_key,
            embedded_invoice=self.embedded_invoice,
            items=[InvoiceItem(sku_id=i.id, quantity=i.quantity, price=i.price) for i in self.items],
            courier=self.courier or None,
            tracking_number=self.tracking_number or None,
            tracking_url=self.tracking_url or None,
        )


def callback_routes(
    client: Client,
    *,
    connections: Mapping[str, Connection],
    store: OrderStore,
    logbook: Logbook,
    vtex: VtexClient,
) -> list[Route]:
    async def authorized_order(request: Request) -> IdMapping | Response:
        name = request.path_params["connection"]
        connection = connections.get(name)
        if connection is None or not _known_token(request.path_params["token"], connection.callback_tokens):
            log.warning("refused a VTEX callback for connection %r from %s: wrong token", name, _client(request))
            return JSONResponse({"error": "not found"}, status_code=404)
        mapping = await store.resolve(name, request.path_params["order_id"])
        if mapping is None:
            return JSONResponse({"error": f"unknown order {request.path_params['order_id']!r}"}, status_code=404)
        return mapping

    async def refuse(mapping: IdMapping, what: str, problem: str, claimed: BaseModel) -> Response:
        """A callback VTEX does not confirm: forged, or about another order. Answered, so a sender does
        not retry it forever, and shown to the seller, but nothing moves."""
        log.error(
            "VTEX %s for %s (%s) not confirmed by VTEX, ignored: %s",
            what,
            mapping.vtex_order_id,
            mapping.connection,
            problem,
        )
        await _callback_alert(
            logbook,
            mapping,
            UNVERIFIED_CALLBACK_CODE,
            f"A {what} callback for the order {mapping.vtex_order_id} did not check out with VTEX ({problem}); "
            "the connector ignored it. If it was not VTEX, someone knows the callback URL: rotate CALLBACK_TOKEN.",
            source=claimed,
        )
        return JSONResponse({"error": f"not confirmed by VTEX: {problem}"}, status_code=409)

    async def invoice(request: Request) -> Response:
        found = await authorized_order(request)
        if isinstance(found, Response):
            return found
        try:
            body = VtexInvoiceCallback.model_validate_json(await capped_body(request, MAX_INVOICE_BYTES))
        except ValidationError as exc:
            return JSONResponse({"error": f"invalid invoice: {_first_error(exc)}"}, status_code=400)
        claimed = body.to_invoice()
        confirmed = confirm_invoice(await vtex.get_order(found.vtex_order_id), found.vtex_order_id, claimed)
        if not isinstance(confirmed, Confirmed):
            return await refuse(found, "invoice", confirmed, claimed)
        if confirmed.differing_fields:
            await _note_difference(logbook, found, confirmed)
        return await _signal(client, logbook, found, "vtex_invoice", confirmed.invoice)

    async def cancel(request: Request) -> Response:
        found = await authorized_order(request)
        if isinstance(found, Response):
            return found
        raw = await capped_body(request, MAX_CANCEL_BYTES)
        reason = None
        if raw.strip():
            try:
                reason = _CancelBody.model_validate_json(raw).reason
            except ValidationError as exc:
                return JSONResponse({"error": f"invalid cancellation: {_first_error(exc)}"}, status_code=400)
        claimed = VtexCancellation(reason=reason)
        problem = cancellation_problem(await vtex.get_order(found.vtex_order_id), found.vtex_order_id)
        if problem is not None:
            return await refuse(found, "cancellation", problem, claimed)
        return await _signal(client, logbook, found, "vtex_canceled", claimed)

    async def processing_result(request: Request) -> Response:
        name = request.path_params["connection"]
        connection = connections.get(name)
        if connection is None or not _known_token(request.path_params["token"], connection.callback_tokens):
            log.warning("refused a VTEX processing result for %r from %s: wrong token", name, _client(request))
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            answer = ChannelOrderAnswer.model_validate_json(await capped_body(request, MAX_RESULT_BYTES))
            order_id = MarketplaceNotification(
                marketplace_order_id=answer.marketplace_order_id or ""
            ).marketplace_order_id
        except ValidationError as exc:
            return JSONResponse({"error": f"invalid processing result: {_first_error(exc)}"}, status_code=400)
        result = ChannelOrderResult(
            flow=answer.flow,
            code=answer.code,
            operation_id=answer.operation_id,
            main_order_id=answer.fields.main_order_id if answer.fields else None,
            errors=[ChannelOrderError(source=e.source, code=e.code, description=e.description) for e in answer.errors],
        )
        mapping = IdMapping(connection=name, marketplace_order_id=order_id, vtex_order_id=result.main_order_id or "")
        handle = client.get_workflow_handle(order_workflow_id(name, order_id))
        try:
            await handle.signal("vtex_processing_result", result)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                log.error("could not pass VTEX's processing result for %s on: %s", order_id, exc.message)
                return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers={"Retry-After": "5"})
            log.error(
                "VTEX reported %s for the order %s (%s), which the connector is not integrating",
                result.code,
                order_id,
                name,
            )
            await _callback_alert(
                logbook,
                mapping,
                UNVERIFIED_CALLBACK_CODE,
                f"VTEX reported {result.code} ({result.flow}) for the order {order_id}, which the connector is not "
                "integrating now; nothing was done.",
                destination=result,
            )
        return JSONResponse({"status": "received"})

    return [
        Route(f"{PREFIX}/order-integration/notification/processing-result", processing_result, methods=["POST"]),
        Route(f"{PREFIX}/pub/orders/{{order_id}}/invoice", invoice, methods=["POST"]),
        Route(f"{PREFIX}/pvt/orders/{{order_id}}/invoice", invoice, methods=["POST"]),
        Route(f"{PREFIX}/pvt/orders/{{order_id}}/cancel", cancel, methods=["POST"]),
    ]


def _known_token(given: str, tokens: tuple[str, ...]) -> bool:
    # Every token compared, in constant time each: which one matched (or none) must not show in the timing.
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in tokens]
    return any(matches)


def redacted_path(request: Request) -> str:
    """The request's path for a log line, its callback token (if the route has one) masked."""
    path = request.url.path
    token = request.path_params.get("token")
    return path.replace(token, "[token]") if token else path


async def _note_difference(logbook: Logbook, mapping: IdMapping, confirmed: Confirmed) -> None:
    fields = ", ".join(confirmed.differing_fields)
    log.warning(
        "VTEX invoice callback for %s differs from VTEX's copy (%s); VTEX's is forwarded", mapping.vtex_order_id, fields
    )
    await _callback_alert(
        logbook,
        mapping,
        UNVERIFIED_CALLBACK_CODE,
        f"The invoice {confirmed.invoice.invoice_number} callback for the order {mapping.vtex_order_id} differs "
        f"from VTEX's copy ({fields}); the connector forwards VTEX's copy to the marketplace.",
        destination=confirmed.invoice,
    )


async def _callback_alert(
    logbook: Logbook,
    mapping: IdMapping,
    code: str,
    business_message: str,
    *,
    source: BaseModel | None = None,
    destination: BaseModel | None = None,
) -> None:
    """An alert line in the order log about a VTEX callback the connector did not simply act on."""
    await logbook.record(
        code=code,
        operation="VTEX callback",
        direction="VTEX to connector",
        status=LogStatus.ALERT,
        business_message=business_message,
        connection=mapping.connection,
        marketplace_order_id=mapping.marketplace_order_id,
        vtex_order_id=mapping.vtex_order_id or None,
        source=source,
        destination=destination,
    )


class _CancelBody(BaseModel):
    reason: str | None = None


async def _signal(client: Client, logbook: Logbook, mapping: IdMapping, signal: str, argument: BaseModel) -> Response:
    handle = client.get_workflow_handle(order_workflow_id(mapping.connection, mapping.marketplace_order_id))
    try:
        await handle.signal(signal, argument)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            log.error("could not pass VTEX's %s for %s on: %s", signal, mapping.vtex_order_id, exc.message)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers={"Retry-After": "5"})
        # The order's workflow closed (its after-sale window passed): VTEX must not retry forever, so the
        # callback is acknowledged, but never silently: an operator sees it in the log and the order log.
        log.error(
            "VTEX %s for %s (marketplace order %s, %s) arrived after the order's workflow closed; nothing was done",
            signal,
            mapping.vtex_order_id,
            mapping.marketplace_order_id,
            mapping.connection,
        )
        await _callback_alert(
            logbook,
            mapping,
            LATE_EVENT_CODE,
            f"VTEX sent {signal.replace('_', ' ')} for the order {mapping.vtex_order_id} after its after-sale "
            "window closed; the connector did nothing. Act on it in the marketplace by hand.",
            destination=argument,
        )
    return JSONResponse(
        {
            "orderId": mapping.vtex_order_id,
            "receipt": str(uuid.uuid4()),
            "date": datetime.now(UTC).isoformat(),
        }
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
