"""The bulk reprocess's activities: list the orders the filter matches, signal a batch of them, and look at a
batch of signaled ones for their outcome. All through the worker's own Temporal client.

A retried signal batch asks each order whether it took the job's reprocess already (the job's marker in a
`reprocess` entry of its timeline) before signaling it again. Were it signaled twice anyway (its query
unanswered), the second signal is one more `reprocess` entry and, for an order that came back to rest
meanwhile, one more attempt with a fresh count: placing is idempotent, so never a second VTEX order.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.client import Client

from connector.bulk_reprocess import (
    BatchOutcomes,
    BulkItem,
    BulkListed,
    BulkListing,
    BulkOutcome,
    FollowBatch,
    Progress,
    SignalBatch,
    has_request,
    outcome_of,
    short_detail,
)
from connector.console.orders import order_state, row_from
from connector.reprocess import Reprocessed, reprocess_order

log = logging.getLogger(__name__)


@activity.defn(name="list_bulk_orders")
async def list_bulk_orders(listing: BulkListing) -> BulkListed:
    """The matching orders, `limit` at most (one more is read to tell whether the job is capped)."""
    found: dict[str, BulkItem] = {}
    async for execution in activity.client().list_workflows(listing.query, limit=listing.limit + 1):
        row = row_from(execution)
        found[row.workflow_id] = BulkItem(
            workflow_id=row.workflow_id, connection=row.connection, marketplace_order_id=row.marketplace_order_id
        )
    items = list(found.values())
    return BulkListed(items=items[: listing.limit], capped=len(items) > listing.limit)


@activity.defn(name="signal_bulk_orders")
async def signal_bulk_orders(batch: SignalBatch) -> BatchOutcomes:
    """Signal `reprocess` to every order of the batch: running when it took it, failed (with why) when not.
    One order's failure is its own outcome; the others go on."""
    client = activity.client()
    retried = activity.info().attempt > 1
    outcomes = await asyncio.gather(*(_signal(client, batch, item, retried=retried) for item in batch.items))
    return BatchOutcomes(outcomes=list(outcomes))


async def _signal(client: Client, batch: SignalBatch, item: BulkItem, *, retried: bool) -> BulkOutcome:
    if retried:
        state = await order_state(client, item.workflow_id)
        if state is not None and has_request(state, batch.marker):
            return _outcome(item, Progress.RUNNING, Reprocessed.SIGNALED.value)
    try:
        outcome = await reprocess_order(
            client,
            connection=item.connection,
            marketplace_order_id=item.marketplace_order_id,
            reason=f"{batch.reason} {batch.marker}",
        )
    except Exception as exc:  # one order's failure is shown on its row; the others go on
        log.warning("%s: could not signal %s: %r", batch.marker, item.workflow_id, exc)
        return _outcome(item, Progress.FAILED, f"could not signal the order: {type(exc).__name__}")
    if outcome in (Reprocessed.SIGNALED, Reprocessed.RESTARTED):
        return _outcome(item, Progress.RUNNING, outcome.value)
    return _outcome(item, Progress.FAILED, f"not reprocessed: {outcome.value}")


def _outcome(item: BulkItem, progress: Progress, detail: str) -> BulkOutcome:
    return BulkOutcome(workflow_id=item.workflow_id, progress=progress, detail=detail)


@activity.defn(name="follow_bulk_orders")
async def follow_bulk_orders(batch: FollowBatch) -> BatchOutcomes:
    """The outcome of each order that has acted on the job's reprocess; the others are left out (an order
    that does not answer its query is looked at again next time)."""
    client = activity.client()
    states = await asyncio.gather(*(order_state(client, workflow_id) for workflow_id in batch.workflow_ids))
    outcomes = []
    for workflow_id, state in zip(batch.workflow_ids, states, strict=True):
        decided = outcome_of(state, batch.marker) if state is not None else None
        if decided is not None:
            progress, detail = decided
            outcomes.append(BulkOutcome(workflow_id=workflow_id, progress=progress, detail=short_detail(detail)))
    return BatchOutcomes(outcomes=outcomes)
