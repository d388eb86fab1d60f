"""Graceful shutdown: an activity running when the worker is asked to stop finishes instead of being cut."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from sandboxes.vtex import FaultRule
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment

from connector.models import order_workflow_id
from connector.stack import Stack
from tests.conftest import embedded_settings

PLACE = "/api/fulfillment/pvt/orders"


async def test_an_in_flight_placement_completes_during_shutdown(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = embedded_settings(
        store_url=f"sqlite:///{tmp_path / 'connector.db'}", data_dir=tmp_path, worker_graceful_shutdown_seconds=10.0
    )
    stack = Stack(settings, temporal_env.client)
    await stack.start()
    try:
        assert stack.sandboxes is not None
        # VTEX takes 1 s to answer the placement (the order is created, the answer is slow).
        stack.sandboxes.vtex.add_fault(
            FaultRule(method="POST", path_contains=PLACE, status=200, delay_seconds=1.0, after_effect=True)
        )
        order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
        stack.sandboxes.marketplace.notify(order["id"])
        for _ in range(200):
            if any(r.path == PLACE for r in stack.sandboxes.vtex.requests):
                break
            await asyncio.sleep(0.02)
    finally:
        await stack.stop()  # while the placement is in flight
    history = await temporal_env.client.get_workflow_handle(order_workflow_id("reference", order["id"])).fetch_history()
    assert "place_order" in finished_steps(history.events)
    types = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED not in types
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types


def finished_steps(events: Sequence[HistoryEvent]) -> set[str]:
    """The activities completed in a history: regular ones, and local ones (a marker each)."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    finished = {
        scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = e.marker_recorded_event_attributes
            if not marker.HasField("failure"):
                finished.add(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return finished
