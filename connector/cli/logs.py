"""`connector logs`: the order log (VTEX's log format) of a day, as a table or JSON."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connector.cli.common import Invocation, JsonOption, app, existing_store, one_line, output, print_json, print_table
from connector.cli.common import table as new_table
from connector.intake.logs import parse_statuses
from connector.settings import Settings
from connector.store.models import LogMessage

HEADERS = ("TIME (UTC)", "CODE", "STATUS", "CONNECTION", "MARKETPLACE ORDER", "VTEX ORDER", "OPERATION", "MESSAGE")


@dataclass(frozen=True)
class LogsArgs:
    date: date | None = None
    status: str | None = None
    order: str | None = None
    connection: str | None = None
    verbose: bool = False
    json: bool = False


@app.command("logs", help="show the order log (VTEX's log format) for a day")
def logs_command(
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today, UTC)")] = None,
    status: Annotated[
        str | None, typer.Option(help="comma list of success, error, alert, pending (default: all)")
    ] = None,
    order: Annotated[str | None, typer.Option(help="only this marketplace order id")] = None,
    connection: Annotated[str | None, typer.Option(help="only this connection (default: every connection)")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="include the content payloads")] = False,
    as_json: JsonOption = False,
) -> Invocation[LogsArgs]:
    try:
        parsed = date.fromisoformat(day) if day is not None else None
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date: write it like 2026-12-01", param_hint="'--date'") from None
    return Invocation(_logs, LogsArgs(parsed, status, order, connection, verbose, as_json))


async def _logs(settings: Settings, args: LogsArgs) -> int:
    try:
        statuses = parse_statuses(args.status or "all")
    except ValueError as exc:
        print(f"connector logs: {exc}", file=sys.stderr)
        return 2
    # --connection is not checked against the configured ones: the log keeps a removed connection's lines.
    async with existing_store(settings) as store:
        messages = await store.logs(
            account=settings.account_name,
            day=args.date or datetime.now(UTC).date(),
            statuses=statuses,
            marketplace_order_id=args.order,
            connection=args.connection,
        )
    if args.json:
        print_json([message.model_dump(mode="json") for message in messages])
        return 0
    console = output()
    if not messages:
        print("no log messages")
    else:
        print_table(console, log_table(console, messages, verbose=args.verbose))
    return 0


def log_table(console: Console, messages: Sequence[LogMessage], *, verbose: bool = False) -> Table:
    """One row per message; `verbose` adds a row under it for each content payload."""
    rows = new_table(console, *HEADERS, wrapping=("OPERATION", "MESSAGE"))
    for message in messages:
        rows.add_row(
            message.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(message.code),
            message.status.value.capitalize(),
            Text(message.connection),
            Text(message.marketplace_order_id),
            Text(message.vtex_order_id or "-"),
            Text(one_line(message.operation)),
            Text(one_line(message.business_message)),
        )
        if verbose:
            contents = (
                ("source", message.content_source),
                ("translated", message.content_translated),
                ("destination", message.content_destination),
            )
            for label, text in contents:
                if text:
                    rows.add_row(*[""] * (len(HEADERS) - 1), Text(f"{label}: {text}"))
    return rows
