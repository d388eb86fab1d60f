"""Reprocess orders: one by id, or in bulk for every order parked with a status or error code."""

from __future__ import annotations

from temporalio.client import Client

from connector.lifecycle import ORDER_WORKFLOW_TYPES
from connector.models import ReprocessRequest, order_workflow_id
from workflows.order import OrderLifecycle

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


async def reprocess_order(client: Client, *, connection: str, marketplace_order_id: str, reason: str) -> None:
    handle = client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(connection, marketplace_order_id))
    await handle.signal(OrderLifecycle.reprocess, ReprocessRequest(reason=reason))


async def reprocess_matching(
    client: Client, *, status: str | None, code: str | None, connection: str | None, reason: str
) -> list[str]:
    """Signal `reprocess` to every matching order; returns their workflow ids."""
    signaled = []
    async for execution in client.list_workflows(reprocess_query(status=status, code=code, connection=connection)):
        handle = client.get_workflow_handle_for(OrderLifecycle.run, execution.id)
        await handle.signal(OrderLifecycle.reprocess, ReprocessRequest(reason=reason))
        signaled.append(execution.id)
    return signaled
