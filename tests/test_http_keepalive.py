"""Pooled connections never turn a server's keep-alive close into a failed step (connector/http_pool.py).

Real servers, real sockets: uvicorn closing idle connections after 1 s, and a raw asyncio server that
closes (or resets) a kept-alive connection under a request, deterministically.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import pytest
import pytest_asyncio
from sandboxes.marketplace import MarketplaceSandbox
from sandboxes.vtex import VtexSandbox
from starlette.types import Receive, Scope, Send

from connector.http_pool import pooled_client
from connector.http_server import HttpServer
from connector.marketplaces.reference import ReferenceMarketplace
from connector.models import ListingPosition
from connector.vtex.client import VtexClient
from connector.vtex.error_table import Handling, classify
from connector.vtex.errors import VtexError

KEEP_ALIVE_SECONDS = 1.0
ITERATIONS = 20
ORDER = {"orderId": "MKP-1-01", "status": "ready-for-handling"}


def short_keep_alive(server: HttpServer) -> HttpServer:
    # HttpServer has no keep-alive option; uvicorn reads it from the config for each new connection.
    server._server.config.timeout_keep_alive = int(KEEP_ALIVE_SECONDS)
    return server


async def across_keep_alive_closes(call: Callable[[], Awaitable[object]]) -> None:
    """Call, then call again as the server's keep-alive timer fires, ITERATIONS times.

    uvicorn arms the timer as it finishes a response, a fraction of a millisecond before the client
    has it, and closes the connection when it fires. A request sent later finds the connection already
    closed, which httpcore notices and skips; the race is a request written within about a millisecond
    of the close. So the second call goes out from 4 ms before to 1 ms after the timer, in steps.
    """
    loop = asyncio.get_running_loop()
    for i in range(ITERATIONS):
        await call()
        answered = loop.time()
        offset = -0.004 + 0.005 * i / (ITERATIONS - 1)
        await asyncio.sleep(answered + KEEP_ALIVE_SECONDS + offset - loop.time())
        await call()


async def test_vtex_client_and_reference_adapter_survive_keep_alive_closes() -> None:
    vtex, marketplace = VtexSandbox(), MarketplaceSandbox()
    async with (
        short_keep_alive(HttpServer(vtex.app, name="vtex")) as vtex_server,
        short_keep_alive(HttpServer(marketplace.app, name="marketplace")) as marketplace_server,
    ):
        client = VtexClient(base_url=vtex_server.url, app_key=vtex.app_key, app_token=vtex.app_token)
        adapter = ReferenceMarketplace(base_url=marketplace_server.url, webhook_secret="secret")
        try:
            await asyncio.gather(
                across_keep_alive_closes(lambda: client.get_sku_context("1", sales_channel="1")),
                across_keep_alive_closes(lambda: adapter.changed_orders_page(ListingPosition(), limit=100)),
            )
        finally:
            await client.aclose()
            await adapter.aclose()


Action = Literal["answer", "close", "reset", "hang"]


class RawServer:
    """A bare HTTP/1.1 keep-alive server; `policy(connection, request)` (both counted from 0) says what
    it does with each request it has read: answer it, close the connection, reset it, or never answer."""

    def __init__(self, policy: Callable[[int, int], Action]) -> None:
        self.policy = policy
        self.requests: list[tuple[int, int]] = []  # (connection, request on that connection) as read
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stop = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, self.connections = self.connections, self.connections + 1
        self._writers.add(writer)
        for index in range(1000):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the client closed its side
            self.requests.append((connection, index))
            action = self.policy(connection, index)
            if action == "answer":
                body = json.dumps(ORDER).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
                continue
            if action == "hang":
                await self._stop.wait()
            elif action == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            break
        writer.close()


@pytest_asyncio.fixture
async def raw_client() -> AsyncIterator[Callable[[str], VtexClient]]:
    clients: list[VtexClient] = []

    def make(url: str) -> VtexClient:
        clients.append(VtexClient(base_url=url, app_key="key", app_token="token", timeout_seconds=0.5))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize("close", ["close", "reset"])
async def test_a_request_on_a_connection_closed_unanswered_is_retried_on_a_new_one(
    raw_client: Callable[[str], VtexClient], close: Action
) -> None:
    # The first connection answers one request, then closes (FIN: RemoteProtocolError) or resets
    # (RST: ReadError) under the next; later connections answer.
    async with RawServer(lambda connection, index: close if (connection, index) == (0, 1) else "answer") as server:
        client = raw_client(server.url)
        for _ in range(3):
            assert await client.get_order("MKP-1-01") is not None
    assert server.requests == [(0, 0), (0, 1), (1, 0), (1, 1)]


async def test_the_retry_happens_once() -> None:
    # Every request after the first is closed unanswered: the retry on a new connection fails too.
    async with RawServer(lambda connection, index: "answer" if connection == index == 0 else "close") as server:
        client = VtexClient(base_url=server.url, app_key="key", app_token="token")
        try:
            await client.get_order("MKP-1-01")
            with pytest.raises(VtexError) as error:
                await client.get_order("MKP-1-01")
        finally:
            await client.aclose()
    assert error.value.status is None and transient(error.value)
    assert server.requests == [(0, 0), (0, 1), (1, 0)]


async def test_a_new_connection_closed_unanswered_is_not_retried(raw_client: Callable[[str], VtexClient]) -> None:
    async with RawServer(lambda connection, index: "close") as server:
        with pytest.raises(VtexError):
            await raw_client(server.url).get_order("MKP-1-01")
    assert server.requests == [(0, 0)]


async def test_a_timeout_is_not_retried(raw_client: Callable[[str], VtexClient]) -> None:
    # The request reached the server, which may be working on it: sending it again is not the
    # transport's call.
    async with RawServer(lambda connection, index: "answer" if index == 0 else "hang") as server:
        client = raw_client(server.url)
        await client.get_order("MKP-1-01")
        with pytest.raises(VtexError) as error:
            await client.get_order("MKP-1-01")
    assert "Timeout" in str(error.value)
    assert server.requests == [(0, 0), (0, 1)]


async def test_idle_connections_expire_after_keepalive_expiry() -> None:
    async with (
        RawServer(lambda connection, index: "answer") as server,
        pooled_client(base_url=server.url, keepalive_expiry=0.2) as http,
    ):
        await http.get("/")
        await asyncio.sleep(0.05)
        await http.get("/")  # still fresh: reused
        await asyncio.sleep(0.3)
        await http.get("/")  # idle past the expiry: a new connection
    assert server.requests == [(0, 0), (0, 1), (1, 0)]


def transient(error: VtexError) -> bool:
    """What the error table makes of the error: retried unchanged, or not."""
    return classify(error.status, error.code) is Handling.TRANSIENT


async def test_served_connections_send_without_waiting_for_acks() -> None:
    """Nagle's algorithm off on every connection the servers accept: asyncio turns it off only for a
    socket that names IPPROTO_TCP, and with it on each response waited on the client's delayed ACK
    (+40 ms per VTEX or marketplace call, a doubled dispatch latency in the benchmark)."""
    accepted: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = HttpServer(app)
    await server.start()
    try:
        listening = server._server.servers[0].sockets[0]
        assert listening.proto == socket.IPPROTO_TCP
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 204")
        for transport in _server_transports(server):
            accepted.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
    finally:
        await server.stop()
    assert accepted and all(accepted)


def _server_transports(server: HttpServer) -> list[asyncio.Transport]:
    """The transports of the connections uvicorn holds open (its server state keeps their protocols)."""
    return [protocol.transport for protocol in server._server.server_state.connections]
