"""One webhook delivery at a time: copies of a delivery that arrive together (marketplaces send them:
Mercado Libre was seen sending five at once) wait for the first, then find it remembered.

The delivery id is remembered only once its notification is queued, so checking and remembering are two
steps; inside one intake process this lock makes them one. Two intake processes racing on one delivery
may both queue it: a second hand-off, which the order's workflow takes as one notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DeliveryLocks:
    def __init__(self) -> None:
        # A lock and how many requests hold or wait for it; forgotten at zero, so the map stays small.
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, connection: str, delivery_id: str) -> AsyncIterator[None]:
        key = (connection, delivery_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
