"""The benchmark's own arithmetic: billable actions from a history, fault shares, percentiles."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskStartedEventAttributes, HistoryEvent
from temporalio.client import WorkflowHistory

from bench.burst import drain_within
from bench.burst import summarise as summarise_burst
from bench.cost import Actions, count_actions, invoice_with_tracking
from bench.faults import flaky_vtex_rules
from bench.harness import PLACE_PATH, Webhook, placements
from bench.load import DRAIN_SECONDS, percentile
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

    # Before lean_history: four activities and an upsert per status change; with it: read and validation
    # are local activities of one workflow task, placement and authorization activities, one upsert; with
    # local_integration all four steps are local activities of that one workflow task.
    assert counted("paid_order_dispatch_authorized") == Actions(start=1, activities=4, upserts=2)
    assert counted("paid_order_dispatch_authorized_lean") == Actions(
        start=1, activities=2, local_activities=1, upserts=1
    )
    assert counted("paid_order_dispatch_authorized_local") == Actions(start=1, local_activities=1, upserts=1)


def placement(order_id: str, status: int) -> dict[str, Any]:
    return {"path": PLACE_PATH, "status": status, "body": {"marketplaceOrderId": order_id}}


def test_placements_count_only_the_placements_vtex_accepted() -> None:
    requests = [
        placement("1", 200),
        placement("1", 409),  # FMT009: the second placement refused, not a duplicate
        placement("2", 200),
        placement("2", 0),  # still being answered
        {"path": "/api/fulfillment/pvt/orders/MKP-2/fulfill", "status": 201, "body": {"marketplaceOrderId": "2"}},
        {"path": PLACE_PATH, "status": 200, "body": None},
    ]
    assert placements(requests) == {"1": 1, "2": 1, "None": 1}


def hooks(*statuses: int, start: float = 1000.0, step: float = 0.01) -> list[Webhook]:
    return [Webhook(status, 0.010 + index / 1000, start + index * step) for index, status in enumerate(statuses)]


def test_a_clean_burst_holds_the_claim() -> None:
    ids = [str(n) for n in range(1, 5)]
    result = summarise_burst(
        ids,
        hooks(202, 202, 200, 202),
        window=10.0,
        dispatch_times={"1": 1001.0, "2": 1003.0, "3": 1004.0, "4": 1005.0, "warm": 2000.0},
        vtex_orders=[{"marketplace_order_id": n} for n in [*ids, "warm"]],
        requests=[placement(n, 200) for n in ids],
    )
    assert (result.orders, result.accepted, result.refused, result.lost, result.duplicated) == (4, 4, {}, 0, 0)
    assert result.statuses == {200: 1, 202: 3}
    assert result.send_seconds == pytest.approx(0.03)
    assert result.drain_seconds == pytest.approx(5.0) and result.per_second == pytest.approx(0.8)
    assert result.ack_p50 == pytest.approx(0.011) and result.ack_max == pytest.approx(0.013)
    assert result.ok and result.verdict() == "ok"
    assert result.drain_line() == "4 dispatched in 5 s (0.8 orders/s), lost 0, duplicated 0"
    assert result.sent_line().startswith("4 sent in 0.0 s: accepted 4, refused 0; ack p50 11.0 ms")
    assert json.loads(json.dumps(result.to_json()))["statuses"] == {"200": 1, "202": 3}


def test_a_refused_lost_or_duplicated_order_fails_the_burst() -> None:
    ids = ["1", "2", "3", "4"]
    result = summarise_burst(
        ids,
        hooks(202, 503, 0, 202),
        window=10.0,
        dispatch_times={"1": 1001.0, "4": 1002.0},
        vtex_orders=[{"marketplace_order_id": n} for n in ("1", "4")],
        requests=[placement("1", 200), placement("4", 200), placement("4", 200)],
    )
    assert result.refused == {0: 1, 503: 1} and result.lost == 2 and result.duplicated == 1
    problems = result.problems()
    assert problems == [
        "2 webhook(s) refused: 1x no answer, 1x 503",
        "2 of 4 order(s) never dispatch authorized",
        "1 order(s) placed twice in VTEX",
    ]
    assert not result.ok and result.verdict().startswith("FAILED: 2 webhook(s) refused")
    assert "refused 2 (1x no answer, 1x 503)" in result.sent_line()
    assert result.to_json()["problems"] == problems


def test_a_burst_whose_placements_left_the_request_log_is_not_called_clean() -> None:
    result = summarise_burst(
        ["1", "2"],
        hooks(202, 202),
        window=10.0,
        dispatch_times={"1": 1001.0, "2": 1002.0},
        vtex_orders=[{"marketplace_order_id": "1"}, {"marketplace_order_id": "2"}],
        requests=[placement("2", 200)],
    )
    (problem,) = result.problems()
    assert "placement of 1 of the 2 dispatched orders" in problem
    with pytest.raises(ValueError):
        summarise_burst(["1"], [], window=1.0, dispatch_times={}, vtex_orders=[], requests=[])


def test_the_burst_may_drain_for_drain_seconds_or_at_five_orders_a_second() -> None:
    assert drain_within(400) == DRAIN_SECONDS
    assert drain_within(2_000) == max(DRAIN_SECONDS, 400.0)


def test_the_invoice_covers_the_whole_oms_order_with_its_tracking() -> None:
    oms_order = {
        "value": 5490,
        "items": [{"id": "1", "quantity": 1, "price": 4990, "name": "Camiseta Azul M"}],
    }
    issued = datetime(2026, 12, 2, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-3)))
    body = invoice_with_tracking(oms_order, number="NF-7", tracking="TRK-7", issued=issued)
    assert body["type"] == "Output" and body["invoiceNumber"] == "NF-7"
    assert body["invoiceValue"] == "5490"  # items and shipping, in cents as VTEX takes it
    assert body["issuanceDate"] == "2026-12-02T15:30:05Z"
    assert (body["trackingNumber"], body["courier"]) == ("TRK-7", "Correios")
    assert body["items"] == [{"id": "1", "quantity": 1, "price": 4990}]
    assert datetime.fromisoformat(body["issuanceDate"]).astimezone(UTC).hour == 15
