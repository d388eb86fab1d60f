"""VTEX's log endpoint for connectors: `GET /{account}/logs/?DateAt=yyyy-mm-dd&status=all`.

The contract is VTEX's external-marketplace-integration-logs guide, spellings included: the query
accepts its `sucess`, and the answer keeps its `ContentTransalted` key. An optional `connection` query
parameter (ours) keeps one marketplace connection's lines.

The guides say nothing of how VTEX authenticates the call, so the endpoint asks what every VTEX API asks:
the app key and token pair (`X-VTEX-API-AppKey`, `X-VTEX-API-AppToken`) configured for the connector,
compared in constant time; anything else is 401. Authentication comes first, so nobody unauthenticated
learns which account names exist; then any account but the connector's is 404. The lines come a page at a
time (`page`, 1-based, and `pageSize`, up to 1000; ours, the guide has none), paged in SQL, with a
`Paging` object after `Messages` saying whether more follow.
"""

from __future__ import annotations

import hmac
import re
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.intake.bodies import capped_body
from connector.store.base import OrderStore
from connector.store.models import LogMessage, LogStatus

APP_KEY_HEADER = "x-vtex-api-appkey"
APP_TOKEN_HEADER = "x-vtex-api-apptoken"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A GET carries no body; one that does is read no further than this.
MAX_BODY_BYTES = 1024
_COUNT = re.compile(r"[0-9]{1,9}")

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


def _count(raw: str | None, name: str, default: int, largest: int) -> int:
    text = (raw or "").strip()
    if not text:
        return default
    if _COUNT.fullmatch(text) is None or not 1 <= int(text) <= largest:
        raise ValueError(f"{name} must be a whole number from 1 to {largest}")
    return int(text)


def _authenticated(request: Request, app_key: str, app_token: str) -> bool:
    given_key = request.headers.get(APP_KEY_HEADER, "").encode()
    given_token = request.headers.get(APP_TOKEN_HEADER, "").encode()
    # Both compared whatever the first says: the timing tells nothing about which one was wrong.
    key_ok = hmac.compare_digest(given_key, app_key.encode())
    token_ok = hmac.compare_digest(given_token, app_token.encode())
    return key_ok and token_ok


def logs_routes(store: OrderStore, *, account: str, credentials: tuple[str, str]) -> list[Route]:
    """`credentials`: the VTEX app key and token the caller must present."""
    app_key, app_token = credentials

    async def logs(request: Request) -> Response:
        if not _authenticated(request, app_key, app_token):
            return JSONResponse(
                {"error": "authentication required: send the X-VTEX-API-AppKey and X-VTEX-API-AppToken headers"},
                status_code=401,
            )
        if request.path_params["account"] != account:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        await capped_body(request, MAX_BODY_BYTES)
        try:
            day = _day(request.query_params.get("DateAt"))
            statuses = parse_statuses(",".join(request.query_params.getlist("status")))
            page = _count(request.query_params.get("page"), "page", 1, 10**9)
            size = _count(request.query_params.get("pageSize"), "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        # An empty `connection=` filters nothing, like an empty `status=`.
        connection = request.query_params.get("connection", "").strip() or None
        # One line more than the page tells whether another page follows.
        messages = await store.logs(
            account=account,
            day=day,
            statuses=statuses,
            connection=connection,
            limit=size + 1,
            offset=(page - 1) * size,
        )
        return JSONResponse(
            {
                "Messages": [_vtex_message(message) for message in messages[:size]],
                "Paging": {"page": page, "pageSize": size, "hasMore": len(messages) > size},
            }
        )

    # Both spellings of the path: VTEX's guide shows the trailing slash, a redirect would cost a trip.
    return [
        Route("/{account}/logs", logs, methods=["GET"]),
        Route("/{account}/logs/", logs, methods=["GET"]),
    ]
