"""An operator's cancel: noted in the store, then signaled to the order's workflow.

The note comes first for the same reason as a hand-off's (connector/starter.py): an order whose
integration runs in one workflow task sees the signal only after that task, but its local placement and
authorization look at the store first and stop for a cancel noted there (workflows/order.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from connector.models import CancelRequest, order_workflow_id
from connector.store.base import OrderStore
from workflows.order import OrderLifecycle


async def request_cancel(
    client: Client, ledger: OrderStore, *, connection: str, marketplace_order_id: str, request: CancelRequest
) -> bool:
    """True once the workflow has the cancel; False when no running workflow has this order."""
    await ledger.note_handoff(connection, marketplace_order_id, datetime.now(UTC))
    handle = client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id(connection, marketplace_order_id))
    try:
        await handle.signal(OrderLifecycle.cancel, request)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
