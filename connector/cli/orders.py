"""The commands on orders: `status` (one order's state and timeline), `orders` (the needs-action list,
the web console's filters and query), `reprocess` (one order, or in bulk with a progress bar) and
`cancel`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from connector.cancel import request_cancel
from connector.cli.common import (
    CommandError,
    ConnectionOption,
    Invocation,
    JsonOption,
    UsageProblem,
    app,
    connection_of,
    counts_line,
    dash,
    existing_store,
    no_order,
    one_line,
    output,
    print_json,
    print_table,
    table,
)
from connector.console.filters import NEEDS_ACTION_VALUES, FilterError, OrderFilter
from connector.console.orders import OrderRow, all_rows, counts, list_page
from connector.models import CancelRequest, OrderState, order_workflow_id
from connector.reprocess import REPROCESSABLE, Reprocessed, reprocess_matching, reprocess_order, reprocess_query
from connector.settings import Settings
from connector.temporal_client import connect
from workflows.order import OrderLifecycle

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000  # one visibility page


# --- status ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusArgs:
    marketplace_order_id: str
    connection: str | None = None
    json: bool = False


@app.command("status", help="print an order's state and timeline")
def status_command(
    marketplace_order_id: Annotated[str, typer.Argument(metavar="MARKETPLACE_ORDER_ID")],
    connection: ConnectionOption = None,
    as_json: JsonOption = False,
) -> Invocation[StatusArgs]:
    return Invocation(_status, StatusArgs(marketplace_order_id, connection, as_json))


async def _status(settings: Settings, args: StatusArgs) -> int:
    connection = connection_of(settings, args.connection)
    client: Client = await connect(settings, create_key=False)
    handle = client.get_workflow_handle_for(
        OrderLifecycle.run, order_workflow_id(connection, args.marketplace_order_id)
    )
    try:
        state: OrderState = await handle.query(OrderLifecycle.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise no_order(args.marketplace_order_id, connection) from None
        raise
    except WorkflowQueryFailedError as exc:
        raise CommandError(
            f"the workflow of order {args.marketplace_order_id} could not answer ({exc}): is a worker running "
            "(`make run` or `connector worker`)?"
        ) from None
    if args.json:
        print_json(state.model_dump(mode="json"))
    else:
        print_state(output(), state)
    return 0


def print_state(console: Console, state: OrderState) -> None:
    lines = [
        f"order        {state.marketplace_order_id} ({state.connection})",
        f"status       {state.status.value}",
        f"VTEX order   {state.vtex_order_id or '-'}",
        f"run          {state.run_number} (continue-as-new starts a new one)",
    ]
    if state.parked_reason:
        lines.append(f"problem      {one_line(state.parked_reason)}")
    if state.error_code:
        lines.append(f"error code   {state.error_code} (attempts: {state.reprocess_attempts})")
    lines.append("timeline")
    print("\n".join(lines))
    timeline = table(console, "TIME (UTC)", "STEP", "OUTCOME", "CODE", "MESSAGE", wrapping=("MESSAGE",))
    for entry in state.timeline:
        timeline.add_row(
            _time(entry.at, seconds=True), Text(entry.step), Text(entry.outcome), dash(entry.code), Text(entry.message)
        )
    print_table(console, timeline)


def _time(at: datetime | None, *, seconds: bool = False) -> str:
    if at is None:
        return "-"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# --- orders ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrdersArgs:
    connection: str | None = None
    status: str | None = None
    code: str | None = None
    created_from: str | None = None
    created_to: str | None = None
    search: str | None = None
    limit: int = DEFAULT_LIMIT
    all: bool = False
    json: bool = False


@app.command(
    "orders",
    help="list the orders that need action (the web console's list): filters, counts, a table or --json",
)
def orders_command(
    connection: Annotated[str | None, typer.Option(help="only this connection")] = None,
    status: Annotated[str | None, typer.Option(help=f"only this status: {', '.join(NEEDS_ACTION_VALUES)}")] = None,
    code: Annotated[str | None, typer.Option(help="only this error code, e.g. FMT007, ORD027, HTTP503")] = None,
    created_from: Annotated[str | None, typer.Option(help="created on or after this day (YYYY-MM-DD, UTC)")] = None,
    created_to: Annotated[str | None, typer.Option(help="created on or before this day (YYYY-MM-DD, UTC)")] = None,
    search: Annotated[str | None, typer.Option(help="a marketplace or VTEX order id")] = None,
    limit: Annotated[int, typer.Option(help=f"orders listed, newest first (1 to {MAX_LIMIT})")] = DEFAULT_LIMIT,
    every: Annotated[
        bool, typer.Option("--all", help="every matching order (from visibility alone: no attempts)")
    ] = False,
    as_json: JsonOption = False,
) -> Invocation[OrdersArgs]:
    args = OrdersArgs(connection, status, code, created_from, created_to, search, limit, every, as_json)
    return Invocation(_orders, args)


def order_filter(args: OrdersArgs) -> OrderFilter:
    """The console's filter from the options; UsageProblem (status 2) with its own words when one cannot be
    searched for."""
    params = {
        "connection": args.connection,
        "status": args.status,
        "code": args.code,
        "created_from": args.created_from,
        "created_to": args.created_to,
        "search": args.search,
    }
    try:
        return OrderFilter.from_params({name: value for name, value in params.items() if value is not None})
    except FilterError as exc:
        name, _, problem = str(exc).partition(":")
        raise UsageProblem(f"--{name.replace('_', '-')}:{problem}") from None


async def _orders(settings: Settings, args: OrdersArgs) -> int:
    selected = order_filter(args)
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageProblem(f"--limit {args.limit}: give a number from 1 to {MAX_LIMIT}, or --all")
    client = await connect(settings, create_key=False)  # the rows' details are the orders' own, encrypted
    if args.all:
        rows, more = [row async for row in all_rows(client, selected)], False
    else:
        page = await list_page(client, selected, token=None, page_size=args.limit)
        rows, more = page.rows, page.next_token is not None
    if args.json:
        print_json([row_json(row) for row in rows])
        return 0
    by_status, by_code = await counts(client, selected)
    console = output()
    print(f"by status:     {counts_line(by_status)}")
    print(f"by error code: {counts_line(by_code)}")
    if not rows:
        print("no order needs action" + (" with these filters" if selected.query() != OrderFilter().query() else ""))
        return 0
    listed = table(
        console,
        "MARKETPLACE ORDER",
        "VTEX ORDER",
        "CONNECTION",
        "STATUS",
        "ERROR CODE",
        "WHAT TO DO",
        "LAST ATTEMPT (UTC)",
        "ATTEMPTS",
        "CREATED (UTC)",
        wrapping=("WHAT TO DO",),
    )
    for row in rows:
        listed.add_row(
            Text(row.marketplace_order_id),
            Text(dash(row.vtex_order_id)),
            Text(row.connection),
            row.status,
            Text(dash(row.error_code)),
            Text(one_line(row.action or row.generic_action)),
            _time(row.last_attempt),
            dash(row.attempts),
            _time(row.created_at),
        )
    print_table(console, listed)
    if more:
        print(f"the first {len(rows)} listed; more match: --limit N (up to {MAX_LIMIT}), --all, or narrow the filters")
    return 0


def row_json(row: OrderRow) -> dict[str, Any]:
    return {
        "marketplace_order_id": row.marketplace_order_id,
        "vtex_order_id": row.vtex_order_id,
        "connection": row.connection,
        "status": row.status,
        "error_code": row.error_code,
        "action": row.action or row.generic_action,
        "last_attempt": row.last_attempt.isoformat() if row.last_attempt else None,
        "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        "workflow_id": row.workflow_id,
    }


# --- reprocess ---------------------------------------------------------------------------------------

ReprocessStatus = Literal["parked", "reprocessing", "dead-lettered"]
assert set(REPROCESSABLE) == {"parked", "reprocessing", "dead-lettered"}
REASON = "reprocess requested from the command line"


@dataclass(frozen=True)
class ReprocessArgs:
    marketplace_order_id: str | None = None
    status: str | None = None
    code: str | None = None
    connection: str | None = None
    json: bool = False


@app.command("reprocess", help="retry one order now, or every order parked with a status and/or error code")
def reprocess_command(
    marketplace_order_id: Annotated[str | None, typer.Argument(metavar="[MARKETPLACE_ORDER_ID]")] = None,
    status: Annotated[ReprocessStatus | None, typer.Option(help="bulk: every order with this status")] = None,
    code: Annotated[str | None, typer.Option(help="error code, e.g. ORD027, FMT007, VALIDATION, HTTP503")] = None,
    connection: Annotated[
        str | None, typer.Option(help="connection name (default: CONNECTION_NAME for one order)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the reprocessed workflow ids as JSON")] = False,
) -> Invocation[ReprocessArgs]:
    return Invocation(_reprocess, ReprocessArgs(marketplace_order_id, status, code, connection, as_json))


async def _reprocess(settings: Settings, args: ReprocessArgs) -> int:
    if args.marketplace_order_id is None and args.status is None and args.code is None:
        print(
            "connector reprocess: give an order id, or --status and/or --code for a bulk reprocess",
            file=sys.stderr,
        )
        return 2
    if args.marketplace_order_id or args.connection:
        connection_of(settings, args.connection)
    if args.marketplace_order_id is None:
        return await _reprocess_matching(settings, args)
    client = await connect(settings, create_key=False)
    connection = args.connection or settings.connection_name
    order = args.marketplace_order_id
    outcome = await reprocess_order(client, connection=connection, marketplace_order_id=order, reason=REASON)
    if outcome is Reprocessed.UNKNOWN:
        raise no_order(order, connection)
    if outcome is Reprocessed.FINISHED:
        raise CommandError(
            f"order {order} is finished (its after-sale window passed): act on it in VTEX and the marketplace"
        )
    if args.json:
        print_json([order_workflow_id(connection, order)])
    elif outcome is Reprocessed.RESTARTED:
        print(f"order {order}'s workflow had ended unfinished: started again; it meets its existing VTEX order")
    else:
        print(f"reprocess requested for order {order}")
    return 0


async def _reprocess_matching(settings: Settings, args: ReprocessArgs) -> int:
    """Count first (the same visibility query), then signal with a progress bar, then one line."""
    try:
        query = reprocess_query(status=args.status, code=args.code, connection=args.connection)
    except ValueError as exc:
        raise UsageProblem(f"{exc}: write the status or error code as it is shown") from None
    client = await connect(settings, create_key=False)
    total = (await client.count_workflows(query)).count
    # The bar on stderr, and only where someone watches: stdout keeps the summary (or the JSON).
    watcher = Console(stderr=True)
    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("reprocess requested"), TimeElapsedColumn())
    with Progress(*columns, console=watcher, transient=True, disable=not watcher.is_terminal) as bar:
        task = bar.add_task("reprocess", total=total)
        signaled = await reprocess_matching(
            client,
            status=args.status,
            code=args.code,
            connection=args.connection,
            reason=REASON,
            on_signaled=lambda _: bar.advance(task),
        )
    if args.json:
        print_json(signaled)
    else:
        print(f"reprocess requested for {len(signaled)} order(s)")
    return 0


# --- cancel ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelArgs:
    marketplace_order_id: str
    reason: str = "canceled in the marketplace"
    connection: str | None = None


@app.command("cancel", help="cancel an order (in VTEX too, if it reached VTEX)")
def cancel_command(
    marketplace_order_id: Annotated[str, typer.Argument(metavar="MARKETPLACE_ORDER_ID")],
    reason: Annotated[str, typer.Option(help="why, kept in the order's timeline")] = CancelArgs.reason,
    connection: ConnectionOption = None,
) -> Invocation[CancelArgs]:
    return Invocation(_cancel, CancelArgs(marketplace_order_id, reason, connection))


async def _cancel(settings: Settings, args: CancelArgs) -> int:
    connection = connection_of(settings, args.connection)
    client = await connect(settings, create_key=False)
    async with existing_store(settings) as store:
        found = await request_cancel(
            client,
            store,
            connection=connection,
            marketplace_order_id=args.marketplace_order_id,
            request=CancelRequest(reason=args.reason, source="operator"),
        )
    if not found:
        raise no_order(args.marketplace_order_id, connection, running=True)
    print(
        f"cancel requested for order {args.marketplace_order_id}; follow it with: connector status "
        f"{args.marketplace_order_id}"
    )
    return 0
