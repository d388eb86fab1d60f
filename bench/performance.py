"""The connector's benchmark, on its real processes (dev server, sandboxes, worker, intake).

    .venv/bin/python -m bench.performance [--quick] [--server-store sqlite-wal|sqlite|memory]

Prints a table and writes bench/results/<timestamp>.json: throughput against a plain-asyncio baseline
from the same run, Temporal actions per order, notification → dispatch latency and webhook
acknowledgement latency at a fixed offered rate and at the rate the throughput phase measured,
thousands of orders parked waiting for payment with the worker's peak memory, a burst of webhooks within
10 s on a cluster of its own (bench/burst.py), and the actions of a paid order handed in by webhook with
the poller off and on (bench/poller_cost.py: two more clusters). Exits 1 if the burst refused, lost or
duplicated any order, or if the poller on costs those orders any action.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from bench import cost, poller_cost
from bench.burst import WINDOW_SECONDS as BURST_SECONDS
from bench.burst import Burst
from bench.burst import measure as measure_burst
from bench.harness import Cluster, ServerStore
from bench.load import Latency, Parking, Throughput, park, steady_load, throughput
from bench.machine import describe
from bench.runs import RESULTS, run_command, run_directory, timestamp


@dataclass(frozen=True)
class Profile:
    name: str
    throughput_orders: int
    rate: float  # offered orders per second for the latency phase
    rate_seconds: float
    parked_orders: int
    poller_orders: int  # paid orders by webhook on each side of the poller off/on comparison
    burst_orders: int  # paid orders whose webhooks are sent within burst_seconds
    burst_seconds: float = BURST_SECONDS


FULL = Profile(
    "full",
    throughput_orders=300,
    rate=10.0,
    rate_seconds=30.0,
    parked_orders=10_000,
    poller_orders=200,
    burst_orders=2_000,
)
QUICK = Profile(
    "quick",
    throughput_orders=100,
    rate=10.0,
    rate_seconds=10.0,
    parked_orders=1_000,
    poller_orders=50,
    burst_orders=400,
)


@dataclass(frozen=True)
class Report:
    profile: Profile
    server_store: ServerStore
    machine: dict[str, str | int | float]
    throughput: Throughput
    latency: Latency
    # The same open-loop load at the rate the throughput phase measured (the "capacity rate").
    at_capacity: Latency
    actions: dict[str, cost.Actions]
    parking: Parking
    burst: Burst
    poller: poller_cost.PollerComparison

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": asdict(self.profile),
            "server_store": self.server_store.value,
            "machine": self.machine,
            "throughput": {
                **asdict(self.throughput),
                "connector_per_second": self.throughput.connector_per_second,
                "baseline_per_second": self.throughput.baseline_per_second,
                "ratio": self.throughput.ratio,
            },
            "latency": asdict(self.latency),
            "at_capacity": asdict(self.at_capacity),
            "actions": {
                name: {**asdict(a), "total": a.total, "dollars_per_1000_orders": a.dollars_per_1000_orders}
                for name, a in self.actions.items()
            },
            "parking": {**asdict(self.parking), "per_second": self.parking.per_second},
            "burst": self.burst.to_json(),
            "poller_cost": self.poller.to_json(),
        }

    def table(self) -> str:
        t, lat, cap, p = self.throughput, self.latency, self.at_capacity, self.parking
        m = self.machine
        rows = [
            ("machine", f"{m['cpus']} CPUs {m['cpu_model']}, {m['memory_gib']} GiB, Python {m['python']}"),
            ("temporal", f"{m['temporal_cli']}, store {self.server_store.value}"),
            (
                "throughput, connector",
                f"{t.connector_per_second:.1f} orders/s ({t.orders} in {t.connector_seconds:.1f} s)",
            ),
            (
                "throughput, baseline",
                f"{t.baseline_per_second:.1f} orders/s ({t.orders} in {t.baseline_seconds:.1f} s)",
            ),
            ("connector / baseline", f"{t.ratio:.3f}"),
            ("CPU ms per order, connector", _cpu_line(t.connector_cpu_ms)),
            ("CPU ms per order, baseline", _cpu_line(t.baseline_cpu_ms)),
            (
                f"dispatch latency @ {lat.rate:g}/s",
                f"p50 {lat.dispatch_p50 * 1000:.0f} ms, p99 {lat.dispatch_p99 * 1000:.0f} ms ({lat.orders} orders)",
            ),
            (
                f"webhook ack @ {lat.rate:g}/s, {lat.seconds:g} s",
                f"p50 {lat.ack_p50 * 1000:.1f} ms, p99 {lat.ack_p99 * 1000:.1f} ms, {lat.refused} refused",
            ),
            (
                f"at capacity, {cap.rate:g}/s for {cap.seconds:g} s: dispatch",
                f"p50 {cap.dispatch_p50 * 1000:.0f} ms, p99 {cap.dispatch_p99 * 1000:.0f} ms ({cap.orders} orders)",
            ),
            (
                "at capacity: webhook ack",
                f"p50 {cap.ack_p50 * 1000:.1f} ms, p99 {cap.ack_p99 * 1000:.1f} ms, {cap.refused} refused",
            ),
            *(
                (
                    f"actions: {name}",
                    f"{a.total} (start {a.start}, activities {a.activities}, local {a.local_activities}, "
                    f"retries {a.retries}, timers {a.timers}, "
                    f"signals {a.signals}, upserts {a.upserts}): ${a.dollars_per_1000_orders:.2f} per 1,000 orders",
                )
                for name, a in self.actions.items()
            ),
            (
                f"parked {p.orders:,} (awaiting payment)",
                f"in {p.seconds:.0f} s ({p.per_second:.1f}/s), {p.actions_while_parked} actions each so far",
            ),
            ("worker memory, parked", f"peak {p.worker_peak_mib:.0f} MiB, RSS {p.worker_rss_mib:.0f} MiB"),
            ("dev server, parked", f"peak {p.server_peak_mib:.0f} MiB, database {p.server_db_mib:.0f} MiB"),
            ("parked, then paid", f"{p.woken_dispatched} of {p.woken} dispatched"),
            (f"burst: {self.burst.orders:,} webhooks within {self.burst.window:g} s", self.burst.sent_line()),
            ("burst: drained", self.burst.drain_line()),
            ("burst: 0 refused, 0 lost, 0 duplicated", self.burst.verdict()),
            ("actions per paid order, poller off | on", self.poller.line()),
            (f"poller ({poller_cost.POLL_INTERVAL_SECONDS:g} s interval)", self.poller.poller_line()),
            ("poller costs a webhook's order nothing", self.poller.verdict()),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _cpu_line(milliseconds: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {ms:.0f}" for name, ms in milliseconds.items())
    return f"{sum(milliseconds.values()):.0f} ({parts})"


async def run(profile: Profile, server_store: ServerStore) -> Report:
    logs = run_directory(f"bench-{profile.name}")
    print(f"logs: {logs}", flush=True)
    # The intake accepts unpaid orders for the cost case that needs it; parking restarts it without.
    settings = {"ACCEPT_UNPAID_ORDERS": "true"}
    async with Cluster(logs, settings=settings, server_store=server_store) as cluster:
        print("throughput...", flush=True)
        measured_throughput = await throughput(cluster, profile.throughput_orders)
        print("latency...", flush=True)
        latency = await steady_load(cluster, rate=profile.rate, seconds=profile.rate_seconds)
        capacity = max(1.0, float(int(measured_throughput.connector_per_second)))
        print(f"at capacity ({capacity:g}/s)...", flush=True)
        at_capacity = await steady_load(cluster, rate=capacity, seconds=profile.rate_seconds)
        print("actions per order...", flush=True)
        actions = await cost.measure(cluster)
        print(f"parking {profile.parked_orders:,} orders...", flush=True)
        parking = await park(cluster, profile.parked_orders)
    print(f"burst of {profile.burst_orders:,} webhooks within {profile.burst_seconds:g} s...", flush=True)
    measured_burst = await measure_burst(
        logs, profile.burst_orders, window=profile.burst_seconds, server_store=server_store
    )
    print("actions per paid order, poller off and on...", flush=True)
    poller = await poller_cost.compare(logs, profile.poller_orders, server_store=server_store)
    return Report(
        profile,
        server_store,
        describe(),
        measured_throughput,
        latency,
        at_capacity,
        actions,
        parking,
        measured_burst,
        poller,
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.performance", description="the connector's benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller counts: about 3.5 minutes instead of ten or more")
    parser.add_argument(
        "--server-store",
        type=ServerStore,
        choices=list(ServerStore),
        default=ServerStore.SQLITE_WAL,
        help="the dev server's store (default sqlite-wal; sqlite-sync: SQLite's defaults, a disk sync per commit)",
    )
    args = parser.parse_args(argv)
    report = await run(QUICK if args.quick else FULL, args.server_store)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{timestamp()}.json"
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(report.table())
    print(f"results: {path}")
    for problem in report.burst.problems():
        print(f"FAILED: burst: {problem}", file=sys.stderr)
    if not report.poller.ok:
        for problem in report.poller.problems():
            print(f"FAILED: {problem}", file=sys.stderr)
        for order_id, signals in list(report.poller.on.signaled.items())[:20]:
            print(f"  order {order_id}, signaled after its start: {', '.join(signals)}", file=sys.stderr)
    return 0 if report.burst.ok and report.poller.ok else 1


if __name__ == "__main__":
    run_command(main)
