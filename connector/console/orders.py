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
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowExecution

from connector.console.filters import NEEDS_ACTION_VALUES, OrderFilter
from connector.models import OrderState
from connector.vtex.error_table import BY_CODE
from workflows.order import OrderLifecycle
from workflows.support import CONNECTION, ERROR_CODE, MARKETPLACE_ORDER_ID, ORDER_STATUS, VTEX_ORDER_ID

QUERY_TIMEOUT = timedelta(seconds=3)
log = logging.getLogger(__name__)
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
    """Orders by status and by error code within the other filters, exact, in one go: a walk of the
    matching orders (about 0.3 s per 1,000). For a one-off (the CLI); the web console keeps `Counts`."""
    by_status = await status_counts(client, selected)
    by_code: Counter[str] = Counter()
    async for row in all_rows(client, selected.with_code(None)):
        if row.error_code:
            by_code[row.error_code] += 1
    return by_status, dict(by_code.most_common())


async def status_counts(client: Client, selected: OrderFilter) -> dict[str, int]:
    """Orders in each needs-action status within the filter, one visibility count each, all at once."""
    statuses = [status for status in NEEDS_ACTION_VALUES if selected.status in (None, status)]
    found = await asyncio.gather(*(client.count_workflows(selected.with_status(s).query()) for s in statuses))
    return {status: n.count for status, n in zip(statuses, found, strict=True) if n.count}


# Error codes the connector sets (workflows/order.py, connector/vtex/error_table.py, activities/failures.py):
# counted until a walk has found which codes the waiting orders carry (any VTEX code, any HTTP status).
KNOWN_CODES = frozenset(
    {
        "VALIDATION",
        "CONNECTOR_ERROR",
        "LATE_PAYMENT",
        "TIMEOUT",
        "ERROR",
        *BY_CODE,
        *(f"HTTP{status}" for status in (400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504)),
    }
)
DISCOVERY_EVERY_SECONDS = 60.0


class Counts:
    """The list's counts by status and by error code.

    Visibility counts one value per query and cannot group by a custom attribute, and walking every
    waiting order to tally codes costs about 0.3 s per 1,000 orders: so each status and each code is
    one count query, all at once, over a set of codes: the known ones until a walk of the waiting
    orders (in the background, at most once a minute, never on a page's path) says which are present,
    then those. A code that appears meanwhile is counted after the next walk (it is in the list at
    once). A filter's counts are kept `ttl` seconds, so paging through it costs nothing.
    """

    def __init__(self, client: Client, *, ttl: float = 30.0) -> None:
        self._client = client
        self._ttl = ttl
        self._codes: set[str] = set(KNOWN_CODES)
        self._kept: dict[str, tuple[float, tuple[dict[str, int], dict[str, int]]]] = {}
        self._discovered_at = -DISCOVERY_EVERY_SECONDS
        self._discovery: asyncio.Task[None] | None = None

    async def get(self, selected: OrderFilter) -> tuple[dict[str, int], dict[str, int]]:
        now = time.monotonic()
        self._discover(now)
        key = selected.query()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        counted = await self.count_now(selected)
        self._kept = {k: v for k, v in self._kept.items() if v[0] > now}  # drop the expired
        self._kept[key] = (now + self._ttl, counted)
        return counted

    async def count_now(self, selected: OrderFilter) -> tuple[dict[str, int], dict[str, int]]:
        """The counts without the kept ones: statuses and codes counted at once."""
        codes = sorted(self._codes)
        by_status, found = await asyncio.gather(
            status_counts(self._client, selected),
            asyncio.gather(*(self._client.count_workflows(selected.with_code(code).query()) for code in codes)),
        )
        by_code = {code: n.count for code, n in zip(codes, found, strict=True) if n.count}
        return by_status, dict(sorted(by_code.items(), key=lambda item: -item[1]))

    def _discover(self, now: float) -> None:
        if self._discovery is not None and not self._discovery.done():
            return
        if now - self._discovered_at < DISCOVERY_EVERY_SECONDS:
            return
        self._discovered_at = now
        self._discovery = asyncio.create_task(self.find_codes(), name="console-error-codes")

    async def find_codes(self) -> None:
        """Walk the waiting orders for the error codes they carry; from then on only those are counted."""
        try:
            present = {row.error_code async for row in all_rows(self._client, OrderFilter()) if row.error_code}
        except Exception as exc:  # the codes counted so far stay; the walk is tried again later
            log.warning("console: could not look for error codes in visibility: %r", exc)
            return
        if present != self._codes:
            self._codes = present  # only what is there: fewer count queries per page
            self._kept.clear()


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
