"""Record OrderLifecycle histories for the replay test: `.venv/bin/python -m tests.record_histories SUFFIX [PREFIX]`.

Run it when a deliberate, patched change to OrderLifecycle ships, to add histories of the new version next
to the old ones (never replace old ones while such workflows may still be running). The histories of the
first definition (tests/histories/order_workflow_v1) are frozen: that workflow no longer changes. PREFIX
records only the scenarios whose name starts with it (`channel_`: the Channel Order API's, recorded when it
came, with no suffix; `meli_`: Mercado Libre carts, on a stack of their own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandboxes.mercadolibre_models import ItemSpec
from sandboxes.mercadolibre_seller import nfe_key, nfe_xml
from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule, NotificationFault, ProcessingFault
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from connector.cancel import request_cancel
from connector.devserver import temporal_binary
from connector.models import (
    CancelRequest,
    Invoice,
    InvoiceItem,
    MarketplaceNotification,
    OrderState,
    OrderStatus,
    ReprocessRequest,
    VtexFlow,
    order_workflow_id,
)
from connector.stack import Stack
from connector.starter import hand_off_order
from tests.conftest import embedded_settings
from tests.helpers import seller, wait_for_state
from workflows.order import OrderLifecycle
from workflows.support import SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories" / "order_lifecycle"
# `python -m tests.record_histories _v3`: the version's suffix, so new recordings sit next to old ones.
SUFFIX = sys.argv[1] if len(sys.argv) > 1 else ""
ONLY = sys.argv[2] if len(sys.argv) > 2 else ""
PLACE = "/api/fulfillment/pvt/orders"
S = OrderStatus


async def record(
    stack: Stack,
    name: str,
    until: Callable[[OrderState], bool],
    between: Callable[[str], Awaitable[None]] | None = None,
    *,
    items: list[tuple[str, int]] | None = None,
    status: str = "paid",
    unit_prices: dict[str, int] | None = None,
    **options: Any,
) -> None:
    """One order through the connector; its first run's history is written once `until` holds."""
    if not name.startswith(ONLY):
        return
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=items or [("1", 1)], status=status, unit_prices=unit_prices)
    await hand_off_order(
        stack.client,
        task_queue=stack.settings.temporal_task_queue,
        connection=dataclasses.replace(stack.connections["reference"], **options),
        notification=MarketplaceNotification(marketplace_order_id=order["id"]),
    )
    if between is not None:
        await between(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], until, within=60)
    handle = stack.client.get_workflow_handle(order_workflow_id("reference", order["id"]))
    first_run = (await handle.describe()).raw_description.workflow_execution_info.first_run_id
    history = await stack.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}{SUFFIX}.json").write_text(history.to_json())
    print(f"recorded {name}{SUFFIX}")


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    client: Client = env.client
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded_settings(store_url=f"sqlite:///{folder}/connector.db")
        async with Stack(settings, client, vtex_order_id_suffix="-02") as stack:
            assert stack.sandboxes is not None
            box = stack.sandboxes

            def handle(order_id: str) -> Any:
                return client.get_workflow_handle_for(OrderLifecycle.run, order_workflow_id("reference", order_id))

            await record(stack, "paid_order_dispatch_authorized", lambda s: s.status is S.DISPATCH_AUTHORIZED)

            async def many_notifications(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is S.DISPATCH_AUTHORIZED)
                for _ in range(8):
                    box.marketplace.notify(order_id)
                    await asyncio.sleep(0.2)
                await handle(order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="buyer regret"))

            await record(
                stack,
                "continued_as_new_then_canceled",
                lambda s: s.status is S.CANCELED and s.run_number > 1,
                many_notifications,
                continue_as_new_after_events=50,
            )

            async def approve(order_id: str) -> None:
                state = await wait_for_state(client, "reference", order_id, lambda s: s.status is S.PENDING_APPROVAL)
                await asyncio.sleep(1.0)  # a few approval polls
                box.vtex.orders[state.vtex_order_id or ""].status = "waiting-ffmt-authorization"

            await record(
                stack,
                "price_divergence_approved",
                lambda s: s.status is S.DISPATCH_AUTHORIZED,
                approve,
                items=[("2", 1)],
                unit_prices={"2": 29990 + 500},
                price_divergence_allowance_rate=0.05,
            )

            await record(
                stack,
                "payment_window_passed",
                lambda s: s.status is S.CANCELED,
                status="payment_pending",
                accept_unpaid_orders=True,
                payment_window_seconds=1.0,
            )

            async def fix_and_reprocess(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is S.DEAD_LETTERED)
                box.vtex.clear_faults()
                await handle(order_id).signal(OrderLifecycle.reprocess, ReprocessRequest(reason="VTEX is back"))

            box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE, status=503, times=-1))
            policy = stack.connections["reference"].policy.model_copy(
                update={"max_attempts": 2, "activity_attempts": 1, "dead_letter_retry_seconds": 0.3}
            )
            await record(
                stack,
                "dead_lettered_then_reprocessed",
                lambda s: s.status is S.DISPATCH_AUTHORIZED,
                fix_and_reprocess,
                policy=policy,
            )

            async def complete_then_cancel(order_id: str) -> None:
                await wait_for_state(client, "reference", order_id, lambda s: s.status is S.DISPATCH_AUTHORIZED)
                value = int(str(box.marketplace.orders[order_id]["total_amount"]).replace(".", ""))
                await handle(order_id).signal(
                    OrderLifecycle.vtex_invoice,
                    Invoice(
                        invoice_number="NF-1",
                        invoice_value=value,
                        tracking_number="TRK-1",
                        items=[InvoiceItem(sku_id="1", quantity=1, price=value)],
                    ),
                )
                await wait_for_state(client, "reference", order_id, lambda s: s.status is S.COMPLETED)
                await handle(order_id).signal(OrderLifecycle.cancel, CancelRequest(reason="returned by the buyer"))

            await record(
                stack,
                "completed_then_canceled_in_after_sale",
                lambda s: s.status is S.CANCELED,
                complete_then_cancel,
            )

            async def cancel_during_placement(order_id: str) -> None:
                # `connector cancel` while the local placement waits on VTEX: authorization refuses
                # (the store holds an unread notification) and the workflow waits for the signal.
                deadline = asyncio.get_running_loop().time() + 10
                while not [r for r in box.vtex.requests if r.path == PLACE and order_id in str(r.body)]:
                    assert asyncio.get_running_loop().time() < deadline, "VTEX never received the placement"
                    await asyncio.sleep(0.02)
                assert stack.store is not None
                await request_cancel(
                    client,
                    stack.store,
                    connection="reference",
                    marketplace_order_id=order_id,
                    request=CancelRequest(reason="buyer regret", source="operator"),
                )

            box.vtex.clear_faults()
            box.vtex.add_fault(
                FaultRule(method="POST", path_contains=PLACE, status=200, delay_seconds=1.0, after_effect=True)
            )
            await record(
                stack, "cancel_noted_during_placement", lambda s: s.status is S.CANCELED, cancel_during_placement
            )
            box.vtex.clear_faults()
            await record_channel_orders(stack)
        if MELI.startswith(ONLY) or ONLY.startswith(MELI):
            await record_meli_carts(client, Path(folder))
    await env.shutdown()


