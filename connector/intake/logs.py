"""VTEX's log endpoint for connectors: `GET /{account}/logs/?DateAt=yyyy-mm-dd&status=all`.

The contract is VTEX's external-marketplace-integration-logs guide, spellings included: the query
accepts its `sucess`, and the answer keeps its `ContentTransalted` key. An optional `connection` query
parameter (ours) keeps one marketplace connection's lines.
"""

from __future__ import annotations

import re
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.store.base import OrderStore
from connector.store.models import LogMessage, LogStatus

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# The guide's own spelling `sucess` and its `warning` (our alert) are accepted next to our names.
_STATUS_NAMES = {status.value: status for status in LogStatus} | {
    "sucess": LogStatus.SUCCESS,
    "warning": LogStatus.ALERT,
}


def _day(raw: str | None) -> date:
    text = (raw or "").strip()
    if not text:
        raise ValueError("DateAt is required, as yyyy-mm-dd")
    # fromisoformat alone would also take 20240501 and, from Python 3.11, week dates.
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass  # 2024-02-30 and the like
    raise ValueError(f"DateAt must be a date as yyyy-mm-dd, not {raw!r}")


def parse_statuses(text: str) -> set[LogStatus] | None:
    """A comma list of statuses, any case; None (every status) when empty or when it names `all`."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names or "all" in names:
        return None
    unknown = [name for name in names if name not in _STATUS_NAMES]
    if unknown:
        raise ValueError(
            f"unknown status {', '.join(map(repr, unknown))}: use all or a comma list of "
            "success, error, alert (or warning), pending"
        )
    return {_STATUS_NAMES[name] for name in names}


def _vtex_message(message: LogMessage) -> dict[str, str | None]:
    return {
        "id": message.id,
        "Operation": message.operation,
        "Direction": message.direction,
        "ContentSource": message.content_source,
        "ContentTransalted": message.content_translated,
        "ContentDestination": message.content_destination,
        "BusinessMessage": message.business_message,
        "Status": message.status.value.capitalize(),
        # Our additions after VTEX's eight keys: the order-log code and where and when the step was.
        # Connection tells apart two marketplaces' lines for the same marketplace order id.
        "Code": message.code,
        "Connection": message.connection,
        "MarketplaceOrderId": message.marketplace_order_id,
        "VtexOrderId": message.vtex_order_id,
        "Date": message.created_at.isoformat(),
    }


def logs_routes(store: OrderStore) -> list[Route]:
    async def logs(request: Request) -> Response:
        try:
            day = _day(request.query_params.get("DateAt"))
            statuses = parse_statuses(",".join(request.query_params.getlist("status")))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        # An empty `connection=` filters nothing, like an empty `status=`.
        connection = request.query_params.get("connection", "").strip() or None
        messages = await store.logs(
            account=request.path_params["account"], day=day, statuses=statuses, connection=connection
        )
        return JSONResponse({"Messages": [_vtex_message(message) for message in messages]})

    # Both spellings of the path: VTEX's guide shows the trailing slash, a redirect would cost a trip.
    return [
        Route("/{account}/logs", logs, methods=["GET"]),
        Route("/{account}/logs/", logs, methods=["GET"]),
    ]
