"""VTEX_ACTIVITIES_PER_SECOND across every worker, for local activities too.

The server rate-limits the VTEX task queue, but a local activity never goes through a task queue. So every
VTEX activity, local or not, first takes a slot of a rate kept in the order store (one row, one atomic
statement: `OrderStore.reserve_rate_slot`), shared by all workers on that store. A local activity may wait
a moment for its slot (LOCAL_WAIT_SECONDS); past that it gives up at once with VTEX_THROTTLED, and the
workflow runs the step as a regular activity on the rate-limited queue, where a backlog waits on the
server, and which takes a store slot too (waiting up to QUEUED_WAIT_SECONDS, else retried later).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from connector.failures import VTEX_THROTTLED
from connector.store.base import OrderStore

LOCAL_WAIT_SECONDS = 1.0
QUEUED_WAIT_SECONDS = 20.0


class VtexRateLimit(Interceptor):
    """A worker interceptor: the named activities take a shared slot before they run."""

    def __init__(self, store: OrderStore, *, per_second: float, key: str, activities: Collection[str]) -> None:
        self._store = store
        self._interval = 1.0 / per_second
        self._key = key
        self._activities = frozenset(activities)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TakeASlot(next, self)

    async def take_a_slot(self) -> None:
        info = activity.info()
        if info.activity_type not in self._activities:
            return
        within = LOCAL_WAIT_SECONDS if info.is_local else QUEUED_WAIT_SECONDS
        wait = await self._store.reserve_rate_slot(self._key, self._interval, within)
        if wait is None:
            raise ApplicationError(
                f"VTEX's rate ({1 / self._interval:g} activities/s) is taken for the next {within:g} s",
                type=VTEX_THROTTLED,
                # A local activity hands the step to the queue at once; a queued one tries again soon.
                non_retryable=info.is_local,
                next_retry_delay=None if info.is_local else timedelta(seconds=within),
            )
        await asyncio.sleep(wait)


class _TakeASlot(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, limit: VtexRateLimit) -> None:
        super().__init__(next)
        self._limit = limit

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        await self._limit.take_a_slot()
        return await self.next.execute_activity(input)
