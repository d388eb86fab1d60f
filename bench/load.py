"""Load phases of the benchmark: throughput against the plain-asyncio baseline, latency at a fixed offered
rate, and thousands of orders parked waiting for payment."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from bench.baseline import Baseline
from bench.cost import count_actions
from bench.harness import CONNECTION, Cluster, Webhook
from bench.processes import ManagedProcess
from connector.models import order_workflow_id

DRAIN_SECONDS = 300.0
# The baseline's orders in flight at once: as many as the benchmark's webhook sender keeps open.
BASELINE_CONCURRENCY = 50
AWAITING_PAYMENT = "OrderStatus = 'awaiting-payment'"


class IncompleteRun(RuntimeError):
    """Orders that should have completed did not: the figures would be meaningless."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 300 values is the 297th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _cpu(processes: Sequence[ManagedProcess]) -> dict[str, float]:
    return {process.name: process.cpu_seconds() for process in processes}


@dataclass(frozen=True)
class Throughput:
    orders: int
    connector_seconds: float
    baseline_seconds: float
    # CPU milliseconds per order of each process: the connector's run, then the baseline's (the
    # benchmark process itself stands for the baseline's one process).
    connector_cpu_ms: dict[str, float]
    baseline_cpu_ms: dict[str, float]

    @property
    def connector_per_second(self) -> float:
        return self.orders / self.connector_seconds

    @property
    def baseline_per_second(self) -> float:
        return self.orders / self.baseline_seconds

    @property
    def ratio(self) -> float:
        """Connector throughput as a share of the baseline's."""
        return self.connector_per_second / self.baseline_per_second


async def throughput(cluster: Cluster, orders: int, *, warm_up: int = 20) -> Throughput:
    """Signed webhook → dispatch authorized for `orders` at once, then the baseline on as many new orders.
    Both first run `warm_up` orders untimed (connections, the workflow sandbox's first imports)."""
    processes = [cluster.temporal, cluster.worker, cluster.intake, cluster.sandboxes]
    await _through_connector(cluster, await cluster.create_orders(warm_up))
    ids = await cluster.create_orders(orders)
    before = _cpu(processes)
    connector_seconds = await _through_connector(cluster, ids)
    after = _cpu(processes)
    async with Baseline(cluster, concurrency=BASELINE_CONCURRENCY) as baseline:
        await baseline.integrate_all(await cluster.create_orders(warm_up))
        ids = await cluster.create_orders(orders)
        baseline_before = _baseline_cpu(cluster)
        baseline_seconds = await baseline.integrate_all(ids)
        baseline_after = _baseline_cpu(cluster)
    return Throughput(
        orders=orders,
        connector_seconds=connector_seconds,
        baseline_seconds=baseline_seconds,
        connector_cpu_ms=_per_order(before, after, orders),
        baseline_cpu_ms=_per_order(baseline_before, baseline_after, orders),
    )


async def _through_connector(cluster: Cluster, ids: list[str]) -> float:
    """Seconds from the first webhook sent to the last dispatch authorized."""
    started = time.time()
    await cluster.notify_all(ids)
    done = await cluster.wait_for_dispatch(ids, within=DRAIN_SECONDS, poll=1.0)
    if len(done) < len(ids):
        raise IncompleteRun(f"throughput: {len(ids) - len(done)} of {len(ids)} orders not dispatched")
    return max(done.values()).timestamp() - started


def _baseline_cpu(cluster: Cluster) -> dict[str, float]:
    own = os.times()
    return {"baseline": own.user + own.system, "sandboxes": cluster.sandboxes.cpu_seconds()}


def _per_order(before: dict[str, float], after: dict[str, float], orders: int) -> dict[str, float]:
    return {name: 1000 * (after[name] - before[name]) / orders for name in after}


@dataclass(frozen=True)
class Latency:
    rate: float  # offered orders per second
    seconds: float
    orders: int
    refused: int  # webhooks not answered 202
    ack_p50: float
    ack_p99: float
    dispatch_p50: float  # notification → dispatch authorized
    dispatch_p99: float


