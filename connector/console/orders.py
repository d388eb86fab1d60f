"""The needs-action list: rows from Temporal's visibility, each enriched from its order's `status` query.

A page lists `page_size` orders with the visibility's own page token, so page 400 of 10,000 orders costs
what page 1 costs. Only the rows on the page are queried (attempts, last attempt, the seller's action in
words): a query is one round trip to a worker, and on Temporal Cloud an action, so the counts and the CSV
export use visibility alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowExecution

from connector.console.filters import NEEDS_ACTION_VALUES, OrderFilter
from connector.models import OrderState
from workflows.order import OrderLifecycle
from workflows.support import CONNECTION, ERROR_CODE, MARKETPLACE_ORDER_ID, ORDER_STATUS, VTEX_ORDER_ID

QUERY_TIMEOUT = timedelta(seconds=3)
# What to do, by error code family, where the order's own words are not at hand (the CSV export).
GENERIC_ACTIONS = {
    "parked": "Fix what the error code says, then reprocess.",
    "dead-lettered": "Retried many times without success: fix the cause, then reprocess.",
    "reprocessing": "Nothing: the connector retries on its own.",
    "pending-approval": "Approve or deny the price divergence in VTEX (Orders > the order).",
    "awaiting-payment": "Nothing: the order is placed once the marketplace confirms the payment.",
    "after-sale": "Settle the return or cancellation in VTEX and the marketplace by hand.",
    "late-payment": "A payment arrived after the order was canceled: refund it in the marketplace.",
}


@dataclass(frozen=True)
class OrderRow:
    workflow_id: str
    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None
    status: str
    error_code: str | None
    created_at: datetime
    # From the order's `status` query (None when it did not answer in time).
    action: str | None = None
    attempts: int | None = None
    last_attempt: datetime | None = None

    @property
    def generic_action(self) -> str:
        return GENERIC_ACTIONS.get(self.status, "")


@dataclass(frozen=True)
class Page:
    rows: list[OrderRow]
    next_token: str | None


def row_from(execution: WorkflowExecution) -> OrderRow:
    attributes = execution.typed_search_attributes
    return OrderRow(
        workflow_id=execution.id,
        connection=attributes.get(CONNECTION) or "",
        marketplace_order_id=attributes.get(MARKETPLACE_ORDER_ID) or execution.id,
        vtex_order_id=attributes.get(VTEX_ORDER_ID),
        status=attributes.get(ORDER_STATUS) or "",
        error_code=attributes.get(ERROR_CODE),
        created_at=execution.start_time,
    )


async def list_page(client: Client, selected: OrderFilter, *, token: str | None, page_size: int) -> Page:
    iterator = client.list_workflows(selected.query(), page_size=page_size, next_page_token=_decode_token(token))
    await iterator.fetch_next_page()
    rows = [row_from(execution) for execution in iterator.current_page or []]
    next_token = iterator.next_page_token
    enriched = await asyncio.gather(*(enrich(client, row) for row in rows))
    return Page(enriched, base64.urlsafe_b64encode(next_token).decode() if next_token else None)


async def enrich(client: Client, row: OrderRow) -> OrderRow:
    state = await order_state(client, row.workflow_id)
    if state is None:
        return row
    last = state.timeline[-1].at if state.timeline else None
    action = state.parked_reason or row.generic_action
    return replace(row, action=action, attempts=state.reprocess_attempts, last_attempt=last)


async def order_state(client: Client, workflow_id: str) -> OrderState | None:
    """The order's `status` query, or None when no worker answers in time (the page still renders)."""
    handle = client.get_workflow_handle_for(OrderLifecycle.run, workflow_id)
    try:
        return await handle.query(OrderLifecycle.status, rpc_timeout=QUERY_TIMEOUT)
    except Exception:  # a closed, unknown or unanswered order shows without its details
        return None


async def counts(client: Client, selected: OrderFilter) -> tuple[dict[str, int], dict[str, int]]:
    """Orders by status and by error code within the other filters (visibility only)."""
    by_status: dict[str, int] = {}
    for status in NEEDS_ACTION_VALUES:
        if selected.status in (None, status):
            by_status[status] = (await client.count_workflows(selected.with_status(status).query())).count
    by_code: Counter[str] = Counter()
    async for row in all_rows(client, selected.with_code(None)):
        if row.error_code:
            by_code[row.error_code] += 1
    return {s: n for s, n in by_status.items() if n}, dict(by_code.most_common())


async def all_rows(
    client: Client, selected: OrderFilter, *, statuses: Sequence[str] = NEEDS_ACTION_VALUES
) -> AsyncIterator[OrderRow]:
    async for execution in client.list_workflows(selected.query(statuses), page_size=1000):
        yield row_from(execution)


def _decode_token(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        return None
