"""Start one poller workflow per connection (idempotent: a running poller is left alone).

A new poller starts its cursor at "now": the first poll reads the overlap window before it and nothing
older, so a first deploy against a marketplace account with years of orders imports none of them by
surprise. Older orders come in on purpose (a notification, or a backfill)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from connector.connections import Connection
from connector.models import PollerInput, poller_workflow_id
from workflows.poller import PollerWorkflow


async def start_pollers(client: Client, *, task_queue: str, connections: Mapping[str, Connection]) -> None:
    for connection in connections.values():
        await client.start_workflow(
            PollerWorkflow.run,
            PollerInput(
                connection=connection.name,
                interval_seconds=connection.poll_interval_seconds,
                overlap_seconds=connection.poll_overlap_seconds,
                cursor=datetime.now(UTC),
            ),
            id=poller_workflow_id(connection.name),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
