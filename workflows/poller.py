"""PollerWorkflow: one per connection, forever. Walks the orders changed since its cursor and hands each to
its order workflow; the cursor only moves with pages read, and a marketplace outage backs the poller off
instead of skipping anything. A backlog is read a few pages per poll, polled again at once until caught
up. The `configure` signal changes interval, overlap and page size of a running poller. Continues as new
every so often to keep history short."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from connector.models import PollerInput, PollerSettings, PollerState, PollProgress, PollRequest

POLLS_PER_RUN = 200
MAX_BACKOFF_FACTOR = 32  # a failing marketplace is asked again at most every 32 intervals
PAGES_PER_POLL = 10


@workflow.defn
class PollerWorkflow:
    @workflow.init
    def __init__(self, request: PollerInput) -> None:
        self._request = request
        self._settings = request.settings()
        self._reconfigured = False
        self._state = PollerState(
            connection=request.connection,
            cursor=request.cursor,
            handed_off=request.handed_off,
            failures_in_a_row=request.failures_in_a_row,
            settings=self._settings,
            walk=request.walk,
            skipped=request.skipped,
            deferred=len(request.deferred),
            quarantined=request.quarantined,
        )

    @workflow.run
    async def run(self, request: PollerInput) -> None:
        seen, deferred = list(request.seen), list(request.deferred)
        for _ in range(POLLS_PER_RUN):
            state, settings = self._state, self._settings
            progress: PollProgress | None = None
            try:
                progress = await workflow.execute_activity(
                    "poll_marketplace",
                    PollRequest(
                        connection=request.connection,
                        cursor=state.cursor,
                        overlap_seconds=settings.overlap_seconds,
                        seen=seen,
                        walk=state.walk,
                        deferred=deferred,
                        page_size=settings.page_size,
                        max_pages=PAGES_PER_POLL,
                        webhook_grace_seconds=settings.webhook_grace_seconds,
                    ),
                    result_type=PollProgress,
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_seconds),
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                )
            except ActivityError as exc:
                state.failures_in_a_row += 1
                state.last_error = str(exc.cause or exc)
                workflow.logger.warning("poll of %s failed: %s", request.connection, state.last_error)
            else:
                seen, deferred = progress.seen, progress.deferred
                self._record(progress)
            state.last_poll_at = workflow.now()
            if progress is not None and progress.walk is not None:
                continue  # a backlog: read its next pages now, not an interval later
            factor = min(2**state.failures_in_a_row, MAX_BACKOFF_FACTOR)
            # A `configure` signal cuts the wait short, so a shorter interval applies at once.
            self._reconfigured = False
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._reconfigured, timeout=timedelta(seconds=self._settings.interval_seconds * factor)
                )
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(
            self._request.model_copy(
                update={
                    **self._settings.model_dump(),
                    "cursor": self._state.cursor,
                    "walk": self._state.walk,
                    "seen": seen,
                    "deferred": deferred,
                    "handed_off": self._state.handed_off,
                    "failures_in_a_row": self._state.failures_in_a_row,
                    "skipped": self._state.skipped,
                    "quarantined": self._state.quarantined,
                }
            )
        )

    def _record(self, progress: PollProgress) -> None:
        state = self._state
        walking = state.walk is not None
        state.cursor, state.walk = progress.cursor, progress.walk
        state.handed_off += progress.handed_off
        state.skipped += progress.skipped
        state.quarantined += progress.quarantined
        state.deferred = len(progress.deferred)
        # Counted over a whole walk (all its polls), so a backlog's progress shows in `status`.
        state.walk_pages = (state.walk_pages if walking else 0) + progress.pages
        state.walk_listed = (state.walk_listed if walking else 0) + progress.listed
        state.failures_in_a_row = 0
        state.last_error = None

    @workflow.signal
    def configure(self, settings: PollerSettings) -> None:
        """New settings from the connector's configuration (sent by every worker start)."""
        if settings == self._settings:
            return  # every worker start sends the settings: unchanged ones must not cut the wait short
        workflow.logger.info("poller of %s reconfigured: %s", self._request.connection, settings)
        self._settings = self._state.settings = settings
        self._reconfigured = True

    @workflow.query
    def status(self) -> PollerState:
        return self._state
