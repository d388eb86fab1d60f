"""The Temporal workers: the order, poller, import and bulk reprocess workflows with their non-VTEX activities on
the main task queue, and the VTEX activities on their own queue, rate-limited across all workers by the server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bulk_reprocess import follow_bulk_orders, list_bulk_orders, signal_bulk_orders
from activities.channel_orders import ChannelOrderActivities
from activities.importing import ImportActivities
from activities.logbook import LogbookActivities
from activities.marketplace import MarketplaceActivities, MarketplaceFollowUpActivities
from activities.polling import PollingActivities
from activities.vtex import VtexActivities
from connector.connections import Connection
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter
from connector.store.base import OrderStore
from connector.vtex.client import VtexClient
from connector.vtex.rate_limit import VtexRateLimit
from workflows.bulk_reprocess import BulkReprocessWorkflow
from workflows.importer import ImportWorkflow
from workflows.order import OrderLifecycle
from workflows.order_v1 import OrderWorkflowV1
from workflows.poller import PollerWorkflow


def create_workers(
    client: Client,
    *,
    task_queue: str,
    vtex_task_queue: str,
    vtex_activities_per_second: float | None,
    vtex: VtexClient,
    logbook: Logbook,
    store: OrderStore,
    vtex_rate_key: str,
    seller_id: str,
    connections: Mapping[str, Connection],
    adapters: Mapping[str, MarketplaceAdapter],
    graceful_shutdown: timedelta = timedelta(seconds=30),
    max_cached_workflows: int,
) -> list[Worker]:
    vtex_activities = VtexActivities(
        vtex,
        logbook,
        seller_id=seller_id,
        services_endpoints={name: c.services_endpoint for name, c in connections.items()},
    )
    channel_order_activities = ChannelOrderActivities(
        vtex, logbook, services_endpoints={name: c.services_endpoint for name, c in connections.items()}
    )
    marketplace_activities = MarketplaceActivities(adapters, logbook, ledger=store)
    follow_up_activities = MarketplaceFollowUpActivities(adapters, logbook)
    logbook_activities = LogbookActivities(logbook)
    polling_activities = PollingActivities(connections, adapters, task_queue=task_queue, logbook=logbook, ledger=store)
    import_activities = ImportActivities(connections, adapters, task_queue=task_queue, logbook=logbook, ledger=store)
    # The integration's VTEX steps also run as local activities of the order workflow (workflows/order.py),
    # so the workflow's worker has them too; as regular activities they run on the VTEX queue only.
    local_vtex_steps: list[Callable[..., Any]] = [
        vtex_activities.validate_order,
        vtex_activities.place_order,
        vtex_activities.authorize_dispatch,
        channel_order_activities.enqueue_channel_order,
        channel_order_activities.look_up_channel_order,
        channel_order_activities.approve_channel_order,
    ]
    vtex_steps: list[Callable[..., Any]] = [
        *local_vtex_steps,
        vtex_activities.get_vtex_order,
        vtex_activities.find_vtex_order,
        vtex_activities.send_return_invoice,
        vtex_activities.send_invoice_to_vtex,
        vtex_activities.cancel_in_vtex,
        # Used only by OrderWorkflowV1, until its orders drain.
        vtex_activities.get_vtex_order_status,
        vtex_activities.cancel_vtex_order,
    ]
    # The rate holds for local activities too: a slot in the shared store before every VTEX step.
    interceptors = (
        [
            VtexRateLimit(
                store,
                per_second=vtex_activities_per_second,
                key=vtex_rate_key,
                activities=[step.__name__ for step in vtex_steps],
            )
        ]
        if vtex_activities_per_second is not None
        else []
    )
    main = Worker(
        client,
        task_queue=task_queue,
        # On shutdown running activities get this long to finish before they are cancelled (and retried
        # by another worker): VTEX calls are short, so in-flight work completes instead of being redone.
        graceful_shutdown_timeout=graceful_shutdown,
        max_cached_workflows=max_cached_workflows,
        # OrderWorkflowV1 stays registered until the orders it started drain (README, "Upgrading").
        workflows=[OrderLifecycle, OrderWorkflowV1, PollerWorkflow, ImportWorkflow, BulkReprocessWorkflow],
        activities=[
            marketplace_activities.fetch_marketplace_order,
            follow_up_activities.send_invoice_to_marketplace,
            follow_up_activities.fetch_marketplace_invoices,
            follow_up_activities.send_tracking_to_marketplace,
            follow_up_activities.notify_marketplace_of_cancellation,
            logbook_activities.record_order_log,
            polling_activities.poll_marketplace,
            import_activities.import_changes_page,
            import_activities.import_order_ids,
            list_bulk_orders,
            signal_bulk_orders,
            follow_bulk_orders,
            *local_vtex_steps,
        ],
        interceptors=interceptors,
    )
    vtex_worker = Worker(
        client,
        task_queue=vtex_task_queue,
        graceful_shutdown_timeout=graceful_shutdown,
        # Server-side: a backlog of queued VTEX steps waits on the server, not in workers.
        max_task_queue_activities_per_second=vtex_activities_per_second,
        activities=vtex_steps,
        interceptors=interceptors,
    )
    return [main, vtex_worker]
