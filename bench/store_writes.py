"""CPU time of the SQLite store under concurrent log writes (the group commit's benefit).

    .venv/bin/python -m bench.store_writes [--writes 2000] [--writers 500] [--rounds 9] [--url postgresql://...]

500 writers share 2,000 `write_log` calls (4 each), all started at once against a fresh store file;
the figure is the CPU time (user + system, every thread) of this process from the first call until
the last one has returned, the median of `--rounds` rounds, each on a new file. The wall time is shown
too but is not the claim: it depends on the disk. Opening the store (and its schema) is outside the
measure. docs/benchmarks.md holds the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from connector.store.base import open_store
from connector.store.models import LogMessage, LogStatus


def _message(index: int, run: str) -> LogMessage:
    return LogMessage(
        id=f"bench-{run}-{index:06d}",
        code="B",
        operation="Order placed in VTEX",
        direction="marketplace → VTEX",
        content_source=f'{{"orderId": "MKT-{index:06d}", "items": [{{"id": "sku-1", "quantity": 1}}]}}',
        content_translated=f'{{"marketplaceOrderId": "MKT-{index:06d}"}}',
        content_destination=f'{{"orderId": "VTX-{index:06d}"}}',
        business_message="The order was placed in VTEX.",
        status=LogStatus.SUCCESS,
        account="benchaccount",
        connection="bench",
        marketplace_order_id=f"MKT-{index:06d}",
        vtex_order_id=f"VTX-{index:06d}",
        created_at=datetime.now(UTC),
    )


async def _round(url: str, writes: int, writers: int) -> tuple[float, float]:
    store = open_store(url)
    await store.handoff_queue_depth()  # whatever the store does on first use happens before the measure
    run = uuid.uuid4().hex[:8]  # new ids every round, should --url name one database for all rounds
    messages = [_message(index, run) for index in range(writes)]

    async def writer(start: int) -> None:
        for message in messages[start::writers]:
            await store.write_log(message)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(writer(start) for start in range(writers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.aclose()
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--url", help="a store URL (default: a new SQLite file per round)")
    args = parser.parse_args()
    cpus, walls = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):
            url = args.url or f"sqlite:///{Path(scratch) / f'round{number}.db'}"
            cpu, wall = asyncio.run(_round(url, args.writes, args.writers))
            cpus.append(cpu)
            walls.append(wall)
            print(f"round {number + 1}: CPU {cpu * 1000:.0f} ms, wall {wall * 1000:.0f} ms")
    print(
        f"{args.writes} writes from {args.writers} writers: CPU median {statistics.median(cpus) * 1000:.0f} ms, "
        f"wall median {statistics.median(walls) * 1000:.0f} ms ({args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
