"""Temporal actions per paid order handed in by webhook, with the poller off and with it on.

    .venv/bin/python -m bench.poller_cost [--orders 200]

The claim: with the poller on (the default) an order the webhook handed off costs exactly the actions it
costs with the poller off; the poller lists it again and again but never signals it (connector/redundancy.py).
Each side is its own cluster, everything alike but POLLING_ENABLED: N paid orders are created in the
marketplace sandbox at once, one signed webhook each, all waited for until dispatch authorized and settled,
and the cluster is then held until the webhook grace of the newest order has passed plus a few polls, so
an order the poller would hand off after all (a change left waiting) has had its chance to be signaled.
Then every order's history is counted, and the poller's own histories (all its runs), its poll results
(how many polls listed every order) and its `status` query.

The poller runs with POLL_INTERVAL_SECONDS=1, so the hold holds dozens of polls; the overlap (120 s) and the
webhook grace (30 s) keep their defaults: every poll of the run lists every order of the run, and the
orders the poller lists before their webhook is recorded take the path a deployment takes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.cost import Actions, count_actions, settled_paid
from bench.harness import CONNECTION, Cluster, ServerStore
from bench.load import DRAIN_SECONDS, IncompleteRun
from bench.runs import run_command, run_directory
from connector.codec import EncryptionCodec, parse_keys
from connector.models import (
    MarketplaceNotification,
    PollerState,
    PollProgress,
    order_workflow_id,
    poller_workflow_id,
)
from connector.settings import Settings

POLL_INTERVAL_SECONDS = 1.0
# The defaults, not set here: the comparison is about the configuration a deployment runs.
WEBHOOK_GRACE_SECONDS = float(Settings.model_fields["poll_webhook_grace_seconds"].default)
OVERLAP_SECONDS = float(Settings.model_fields["poll_overlap_seconds"].default)
POLLER_OFF = {"POLLING_ENABLED": "false"}
POLLER_ON = {"POLLING_ENABLED": "true", "POLL_INTERVAL_SECONDS": f"{POLL_INTERVAL_SECONDS:g}"}
# Polls held after the webhook grace of the newest order has passed (and after every order settled).
HOLD_POLLS = 3
# The poller must have listed every order at least this often for the claim to have been put to the test.
MIN_POLLS_LISTING_ALL = 2
KINDS = tuple(f.name for f in dataclasses.fields(Actions))
CONCURRENCY = 10
T = TypeVar("T")


@dataclass(frozen=True)
class ActionSummary:
    """Billable actions of a set of orders: summed over them, and the most one order cost."""

    orders: int
    total: int
    max: int
    min: int
    by_kind: dict[str, int]  # summed over the orders, per kind (start, activities, ... upserts)

    @property
    def mean(self) -> float:
        return self.total / self.orders

    def mean_of(self, kind: str) -> float:
        return self.by_kind[kind] / self.orders

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "mean": self.mean,
            "mean_by_kind": {kind: self.mean_of(kind) for kind in self.by_kind},
        }


def summarise(actions: Sequence[Actions]) -> ActionSummary:
    if not actions:
        raise ValueError("no orders to summarise")
    totals = [a.total for a in actions]
    return ActionSummary(
        orders=len(actions),
        total=sum(totals),
        max=max(totals),
        min=min(totals),
        by_kind={kind: sum(getattr(a, kind) for a in actions) for kind in KINDS},
    )


@dataclass(frozen=True)
class PollerCost:
    """The poller's own actions over a measurement (every run of its workflow) and what it did."""

    actions: Actions
    runs: int
    seconds: float  # its first run's start → the measurement
    polls: int  # poll activities scheduled
    polls_listing_all: int  # polls whose listing held every order of the measurement
    most_waiting: int  # most listed changes one poll left waiting for the next (webhook grace, read owed)
    # The `status` query at the end.
    skipped: int
    handed_off: int
    deferred: int

    @property
    def per_poll(self) -> float:
        return self.actions.total / self.polls if self.polls else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "actions": {**asdict(self.actions), "total": self.actions.total},
            "per_poll": self.per_poll,
        }


@dataclass(frozen=True)
class OrdersRun:
    """One side of the comparison: N paid orders by webhook on one cluster."""

    settings: dict[str, str]
    summary: ActionSummary
    seconds: float  # first webhook → counted (the hold included)
    started_by: dict[str, int]  # the source of the notification each workflow was started with
    # Orders that received signals after their start: order id → "name (source)" of each signal.
    signaled: dict[str, list[str]] = field(default_factory=dict)
    poller: PollerCost | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "actions": self.summary.to_json(),
            "seconds": self.seconds,
            "started_by": self.started_by,
            "signaled": self.signaled,
            "poller": self.poller.to_json() if self.poller else None,
        }


