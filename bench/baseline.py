"""The yardstick: one order's integration calls in plain asyncio, no Temporal, no order log.

The same HTTP calls to the same sandboxes, through the connector's own clients and payload builders: GET
the marketplace order, simulation and every SKU context concurrently, place, authorize dispatch. Whatever
the connector spends beyond this is durability (Temporal, the order log) and process hops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType

from bench.harness import AFFILIATE, APP_KEY, APP_TOKEN, CALLBACK_TOKEN, CONNECTION, WEBHOOK_SECRET, Cluster
from connector.marketplaces.reference import ReferenceMarketplace
from connector.validation import validate_order
from connector.vtex.client import VtexClient
from connector.vtex.payloads import fulfillment_order_body, simulation_body

SALES_CHANNEL = "1"
SELLER = "1"


class Baseline:
    """`async with Baseline(cluster) as baseline:` one pair of pooled clients, as a worker process has."""

    def __init__(self, cluster: Cluster, *, concurrency: int) -> None:
        self._vtex = VtexClient(base_url=cluster.vtex_url, app_key=APP_KEY, app_token=APP_TOKEN)
        self._marketplace = ReferenceMarketplace(base_url=cluster.marketplace_url, webhook_secret=WEBHOOK_SECRET)
        self._services_endpoint = f"{cluster.intake_url}/vtex/{CONNECTION}/{CALLBACK_TOKEN}"
        self._gate = asyncio.Semaphore(concurrency)

    async def integrate_all(self, order_ids: Sequence[str]) -> float:
        """Integrate every order, `concurrency` at a time; the seconds it took."""
        started = time.perf_counter()
        await asyncio.gather(*(self._integrate(order_id) for order_id in order_ids))
        return time.perf_counter() - started

    async def _integrate(self, order_id: str) -> None:
        vtex = self._vtex
        async with self._gate:
            order = await self._marketplace.fetch_order(order_id)
            skus = list(dict.fromkeys(item.sku_id for item in order.items))
            simulation, contexts = await asyncio.gather(
                vtex.simulate(
                    simulation_body(order, seller_id=SELLER), sales_channel=SALES_CHANNEL, affiliate_id=AFFILIATE
                ),
                asyncio.gather(*(vtex.get_sku_context(sku, sales_channel=SALES_CHANNEL) for sku in skus)),
            )
            report = validate_order(
                order, simulation, dict(zip(skus, contexts, strict=True)), sales_channel=SALES_CHANNEL
            )
            if not report.ok:
                raise RuntimeError(f"baseline order {order_id} does not validate: {report.problems}")
            body = fulfillment_order_body(order, report, seller_id=SELLER, services_endpoint=self._services_endpoint)
            await vtex.place_fulfillment_order(body, sales_channel=SALES_CHANNEL, affiliate_id=AFFILIATE)
            await vtex.authorize_dispatch(order_id, sales_channel=SALES_CHANNEL, affiliate_id=AFFILIATE)

    async def __aenter__(self) -> Baseline:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._vtex.aclose()
        await self._marketplace.aclose()
