"""Mercado Libre's notifications to the application's callback URL, and the `missed_feeds` history.

What Mercado Libre documents (https://developers.mercadolivre.com.br/pt_br/produto-receba-notificacoes and
its copies, e.g. https://developers.mercadolibre.cl/productos-recibe-notificaciones, 2025-02-20):
- An HTTP POST of a small JSON that points at the resource, never the resource itself:
  `{"_id", "resource": "/orders/123", "user_id", "topic": "orders_v2", "application_id", "attempts",
  "sent", "received"}`; claims: `resource` `/post-purchase/v1/claims/{id}`. Times are UTC.
- The receiver must answer HTTP 200 within 500 ms; otherwise the notification is retried, for up to an
  hour (up to 8 attempts: integrators' reading of the same page; the schedule itself is not published).
  Here a delivery counts only with status 200 within `answer_timeout` seconds, and is retried after
  each of `retry_delays` (a short doubling schedule by default, 8 attempts in all, so tests run fast).
- Notifications not delivered can be read for 2 days from `GET /missed_feeds?app_id=&topic=&offset=&limit=`
  (default limit 10), each with the `request` made and the `response` (`http_code`) seen.
- Topics with sub-topics (`post_purchase` with `actions: ["claims"]`, the model the claims guide now
  describes) carry `id` where the general ones carry `_id`; `claims_topic="post_purchase"` sends that model.

[INFERRED] where the docs are silent: `received` is when Mercado Libre registered the change and stays the
same on every attempt, `sent` is the attempt's time, `attempts` counts from 1, the `_id` stays the same on
retries; a second copy of a notification (`duplicate_probability`, or `times` > 1) gets its own `_id`, as
when Mercado Libre emits several notifications for what the seller sees as one change. The first attempt
leaves after `delay` seconds (random up to 0.2 s by default).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from sandboxes.mercadolibre_models import JSON, bad_request, now_utc, utc_stamp

Sender = Callable[[str, JSON], Awaitable[httpx.Response]]

# Seconds before each retry: 7 retries, 8 attempts in all (Mercado Libre: up to 8 within an hour).
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ANSWER_TIMEOUT_SECONDS = 0.5
MAX_FIRST_DELAY = 0.2
MISSED_FEEDS_SECONDS = 2 * 24 * 3600
MISSED_FEEDS_DEFAULT_LIMIT = 10


@dataclass
class NotificationAttempt:
    """One POST of a notification."""

    notification_id: str
    topic: str
    resource: str
    url: str
    body: JSON
    attempt: int
    sent_at: float  # event-loop clock, seconds
    status: int | None = None
    error: str | None = None
    elapsed: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.status == 200 and self.error is None

    def to_json(self) -> JSON:
        return {**asdict(self), "delivered": self.delivered}


@dataclass
class Notification:
    id: str
    topic: str
    resource: str
    user_id: int
    application_id: int
    received: datetime
    actions: list[str] | None = None
    attempts: list[NotificationAttempt] = field(default_factory=list)
    delivered: bool = False
    finished: bool = False

    def body(self, attempt: int, sent: datetime) -> JSON:
        key = "_id" if self.actions is None else "id"
        body: JSON = {
            key: self.id,
            "resource": self.resource,
            "user_id": self.user_id,
            "topic": self.topic,
            "application_id": self.application_id,
            "attempts": attempt,
            "sent": utc_stamp(sent),
            "received": utc_stamp(self.received),
        }
        if self.actions is not None:
            body["actions"] = list(self.actions)
        return body

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "topic": self.topic,
            "resource": self.resource,
            "received": utc_stamp(self.received),
            "delivered": self.delivered,
            "finished": self.finished,
            "attempts": [attempt.to_json() for attempt in self.attempts],
        }


async def post_json(url: str, body: JSON) -> httpx.Response:
    """The default sender: one short-lived client per attempt (the answer timeout is applied around it)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.post(url, json=body)


def client_sender(client: httpx.AsyncClient) -> Sender:
    """Deliver through `client`, e.g. one on an `httpx.ASGITransport` to a receiver app in this process."""

    async def send(url: str, body: JSON) -> httpx.Response:
        return await client.post(url, json=body)

    return send


