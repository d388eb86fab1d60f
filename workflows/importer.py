"""ImportWorkflow (`connector import`): brings in orders on purpose, by id or every order changed in a range,
one activity per page, keeping its progress in workflow state so it survives a worker or CLI restart.

A failing page (a marketplace outage) is retried with a growing backoff, never skipped, and the error is
shown in the progress; nothing is raised out of the workflow. Continues as new every `pages_per_run`
pages, carrying the progress.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from connector.importing import (
        MAX_REFUSALS,
        ImportInput,
        ImportPage,
        ImportPageResult,
        ImportProgress,
        ImportRequest,
    )
    from connector.models import ListingPosition

PAGE_TIMEOUT = timedelta(minutes=2)
# Within one try of a page; past these attempts the workflow records the error and backs off itself.
PAGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=3)
FIRST_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)


@workflow.defn(name="OrderImport")
class ImportWorkflow:
    @workflow.init
    def __init__(self, start: ImportInput) -> None:
        request = start.request
        self._progress = start.progress or ImportProgress(
            connection=request.connection,
            total=len(request.order_ids) if request.order_ids else None,
            position=ListingPosition(since=request.since) if request.since is not None else None,
        )

    @workflow.run
    async def run(self, start: ImportInput) -> ImportProgress:
        request, progress = start.request, self._progress
        if request.since is not None and progress.until is None:
            # Once, in the first run: an open range ends when the import was asked for.
            progress.until = request.until or workflow.now()
        pages_this_run = 0
        while not progress.done:
            if pages_this_run >= start.pages_per_run or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(start.model_copy(update={"progress": progress}))
            try:
                result = await self._next_page(request, progress)
            except ActivityError as exc:
                progress.failures_in_a_row += 1
                progress.last_error = str(exc.cause or exc)
                workflow.logger.warning("import page for %s failed: %s", request.connection, progress.last_error)
                await workflow.sleep(_backoff(progress.failures_in_a_row))
                continue
            _record(progress, request, result)
            pages_this_run += 1
        return progress

    async def _next_page(self, request: ImportRequest, progress: ImportProgress) -> ImportPageResult:
        if request.since is not None:
            activity, page = (
                "import_changes_page",
                ImportPage(
                    connection=request.connection,
                    position=progress.position,
                    until=progress.until,
                    previous_last=progress.last_change,
                    page_size=request.page_size,
                ),
            )
        else:
            ids = request.order_ids[progress.ids_done : progress.ids_done + request.page_size]
            activity, page = "import_order_ids", ImportPage(connection=request.connection, order_ids=ids)
        result: ImportPageResult = await workflow.execute_activity(
            activity,
            page,
            result_type=ImportPageResult,
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=PAGE_RETRY,
        )
        return result

    @workflow.query
    def progress(self) -> ImportProgress:
        return self._progress


def _record(progress: ImportProgress, request: ImportRequest, result: ImportPageResult) -> None:
    progress.pages += 1
    progress.seen += result.seen
    progress.handed_off += result.handed_off
    progress.already_known += result.already_known
    progress.refused += len(result.refusals)
    progress.refusals.extend(result.refusals[: MAX_REFUSALS - len(progress.refusals)])
    progress.last_error, progress.failures_in_a_row = None, 0
    if request.since is not None:
        progress.position, progress.last_change = result.next or progress.position, result.last_change
        progress.done = result.done
    else:
        progress.ids_done += result.seen
        progress.done = progress.ids_done >= len(request.order_ids)


def _backoff(failures_in_a_row: int) -> timedelta:
    # 2 s, 4 s, 8 s ... at most 5 minutes (the shift is capped: the count may grow for days).
    return min(FIRST_BACKOFF * (1 << min(failures_in_a_row - 1, 16)), MAX_BACKOFF)
