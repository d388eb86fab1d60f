"""A burst of webhooks: N paid orders' signed notifications within a few seconds, on a cluster of its own.

    .venv/bin/python -m bench.burst [--orders 2000] [--window 10]

N paid orders are created in the marketplace sandbox, then their webhooks are sent evenly over the window
(open loop, as steady_load: each send is its own task and never waits for an earlier answer), one delivery
id each and no redelivery, so any status but 202 or 200 is a refusal the burst caused. The run then waits
until every order is dispatch authorized in the VTEX sandbox (at least DRAIN_SECONDS) and reads what VTEX
placed. The claim: 0 refused, 0 lost (never dispatch authorized), 0 duplicated (an order placed twice), every
order integrated. The cluster is fresh, so the VTEX sandbox's request log (its latest 10,000 requests)
still holds every placement of the burst; the run says so if it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import Cluster, ServerStore, Webhook, placements
from bench.load import DRAIN_SECONDS, IncompleteRun, percentile
from bench.runs import run_command, run_directory
from connector.models import OrderStatus

WINDOW_SECONDS = 10.0
ACCEPTED = frozenset({200, 202})
# Dispatch authorized is where a paid order comes to rest: its search attribute is written then.
DISPATCHED = f"OrderStatus = '{OrderStatus.DISPATCH_AUTHORIZED.value}'"
# Orders through before the burst (connections, the workflow sandbox's first imports), as a running
# connector would have had.
WARM_UP = 20


def drain_within(orders: int) -> float:
    """How long the burst may take to drain: DRAIN_SECONDS, or more at under 5 orders/s."""
    return max(DRAIN_SECONDS, orders / 5.0)


@dataclass(frozen=True)
class Burst:
    orders: int
    window: float  # the sends were spread evenly over this many seconds
    send_seconds: float  # first send → last send, as they left
    statuses: dict[int, int]  # HTTP status → webhooks (0: no answer, a refused connection or a timeout)
    ack_p50: float
    ack_p99: float
    ack_max: float
    dispatched: int  # orders of the burst dispatch authorized in the VTEX sandbox
    duplicated: int  # orders VTEX holds twice or answered a placement of with a 2xx twice
    placements_seen: int  # orders of the burst whose placement is in the sandbox's request log
    drain_seconds: float  # first webhook sent → last dispatch authorized (the sandbox's clock)

    @property
    def accepted(self) -> int:
        return sum(count for status, count in self.statuses.items() if status in ACCEPTED)

    @property
    def refused(self) -> dict[int, int]:
        return {status: count for status, count in sorted(self.statuses.items()) if status not in ACCEPTED}

    @property
    def lost(self) -> int:
        return self.orders - self.dispatched

    @property
    def per_second(self) -> float:
        """Orders dispatch authorized per second over the drain."""
        return self.dispatched / self.drain_seconds if self.drain_seconds > 0 else 0.0

    def problems(self) -> list[str]:
        found = []
        if self.refused:
            found.append(f"{sum(self.refused.values())} webhook(s) refused: {_statuses(self.refused)}")
        if self.lost:
            found.append(f"{self.lost} of {self.orders} order(s) never dispatch authorized")
        if self.duplicated:
            found.append(f"{self.duplicated} order(s) placed twice in VTEX")
        if self.placements_seen < self.dispatched:
            found.append(
                f"the VTEX sandbox's request log holds the placement of {self.placements_seen} of the "
                f"{self.dispatched} dispatched orders: duplicates were not checked for the rest"
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()

    def verdict(self) -> str:
        problems = self.problems()
        return "ok" if not problems else "FAILED: " + "; ".join(problems)

    def sent_line(self) -> str:
        refused = sum(self.refused.values())
        return (
            f"{self.orders} sent in {self.send_seconds:.1f} s: accepted {self.accepted}, refused {refused}"
            + (f" ({_statuses(self.refused)})" if refused else "")
            + f"; ack p50 {self.ack_p50 * 1000:.1f} ms, p99 {self.ack_p99 * 1000:.1f} ms, "
            f"max {self.ack_max * 1000:.0f} ms"
        )

    def drain_line(self) -> str:
        return (
            f"{self.dispatched} dispatched in {self.drain_seconds:.0f} s ({self.per_second:.1f} orders/s), "
            f"lost {self.lost}, duplicated {self.duplicated}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "accepted": self.accepted,
            "refused": {str(status): count for status, count in self.refused.items()},
            "lost": self.lost,
            "per_second": self.per_second,
            "problems": self.problems(),
        }


def _statuses(counts: Mapping[int, int]) -> str:
    return ", ".join(f"{count}x {status or 'no answer'}" for status, count in counts.items())


def summarise(
    ids: Sequence[str],
    hooks: Sequence[Webhook],
    *,
    window: float,
    dispatch_times: Mapping[str, float],
    vtex_orders: Iterable[Mapping[str, Any]],
    requests: Iterable[Mapping[str, Any]],
) -> Burst:
    """The burst's figures from what was sent (`hooks`, in the order of `ids`), the dispatch times
    (epoch seconds) and what the VTEX sandbox holds and recorded."""
    if not hooks or len(hooks) != len(ids):
        raise ValueError("one webhook per order, at least one")
    wanted = set(ids)
    held = Counter(str(order["marketplace_order_id"]) for order in vtex_orders)
    placed = placements(requests)
    done = [at for order_id, at in dispatch_times.items() if order_id in wanted]
    first_sent = min(hook.sent_at for hook in hooks)
    acks = [hook.seconds for hook in hooks]
    return Burst(
        orders=len(ids),
        window=window,
        send_seconds=max(hook.sent_at for hook in hooks) - first_sent,
        statuses=dict(sorted(Counter(hook.status for hook in hooks).items())),
        ack_p50=percentile(acks, 0.50),
        ack_p99=percentile(acks, 0.99),
        ack_max=max(acks),
        dispatched=len(done),
        duplicated=sum(held[order_id] > 1 or placed[order_id] > 1 for order_id in wanted),
        placements_seen=sum(placed[order_id] > 0 for order_id in wanted),
        drain_seconds=max(done) - first_sent if done else 0.0,
    )


async def spread(cluster: Cluster, ids: Sequence[str], window: float) -> list[Webhook]:
    """One signed webhook per order, sent evenly over `window` seconds without waiting for answers."""
    start = time.monotonic()
    sends: list[asyncio.Task[Webhook]] = []
    for index, order_id in enumerate(ids):
        await asyncio.sleep(max(0.0, start + index * window / len(ids) - time.monotonic()))
        sends.append(asyncio.create_task(cluster.send_webhook(order_id, delivery_id=uuid.uuid4().hex)))
    return list(await asyncio.gather(*sends))


async def burst(cluster: Cluster, orders: int, *, window: float = WINDOW_SECONDS, warm_up: int = WARM_UP) -> Burst:
    warm = await cluster.create_orders(warm_up)
    await cluster.notify_all(warm)
    if len(await cluster.wait_for_dispatch(warm, within=DRAIN_SECONDS, poll=0.5)) < warm_up:
        raise IncompleteRun(f"burst: the {warm_up} warm-up orders were not dispatched")
    ids = await cluster.create_orders(orders)
    hooks = await spread(cluster, ids, window)
    accepted = sum(hook.status in ACCEPTED for hook in hooks)
    # A count of the dispatched orders (visibility) is cheap; reading the sandbox's orders every second
    # would cost its process CPU the drain needs.
    await cluster.wait_for_count(DISPATCHED, warm_up + accepted, within=drain_within(orders), poll=1.0)
    times = await cluster.wait_for_dispatch(ids, within=5.0, poll=1.0)
    return summarise(
        ids,
        hooks,
        window=window,
        dispatch_times={order_id: at.timestamp() for order_id, at in times.items()},
        vtex_orders=await cluster.vtex_orders(),
        requests=await cluster.vtex_requests(),
    )


async def measure(
    run_dir: Path, orders: int, *, window: float = WINDOW_SECONDS, server_store: ServerStore = ServerStore.SQLITE_WAL
) -> Burst:
    """The burst on a fresh cluster (nothing else in its history or the sandbox's request log)."""
    async with Cluster(run_dir / "burst", server_store=server_store) as cluster:
        return await burst(cluster, orders, window=window)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.burst", description="N webhooks within seconds, all integrated")
    parser.add_argument("--orders", type=int, default=2000, help="paid orders in the burst (default 2000)")
    parser.add_argument("--window", type=float, default=WINDOW_SECONDS, help="seconds the sends span (default 10)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = await measure(run_directory("burst"), args.orders, window=args.window)
    print(f"burst: {result.sent_line()}")
    print(f"burst: {result.drain_line()}")
    print(f"{result.verdict()} ({time.monotonic() - started:.0f} s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    run_command(main)
