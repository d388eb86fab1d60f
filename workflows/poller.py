"""PollerWorkflow: one per connection, forever. Lists the orders changed since its cursor and hands each
to its order workflow; the cursor only moves after a successful poll, and a marketplace outage backs
the poller off instead of skipping anything. Continues as new every so often to keep history short."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from connector.models import PollerInput, PollerState, PollRequest, PollResult

POLLS_PER_RUN = 200
MAX_BACKOFF_FACTOR = 32  # a failing marketplace is asked again at most every 32 intervals


@workflow.defn
class PollerWorkflow:
    @workflow.init
    def __init__(self, request: PollerInput) -> None:
        self._state = PollerState(
            connection=request.connection,
            cursor=request.cursor,
            handed_off=request.handed_off,
            failures_in_a_row=request.failures_in_a_row,
        )

    @workflow.run
    async def run(self, request: PollerInput) -> None:
        seen = list(request.seen)
        for _ in range(POLLS_PER_RUN):
            state = self._state
            try:
                result = await workflow.execute_activity(
                    "poll_marketplace",
                    PollRequest(
                        connection=request.connection,
                        cursor=state.cursor,
                        overlap_seconds=request.overlap_seconds,
                        seen=seen,
                    ),
                    result_type=PollResult,
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                )
            except ActivityError as exc:
                state.failures_in_a_row += 1
                state.last_error = str(exc.cause or exc)
                workflow.logger.warning("poll of %s failed: %s", request.connection, state.last_error)
            else:
                state.cursor, seen = result.cursor, result.seen
                state.handed_off += result.handed_off
                state.failures_in_a_row = 0
                state.last_error = None
            state.last_poll_at = workflow.now()
            factor = min(2**state.failures_in_a_row, MAX_BACKOFF_FACTOR)
            await workflow.sleep(timedelta(seconds=request.interval_seconds * factor))
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(
            request.model_copy(
                update={
                    "cursor": self._state.cursor,
                    "seen": seen,
                    "handed_off": self._state.handed_off,
                    "failures_in_a_row": self._state.failures_in_a_row,
                }
            )
        )

    @workflow.query
    def status(self) -> PollerState:
        return self._state
