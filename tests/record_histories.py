"""Record order-workflow histories for the replay test: `.venv/bin/python -m tests.record_histories`.

Run it when a deliberate, patched change to OrderWorkflowV1 ships, to add histories of the new version
next to the old ones (never replace the old ones while such workflows may still be running).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from connector.devserver import temporal_binary
from connector.models import (
    CancelRequest,
    Invoice,
    InvoiceItem,
    OrderState,
    OrderStatus,
    ReprocessRequest,
    order_workflow_id,
)
from connector.sandbox.vtex import FaultRule
from connector.stack import Stack
from tests.conftest import embedded_settings
from tests.helpers import wait_for_state
from workflows.order_v1 import OrderWorkflowV1
from workflows.support import SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories"


async def record(
    stack: Stack,
    name: str,
    items: list[tuple[str, int]],
    until: Callable[[OrderState], bool],
    between: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=items)
    stack.sandboxes.marketplace.notify(order["id"])
    if between is not None:
        await between(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], until)
    history = await stack.client.get_workflow_handle(order_workflow_id("reference", order["id"])).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    client: Client = env.client
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded_settings(store_url=f"sqlite:///{folder}/connector.db")
        async with Stack(settings, client) as stack:
            assert stack.sandboxes is not None
            vtex = stack.sandboxes.vtex
            authorized = OrderStatus.DISPATCH_AUTHORIZED

            await record(
                stack,
                "paid_order_dispatch_authorized",
                [("1", 2), ("8", 1)],
                lambda s: s.status is authorized,
            )

            vtex.add_fault(
                FaultRule(
                    method="POST",
                    path_contains="/api/fulfillment/pvt/orders",
                    status=400,
                    code="ORD027",
                    message="Item 3 not found or unavailable",
                )
            )
            await record(stack, "out_of_stock_then_reprocessed", [("3", 1)], lambda s: s.status is authorized)

            async def reprocess_after_parking(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is OrderStatus.PARKED)
                handle = client.get_workflow_handle_for(OrderWorkflowV1.run, order_workflow_id("reference", order_id))
                await handle.signal(OrderWorkflowV1.reprocess, ReprocessRequest(reason="seller fixed the catalog"))

            await record(
                stack,
                "parked_then_reprocess_signal",
                [("4", 1)],
                lambda s: s.status is OrderStatus.PARKED and len(s.timeline) > 4,
                between=reprocess_after_parking,
            )

            async def invoice_with_tracking(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is authorized)
                assert stack.sandboxes is not None
                order = stack.sandboxes.marketplace.orders[order_id]
                value = int(str(order["total_amount"]).replace(".", ""))
                handle = client.get_workflow_handle_for(OrderWorkflowV1.run, order_workflow_id("reference", order_id))
                await handle.signal(
                    OrderWorkflowV1.vtex_invoice,
                    Invoice(
                        invoice_number="NF-1",
                        invoice_value=value,
                        tracking_number="TRK-1",
                        items=[InvoiceItem(sku_id="2", quantity=1, price=29990)],
                    ),
                )

            await record(
                stack,
                "invoiced_with_tracking_completed",
                [("2", 1)],
                lambda s: s.status is OrderStatus.COMPLETED,
                between=invoice_with_tracking,
            )

            async def cancel_after_dispatch(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is authorized)
                handle = client.get_workflow_handle_for(OrderWorkflowV1.run, order_workflow_id("reference", order_id))
                await handle.signal(OrderWorkflowV1.cancel, CancelRequest(reason="buyer canceled"))

            await record(
                stack,
                "canceled_after_dispatch",
                [("8", 1)],
                lambda s: s.status is OrderStatus.CANCELED,
                between=cancel_after_dispatch,
            )
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # temporalio#300: skip interpreter teardown
