"""A bulk reprocess job (the seller's console, "reprocess by filter"): what the console starts the workflow
with, the job the workflow keeps and answers its `status` query with, the activities' inputs and outputs,
and how an order's timeline tells that it acted on the job's reprocess.

Each order goes queued (not signaled yet) → running (signaled; the order is retrying) → done (it left the
needs-action statuses) or failed (the signal failed, or the order came back to rest parked, queued or
dead-lettered). The workflow id is derived from the job id, so the job's page finds it after any restart.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from connector.models import OrderState, OrderStatus

S = OrderStatus
# Where an order rests when the reprocess did not get it through (REPROCESSING: queued for a later retry).
STILL_STUCK = frozenset({S.PARKED, S.DEAD_LETTERED, S.REPROCESSING})
# Where an order passes while it is being worked on.
IN_FLIGHT = frozenset({S.RECEIVED, S.VALIDATING, S.CANCELING})
# Orders one job takes at most: the job's state (and its page) holds every one of them. More matching orders
# are left to another job, once this one finished (the preview page says so).
MAX_ORDERS = 1000
# Orders per signal or follow activity: a retried activity redoes at most this many, and each activity's
# input and result stay small in the workflow's history.
BATCH_SIZE = 100
# An item's detail is an order's parked reason, usually a sentence: the cap bounds the job's state.
MAX_DETAIL = 300


class Progress(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BulkItem(BaseModel):
    workflow_id: str
    connection: str
    marketplace_order_id: str
    progress: Progress = Progress.QUEUED
    detail: str = ""


class BulkJob(BaseModel):
    """The job as the workflow keeps it, its `status` query and its result."""

    id: str
    # The console's filter as a query string (shown on the job's page), and the reason each order is given.
    filter: str
    reason: str
    started_at: datetime
    listed: bool = False
    # More orders matched than the job takes (MAX_ORDERS).
    capped: bool = False
    items: list[BulkItem] = Field(default_factory=list)

    @property
    def marker(self) -> str:
        return job_marker(self.id)

    @property
    def finished(self) -> bool:
        return self.listed and all(item.progress in (Progress.DONE, Progress.FAILED) for item in self.items)

    def tally(self) -> dict[str, int]:
        counted = Counter(item.progress for item in self.items)
        return {progress.value: counted[progress] for progress in Progress}


class BulkReprocessInput(BaseModel):
    job_id: str
    filter: str
    # The visibility query the console's preview counted with (connector/console/filters.py).
    query: str
    reason: str
    # The job's limits; a test makes them small.
    max_orders: int = Field(default=MAX_ORDERS, ge=1)
    batch_size: int = Field(default=BATCH_SIZE, ge=1)


class BulkListing(BaseModel):
    query: str
    limit: int


class BulkListed(BaseModel):
    items: list[BulkItem]
    capped: bool


class SignalBatch(BaseModel):
    """Orders to signal: each is given `reason` followed by the job's marker."""

    reason: str
    marker: str
    items: list[BulkItem]


class FollowBatch(BaseModel):
    """Signaled orders to look at for their outcome."""

    marker: str
    workflow_ids: list[str]


class BulkOutcome(BaseModel):
    workflow_id: str
    progress: Progress
    detail: str


class BatchOutcomes(BaseModel):
    """A signal batch's outcome for each order; a follow batch's for each order that has acted."""

    outcomes: list[BulkOutcome]


def bulk_workflow_id(job_id: str) -> str:
    return f"bulk-reprocess:{job_id}"


def job_marker(job_id: str) -> str:
    """Written into each order's timeline with the reprocess, so the job knows its own request."""
    return f"(bulk reprocess {job_id})"


def short_detail(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _requests(state: OrderState, marker: str) -> list[int]:
    """Where in the order's timeline its `reprocess` entries carrying the marker are."""
    return [i for i, entry in enumerate(state.timeline) if entry.step == "reprocess" and marker in entry.message]


def has_request(state: OrderState, marker: str) -> bool:
    """The order took the job's reprocess signal already."""
    return bool(_requests(state, marker))


def outcome_of(state: OrderState, marker: str) -> tuple[Progress, str] | None:
    """Done or failed once the order has acted on this job's reprocess (its timeline has an entry after
    the `reprocess` entry carrying the job's marker); None while it has not yet."""
    requested = _requests(state, marker)
    if not requested or requested[-1] == len(state.timeline) - 1:
        return None
    if state.status in STILL_STUCK:
        return Progress.FAILED, state.parked_reason or state.status.value
    if state.status in IN_FLIGHT:
        return None
    return Progress.DONE, state.status.value