class NotificationDispatcher:
    def __init__(
        self,
        *,
        sender: Sender,
        retry_delays: Sequence[float],
        answer_timeout: float,
        duplicate_probability: float,
        first_delay: float | None,
        rng: random.Random,
    ) -> None:
        if not 0 <= duplicate_probability <= 1:
            raise ValueError("duplicate_probability must be from 0 to 1")
        if answer_timeout <= 0:
            raise ValueError("answer_timeout must be positive")
        self.callback_url: str | None = None
        self._sender = sender
        self._delays = tuple(retry_delays)
        self._timeout = answer_timeout
        self._duplicates = duplicate_probability
        self._first_delay = first_delay
        self._rng = rng
        self.notifications: list[Notification] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def attempts(self) -> list[NotificationAttempt]:
        return [attempt for n in self.notifications for attempt in n.attempts]

    def notify(
        self,
        topic: str,
        resource: str,
        *,
        user_id: int,
        application_id: int,
        actions: list[str] | None = None,
        times: int = 1,
    ) -> list[str]:
        """Queue one notification (plus duplicates: `times` - 1 more, and sometimes one drawn) and start
        delivering in the background; returns their ids. Nothing is sent without a callback URL or outside
        an event loop (a synchronous caller), but the notifications are kept: missed_feeds lists them."""
        if times < 1:
            raise ValueError("times must be at least 1")
        copies = times + (1 if self._duplicates and self._rng.random() < self._duplicates else 0)
        received = now_utc()
        ids = []
        for _ in range(copies):
            notification = Notification(uuid.uuid4().hex, topic, resource, user_id, application_id, received, actions)
            self.notifications.append(notification)
            ids.append(notification.id)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if self.callback_url is None or loop is None:
                notification.finished = True
                continue
            task = loop.create_task(self._deliver(notification, self.callback_url))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return ids

    async def drain(self) -> None:
        """Wait until every delivery started so far succeeded or gave up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.notifications.clear()

    async def _deliver(self, notification: Notification, url: str) -> None:
        loop = asyncio.get_running_loop()
        first = self._rng.uniform(0, MAX_FIRST_DELAY) if self._first_delay is None else self._first_delay
        try:
            for number, delay in enumerate((first, *self._delays), start=1):
                if delay:
                    await asyncio.sleep(delay)
                body = notification.body(number, now_utc())
                attempt = NotificationAttempt(
                    notification.id, notification.topic, notification.resource, url, body, number, loop.time()
                )
                notification.attempts.append(attempt)
                await self._attempt(attempt)
                if attempt.delivered:
                    notification.delivered = True
                    return
        finally:
            notification.finished = True

    async def _attempt(self, attempt: NotificationAttempt) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await asyncio.wait_for(self._sender(attempt.url, attempt.body), self._timeout)
        except TimeoutError:
            attempt.error = f"no answer within {self._timeout} s"
        except Exception as exc:  # whatever kept the answer away is the receiver's failure, to record
            attempt.error = f"{type(exc).__name__}: {exc}"
        else:
            attempt.status = response.status_code
        attempt.elapsed = loop.time() - started

    def missed_feeds(self, query: dict[str, str], application_id: int) -> JSON:
        """`GET /missed_feeds`: the notifications of the last 2 days that were never delivered.

        [INFERRED] shape: the page lists the fields (`request`, `response.http_code`) but the sandbox could
        not read its example; `messages` plus `total`/`offset`/`limit` is this sandbox's choice."""
        app_id = query.get("app_id")
        if app_id is None or app_id != str(application_id):
            raise bad_request("app_id is required and must be the application's id")
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query.get("limit", str(MISSED_FEEDS_DEFAULT_LIMIT)))
        except ValueError:
            raise bad_request("offset and limit must be integers") from None
        if offset < 0 or not 1 <= limit <= 1000:
            raise bad_request("offset must be >= 0 and limit from 1 to 1000")
        topic = query.get("topic")
        horizon = now_utc().timestamp() - MISSED_FEEDS_SECONDS
        missed = [
            n
            for n in self.notifications
            if n.finished
            and not n.delivered
            and n.received.timestamp() >= horizon
            and (topic is None or n.topic == topic)
        ]
        messages: list[Any] = []
        for n in missed[offset : offset + limit]:
            if n.attempts:
                last = n.attempts[-1]
                message = dict(last.body)
                message["request"] = {"url": last.url, "data": last.body}
                message["response"] = {"http_code": last.status, "req_time": round(last.elapsed * 1000)}
            else:  # no callback URL was configured: never sent
                message = n.body(0, n.received)
                message["request"] = None
                message["response"] = None
            messages.append(message)
        return {"messages": messages, "total": len(missed), "offset": offset, "limit": limit}
