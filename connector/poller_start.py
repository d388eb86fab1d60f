"""Start one poller workflow per connection, or send the current settings to the one that runs.

Signal-with-start: a new poller starts with the `configure` signal, a running one only receives it, so
a changed interval, overlap or page size reaches it at the next worker start without terminating it
(its cursor, and the backlog it may be working through, are kept).

A new poller starts its cursor at "now": the first poll reads the overlap window before it and nothing
older, so a first deploy against a marketplace account with years of orders imports none of them by
surprise. Older orders come in on purpose (a notification, or a backfill)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from connector.connections import Connection
from connector.models import PollerInput, PollerSettings, poller_workflow_id
from workflows.poller import PollerWorkflow


async def start_pollers(client: Client, *, task_queue: str, connections: Mapping[str, Connection]) -> None:
    for connection in connections.values():
        settings = PollerSettings(
            interval_seconds=connection.poll_interval_seconds,
            overlap_seconds=connection.poll_overlap_seconds,
            page_size=connection.poll_page_size,
            heartbeat_timeout_seconds=connection.poll_heartbeat_timeout_seconds,
            webhook_grace_seconds=connection.poll_webhook_grace_seconds,
        )
        await client.start_workflow(
            PollerWorkflow.run,
            PollerInput(connection=connection.name, cursor=datetime.now(UTC), **settings.model_dump()),
            id=poller_workflow_id(connection.name),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="configure",
            start_signal_args=[settings],
        )
