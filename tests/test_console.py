"""The seller's console over HTTP, on a real dev server and the sandboxes: login, the needs-action list
and its filters, the order page, the actions with their CSRF checks, the CSV export, bulk reprocess, and the
banner of a Mercado Libre connection whose authorization is broken or was never connected."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr
from sandboxes.vtex import FaultRule

from connector.codec import SecretSealer
from connector.console.authorizations import AuthorizationBanners
from connector.console.filters import OrderFilter
from connector.console.orders import Counts
from connector.console.server import console_password, console_server
from connector.embedded import Sandboxes
from connector.http_server import HttpServer
from connector.marketplaces.mercadolibre.tokens import BROKEN_REASON
from connector.models import OrderStatus, order_workflow_id
from connector.settings import SettingsError, load_settings
from connector.stack import Stack
from connector.store.base import OrderStore, StoreError
from connector.store.models import StoredToken, TokenWrite
from tests.conftest import embedded_settings
from tests.console_support import (
    PASSWORD,
    csrf_of,
    listed_orders,
    logged_in,
    park_with_price_divergence,
    running_console,
)
from tests.helpers import signed_webhook, wait_for_state

PLACE = "/api/fulfillment/pvt/orders"


async def test_nothing_without_logging_in(stack: Stack) -> None:
    async with running_console(stack) as console, httpx.AsyncClient(base_url=console.url) as http:
        for path in ("/", "/export.csv", "/orders/order:reference:1"):
            response = await http.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/login")
        wrong = await http.post("/login", data={"user": "seller", "password": "not-it", "next": "/"})
        assert wrong.status_code == 401 and "Wrong user or password" in wrong.text
        # A login never sends anyone off the console.
        away = await http.post("/login", data={"user": "seller", "password": "x", "next": "//evil.example"})
        assert 'value="/"' in away.text
        refused = await http.post("/orders/order:reference:1/reprocess", data={})
        assert refused.status_code == 303  # to the login: no action without a session


async def test_a_parked_order_is_listed_filtered_exported_and_reprocessed(stack: Stack, box: Sandboxes) -> None:
    order_id = await park_with_price_divergence(stack, box)
    workflow_id = order_workflow_id("reference", order_id)
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        listed = await http.get("/", params={"code": "FMT007", "search": order_id})
        assert listed.status_code == 200
        assert listed_orders(listed.text) == [order_id] and "FMT007" in listed.text
        assert "99.90" in listed.text  # the seller's action in words, with both prices
        assert "12345678909" not in listed.text and "Avenida Paulista" not in listed.text
        other_code = await http.get("/", params={"code": "ORD027", "search": order_id})
        assert listed_orders(other_code.text) == []
        exported = await http.get("/export.csv", params={"code": "FMT007"})
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [row["status"] for row in rows if row["marketplace_order_id"] == order_id] == ["parked"]
        assert exported.headers["content-disposition"].startswith("attachment;")

        page = await http.get(f"/orders/{quote(workflow_id, safe='')}")
        assert page.status_code == 200 and "FMT007" in page.text and "Timeline" in page.text
        assert "12345678909" not in page.text and "Avenida Paulista" not in page.text
        forged = await http.post(f"/orders/{quote(workflow_id, safe='')}/reprocess", data={"csrf_token": "forged"})
        assert forged.status_code == 403
        box.vtex.clear_faults()  # the seller fixed the price
        done = await http.post(
            f"/orders/{quote(workflow_id, safe='')}/reprocess", data={"csrf_token": csrf_of(page.text)}
        )
        assert done.status_code == 303 and "reprocess%20requested" in done.headers["location"]
        state = await wait_for_state(
            stack.client, "reference", order_id, lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        assert state.error_code is None
        await http.aclose()


async def test_cancel_needs_a_reason_and_cancels(stack: Stack, box: Sandboxes) -> None:
    order_id = await park_with_price_divergence(stack, box)
    workflow_id = quote(order_workflow_id("reference", order_id), safe="")
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        token = csrf_of((await http.get(f"/orders/{workflow_id}")).text)
        missing = await http.post(f"/orders/{workflow_id}/cancel", data={"csrf_token": token, "reason": " "})
        assert missing.status_code == 400 and "reason is required" in missing.text
        canceled = await http.post(
            f"/orders/{workflow_id}/cancel", data={"csrf_token": token, "reason": "buyer called the store"}
        )
        assert canceled.status_code == 303
        state = await wait_for_state(stack.client, "reference", order_id, lambda s: s.status is OrderStatus.CANCELED)
        assert any("buyer called the store" in entry.message for entry in state.timeline)
        await http.aclose()


async def test_bulk_reprocess_counts_first_then_shows_each_order_through(stack: Stack, box: Sandboxes) -> None:
    first = await park_with_price_divergence(stack, box)
    second = await park_with_price_divergence(stack, box)
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        token = csrf_of((await http.get("/")).text)
        for order_id in (first, second):
            preview = await http.post("/bulk/preview", data={"csrf_token": token, "code": "FMT007", "search": order_id})
            assert preview.status_code == 200 and "Reprocess 1 order?" in preview.text
        everything = await http.post("/bulk/preview", data={"csrf_token": token, "code": "FMT007"})
        assert "Reprocess " in everything.text
        box.vtex.clear_faults()
        started = await http.post("/bulk", data={"csrf_token": token, "code": "FMT007", "search": first})
        assert started.status_code == 303
        job_url = started.headers["location"]
        for _ in range(100):
            job = await http.get(job_url)
            if "finished" in job.text:
                break
            await asyncio.sleep(0.2)
        assert "done 1" in job.text and "failed 0" in job.text and first in job.text
        assert second not in job.text  # outside the filter, untouched
        second_state = await wait_for_state(stack.client, "reference", second, lambda s: True)
        assert second_state.status is OrderStatus.PARKED
        await http.aclose()


async def test_a_filter_value_that_could_change_the_query_is_refused(stack: Stack) -> None:
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        response = await http.get("/", params={"code": "X' OR WorkflowType != '"})
        assert response.status_code == 400 and "only letters, digits" in response.text
        bad_day = await http.get("/", params={"created_from": "yesterday"})
        assert bad_day.status_code == 400 and "a date like" in bad_day.text
        await http.aclose()


def test_the_console_login_comes_from_the_settings(tmp_path: Path) -> None:
    # Embedded mode: one password generated into the data folder, readable by its owner only, kept.
    embedded = embedded_settings(data_dir=tmp_path)
    generated = console_password(embedded)
    assert len(generated) >= 20 and console_password(embedded) == generated
    assert (tmp_path / "console-password").stat().st_mode & 0o077 == 0
    # A real deployment must name one, and a weak one is refused without being echoed.
    with pytest.raises(SettingsError, match="CONSOLE_PASSWORD is required"):
        console_password(embedded.model_copy(update={"vtex_app_key": "k", "vtex_app_token": SecretStr("t" * 20)}))
    with pytest.raises(SettingsError, match="CONSOLE_PASSWORD") as weak:
        load_settings(console_password="password1234567890")
    assert "password1234567890" not in str(weak.value)


async def test_a_notification_set_aside_is_listed_for_the_seller(stack: Stack) -> None:
    secret = stack.connections["reference"].webhook_secret
    odd_id = f"odd id {uuid.uuid4().hex[:6]}"
    payload = {"topic": "orders", "resource": f"/orders/{odd_id}", "order_id": odd_id}
    body, headers = signed_webhook(secret, payload)
    async with httpx.AsyncClient() as plain:
        refused = await plain.post(stack.webhook_url("reference"), content=body, headers=headers)
    assert refused.status_code == 400
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        page = await http.get("/")
        assert "Notifications set aside" in page.text and odd_id in page.text
        await http.aclose()


async def test_an_error_code_nobody_listed_is_counted_once_the_walk_finds_it(stack: Stack, box: Sandboxes) -> None:
    box.vtex.add_fault(FaultRule(method="POST", path_contains=PLACE, status=400, code="ORD999", message="new rule"))
    order = box.marketplace.new_order(items=[("1", 1)])
    box.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.PARKED)
    selected = OrderFilter(search=order["id"])
    counter = Counts(stack.client)
    by_status, by_code = await counter.count_now(selected)
    assert by_status == {"parked": 1} and "ORD999" not in by_code  # not a code the connector knows of
    await asyncio.sleep(0.5)  # visibility follows the last upsert a little behind
    await counter.find_codes()
    assert (await counter.count_now(selected))[1] == {"ORD999": 1}


# -- Mercado Libre authorization banners ----------------------------------------------------------------------

SEALER = SecretSealer({"k1": os.urandom(32)}, "k1")
REFRESH_TOKEN = "TG-refresh-0123456789abcdef"
ACCESS_TOKEN = "APP_USR-access-0123456789abcdef"
# Mercado Libre's own description comes back inside the stored reason: markup in it stays text.
REFUSAL = f'{BROKEN_REASON} (Mercado Libre: <b onmouseover="x()">invalid_grant</b> & revoked)'


def meli_name(what: str) -> str:
    """A connection of this test alone (the session's store is shared)."""
    return f"meli-{what}-{uuid.uuid4().hex[:8]}"


async def store_tokens(store: OrderStore, connection: str, *, broken_at: datetime | None = None) -> StoredToken:
    """The connection's token row as the connector writes it (sealed): connected, or broken since `broken_at`."""

    def seal(token: str, field: str) -> str:
        return SEALER.seal(token, context=f"marketplace_tokens/{connection}/{field}")

    write = TokenWrite(
        key_id=SEALER.key_id,
        sealed_refresh_token=seal(REFRESH_TOKEN, "refresh_token"),
        sealed_access_token=seal(ACCESS_TOKEN, "access_token"),
        access_expires_at=datetime.now(UTC) + timedelta(hours=6),
        broken_reason=REFUSAL if broken_at is not None else None,
        broken_at=broken_at,
    )
    stored = await store.create_marketplace_token(connection, write)
    assert stored is not None
    return stored


@asynccontextmanager
async def console_of(
    stack: Stack, folder: Path, marketplaces: dict[str, str], store: OrderStore | None = None
) -> AsyncIterator[HttpServer]:
    """A console configured with these connections (name: marketplace) in CONNECTIONS_FILE."""
    assert stack.store is not None
    connections = folder / "connections.json"
    entries = [{"name": name, "marketplace": marketplace} for name, marketplace in marketplaces.items()]
    connections.write_text(json.dumps({"connections": entries}))
    settings = stack.settings.model_copy(
        update={"console_password": SecretStr(PASSWORD), "connections_file": connections}
    )
    server = console_server(settings, stack.client, store or stack.store, port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def banners_of(page: str) -> dict[str, str]:
    """The authorization banners on a page, by connection: their text as the seller reads it."""
    found = re.findall(
        r'<div class="error authorization" role="alert" id="authorization-([^"]+)">(.*?)</div>', page, re.S
    )
    return {name: " ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split()) for name, body in found}


async def test_a_broken_mercadolibre_authorization_shows_on_every_page(stack: Stack, tmp_path: Path) -> None:
    assert stack.store is not None
    broken, fine, never = meli_name("broken"), meli_name("fine"), meli_name("never")
    since = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
    rows = [await store_tokens(stack.store, broken, broken_at=since), await store_tokens(stack.store, fine)]
    sealed = {text for row in rows for text in (row.sealed_refresh_token, row.sealed_access_token) if text}
    marketplaces = {"reference": "reference", broken: "mercadolibre", fine: "mercadolibre", never: "mercadolibre"}
    async with console_of(stack, tmp_path, marketplaces) as console:
        async with httpx.AsyncClient(base_url=console.url) as anonymous:
            assert banners_of((await anonymous.get("/login")).text) == {}  # nothing before logging in
        http = await logged_in(console.url)
        for path in ("/", "/bulk/no-such-job"):  # the list, and an error page: every page carries them
            page = await http.get(path)
            assert page.status_code in (200, 404)
            shown = banners_of(page.text)
            assert set(shown) == {broken, never}  # not the connected one, not the reference marketplace's
            assert shown[broken] == (
                f"Mercado Libre authorization broken for connection {broken} since 2026-03-14 09:26:53 UTC: "
                f"{REFUSAL}. Its orders wait and nothing is lost. Reconnect: authorize "
                f"the app in Mercado Libre, then run connector mercadolibre connect --connection {broken} --code "
                "CODE --redirect-uri URL."
            )
            assert shown[never].startswith(f"Mercado Libre connection {never} was never connected.")
            assert f"connector mercadolibre connect --connection {never} --code CODE --redirect-uri URL" in shown[never]
            # Escaped, never markup; and no token, sealed or not.
            assert '<b onmouseover="x()">' not in page.text and "&lt;b onmouseover=" in page.text
            for secret in (REFRESH_TOKEN, ACCESS_TOKEN, *sealed):
                assert secret not in page.text
        await http.aclose()


async def test_a_console_of_reference_connections_shows_no_authorization_banner(stack: Stack) -> None:
    async with running_console(stack) as console:
        http = await logged_in(console.url)
        page = await http.get("/")
        assert page.status_code == 200 and banners_of(page.text) == {} and 'role="alert"' not in page.text
        await http.aclose()


class _TokensUnreadable:
    """The session's store, except that its token rows cannot be read: down for them, or slow."""

    def __init__(self, store: OrderStore, *, hang: bool = False) -> None:
        self._store = store
        self._hang = hang
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def marketplace_token(self, connection: str) -> StoredToken | None:
        self.reads += 1
        if self._hang:
            await asyncio.sleep(30)
        raise StoreError("cannot use the PostgreSQL store at db.example:5432/connector: connection refused")


async def test_the_page_renders_when_the_authorization_cannot_be_read(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert stack.store is not None
    broken = meli_name("down")
    await store_tokens(stack.store, broken, broken_at=datetime.now(UTC))
    down = _TokensUnreadable(stack.store)
    with caplog.at_level(logging.WARNING, logger="connector.console.authorizations"):
        async with console_of(stack, tmp_path, {broken: "mercadolibre"}, cast(OrderStore, down)) as console:
            http = await logged_in(console.url)
            for _ in range(3):
                page = await http.get("/")
                assert page.status_code == 200 and "Orders that need action" in page.text
                assert banners_of(page.text) == {}
            await http.aclose()
    warned = [r.getMessage() for r in caplog.records if r.name == "connector.console.authorizations"]
    assert warned and f"connection {broken}" in warned[0] and "connection refused" in warned[0]
    assert down.reads == 1 and len(warned) == 1  # kept a few seconds: one read and one warning, not one per page


async def test_the_banners_are_read_once_per_while_and_a_slow_store_shows_none(stack: Stack) -> None:
    assert stack.store is not None
    broken = meli_name("kept")
    row = await store_tokens(stack.store, broken, broken_at=datetime.now(UTC))
    now = [0.0]
    banners = AuthorizationBanners(stack.store, [broken], ttl=5.0, clock=lambda: now[0])
    together = await asyncio.gather(*(banners.get() for _ in range(5)))
    assert [[b.connection for b in shown] for shown in together] == [[broken]] * 5
    assert together[0][0].state == "broken" and together[0][0].reason == REFUSAL
    # Reconnected: the banner goes once the kept answer is older than its few seconds.
    reconnected = await stack.store.replace_marketplace_token(
        broken, row.version, row.write(broken_reason=None, broken_at=None)
    )
    assert reconnected is not None
    assert [b.connection for b in await banners.get()] == [broken]
    now[0] += 5.0
    assert await banners.get() == []
    # A store that does not answer: no banner, within the read's timeout.
    slow = AuthorizationBanners(cast(OrderStore, _TokensUnreadable(stack.store, hang=True)), [broken], timeout=0.2)
    started = asyncio.get_running_loop().time()
    assert await slow.get() == []
    assert asyncio.get_running_loop().time() - started < 2.0
