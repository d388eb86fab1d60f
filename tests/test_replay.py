"""Recorded histories must replay on the current definitions (both order workflows, the poller, the
import, the bulk reprocess): a change that would break running workflows fails here (guard such changes with
`workflow.patched`, then record new histories)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.bulk_reprocess import BulkReprocessWorkflow
from workflows.importer import ImportWorkflow
from workflows.order import OrderLifecycle
from workflows.order_v1 import OrderWorkflowV1
from workflows.poller import PollerWorkflow

ROOT = Path(__file__).parent / "histories"
DEFINITIONS: dict[str, type] = {
    "order_lifecycle": OrderLifecycle,
    "order_workflow_v1": OrderWorkflowV1,
    "poller": PollerWorkflow,
    "importer": ImportWorkflow,
    "bulk_reprocess": BulkReprocessWorkflow,
}
# A poller runs forever: its histories are running ones cut after polls of every kind (found orders, an
# outage, a backlog), so one recording covers what several order histories do.
AT_LEAST = {"order_lifecycle": 5, "order_workflow_v1": 5, "poller": 2, "importer": 1, "bulk_reprocess": 1}
HISTORIES = sorted(ROOT.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def test_there_are_recorded_histories_of_every_definition() -> None:
    for folder in DEFINITIONS:
        assert len(list((ROOT / folder).glob("*.json"))) >= AT_LEAST[folder], folder


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = load(path)
    replayer = Replayer(workflows=[DEFINITIONS[path.parent.name]], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name="OrderWorkflow", sandboxed=False)
class ReorderedOrderWorkflow:
    """The order workflow with its first step changed: exactly what must not ship unpatched."""

    @workflow.run
    async def run(self, request: dict[str, object]) -> None:
        await workflow.execute_activity("validate_order", request, start_to_close_timeout=timedelta(seconds=5))


@workflow.defn(name="OrderLifecycle", sandboxed=False)
class ReorderedOrderLifecycle(ReorderedOrderWorkflow):
    """The same unpatched change to OrderLifecycle."""

    @workflow.run
    async def run(self, request: dict[str, object]) -> None:
        await workflow.execute_activity("validate_order", request, start_to_close_timeout=timedelta(seconds=5))


@pytest.mark.parametrize(
    ("folder", "changed"),
    [("order_workflow_v1", ReorderedOrderWorkflow), ("order_lifecycle", ReorderedOrderLifecycle)],
)
async def test_an_unpatched_change_fails_the_replay(folder: str, changed: type) -> None:
    history = load(sorted((ROOT / folder).glob("*.json"))[0])
    replayer = Replayer(workflows=[changed], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