async def steady_load(cluster: Cluster, *, rate: float, seconds: float) -> Latency:
    """One new paid order's webhook every 1/rate s for `seconds` (open loop: sends never wait for answers)."""
    ids = await cluster.create_orders(round(rate * seconds))
    start = time.monotonic()
    sends: list[asyncio.Task[Webhook]] = []
    for index, order_id in enumerate(ids):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        sends.append(asyncio.create_task(cluster.send_webhook(order_id, delivery_id=uuid.uuid4().hex)))
    hooks = await asyncio.gather(*sends)
    done = await cluster.wait_for_dispatch(ids, within=DRAIN_SECONDS, poll=1.0)
    if len(done) < len(ids):
        raise IncompleteRun(f"latency: {len(ids) - len(done)} of {len(ids)} orders not dispatched")
    acks = [hook.seconds for hook in hooks]
    dispatch = [done[order_id].timestamp() - hook.sent_at for order_id, hook in zip(ids, hooks, strict=True)]
    return Latency(
        rate=rate,
        seconds=seconds,
        orders=len(ids),
        refused=sum(hook.status != 202 for hook in hooks),
        ack_p50=percentile(acks, 0.50),
        ack_p99=percentile(acks, 0.99),
        dispatch_p50=percentile(dispatch, 0.50),
        dispatch_p99=percentile(dispatch, 0.99),
    )


@dataclass(frozen=True)
class Parking:
    orders: int
    seconds: float  # first webhook → every order's workflow waiting for payment
    worker_peak_mib: float  # VmHWM of a worker started for this phase
    worker_rss_mib: float  # VmRSS once all are parked
    server_peak_mib: float
    server_db_mib: float  # the dev server's SQLite file (and WAL), 0 in memory
    woken: int  # parked orders paid afterwards...
    woken_dispatched: int  # ...and dispatched: evicted workflows replay and go on
    actions_while_parked: int  # billable actions of one parked order so far

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds


async def park(cluster: Cluster, orders: int, *, wake: int = 50) -> Parking:
    """`orders` unpaid orders with ACCEPT_UNPAID_ORDERS=false: each workflow reads its order once and waits
    for a payment notification, with no VTEX order, no timer and no activity pending."""
    await cluster.worker.stop()
    await cluster.intake.stop()
    await cluster.start_worker()
    await cluster.start_intake(ACCEPT_UNPAID_ORDERS="false")
    already = await cluster.count_workflows(AWAITING_PAYMENT)
    gate = asyncio.Semaphore(50)

    async def submit() -> str:
        # Created and notified in one go: order creation overlaps the parking instead of preceding it.
        async with gate:
            (order_id,) = await cluster.create_orders(1, status="payment_pending")
            await cluster.send_webhook(order_id, delivery_id=uuid.uuid4().hex, redeliver_for=60)
        return order_id

    started = time.monotonic()
    ids = await asyncio.gather(*(submit() for _ in range(orders)))
    target = already + orders
    if await cluster.wait_for_count(AWAITING_PAYMENT, target, within=DRAIN_SECONDS, poll=1.0) < target:
        raise IncompleteRun(f"parking: fewer than {orders} orders waiting for payment")
    seconds = time.monotonic() - started
    peak, rss = cluster.worker.status_kib("VmHWM"), cluster.worker.status_kib("VmRSS")
    history = await cluster.client.get_workflow_handle(order_workflow_id(CONNECTION, ids[0])).fetch_history()
    woken = random.Random(0).sample(ids, min(wake, orders))
    for order_id in woken:
        await cluster.marketplace_action(order_id, "pay")  # the marketplace notifies the webhook
    dispatched = await cluster.wait_for_dispatch(woken, within=DRAIN_SECONDS, poll=1.0)
    return Parking(
        orders=orders,
        seconds=seconds,
        worker_peak_mib=peak / 1024,
        worker_rss_mib=rss / 1024,
        server_peak_mib=cluster.temporal.status_kib("VmHWM") / 1024,
        server_db_mib=sum(path.stat().st_size for path in cluster.run_dir.glob("temporal.db*")) / 2**20,
        woken=len(woken),
        woken_dispatched=len(dispatched),
        actions_while_parked=count_actions(history).total,
    )
