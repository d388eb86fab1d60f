"""The benchmark's own arithmetic: billable actions from a history, fault shares, percentiles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskStartedEventAttributes, HistoryEvent
from temporalio.client import WorkflowHistory

from bench.cost import Actions, count_actions
from bench.faults import flaky_vtex_rules
from bench.load import percentile
from bench.poller_cost import OrdersRun, PollerComparison, PollerCost, summarise


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


PAID = Actions(start=1, activities=4, upserts=2)


def test_summarise_sums_by_kind_and_keeps_the_extremes() -> None:
    summary = summarise([PAID, PAID, Actions(start=1, activities=4, retries=1, signals=1, upserts=2)])
    assert (summary.orders, summary.total, summary.max, summary.min) == (3, 23, 9, 7)
    assert summary.mean == pytest.approx(23 / 3)
    assert summary.by_kind == {
        "start": 3,
        "activities": 12,
        "local_activities": 0,
        "retries": 1,
        "timers": 0,
        "signals": 1,
        "upserts": 6,
    }
    assert summary.mean_of("signals") == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        summarise([])


def poller(*, listing_all: int = 30, deferred: int = 0) -> PollerCost:
    return PollerCost(
        actions=Actions(start=1, activities=31, timers=30),
        runs=1,
        seconds=33.0,
        polls=31,
        polls_listing_all=listing_all,
        most_waiting=4,
        skipped=2,
        handed_off=0,
        deferred=deferred,
    )


def comparison(on: list[Actions], *, signaled: dict[str, list[str]] | None = None, **state: int) -> PollerComparison:
    return PollerComparison(
        off=OrdersRun({"POLLING_ENABLED": "false"}, summarise([PAID, PAID]), 40.0, {"webhook": 2}),
        on=OrdersRun({"POLLING_ENABLED": "true"}, summarise(on), 40.0, {"webhook": 2}, signaled or {}, poller(**state)),
    )


def test_the_poller_claim_holds_when_each_order_costs_the_same() -> None:
    same = comparison([PAID, PAID])
    assert same.ok and same.verdict() == "ok"
    assert same.line() == "7.0 | 7.0 (max 7 | 7; signals 0.00 | 0.00; 2 orders each)"
    assert same.poller_line().startswith("62 actions in 33 s (31 polls, 2.00 per poll; 31.00 per order over this run)")
    assert same.to_json()["problems"] == []


def test_an_extra_signal_with_the_poller_on_fails_the_claim_loudly() -> None:
    extra = comparison([PAID, Actions(start=1, activities=5, signals=1, upserts=2)], signaled={"2": ["notify (poll)"]})
    (problem,) = extra.problems()
    assert "7.00 off" in problem and "signals +0.50" in problem and "activities +0.50" in problem
    assert "1 order(s) signaled" in problem
    assert extra.verdict().startswith("FAILED: actions per paid order differ")
    assert extra.line() == "7.0 | 8.0 (max 7 | 9; signals 0.00 | 0.50; 2 orders each)"


def test_the_claim_is_not_tested_unless_every_order_was_listed_twice_and_nothing_waits() -> None:
    assert not comparison([PAID, PAID], listing_all=1).ok
    assert "still had 3 change(s) waiting" in comparison([PAID, PAID], deferred=3).verdict()


def test_local_activities_of_one_workflow_task_are_one_action() -> None:
    histories = Path(__file__).parent / "histories" / "order_lifecycle"

    def counted(name: str) -> Actions:
        data = json.loads((histories / f"{name}.json").read_text())
        return count_actions(WorkflowHistory.from_json(name, data))

    # Before lean_history: four activities and an upsert per status change; after: read and validation
    # are local activities of one workflow task, placement and authorization activities, one upsert.
    assert counted("paid_order_dispatch_authorized") == Actions(start=1, activities=4, upserts=2)
    assert counted("paid_order_dispatch_authorized_lean") == Actions(
        start=1, activities=2, local_activities=1, upserts=1
    )