@dataclass(frozen=True)
class PollerComparison:
    off: OrdersRun
    on: OrdersRun

    @property
    def orders(self) -> int:
        return self.on.summary.orders

    def problems(self) -> list[str]:
        """Why the claim (the poller on costs a webhook's order no action) failed or was not tested."""
        found = []
        off, on = self.off.summary, self.on.summary
        if off.orders != on.orders or off.total != on.total:
            deltas = ", ".join(
                f"{kind} {on.mean_of(kind) - off.mean_of(kind):+.2f}"
                for kind in KINDS
                if on.mean_of(kind) != off.mean_of(kind)
            )
            found.append(
                f"actions per paid order differ with the poller on: {on.mean:.2f} against {off.mean:.2f} off "
                f"({deltas}); {len(self.on.signaled)} order(s) signaled after their start"
            )
        poller = self.on.poller
        if poller is None:
            found.append("the poller did not run with POLLING_ENABLED=true")
        else:
            if poller.polls_listing_all < MIN_POLLS_LISTING_ALL:
                found.append(
                    f"the poller listed all {self.orders} orders in {poller.polls_listing_all} poll(s), "
                    f"fewer than {MIN_POLLS_LISTING_ALL}: the claim was not put to the test"
                )
            if poller.deferred:
                found.append(f"the poller still had {poller.deferred} change(s) waiting when the run was counted")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()

    def line(self) -> str:
        off, on = self.off.summary, self.on.summary
        return (
            f"{off.mean:.1f} | {on.mean:.1f} (max {off.max} | {on.max}; signals "
            f"{off.mean_of('signals'):.2f} | {on.mean_of('signals'):.2f}; {on.orders} orders each)"
        )

    def poller_line(self) -> str:
        poller = self.on.poller
        if poller is None:
            return "did not run"
        return (
            f"{poller.actions.total} actions in {poller.seconds:.0f} s ({poller.polls} polls, "
            f"{poller.per_poll:.2f} per poll; {poller.actions.total / self.orders:.2f} per order over this run); "
            f"all {self.orders} listed by {poller.polls_listing_all} polls; skipped {poller.skipped}, "
            f"handed off {poller.handed_off}, waiting {poller.deferred} (at most {poller.most_waiting} in one poll)"
        )

    def verdict(self) -> str:
        problems = self.problems()
        return "ok" if not problems else "FAILED: " + "; ".join(problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "poll_interval_seconds": POLL_INTERVAL_SECONDS,
            "poll_overlap_seconds": OVERLAP_SECONDS,
            "poll_webhook_grace_seconds": WEBHOOK_GRACE_SECONDS,
            "off": self.off.to_json(),
            "on": self.on.to_json(),
            "problems": self.problems(),
        }


# -- measuring ------------------------------------------------------------------------------------


async def decoding_client(cluster: Cluster) -> Client:
    """A client that reads the connector's payloads (encrypted with the run's key): queries, signal inputs."""
    keys = parse_keys(cluster.payload_key)
    codec = EncryptionCodec(keys, next(iter(keys)))
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=codec)
    return await Client.connect(cluster.temporal_address, data_converter=converter)


