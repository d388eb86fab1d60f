"""Pooled httpx clients that never turn a server's keep-alive close into a failed request.

Servers close idle keep-alive connections on their own schedule (uvicorn after 5 s, nginx after 75 s,
many load balancers after 60 s). A request written to a pooled connection at the moment the server
closes it fails with no answer, although the server never saw it. Two defences, both here:

- idle pooled connections expire after `keepalive_expiry` seconds (2 s by default), well before the
  servers above close them, so the race is rare;
- `ReconnectingTransport` retries such a request once, on another connection, when the race happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

DEFAULT_KEEPALIVE_EXPIRY_SECONDS = 2.0  # below uvicorn's 5 s `timeout_keep_alive`, the shortest common default

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]

# httpcore's words when the server closed the connection before sending any byte of a response.
_NO_RESPONSE = "Server disconnected without sending a response"
# httpcore trace events of an attempt that opened a connection instead of reusing a pooled one.
_NEW_CONNECTION = ("connection.connect_tcp.started", "connection.connect_unix_socket.started")


class ReconnectingTransport(httpx.AsyncBaseTransport):
    """Retry a request once when the pooled connection it went out on had been closed by the server.

    The retry happens only when all of these hold:

    - the attempt reused a pooled connection (it opened none, per httpcore's trace events);
    - it failed before a response came back: `httpx.WriteError` (the request could not be written),
      `httpx.ReadError` (the connection was reset before the response headers were in), or
      `httpx.RemoteProtocolError` "Server disconnected without sending a response" (end of stream
      where the status line should be);
    - the request body is in memory (`httpx.ByteStream`, as for `json=` and `content=` bytes), so it can
      be sent again unchanged.

    Why that is safe: a server closes an idle keep-alive connection without reading what arrives after
    its close, so the request was never processed and sending it again on a fresh connection is what
    the first attempt should have been. A server that did read the request and then died without a word
    is indistinguishable; for that rare case the retry repeats a request exactly as the caller's own
    retry of a "no response" failure would (the connector's activities retry those, and are idempotent).
    One retry only, and never of a fresh connection's failure: a server that keeps closing connections
    unanswered is a real outage and is reported as one.

    Timeouts (`httpx.TimeoutException`) are NOT retried here: a request that timed out may have reached
    the server and be in progress, so whether to repeat it is the caller's decision, not the transport's.
    Errors while reading a response body are not retried either: the server had answered.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reused = True
        outer = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal reused
            if event in _NEW_CONNECTION:
                reused = False
            if outer is not None:
                await outer(event, info)

        request.extensions = {**request.extensions, "trace": trace}
        try:
            return await self._transport.handle_async_request(request)
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if not (reused and _unanswered(exc) and isinstance(request.stream, httpx.ByteStream)):
                raise
        finally:
            if outer is None:
                request.extensions = {k: v for k, v in request.extensions.items() if k != "trace"}
            else:
                request.extensions = {**request.extensions, "trace": outer}
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ReconnectingTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)


def _unanswered(exc: httpx.TransportError) -> bool:
    if isinstance(exc, httpx.RemoteProtocolError):
        # Other protocol errors mean the server did answer, with something malformed.
        return str(exc).startswith(_NO_RESPONSE)
    return True


def pool_limits(
    max_connections: int | None = 100, *, keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY_SECONDS
) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=keepalive_expiry
    )


def pooled_transport(
    max_connections: int | None = 100, *, keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY_SECONDS
) -> ReconnectingTransport:
    """An `httpx.AsyncHTTPTransport` with short-lived idle connections, wrapped in the safe retry."""
    limits = pool_limits(max_connections, keepalive_expiry=keepalive_expiry)
    return ReconnectingTransport(httpx.AsyncHTTPTransport(limits=limits))


def pooled_client(
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float = 5.0,
    max_connections: int | None = 100,
    keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY_SECONDS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The product's outbound client. A `transport` given (tests: `httpx.ASGITransport`) is used as is."""
    if transport is None:
        transport = pooled_transport(max_connections, keepalive_expiry=keepalive_expiry)
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
