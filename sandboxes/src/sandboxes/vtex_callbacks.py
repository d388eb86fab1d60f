"""VTEX's notifications to the marketplace: POSTs to routes under the order's `marketplaceServicesEndpoint`
(cancel, invoice) or under the Channel Order API's `connectorEndpoint` (processing-result: collect-orders
guide, "Order Processing Result").

Deliveries run in the background, so the API request that caused one is answered at once. One order's
notifications go out in the order they were caused (an invoice before its tracking update), and every
attempt is recorded for tests to inspect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from sandboxes.vtex_models import JSON

Event = Literal["cancel", "invoice", "processing-result"]
Sender = Callable[[str, JSON], Awaitable[httpx.Response]]

SEND_TIMEOUT_SECONDS = 5.0
# VTEX documents no retry policy for these callbacks; its order Hook retries "based on an internal
# geometric progression", so this doubles too. Three retries, then the delivery gives up.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
# Canceled-orders guide (step 3d) and invoice-tracking guide ("Invoice notification from VTEX").
# The Channel Order API's route names no order: the order is in the body.
_ROUTES: dict[Event, str] = {
    "cancel": "/pvt/orders/{}/cancel",
    "invoice": "/pub/orders/{}/invoice",
    "processing-result": "/order-integration/notification/processing-result",
}


@dataclass
class CallbackAttempt:
    """One POST of a notification; a delivery makes up to 1 + len(retry delays) of them."""

    event: Event
    # The VTEX order id, as in the URL; for processing-result, `{affiliateId}-{marketplaceOrderId}`.
    order_id: str
    url: str
    body: JSON
    attempt: int  # 1 for the first try of a delivery
    status: int | None = None  # the receiver's HTTP status; None when no answer came
    error: str | None = None  # why no answer came (timeout, refused connection...)
    answer: Any = None  # the receiver's answer body: JSON when it is JSON, else its text
    sent_at: float = 0.0  # event-loop clock, seconds: lets tests check the backoff

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> JSON:
        return asdict(self)


async def post_json(url: str, body: JSON) -> httpx.Response:
    """The default sender. One short-lived client per attempt: the sandbox has no shutdown hook that
    could close a shared one, and a new connection per attempt never meets one the server closed."""
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS) as client:
        return await client.post(url, json=body)


def client_sender(client: httpx.AsyncClient) -> Sender:
    """Deliver through `client`, e.g. one on an `httpx.ASGITransport` to a receiver app in this process."""

    async def send(url: str, body: JSON) -> httpx.Response:
        return await client.post(url, json=body)

    return send


def callback_url(endpoint: str, event: Event, order_id: str, query: Mapping[str, str] | None = None) -> str:
    """The event's route appended to the endpoint's path, its query string (`?an=...`) kept and `query`
    added to it (replacing a parameter of the same name)."""
    parts = urlsplit(endpoint)
    route = _ROUTES[event].format(quote(order_id, safe=""))
    if query:
        kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in query]
        parts = parts._replace(query=urlencode([*kept, *query.items()]))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + route, fragment=""))


class CallbackDispatcher:
    def __init__(self, sender: Sender, retry_delays: Sequence[float]) -> None:
        self.attempts: list[CallbackAttempt] = []
        self._sender = sender
        self._delays = tuple(retry_delays)
        self._tasks: set[asyncio.Task[None]] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}  # each order's most recent delivery

    def send(
        self,
        event: Event,
        order_id: str,
        endpoint: str,
        body: JSON,
        on_result: Callable[[bool], None] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> None:
        """Start delivering in the background; `on_result(delivered)` runs once it succeeded or gave up.
        `query` is added to the URL's query string. Must be called from the event loop's thread (any
        sandbox handler is)."""
        url = callback_url(endpoint, event, order_id, query)
        previous = self._latest.get(order_id)
        task = asyncio.get_running_loop().create_task(
            self._deliver(previous, event, order_id, url, body, on_result),
            name=f"vtex-callback-{event}-{order_id}",
        )
        self._tasks.add(task)
        self._latest[order_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            if self._latest.get(order_id) is done:
                del self._latest[order_id]

        task.add_done_callback(forget)

    async def drain(self) -> None:
        """Wait until every started delivery succeeded or gave up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def reset(self) -> None:
        """Abandon deliveries still under way and forget all attempts (the list is cleared in place)."""
        for task in self._tasks:
            task.cancel()
        self._latest.clear()
        self.attempts.clear()

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        event: Event,
        order_id: str,
        url: str,
        body: JSON,
        on_result: Callable[[bool], None] | None,
    ) -> None:
        if previous is not None:
            # Only the order matters, not how the earlier delivery ended.
            await asyncio.wait([previous])
        loop = asyncio.get_running_loop()
        delivered = False
        for attempt, delay in enumerate((0.0, *self._delays), start=1):
            if delay:
                await asyncio.sleep(delay)
            record = CallbackAttempt(event, order_id, url, body, attempt, sent_at=loop.time())
            self.attempts.append(record)
            await self._attempt(record)
            if record.delivered:
                delivered = True
                break
        if on_result is not None:
            on_result(delivered)

    async def _attempt(self, record: CallbackAttempt) -> None:
        try:
            response = await self._sender(record.url, record.body)
        except Exception as exc:  # whatever kept the answer away is the receiver's failure, to record
            record.error = f"{type(exc).__name__}: {exc}"
            return
        record.status = response.status_code
        try:
            record.answer = response.json()
        except ValueError:
            record.answer = response.text
