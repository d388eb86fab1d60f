"""Bulk reprocess by filter: a dry-run count first, then one `reprocess` per order with its progress.

Each order shows queued (not signaled yet) → running (signaled; the order is retrying) → done (it left
the needs-action statuses) or failed (the signal failed, or the order came back to rest parked or
dead-lettered). A job lives in the console's memory: the signals it sent are durable in Temporal, its
progress page is not (a restarted console shows the orders themselves, not the job).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from temporalio.client import Client

from connector.console.filters import REPROCESSABLE_VALUES, OrderFilter
from connector.console.orders import OrderRow, all_rows, order_state
from connector.models import OrderState, OrderStatus
from connector.reprocess import Reprocessed, reprocess_order

log = logging.getLogger(__name__)

S = OrderStatus
# Where an order rests when the reprocess did not get it through (REPROCESSING: queued for a later retry).
STILL_STUCK = frozenset({S.PARKED, S.DEAD_LETTERED, S.REPROCESSING})
# Where an order passes while it is being worked on.
IN_FLIGHT = frozenset({S.RECEIVED, S.VALIDATING, S.CANCELING})
# How many jobs the console remembers (oldest forgotten first).
KEPT_JOBS = 20


class Progress(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class BulkItem:
    row: OrderRow
    progress: Progress = Progress.QUEUED
    detail: str = ""


def outcome_of(state: OrderState, marker: str) -> tuple[Progress, str] | None:
    """Done or failed once the order has acted on this job's reprocess (its timeline has an entry after
    the `reprocess` entry carrying the job's marker); None while it has not yet."""
    timeline = state.timeline
    requested = [i for i, entry in enumerate(timeline) if entry.step == "reprocess" and marker in entry.message]
    if not requested or requested[-1] == len(timeline) - 1:
        return None
    if state.status in STILL_STUCK:
        return Progress.FAILED, state.parked_reason or state.status.value
    if state.status in IN_FLIGHT:
        return None
    return Progress.DONE, state.status.value


@dataclass
class BulkJob:
    id: str
    selected: OrderFilter
    reason: str
    started_at: datetime
    items: list[BulkItem] = field(default_factory=list)
    listed: bool = False

    def tally(self) -> dict[str, int]:
        counted = {progress.value: 0 for progress in Progress}
        for item in self.items:
            counted[item.progress.value] += 1
        return counted

    @property
    def marker(self) -> str:
        """Written into each order's timeline with the reprocess, so the job knows its own request."""
        return f"(bulk reprocess {self.id})"

    @property
    def finished(self) -> bool:
        return self.listed and all(item.progress in (Progress.DONE, Progress.FAILED) for item in self.items)


class BulkJobs:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._jobs: dict[str, BulkJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, selected: OrderFilter, *, reason: str) -> BulkJob:
        job = BulkJob(secrets.token_hex(8), selected, reason, datetime.now(UTC))
        self._jobs[job.id] = job
        while len(self._jobs) > KEPT_JOBS:
            self._jobs.pop(next(iter(self._jobs)))
        task = asyncio.create_task(self._run(job), name=f"bulk-reprocess-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> BulkJob | None:
        return self._jobs.get(job_id)

    async def refresh(self, job: BulkJob) -> None:
        """Move running orders on to done or failed from their current status."""
        running = [item for item in job.items if item.progress is Progress.RUNNING]
        states = await asyncio.gather(*(order_state(self._client, item.row.workflow_id) for item in running))
        for item, state in zip(running, states, strict=True):
            decided = outcome_of(state, job.marker) if state is not None else None
            if decided is not None:
                item.progress, item.detail = decided

    async def _run(self, job: BulkJob) -> None:
        # The list is taken first, so orders that enter the filter meanwhile are not swept in.
        async for row in all_rows(self._client, job.selected, statuses=REPROCESSABLE_VALUES):
            job.items.append(BulkItem(row))
        job.listed = True
        log.info("bulk reprocess %s: %d orders", job.id, len(job.items))
        for item in job.items:
            try:
                outcome = await reprocess_order(
                    self._client,
                    connection=item.row.connection,
                    marketplace_order_id=item.row.marketplace_order_id,
                    reason=f"{job.reason} {job.marker}",
                )
            except Exception as exc:  # one order's failure is shown on its row; the others go on
                log.warning("bulk reprocess %s: %s failed: %r", job.id, item.row.workflow_id, exc)
                item.progress, item.detail = Progress.FAILED, f"could not signal the order: {type(exc).__name__}"
                continue
            if outcome in (Reprocessed.SIGNALED, Reprocessed.RESTARTED):
                item.progress, item.detail = Progress.RUNNING, outcome.value
            else:
                item.progress, item.detail = Progress.FAILED, f"not reprocessed: {outcome.value}"
