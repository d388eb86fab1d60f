"""The benchmark's own arithmetic: billable actions from a history, fault shares, percentiles."""

from __future__ import annotations

import math

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskStartedEventAttributes, HistoryEvent
from temporalio.client import WorkflowHistory

from bench.cost import count_actions
from bench.faults import flaky_vtex_rules
from bench.load import percentile


def history(*kinds: EventType.ValueType, attempts: tuple[int, ...] = ()) -> WorkflowHistory:
    events = []
    started = iter(attempts)
    for event_id, kind in enumerate(kinds, start=1):
        event = HistoryEvent(event_id=event_id, event_type=kind)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            event.activity_task_started_event_attributes.CopyFrom(
                ActivityTaskStartedEventAttributes(attempt=next(started))
            )
        events.append(event)
    return WorkflowHistory("order:reference:1", events)


E = EventType


def test_a_signal_with_start_is_one_action_and_later_signals_count() -> None:
    actions = count_actions(
        history(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        )
    )
    assert (actions.start, actions.signals, actions.total) == (1, 1, 2)


def test_activity_retries_come_from_the_attempt_and_timers_and_upserts_count() -> None:
    actions = count_actions(
        history(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
            E.EVENT_TYPE_TIMER_STARTED,
            E.EVENT_TYPE_TIMER_CANCELED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
            attempts=(1, 3),
        )
    )
    assert actions.activities == 2 and actions.retries == 2
    assert (actions.timers, actions.upserts, actions.total) == (1, 1, 7)
    assert actions.dollars_per_1000_orders == pytest.approx(7 * 50 / 1000)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_the_flaky_rules_split_the_rate_evenly(rate: float) -> None:
    rules = flaky_vtex_rules(rate, timeout_seconds=2.0)
    untouched = 1.0
    shares = []
    for rule in rules:
        # A request reaches a rule only if every earlier rule let it pass.
        shares.append(untouched * rule["probability"])
        untouched *= 1 - rule["probability"]
    assert shares == pytest.approx([rate / len(rules)] * len(rules))
    assert 1 - untouched == pytest.approx(rate)
    timeout = rules[-1]
    assert timeout["delay_seconds"] > 2.0 and timeout["after_effect"] is True


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 301)]
    assert percentile(values, 0.5) == 150.0
    assert percentile(values, 0.99) == 297.0
    assert percentile([4.0], 0.99) == 4.0
    assert math.isclose(percentile([3.0, 1.0, 2.0], 1.0), 3.0)
