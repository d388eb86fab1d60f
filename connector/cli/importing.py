"""`connector import`: bring in orders on purpose, by id or by a time range (connector/import_command.py
does the work: the request, the import workflow, its progress bar and summary)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from connector.cli.common import ConnectionOption, Invocation, app, print_json
from connector.import_command import (
    ImportArgumentError,
    ImportArguments,
    command_for,
    import_request,
    start_import,
    watch_import,
)
from connector.importing import MAX_PAGE_SIZE, ImportInput
from connector.settings import Settings
from connector.temporal_client import connect


@app.command(
    "import",
    help=(
        "Bring in orders on purpose (a new connector polls from the time it starts and imports no history "
        "by surprise). Give marketplace order ids, or --since for every order whose latest change "
        "(created, paid, canceled...) falls in the range. An order the connector already knows is left "
        "alone, so importing again integrates nothing twice. The import runs in Temporal: Ctrl-C leaves it "
        "running, and the same command attaches to it again."
    ),
    short_help="bring in orders on purpose: by id, or every order changed in a time range",
)
def import_command(
    order_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ORDER_ID]...", help="marketplace order ids")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="range start: ISO 8601 with an offset (2026-11-01T00:00:00Z) or a date (midnight UTC)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="range end, written like --since (default: when the import is asked)")
    ] = None,
    page_size: Annotated[
        int, typer.Option(help=f"orders per page (default and maximum {MAX_PAGE_SIZE})")
    ] = MAX_PAGE_SIZE,
    connection: ConnectionOption = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="start the import, print its id and return")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the summary (with --no-wait: the import's id) as JSON")
    ] = False,
) -> Invocation[ImportArguments]:
    args = ImportArguments(list(order_ids or []), since, until, page_size, connection, no_wait, as_json)
    return Invocation(_import, args)


async def _import(settings: Settings, args: ImportArguments) -> int:
    try:
        request = import_request(settings, args)
    except ImportArgumentError as exc:
        print(f"connector import: {exc}", file=sys.stderr)
        return 2
    client = await connect(settings, create_key=False)
    handle = await start_import(client, ImportInput(request=request), task_queue=settings.temporal_task_queue)
    if args.no_wait:
        if args.json:
            print_json({"workflow_id": handle.id, "running": True, "watch": command_for(request)})
        else:
            print(f"import {handle.id} is running; watch it with: {command_for(request)}")
        return 0
    # With --json the progress bar is stderr's (shown only where someone watches): stdout is the JSON.
    return await watch_import(handle, request, Console(stderr=args.json), as_json=args.json)
