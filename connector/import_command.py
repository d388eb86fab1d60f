"""`connector import` on the operator's side: the arguments, starting (or attaching to) the import
workflow, a progress bar while it runs, and the summary at the end."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import CancelledError as WorkflowCanceled
from temporalio.exceptions import TerminatedError
from temporalio.service import RPCError

from connector.connections import connection_configs
from connector.importing import MAX_PAGE_SIZE, ImportInput, ImportProgress, ImportRequest, import_workflow_id
from connector.settings import Settings, SettingsError
from workflows.importer import ImportWorkflow

EXAMPLE = "2026-11-01T00:00:00Z"
WATCH_INTERVAL = 0.5


class ImportArgumentError(ValueError):
    """An argument `connector import` cannot use; the message is one sentence for the operator."""


@dataclass(frozen=True)
class ImportArguments:
    """`connector import`'s arguments as given (connector/cli/importing.py parses them)."""

    order_ids: list[str] = field(default_factory=list)
    since: str | None = None
    until: str | None = None
    page_size: int = MAX_PAGE_SIZE
    connection: str | None = None
    no_wait: bool = False
    json: bool = False


def parse_instant(flag: str, text: str) -> datetime:
    """ISO 8601 with an offset, or a date alone (midnight UTC)."""
    try:
        return datetime.combine(date.fromisoformat(text), time(), UTC)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ImportArgumentError(
            f"{flag} {text!r} is not an ISO 8601 date-time: write it like {EXAMPLE}, or a date like 2026-11-01 "
            "(midnight UTC)"
        ) from None
    if instant.tzinfo is None:
        # A time without an offset is a different instant in every time zone: refused, not guessed.
        raise ImportArgumentError(f"{flag} {text} has no UTC offset: write it like {text}Z or {text}-03:00")
    return instant


def import_request(settings: Settings, args: ImportArguments) -> ImportRequest:
    """The request the arguments ask for; ImportArgumentError when they cannot make one."""
    connection = args.connection or settings.connection_name
    try:
        names = [config.name for config in connection_configs(settings)]
    except SettingsError as exc:
        raise ImportArgumentError(str(exc)) from None
    if connection not in names:
        raise ImportArgumentError(f"no connection {connection!r} is configured (configured: {', '.join(names)})")
    try:
        return ImportRequest(
            connection=connection,
            order_ids=args.order_ids,
            since=parse_instant("--since", args.since) if args.since is not None else None,
            until=parse_instant("--until", args.until) if args.until is not None else None,
            page_size=args.page_size,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        # The request's own rules are written for the operator; show them without pydantic's wording.
        raise ImportArgumentError(str(error.get("ctx", {}).get("error", error["msg"]))) from None


def command_for(request: ImportRequest) -> str:
    """The command that asks for this import again (and so attaches to it while it runs)."""
    words = ["connector", "import", "--connection", request.connection]
    if request.since is not None:
        words += ["--since", request.since.isoformat().replace("+00:00", "Z")]
        if request.until is not None:
            words += ["--until", request.until.isoformat().replace("+00:00", "Z")]
    else:
        words += ["--", *request.order_ids]
    return shlex.join(words)


async def start_import(
    client: Client, start: ImportInput, *, task_queue: str
) -> WorkflowHandle[ImportWorkflow, ImportProgress]:
    """Start the import, or attach to the same import while it runs; once it ended, the same request
    starts it anew (it re-checks every order and integrates none twice)."""
    return await client.start_workflow(
        ImportWorkflow.run,
        start,
        id=import_workflow_id(start.request),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def watch_import(
    handle: WorkflowHandle[ImportWorkflow, ImportProgress],
    request: ImportRequest,
    console: Console,
    *,
    as_json: bool = False,
) -> int:
    """A progress bar until the import ends, then the summary (on stdout as JSON with `as_json`; the bar
    is then `console`'s, stderr's): 0 when done (refusals are reported, not errors), 1 if the workflow
    failed. Interrupted, it leaves the import running and says how to watch."""
    result = asyncio.ensure_future(handle.result())
    try:
        with _progress_bar(request, console) as bar:
            task = bar.add_task("starting", total=len(request.order_ids) or None)
            while not result.done():
                progress = await _query(handle)
                if progress is not None:
                    bar.update(task, completed=progress.ids_done, description=_describe(progress))
                await asyncio.wait({result}, timeout=WATCH_INTERVAL)
        summary = result.result()
    except WorkflowFailureError as exc:
        print(f"connector import: the import {handle.id} did not finish: {_why(exc)}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        print(
            f"stopped watching; the import {handle.id} goes on. Watch it again with: {command_for(request)}",
            file=sys.stderr,
        )
        raise
    finally:
        result.cancel()
    if as_json:
        print(json.dumps(summary_json(handle.id, summary), indent=2, ensure_ascii=False))
    else:
        print_summary(console, handle.id, summary)
    return 0


def summary_json(workflow_id: str, summary: ImportProgress) -> dict[str, Any]:
    """The summary as `connector import --json` prints it."""
    counted = summary.model_dump(
        mode="json", include={"connection", "pages", "seen", "handed_off", "already_known", "refused", "refusals"}
    )
    return {"workflow_id": workflow_id, **counted, "refusals_not_listed": summary.refusals_not_listed}


def _why(failure: WorkflowFailureError) -> str:
    cause = failure.cause
    if isinstance(cause, TerminatedError):
        return "it was terminated"
    if isinstance(cause, WorkflowCanceled):
        return "it was canceled"
    return str(cause or failure)


def _progress_bar(request: ImportRequest, console: Console) -> Progress:
    columns: list[ProgressColumn] = [BarColumn()]
    if request.order_ids:
        columns.append(MofNCompleteColumn())
    columns += [TextColumn("{task.description}"), TimeElapsedColumn()]
    # No bar where nobody watches (a pipe, a log): the summary is what is kept.
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


async def _query(handle: WorkflowHandle[ImportWorkflow, ImportProgress]) -> ImportProgress | None:
    try:
        return await handle.query(ImportWorkflow.progress)
    except (WorkflowQueryFailedError, RPCError):
        # Not answered yet (first task, continue-as-new): the next look will tell.
        return None


def _describe(progress: ImportProgress) -> str:
    text = (
        f"{progress.pages} pages, {progress.seen} orders: {progress.handed_off} handed off, "
        f"{progress.already_known} already known, {progress.refused} refused"
    )
    if progress.last_error is not None:
        text += f" [red](retrying: {escape(progress.last_error)})[/red]"
    return text


def print_summary(console: Console, workflow_id: str, summary: ImportProgress) -> None:
    pages = "page" if summary.pages == 1 else "pages"
    console.print(f"import {workflow_id} done: {summary.seen} orders in {summary.pages} {pages}", highlight=False)
    counts = Table(show_header=False, box=None, padding=(0, 2))
    counts.add_column()
    counts.add_column(justify="right")
    counts.add_row("handed off", str(summary.handed_off))
    counts.add_row("already known", str(summary.already_known))
    counts.add_row("refused", str(summary.refused))
    console.print(counts)
    if not summary.refusals:
        return
    refusals = Table("order id", "reason", title="refused")
    for refusal in summary.refusals:
        # Text, not markup: an id is whatever the marketplace or the operator wrote.
        refusals.add_row(Text(refusal.marketplace_order_id), Text(refusal.reason))
    console.print(refusals)
    if summary.refusals_not_listed:
        console.print(f"and {summary.refusals_not_listed} more refused, not listed", highlight=False)