async def record_channel_orders(stack: Stack) -> None:
    """Orders placed through the Channel Order API (vtex_flow order-integration)."""
    assert stack.sandboxes is not None
    box = stack.sandboxes
    channel = VtexFlow.ORDER_INTEGRATION
    await record(
        stack, "channel_paid_order_dispatch_authorized", lambda s: s.status is S.DISPATCH_AUTHORIZED, vtex_flow=channel
    )

    async def pay(order_id: str) -> None:
        await wait_for_state(stack.client, "reference", order_id, lambda s: s.status is S.AWAITING_PAYMENT)
        box.marketplace.pay(order_id)
        box.marketplace.notify(order_id)

    await record(
        stack,
        "channel_unpaid_order_approved_once_paid",
        lambda s: s.status is S.DISPATCH_AUTHORIZED,
        pay,
        status="payment_pending",
        accept_unpaid_orders=True,
        vtex_flow=channel,
    )
    box.vtex.add_processing_fault(ProcessingFault(code="EOI002"))
    await record(
        stack, "channel_stock_refusal_reprocessed", lambda s: s.status is S.DISPATCH_AUTHORIZED, vtex_flow=channel
    )
    box.vtex.add_notification_fault(NotificationFault(action="drop", times=-1))
    await record(
        stack, "channel_results_lost_found_by_looking", lambda s: s.status is S.DISPATCH_AUTHORIZED, vtex_flow=channel
    )
    box.vtex.order_integration.faults.clear()


