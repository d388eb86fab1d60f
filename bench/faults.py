"""Fault scenarios on the connector's real processes: every order completes (dispatch authorized in the VTEX
sandbox), none is placed twice, none is lost.

    .venv/bin/python -m bench.faults [--orders 200] [--scenario kill-worker ...]

1. kill-worker: kill -9 the worker with orders in flight, start a new one.
2. restart-server: stop the Temporal dev server mid-run and start it again on the same SQLite file.
3. flaky-vtex: the VTEX sandbox fails a share of all calls with 503, 429 and timeouts (answers held past
   VTEX_TIMEOUT_SECONDS after the work was done, so a retry meets an order that already exists).

Each prints `sent, completed, duplicated, lost`; the command exits 1 if any order is duplicated or lost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Cluster, Tally
from bench.runs import run_command, run_directory

# A killed activity attempt is retried once its start-to-close timeout passes (three VTEX_TIMEOUT_SECONDS
# plus 5 s: 11 s here, 65 s with the default VTEX timeout); a scenario gets minutes either way.
WITHIN_SECONDS = 300.0


@dataclass(frozen=True)
class FaultResult:
    scenario: str
    tally: Tally
    seconds: float
    note: str

    def line(self) -> str:
        verdict = "ok" if self.tally.ok else "FAILED"
        return f"{self.scenario:<15} {self.tally.line()} in {self.seconds:.0f} s ({self.note}) {verdict}"


def flaky_vtex_rules(rate: float, timeout_seconds: float) -> list[dict[str, Any]]:
    """Rules failing `rate` of every VTEX call, in equal shares of 503, 429 and timeouts.

    A request a random rule lets pass meets the next rule, so the k-th of n rules fires with probability
    (rate/n) / (1 - (k-1)·rate/n) to give each kind rate/n of all calls."""
    kinds: list[dict[str, Any]] = [
        {"status": 503, "message": "Service Unavailable (injected)"},
        {"status": 429, "retry_after": 1, "message": "Too Many Requests (injected)"},
        # Held past the client's timeout after the work was done: the answer is lost, the effect is not.
        {"status": 504, "delay_seconds": timeout_seconds + 1.0, "after_effect": True},
    ]
    share = rate / len(kinds)
    return [
        {"method": None, "path_contains": "/api/", "times": -1, "probability": share / (1 - index * share), **kind}
        for index, kind in enumerate(kinds)
    ]


async def kill_worker(cluster: Cluster, orders: int, *, within: float = WITHIN_SECONDS) -> FaultResult:
    ids = await cluster.create_orders(orders)
    started = time.monotonic()
    await cluster.notify_all(ids, redeliver_for=within)
    # Kill once a quarter is through: the rest are at every step, some activities mid-call.
    done = await cluster.wait_for_dispatch(ids, within=within, at_least=max(1, orders // 4), poll=0.1)
    await cluster.worker.kill()
    await cluster.start_worker()
    restarted = time.time()
    finished = await cluster.wait_for_dispatch(ids, within=within)
    recovery = max((at.timestamp() for at in finished.values()), default=restarted) - restarted
    return FaultResult(
        "kill-worker",
        await cluster.tally(ids),
        time.monotonic() - started,
        f"{orders - len(done)} in flight at the kill; the last completed {recovery:.0f} s after the restart",
    )


async def restart_server(
    cluster: Cluster, orders: int, *, within: float = WITHIN_SECONDS, down: float = 3.0
) -> FaultResult:
    ids = await cluster.create_orders(orders)
    started = time.monotonic()
    # Webhooks keep coming while the server is down: the intake answers 503 and the sender delivers again.
    half = len(ids) // 2
    first = asyncio.create_task(cluster.notify_all(ids[:half], concurrency=10, redeliver_for=within))
    await cluster.wait_for_dispatch(ids, within=within, at_least=max(1, orders // 8), poll=0.1)
    await cluster.temporal.stop()
    rest = asyncio.create_task(cluster.notify_all(ids[half:], concurrency=10, redeliver_for=within))
    await asyncio.sleep(down)
    await cluster.start_temporal()
    refused = sum(hook.status != 202 for hook in await first + await rest)
    await cluster.wait_for_dispatch(ids, within=within)
    return FaultResult(
        "restart-server",
        await cluster.tally(ids),
        time.monotonic() - started,
        f"server down {down:.0f} s; {refused} webhook(s) not accepted in the end",
    )


async def flaky_vtex(
    cluster: Cluster, orders: int, *, rate: float = 0.2, within: float = WITHIN_SECONDS
) -> FaultResult:
    """The timeouts hold answers one second past the cluster's VTEX_TIMEOUT_SECONDS."""
    for rule in flaky_vtex_rules(rate, float(cluster.settings["VTEX_TIMEOUT_SECONDS"])):
        await cluster.add_fault(rule)
    try:
        seen_before = len(await cluster.vtex_requests())
        ids = await cluster.create_orders(orders)
        started = time.monotonic()
        await cluster.notify_all(ids, redeliver_for=within)
        await cluster.wait_for_dispatch(ids, within=within)
    finally:
        await cluster.clear_faults()
    statuses = Counter(request["status"] for request in (await cluster.vtex_requests())[seen_before:])
    failed = {status: count for status, count in sorted(statuses.items()) if status in (429, 503, 504)}
    return FaultResult(
        "flaky-vtex",
        await cluster.tally(ids),
        time.monotonic() - started,
        f"{sum(failed.values())} of {statuses.total()} VTEX calls failed: "
        + ", ".join(f"{count}x {status}" for status, count in failed.items()),
    )


Scenario = Callable[[Cluster, int], Awaitable[FaultResult]]
SCENARIOS: dict[str, Scenario] = {
    "kill-worker": kill_worker,
    "restart-server": restart_server,
    "flaky-vtex": flaky_vtex,
}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.faults", description="fault scenarios: every order completes, none twice, none lost"
    )
    parser.add_argument("--orders", type=int, default=200, help="orders per scenario (default 200)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all three")
    args = parser.parse_args(argv)
    logs = run_directory("faults")
    failed = False
    for name in args.scenario or list(SCENARIOS):
        async with Cluster(logs / name) as cluster:
            result = await SCENARIOS[name](cluster, args.orders)
        print(result.line(), flush=True)
        failed = failed or not result.tally.ok
    print(f"logs: {logs}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_command(main)
