"""The console's routes: log in, the needs-action list (filters, counts, pages, CSV), the order page, and
the actions (reprocess, cancel with a reason, bulk reprocess by filter with a dry-run count first)."""

from __future__ import annotations

import csv
import io
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from temporalio.client import Client

from connector.bulk_reprocess import MAX_ORDERS
from connector.cancel import request_cancel
from connector.console import auth
from connector.console.authorizations import AuthorizationBanners
from connector.console.bulk import JobUnanswered, bulk_job, start_bulk_job
from connector.console.filters import NEEDS_ACTION_VALUES, REPROCESSABLE_VALUES, FilterError, OrderFilter
from connector.console.orders import Counts, all_rows, list_page, order_state
from connector.console.quarantined import DAYS_SHOWN, recent_quarantined
from connector.models import CancelRequest, OrderState
from connector.reprocess import Reprocessed, reprocess_order
from connector.store.base import OrderStore
from connector.store.models import LogMessage

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_FORM_BYTES = 16 * 1024
ORDER_LOG_LINES = 500
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class ConsoleConfig:
    user: str
    password: str
    account: str
    temporal_namespace: str
    # The Temporal Web UI's base URL, for the link from an order's page to its workflow.
    temporal_ui_url: str
    # The main task queue: a bulk reprocess runs there, as a workflow.
    task_queue: str
    # Signs the session cookie; a new one per start logs everyone out on restart.
    session_secret: str = ""
    # The Mercado Libre connections: each one whose authorization is broken or was never connected gets a
    # banner on every page.
    mercadolibre_connections: tuple[str, ...] = ()


