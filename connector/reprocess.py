"""Reprocess orders: one by id, or in bulk for every order parked with a status or error code.

A running order gets the `reprocess` signal. An order whose workflow was terminated, failed, timed out or
was canceled is started again from where its last run began (it meets its existing VTEX order: placing is
idempotent). An order whose workflow completed (after-sale window passed) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from connector.lifecycle import ORDER_WORKFLOW_TYPES
from connector.models import (
    OrderSnapshot,
    OrderStatus,
    OrderWorkflowInput,
    ReprocessRequest,
    Stage,
    order_workflow_id,
)
from workflows.order import OrderLifecycle
from workflows.support import CONNECTION, MARKETPLACE_ORDER_ID, ORDER_STATUS

# A workflow that ended without finishing the order: it may be started again.
ENDED_UNFINISHED = frozenset(
    {
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    }
)


class Reprocessed(StrEnum):
    SIGNALED = "signaled"
    RESTARTED = "restarted"
    UNKNOWN = "unknown"
    FINISHED = "finished"


# Statuses an order can be reprocessed from.
REPROCESSABLE = ("parked", "reprocessing", "dead-lettered")


def reprocess_query(*, status: str | None, code: str | None, connection: str | None) -> str:
    """A visibility query for running order workflows that wait for a retry."""
    clauses = [ORDER_WORKFLOW_TYPES, "ExecutionStatus = 'Running'"]
    if status is not None:
        clauses.append(f"OrderStatus = '{_quoted(status)}'")
    else:
        clauses.append("OrderStatus IN (" + ", ".join(f"'{s}'" for s in REPROCESSABLE) + ")")
    if code is not None:
        clauses.append(f"ErrorCode = '{_quoted(code)}'")
    if connection is not None:
        clauses.append(f"Connection = '{_quoted(connection)}'")
    return " AND ".join(clauses)


def _quoted(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"not a valid filter value: {value!r}")
    return value


async def reprocess_order(client: Client, *, connection: str, marketplace_order_id: str, reason: str) -> Reprocessed:
    workflow_id = order_workflow_id(connection, marketplace_order_id)
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Reprocessed.UNKNOWN
        raise
    if description.status is WorkflowExecutionStatus.RUNNING:
        await handle.signal(OrderLifecycle.reprocess, ReprocessRequest(reason=reason))
        return Reprocessed.SIGNALED
    if description.status not in ENDED_UNFINISHED:
        return Reprocessed.FINISHED
    request = await _last_input(client, workflow_id)
    await client.start_workflow(
        OrderLifecycle.run,
        request,
        id=workflow_id,
        task_queue=description.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(MARKETPLACE_ORDER_ID, marketplace_order_id),
                SearchAttributePair(CONNECTION, connection),
                SearchAttributePair(
                    ORDER_STATUS, (request.snapshot.state.status if request.snapshot else OrderStatus.RECEIVED).value
                ),
            ]
        ),
    )
    return Reprocessed.RESTARTED


async def _last_input(client: Client, workflow_id: str) -> OrderWorkflowInput:
    """The input the order's last run started with, as OrderLifecycle input (a first-definition
    follow-up state becomes a follow-up snapshot)."""
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (request,) = await client.data_converter.decode(list(payloads), [OrderWorkflowInput])
            break
    else:
        raise LookupError(f"no start event in the history of {workflow_id}")
    assert isinstance(request, OrderWorkflowInput)
    if request.resume is not None:
        resume = request.resume
        request = request.model_copy(
            update={
                "resume": None,
                "snapshot": OrderSnapshot(
                    stage=Stage.FOLLOW_UP,
                    state=resume.state,
                    placed=resume.placed,
                    place_attempted=True,
                    order_value=resume.order_value,
                    invoices=resume.invoices,
                ),
            }
        )
    return request


async def reprocess_matching(
    client: Client,
    *,
    status: str | None,
    code: str | None,
    connection: str | None,
    reason: str,
    on_signaled: Callable[[str], None] | None = None,
) -> list[str]:
    """Signal `reprocess` to every matching order (`on_signaled` hears of each, e.g. a progress bar);
    returns their workflow ids."""
    signaled = []
    async for execution in client.list_workflows(reprocess_query(status=status, code=code, connection=connection)):
        handle = client.get_workflow_handle_for(OrderLifecycle.run, execution.id)
        await handle.signal(OrderLifecycle.reprocess, ReprocessRequest(reason=reason))
        signaled.append(execution.id)
        if on_signaled is not None:
            on_signaled(execution.id)
    return signaled
