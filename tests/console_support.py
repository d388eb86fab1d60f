"""What the console's tests share: a console server on the test stack, a parked order, a logged-in client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic import SecretStr

from connector.console.server import console_server
from connector.embedded import Sandboxes
from connector.http_server import HttpServer
from connector.models import OrderStatus
from connector.stack import Stack
from tests.helpers import fmt007, wait_for_state

PASSWORD = "Kq3-vx9_Lm2pZt7wRb4"


@asynccontextmanager
async def running_console(stack: Stack) -> AsyncIterator[HttpServer]:
    assert stack.store is not None
    settings = stack.settings.model_copy(update={"console_password": SecretStr(PASSWORD)})
    server = console_server(settings, stack.client, stack.store, port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def park_with_price_divergence(stack: Stack, box: Sandboxes) -> str:
    """An order parked with FMT007 (VTEX refuses its price); the fault stays until the test clears it."""
    box.vtex.add_fault(fmt007(10990, 9990))
    order = box.marketplace.new_order(items=[("1", 1)])
    box.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.PARKED)
    return str(order["id"])


async def logged_in(base_url: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=base_url, timeout=30)
    response = await http.post("/login", data={"user": "seller", "password": PASSWORD, "next": "/"})
    assert response.status_code == 303, response.text
    return http


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def listed_orders(html: str) -> list[str]:
    """The marketplace order ids in the list's rows."""
    return re.findall(r'class="order-link">([^<]+)</a>', html)