def create_console_app(client: Client, store: OrderStore, config: ConsoleConfig) -> Starlette:
    counted = Counts(client)
    authorizations = AuthorizationBanners(store, config.mercadolibre_connections)

    async def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        signed_in = auth.signed_in(request)
        # Every page a seller sees carries the Mercado Libre connections to reconnect (none before logging in).
        reconnect = await authorizations.get() if signed_in else []
        context.update(
            request=request, csrf=auth.csrf_token(request), signed_in=signed_in, authorization_banners=reconnect
        )
        return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)

    async def form(request: Request) -> FormData:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_FORM_BYTES:
            raise FilterError("the form is too large")
        return await request.form()

    async def checked_form(request: Request) -> FormData | Response:
        """The action's form, once its CSRF token matches the session's; a 403 page otherwise."""
        data = await form(request)
        if not auth.csrf_ok(request, _text(data, auth.CSRF_FIELD)):
            return await page(
                request, "error.html", 403, message="This form expired. Go back, reload the page and retry."
            )
        return data

    async def running_order(request: Request, workflow_id: str) -> OrderState | Response:
        """The order an action is for, as it stands now; a 404 page when no running order answers."""
        state = await order_state(client, workflow_id)
        if state is None:
            return await page(request, "error.html", 404, message=f"No running order {workflow_id} answers.")
        return state

    async def form_filter(request: Request) -> OrderFilter | Response:
        """The filter a bulk action's form carries, once its CSRF token matches; an error page otherwise."""
        data = await checked_form(request)
        if isinstance(data, Response):
            return data
        try:
            return OrderFilter.from_params({key: _text(data, key) or "" for key in data})
        except FilterError as exc:
            return await page(request, "error.html", 400, message=f"Cannot filter on that: {exc}.")

    async def login_page(request: Request) -> Response:
        return await page(request, "login.html", next=_safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        data = await form(request)
        target = _safe_next(_text(data, "next"))
        if auth.password_matches(
            _text(data, "user") or "", _text(data, "password") or "", user=config.user, password=config.password
        ):
            auth.log_in(request, config.user)
            return RedirectResponse(target, status_code=303)
        log.warning("console: a failed login from %s", request.client.host if request.client else "unknown")
        return await page(request, "login.html", 401, next=target, error="Wrong user or password.")

    async def logout(request: Request) -> Response:
        data = await checked_form(request)
        if isinstance(data, Response):
            return data
        auth.log_out(request)
        return RedirectResponse("/login", status_code=303)

    @auth.login_required
    async def orders(request: Request) -> Response:
        try:
            selected = OrderFilter.from_params(dict(request.query_params))
        except FilterError as exc:
            return await page(request, "error.html", 400, message=f"Cannot filter on that: {exc}.")
        token = request.query_params.get("after")
        listed = await list_page(client, selected, token=token, page_size=PAGE_SIZE)
        by_status, by_code = await counted.get(selected)
        set_aside = (
            [] if token else await recent_quarantined(store, account=config.account, connection=selected.connection)
        )
        return await page(
            request,
            "orders.html",
            selected=selected,
            rows=listed.rows,
            next_token=listed.next_token,
            first_page=not token,
            by_status=by_status,
            by_code=by_code,
            statuses=NEEDS_ACTION_VALUES,
            quarantined=set_aside,
            quarantine_days=DAYS_SHOWN,
        )

    @auth.login_required
    async def export(request: Request) -> Response:
        try:
            selected = OrderFilter.from_params(dict(request.query_params))
        except FilterError as exc:
            return await page(request, "error.html", 400, message=f"Cannot filter on that: {exc}.")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            _csv_lines(client, selected),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="orders-{stamp}.csv"'},
        )

    @auth.login_required
    async def order(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        state = await order_state(client, workflow_id)
        if state is None:
            message = f"No running order {workflow_id} answers (unknown, closed, or no worker is running)."
            return await page(request, "error.html", 404, message=message)
        return await page(
            request,
            "order.html",
            workflow_id=workflow_id,
            state=state,
            log_lines=await _order_log(store, config.account, state),
            ui_link=f"{config.temporal_ui_url.rstrip('/')}/namespaces/{quote(config.temporal_namespace)}"
            f"/workflows/{quote(workflow_id, safe='')}",
            flash=request.query_params.get("done"),
        )

    @auth.login_required
    async def reprocess(request: Request) -> Response:
        data = await checked_form(request)
        if isinstance(data, Response):
            return data
        workflow_id = request.path_params["workflow_id"]
        state = await running_order(request, workflow_id)
        if isinstance(state, Response):
            return state
        outcome = await reprocess_order(
            client,
            connection=state.connection,
            marketplace_order_id=state.marketplace_order_id,
            reason="reprocess requested from the seller's console",
        )
        done = "reprocess requested" if outcome in (Reprocessed.SIGNALED, Reprocessed.RESTARTED) else outcome.value
        return _back_to_order(workflow_id, done)

    @auth.login_required
    async def cancel(request: Request) -> Response:
        data = await checked_form(request)
        if isinstance(data, Response):
            return data
        workflow_id = request.path_params["workflow_id"]
        reason = (_text(data, "reason") or "").strip()
        if not reason:
            return await page(
                request, "error.html", 400, message="Say why the order is canceled: the reason is required."
            )
        state = await running_order(request, workflow_id)
        if isinstance(state, Response):
            return state
        accepted = await request_cancel(
            client,
            store,
            connection=state.connection,
            marketplace_order_id=state.marketplace_order_id,
            request=CancelRequest(reason=reason[:500], source="seller console"),
        )
        done = "cancel requested" if accepted else "the order is no longer running"
        return _back_to_order(workflow_id, done)

    @auth.login_required
    async def bulk_preview(request: Request) -> Response:
        selected = await form_filter(request)
        if isinstance(selected, Response):
            return selected
        count = (await client.count_workflows(selected.query(REPROCESSABLE_VALUES))).count
        return await page(
            request, "bulk_preview.html", selected=selected, count=count, taken=min(count, MAX_ORDERS), cap=MAX_ORDERS
        )

    @auth.login_required
    async def bulk_run(request: Request) -> Response:
        selected = await form_filter(request)
        if isinstance(selected, Response):
            return selected
        job_id = await start_bulk_job(
            client, selected, reason="bulk reprocess from the seller's console", task_queue=config.task_queue
        )
        return RedirectResponse(f"/bulk/{job_id}", status_code=303)

    @auth.login_required
    async def bulk_status(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            job = await bulk_job(client, job_id)
        except JobUnanswered as exc:
            log.warning("console: bulk job %s did not answer: %s", job_id, exc)
            message = f"The bulk job {job_id} did not answer (is a worker running?). Reload in a moment."
            return await page(request, "error.html", 503, message=message)
        if job is None:
            message = f"No bulk job {job_id} (unknown, or older than Temporal keeps finished jobs)."
            return await page(request, "error.html", 404, message=message)
        return await page(request, "bulk_job.html", job=job)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def bad_form(request: Request, exc: Exception) -> Response:
        return await page(request, "error.html", 400, message=str(exc))

    return Starlette(
        routes=[
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", orders, methods=["GET"]),
            Route("/export.csv", export, methods=["GET"]),
            Route("/orders/{workflow_id}", order, methods=["GET"]),
            Route("/orders/{workflow_id}/reprocess", reprocess, methods=["POST"]),
            Route("/orders/{workflow_id}/cancel", cancel, methods=["POST"]),
            Route("/bulk/preview", bulk_preview, methods=["POST"]),
            Route("/bulk", bulk_run, methods=["POST"]),
            Route("/bulk/{job_id}", bulk_status, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=config.session_secret or secrets.token_urlsafe(32),
                session_cookie="connector_console",
                same_site="strict",
                https_only=False,
                max_age=12 * 3600,
            )
        ],
        exception_handlers={FilterError: bad_form},
    )


def _back_to_order(workflow_id: str, done: str) -> Response:
    """After an action: the order's page, with what was done in its banner."""
    return RedirectResponse(f"/orders/{quote(workflow_id, safe='')}?done={quote(done)}", status_code=303)


def _inert(value: str) -> str:
    """A spreadsheet runs a cell that starts like a formula: such a value is kept as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _text(data: FormData, name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _safe_next(target: str | None) -> str:
    """Only a path on this console (no `//host` or scheme): the login must not redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def _order_log(store: OrderStore, account: str, state: OrderState) -> list[LogMessage]:
    """The order's log lines, from every day its timeline touches (the store files them by day)."""
    days = sorted({entry.at.astimezone(UTC).date() for entry in state.timeline} or {date.today()})
    lines: list[LogMessage] = []
    for day in days:
        lines += await store.logs(
            account=account,
            day=day,
            marketplace_order_id=state.marketplace_order_id,
            connection=state.connection,
            limit=ORDER_LOG_LINES,
        )
    return lines[-ORDER_LOG_LINES:]


CSV_COLUMNS = (
    "marketplace_order_id",
    "vtex_order_id",
    "connection",
    "status",
    "error_code",
    "what_to_do",
    "created_at",
    "workflow_id",
)


async def _csv_lines(client: Client, selected: OrderFilter) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for row in all_rows(client, selected):
        values = [
            row.marketplace_order_id,
            row.vtex_order_id or "",
            row.connection,
            row.status,
            row.error_code or "",
            row.generic_action,
            row.created_at.astimezone(UTC).isoformat(),
            row.workflow_id,
        ]
        writer.writerow([_inert(value) for value in values])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
