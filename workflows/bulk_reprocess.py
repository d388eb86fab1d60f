"""BulkReprocessWorkflow (the seller's console, "reprocess by filter"): lists the orders the filter matches
once, signals `reprocess` to them a batch per activity, then looks at the signaled ones until each has
acted on it, keeping every order's progress in workflow state (the `status` query). The job goes on, and
its page keeps working, whatever happens to the console that started it.

The list is taken first, so orders that enter the filter meanwhile are not swept in. Activities are retried
until they go through: no order is skipped. The history stays bounded without continue-as-new: one listing
of at most `max_orders` orders, one activity per `batch_size` of them, then follow rounds at growing
intervals (1 s doubling to a minute) for at most FOLLOW_FOR; an order that has not acted on the reprocess
by then is shown failed, saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from connector.bulk_reprocess import (
        BatchOutcomes,
        BulkItem,
        BulkJob,
        BulkListed,
        BulkListing,
        BulkReprocessInput,
        FollowBatch,
        Progress,
        SignalBatch,
    )

ACTIVITY_TIMEOUT = timedelta(minutes=2)
# No maximum of attempts: a listing or a batch that cannot go through now is tried again, never skipped.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)
FIRST_LOOK = timedelta(seconds=1)
MAX_LOOK = timedelta(minutes=1)
FOLLOW_FOR = timedelta(hours=1)
NOT_SEEN = "no sign of this reprocess in the order after an hour: look at the order"


@workflow.defn(name="BulkReprocess")
class BulkReprocessWorkflow:
    @workflow.init
    def __init__(self, start: BulkReprocessInput) -> None:
        self._job = BulkJob(id=start.job_id, filter=start.filter, reason=start.reason, started_at=workflow.now())

    @workflow.run
    async def run(self, start: BulkReprocessInput) -> BulkJob:
        job = self._job
        listed: BulkListed = await workflow.execute_activity(
            "list_bulk_orders",
            BulkListing(query=start.query, limit=start.max_orders),
            result_type=BulkListed,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        job.items, job.capped, job.listed = listed.items, listed.capped, True
        workflow.logger.info("bulk reprocess %s: %d orders", job.id, len(job.items))
        for batch in _batches(job.items, start.batch_size):
            signals = SignalBatch(reason=job.reason, marker=job.marker, items=batch)
            self._record(await self._batch("signal_bulk_orders", signals))
        await self._follow(start.batch_size)
        return job

    async def _follow(self, batch_size: int) -> None:
        """Look at the running orders until each has acted on the reprocess, or FOLLOW_FOR has passed."""
        give_up_at = workflow.now() + FOLLOW_FOR
        wait = FIRST_LOOK
        while running := [item for item in self._job.items if item.progress is Progress.RUNNING]:
            if workflow.now() >= give_up_at:
                for item in running:
                    item.progress, item.detail = Progress.FAILED, NOT_SEEN
                return
            await workflow.sleep(wait)
            for batch in _batches(running, batch_size):
                looks = FollowBatch(marker=self._job.marker, workflow_ids=[item.workflow_id for item in batch])
                self._record(await self._batch("follow_bulk_orders", looks))
            wait = min(wait * 2, MAX_LOOK)

    async def _batch(self, activity: str, batch: SignalBatch | FollowBatch) -> BatchOutcomes:
        outcomes: BatchOutcomes = await workflow.execute_activity(
            activity, batch, result_type=BatchOutcomes, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )
        return outcomes

    def _record(self, outcomes: BatchOutcomes) -> None:
        items = {item.workflow_id: item for item in self._job.items}
        for outcome in outcomes.outcomes:
            item = items[outcome.workflow_id]
            item.progress, item.detail = outcome.progress, outcome.detail

    @workflow.query
    def status(self) -> BulkJob:
        return self._job


def _batches(items: Sequence[BulkItem], size: int) -> list[list[BulkItem]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