async def _bounded(items: Sequence[str], work: Callable[[str], Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: str) -> T:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def _signals(client: Client, history: WorkflowHistory) -> tuple[str, list[str]]:
    """The source of the notification the workflow was started with, and every later signal as
    `name (source)` (`notify` from the intake or the poller) or `name` (VTEX callbacks, operators)."""
    started_by = "none"
    later = []
    events = history.events
    for index, event in enumerate(events):
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        name = attributes.signal_name
        if name == "notify":
            (notification,) = await client.data_converter.decode(
                list(attributes.input.payloads), [MarketplaceNotification]
            )
            name = f"notify ({notification.source})"
        if index == 1 and events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started_by = name.removeprefix("notify (").removesuffix(")")
        else:
            later.append(name)
    return started_by, later


async def _poller_histories(client: Client) -> list[WorkflowHistory]:
    """Every run of the poller, oldest first (it continues as new), followed back from the latest."""
    workflow_id = poller_workflow_id(CONNECTION)
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return histories


async def _poll_results(client: Client, history: WorkflowHistory) -> list[PollProgress]:
    results = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            payloads = list(event.activity_task_completed_event_attributes.result.payloads)
            (progress,) = await client.data_converter.decode(payloads, [PollProgress])
            results.append(progress)
    return results


async def poller_cost(client: Client, orders: int) -> PollerCost:
    histories = await _poller_histories(client)
    counted = [count_actions(history) for history in histories]
    actions = Actions(**{kind: sum(getattr(a, kind) for a in counted) for kind in KINDS})
    results = [progress for history in histories for progress in await _poll_results(client, history)]
    state = await client.get_workflow_handle(poller_workflow_id(CONNECTION)).query("status", result_type=PollerState)
    first = histories[0].events[0].event_time.ToDatetime(tzinfo=UTC)
    return PollerCost(
        actions=actions,
        runs=len(histories),
        seconds=(datetime.now(UTC) - first).total_seconds(),
        polls=actions.activities,
        polls_listing_all=sum(progress.listed >= orders for progress in results),
        most_waiting=max((len(progress.deferred) for progress in results), default=0),
        skipped=state.skipped,
        handed_off=state.handed_off,
        deferred=state.deferred,
    )


async def paid_by_webhook(cluster: Cluster, orders: int) -> OrdersRun:
    """`orders` paid orders created at once, one webhook each; held, then every history counted."""
    client = await decoding_client(cluster)
    ids = await cluster.create_orders(orders, items=[{"sku": "1", "quantity": 1}])
    started = time.monotonic()
    hooks = await cluster.notify_all(ids, redeliver_for=60)
    acknowledged = time.monotonic()
    if refused := sum(hook.status != 202 for hook in hooks):
        raise IncompleteRun(f"poller cost: {refused} of {orders} webhooks not accepted")
    done = await cluster.wait_for_dispatch(ids, within=DRAIN_SECONDS, poll=0.5)
    if len(done) < orders:
        raise IncompleteRun(f"poller cost: {orders - len(done)} of {orders} orders not dispatched")
    await _bounded(ids, lambda order_id: settled_paid(cluster, order_id))
    # The same hold with the poller off: the two sides differ in POLLING_ENABLED only.
    hold_until = max(
        acknowledged + WEBHOOK_GRACE_SECONDS + HOLD_POLLS * POLL_INTERVAL_SECONDS,
        time.monotonic() + HOLD_POLLS * POLL_INTERVAL_SECONDS,
    )
    await asyncio.sleep(hold_until - time.monotonic())

    async def history(order_id: str) -> WorkflowHistory:
        return await client.get_workflow_handle(order_workflow_id(CONNECTION, order_id)).fetch_history()

    histories = await _bounded(ids, history)
    seconds = time.monotonic() - started
    signals = [await _signals(client, h) for h in histories]
    polling = cluster.settings.get("POLLING_ENABLED", "true").lower() == "true"
    return OrdersRun(
        settings={name: value for name, value in sorted(cluster.settings.items()) if name.startswith("POLL")},
        summary=summarise([count_actions(h) for h in histories]),
        seconds=seconds,
        started_by=dict(Counter(source for source, _ in signals)),
        signaled={order_id: later for order_id, (_, later) in zip(ids, signals, strict=True) if later},
        poller=await poller_cost(client, orders) if polling else None,
    )


async def compare(
    run_dir: Path,
    orders: int,
    *,
    server_store: ServerStore = ServerStore.SQLITE_WAL,
    settings: Mapping[str, str] | None = None,
) -> PollerComparison:
    """Poller off, then on: two clusters one after the other, alike but for POLLING_ENABLED."""
    runs = {}
    for name, polling in (("off", POLLER_OFF), ("on", POLLER_ON)):
        print(f"  poller {name}: {orders} paid orders by webhook...", flush=True)
        async with Cluster(
            run_dir / f"poller-{name}", settings={**(settings or {}), **polling}, server_store=server_store
        ) as cluster:
            runs[name] = await paid_by_webhook(cluster, orders)
    return PollerComparison(off=runs["off"], on=runs["on"])


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.poller_cost", description="actions per paid order by webhook, poller off and on"
    )
    parser.add_argument("--orders", type=int, default=200, help="paid orders on each side (default 200)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    comparison = await compare(run_directory("poller-cost"), args.orders)
    print(f"actions per paid order, poller off | on: {comparison.line()}")
    print(f"poller: {comparison.poller_line()}")
    for order_id, signals in list(comparison.on.signaled.items())[:10]:
        print(f"  order {order_id} signaled after its start (poller on): {', '.join(signals)}")
    print(f"{comparison.verdict()} ({time.monotonic() - started:.0f} s)")
    return 0 if comparison.ok else 1


if __name__ == "__main__":
    run_command(main)
