"""The seller's console's list with many orders waiting: does a deep page cost what the first one does?

    .venv/bin/python -m bench.console_pages [--orders 10000] [--walk 40]

Starts `--orders` order workflows on a task queue no worker serves, each carrying the search attributes
a parked order has (status, error code, connection, marketplace id), on a dev server of its own (SQLite
visibility, like `make run`'s). Then it times, with the console's own code (connector/console/orders.py):
the first page, the page `--walk` pages further (reached by its page token, as the "Next page" link
does), the counts by status and by error code, and the CSV export's walk over every order. Rows are not
enriched (no worker answers queries here; the console asks each row of a page its state, one query per
row whatever the depth).
The claim is the ratio deep page / first page (about 1: a page token, not an offset); the counts and
the export grow with the orders and are shown in seconds. docs/benchmarks.md holds the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from bench.runs import run_command
from connector.console.filters import OrderFilter
from connector.console.orders import Counts, all_rows
from connector.devserver import temporal_binary
from workflows.support import CONNECTION, ERROR_CODE, MARKETPLACE_ORDER_ID, ORDER_STATUS, SEARCH_ATTRIBUTES

PAGE_SIZE = 25
CODES = ("ORD027", "FMT007", "VALIDATION", "HTTP503", "FMT003", "CONNECTOR_ERROR")
STATUSES = ("parked", "parked", "parked", "dead-lettered", "reprocessing")
NOBODY = "console-bench-no-worker"


async def _park(client: Client, orders: int) -> None:
    async def one(index: int) -> None:
        await client.start_workflow(
            "OrderLifecycle",
            id=f"order:bench:{index:06d}",
            task_queue=NOBODY,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(MARKETPLACE_ORDER_ID, f"{index:06d}"),
                    SearchAttributePair(CONNECTION, "bench"),
                    SearchAttributePair(ORDER_STATUS, STATUSES[index % len(STATUSES)]),
                    SearchAttributePair(ERROR_CODE, CODES[index % len(CODES)]),
                ]
            ),
        )

    for start in range(0, orders, 200):
        await asyncio.gather(*(one(index) for index in range(start, min(orders, start + 200))))


async def _timed(call: Callable[[], Awaitable[object]], rounds: int = 5) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


async def _visible(client: Client, orders: int) -> None:
    # Visibility follows the starts a little behind.
    for _ in range(600):
        if (await client.count_workflows(OrderFilter().query())).count >= orders:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the started orders did not all become visible within 5 minutes")


async def measure(orders: int, walk: int) -> dict[str, float]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=SEARCH_ATTRIBUTES
    )
    try:
        client = env.client
        started = time.perf_counter()
        await _park(client, orders)
        await _visible(client, orders)
        parked = time.perf_counter() - started
        selected = OrderFilter()

        async def page_without_queries(token: str | None) -> str | None:
            iterator = client.list_workflows(selected.query(), page_size=PAGE_SIZE, next_page_token=_raw(token))
            await iterator.fetch_next_page()
            return _token(iterator.next_page_token)

        token: str | None = None
        for _ in range(walk):
            token = await page_without_queries(token)
        deep_token = token
        first = await _timed(lambda: page_without_queries(None))
        deep = await _timed(lambda: page_without_queries(deep_token))

        # A new console's first counts: the known codes (its background walk is not on a page's path).
        by_code = await _timed(lambda: Counts(client).count_now(selected))
        filtered = await _timed(lambda: Counts(client).count_now(OrderFilter(code="FMT007")))
        cache = Counts(client)
        await cache.find_codes()  # what the background walk does: from then on only the codes present count
        after_walk = await _timed(lambda: cache.count_now(selected))
        await cache.get(selected)
        cached = await _timed(lambda: cache.get(selected))

        async def export() -> int:
            return len([row async for row in all_rows(client, selected)])

        exported = await _timed(export, rounds=3)
        assert await export() == orders
        searched = [row async for row in all_rows(client, OrderFilter(search="000007"))]
        assert [row.marketplace_order_id for row in searched] == ["000007"]
        return {
            "orders": orders,
            "parked_seconds": parked,
            "first_page_ms": first * 1000,
            "deep_page_ms": deep * 1000,
            "deep_over_first": deep / first,
            "counts_ms": by_code * 1000,
            "counts_one_code_ms": filtered * 1000,
            "counts_cached_ms": cached * 1000,
            "counts_after_walk_ms": after_walk * 1000,
            "export_ms": exported * 1000,
        }
    finally:
        await env.shutdown()


def _raw(token: str | None) -> bytes | None:
    return base64.urlsafe_b64decode(token) if token else None


def _token(raw: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(raw).decode() if raw else None


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.console_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--walk", type=int, default=40, help="pages walked before the deep page is timed")
    args = parser.parse_args(argv)
    figures = await measure(args.orders, args.walk)
    print(
        f"{figures['orders']:,.0f} orders waiting (started and visible in {figures['parked_seconds']:.0f} s)\n"
        f"first page          {figures['first_page_ms']:.1f} ms\n"
        f"page {args.walk + 1:<14} {figures['deep_page_ms']:.1f} ms ({figures['deep_over_first']:.2f} of the first)\n"
        f"counts, all         {figures['counts_ms']:.0f} ms (one count query per status and per known code)\n"
        f"counts, one code    {figures['counts_one_code_ms']:.0f} ms\n"
        f"counts, codes known {figures['counts_after_walk_ms']:.0f} ms (after the background walk: codes present)\n"
        f"counts, next pages  {figures['counts_cached_ms']:.2f} ms (kept 30 s per filter)\n"
        f"CSV export walk     {figures['export_ms']:.0f} ms (the background code walk costs the same)"
    )
    return 0


if __name__ == "__main__":
    run_command(main)