MELI = "meli_"
BOTTLE = ItemSpec("Garrafa Térmica", Decimal("79.90"), seller_sku="8")


async def record_meli_carts(client: Client, folder: Path) -> None:
    """Mercado Libre carts (Channel Order API, site MLB): Full invoiced by Mercado Libre, Colecta invoiced in
    VTEX with its NF-e (complete without a tracking), and an ME1 order waiting for a tracking that a later
    read completes (the complete-on-read patch)."""
    connections = folder / "meli-connections.json"
    connection: dict[str, object] = {"name": "meli", "marketplace": "mercadolibre", "vtex_flow": "order-integration"}
    connection |= {"mercadolibre_site": "MLB", "fulfillment_warehouse_id": "meli_full", "accept_unpaid_orders": False}
    connections.write_text(json.dumps({"connections": [connection]}))
    settings = embedded_settings(
        store_url=f"sqlite:///{folder}/meli.db", data_dir=folder / "meli", connections_file=str(connections)
    )
    async with Stack(settings, client) as stack:
        assert stack.sandboxes is not None
        box, sandbox = stack.sandboxes, stack.sandboxes.mercadolibre["meli"]

        async def cart(order_id: int) -> str:
            assert stack.store is not None
            for _ in range(300):
                if (key := await stack.store.cart_key("meli", str(order_id))) is not None:
                    return key
                await asyncio.sleep(0.05)
            raise AssertionError(f"order {order_id} was never keyed to a cart")

        async def reach(key: str, status: OrderStatus) -> OrderState:
            return await wait_for_state(client, "meli", key, lambda s: s.status is status, within=60)

        async def invoice_in_vtex(key: str, order_id: int, *, nfe: bool) -> None:
            state = await wait_for_state(
                client, "meli", key, lambda s: s.status in (S.DISPATCH_AUTHORIZED, S.COMPLETED), within=60
            )
            issued = datetime.now(UTC)
            body = invoice_notification(
                f"NF-{order_id}",
                8490 if not nfe else 7990,
                items=[{"id": "8", "quantity": 1, "price": 7990}],
                issued=issued,
            )
            if nfe:
                access_key = nfe_key("35", issued, sandbox.seller_id, 1, order_id % 10**9)
                body |= {
                    "invoiceKey": access_key,
                    "embeddedInvoice": nfe_xml(access_key, order_id % 10**9, 1, "79.90", issued),
                }
            answer = await seller(box, "POST", f"/api/oms/pvt/orders/{state.vtex_order_id}/invoice", body)
            assert answer.status_code == 200, answer.text

        async def write(name: str, key: str) -> None:
            history = await client.get_workflow_handle(order_workflow_id("meli", key)).fetch_history()
            (HISTORIES / f"{name}{SUFFIX}.json").write_text(history.to_json())
            print(f"recorded {name}{SUFFIX}")

        full = sandbox.create_order([BOTTLE], status="paid", logistic_type="fulfillment", shipping_cost=Decimal("5.00"))
        key = await cart(full.id)
        await reach(key, S.COMPLETED)
        await write("meli_full_invoiced_by_mercadolibre", key)

        colecta = sandbox.create_order([BOTTLE], status="paid", logistic_type="cross_docking")
        key = await cart(colecta.id)
        await invoice_in_vtex(key, colecta.id, nfe=True)
        await reach(key, S.COMPLETED)
        await write("meli_colecta_nfe_imported_completed", key)

        me1 = sandbox.create_order([BOTTLE], status="paid", logistic_type="me1", shipping_cost=Decimal("5.00"))
        key = await cart(me1.id)
        await invoice_in_vtex(key, me1.id, nfe=False)
        await reach(key, S.INVOICED)
        sandbox.shipments[me1.shipment_id or 0].logistic_type = "self_service"
        sandbox.notify_order(me1.id)
        await reach(key, S.COMPLETED)
        await write("meli_waiting_for_tracking_completed_on_read", key)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # temporalio#300: skip interpreter teardown
