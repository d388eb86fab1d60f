"""Every inbound route caps its body: an oversized one gets 413 and is never read to the end."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from connector.intake.app import MAX_BODY_BYTES
from connector.intake.callbacks import MAX_CANCEL_BYTES, MAX_INVOICE_BYTES
from connector.stack import Stack
from connector.store.models import IdMapping

CONNECTION = "reference"
CHUNK = 64 * 1024
ENDLESS = 256 * 1024 * 1024  # far past any cap and any socket buffer: only a server that stops reading stops us


async def send_chunked_forever(url: str, *, method: str = "POST", headers: str = "") -> tuple[int, int]:
    """Send a chunked body of ENDLESS bytes, chunk by chunk, until the server answers; returns the status
    and how many body bytes went out before it did. `headers`: extra header lines, each ending in CRLF."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"{headers}Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0
    answer = asyncio.create_task(reader.readline())
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    try:
        while sent < ENDLESS and not answer.done():
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 2.0)
            except (TimeoutError, ConnectionError):
                break  # the server stopped reading (full buffers) or hung up: it answered or will now
            sent += CHUNK
        status_line = await asyncio.wait_for(answer, 10.0)
    finally:
        writer.close()
    return int(status_line.split()[1]), sent


@pytest.mark.parametrize("route", ["webhook", "invoice", "cancel"])
async def test_an_endless_chunked_body_gets_413_and_is_not_read_to_the_end(stack: Stack, route: str) -> None:
    assert stack.store is not None
    # A known order, so the callback routes get as far as reading the body.
    await stack.store.map_order(
        IdMapping(connection=CONNECTION, marketplace_order_id="cap", vtex_order_id="MKP-cap-01")
    )
    endpoint = stack.connections[CONNECTION].services_endpoint
    url, cap = {
        "webhook": (stack.webhook_url(CONNECTION), MAX_BODY_BYTES),
        "invoice": (f"{endpoint}/pub/orders/MKP-cap-01/invoice", MAX_INVOICE_BYTES),
        "cancel": (f"{endpoint}/pvt/orders/MKP-cap-01/cancel", MAX_CANCEL_BYTES),
    }[route]
    status, sent = await send_chunked_forever(url)
    assert status == 413
    assert sent < ENDLESS / 4, f"{sent} bytes went out: the server read far past its {cap}-byte cap"


async def test_the_logs_endpoint_reads_no_endless_body_either(stack: Stack) -> None:
    assert stack.sandboxes is not None
    vtex = stack.sandboxes.vtex
    url = f"{stack.intake_url}/sandbox/logs/?DateAt=2026-12-02"
    auth = f"X-VTEX-API-AppKey: {vtex.app_key}\r\nX-VTEX-API-AppToken: {vtex.app_token}\r\n"
    status, sent = await send_chunked_forever(url, method="GET", headers=auth)
    assert status == 413
    assert sent < ENDLESS / 4


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(stack: Stack) -> None:
    parts = urlsplit(stack.webhook_url(CONNECTION))
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {ENDLESS}\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10.0)  # no body byte was sent
    writer.close()
    assert int(status_line.split()[1]) == 413
