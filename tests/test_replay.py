"""Recorded histories must replay on the current OrderWorkflowV1: a change that would break running
orders fails here (guard such changes with `workflow.patched`, then record new histories)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.order_v1 import OrderWorkflowV1

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def test_there_are_recorded_histories() -> None:
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = load(path)
    replayer = Replayer(workflows=[OrderWorkflowV1], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name="OrderWorkflow", sandboxed=False)
class ReorderedOrderWorkflow:
    """The order workflow with its first step changed: exactly what must not ship unpatched."""

    @workflow.run
    async def run(self, request: dict[str, object]) -> None:
        await workflow.execute_activity("validate_order", request, start_to_close_timeout=timedelta(seconds=5))


async def test_an_unpatched_change_fails_the_replay() -> None:
    history = load(HISTORIES[0])
    replayer = Replayer(workflows=[ReorderedOrderWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
