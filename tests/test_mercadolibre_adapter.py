"""The Mercado Libre adapter (connector/marketplaces/mercadolibre/) against the Mercado Libre sandbox over real
HTTP (uvicorn on a free loopback port): notifications, carts (packs of several orders, pack ids that change,
packs that split, late orders), the order as the connector sees it, the changed-orders listing, invoices,
tracking and cancellations, and the client's handling of 401, 429, 5xx and a broken authorization.

The carts live in an in-memory CartStore; the tokens in a tiny token source that refreshes against the
sandbox's `/oauth/token` (the connector's own, with its store and lease, is tested in
tests/test_mercadolibre_tokens.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sandboxes.mercadolibre import FaultRule, ItemSpec, MercadoLibreSandbox
from sandboxes.mercadolibre_seller import nfe_key, nfe_xml
from sandboxes.mercadolibre_views import invoice_json

from connector.codec import SecretSealer
from connector.logbook import Logbook
from connector.marketplaces.base import AuthorizationBroken, MarketplaceError, NotificationRejected
from connector.marketplaces.listing import walk_changes
from connector.marketplaces.mercadolibre import MercadoLibreMarketplace
from connector.marketplaces.mercadolibre.client import MercadoLibreRateLimited
from connector.marketplaces.mercadolibre.tokens import MercadoLibreTokens
from connector.models import (
    Invoice,
    InvoiceItem,
    InvoiceType,
    ListingPosition,
    Logistics,
    MarketplaceNotification,
    MarketplaceOrderStatus,
    Tracking,
)
from connector.store.base import open_store
from tests.test_mercadolibre_sandbox import Clock, make_sandbox

CONNECTION = "meli"
SHIRT = ItemSpec("Camiseta Azul M", Decimal("49.90"), quantity=2, seller_sku="1")
BOTTLE = ItemSpec("Garrafa Térmica", Decimal("79.90"), seller_sku="8")
PENNY = ItemSpec("Adesivo", Decimal("0.10"), quantity=3, seller_sku="12")
ODD = ItemSpec("Caneca", Decimal("19.99"), quantity=3, seller_sku="5")
NFE_IMPORT_LOG = "connector.marketplaces.mercadolibre.nfe_import"
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
NFE_XML = '<?xml version="1.0"?><factura><numero>A-0001-00000042</numero></factura>'


# -- test doubles: the cart store and the token source --------------------------------------------------------


class MemoryCarts:
    """The CartStore contract in memory: the first cart an order joins is its cart for good."""

    def __init__(self) -> None:
        self.carts: dict[tuple[str, str], str] = {}
        self.order: list[tuple[str, str]] = []

    async def cart_key(self, connection: str, marketplace_order_id: str) -> str | None:
        return self.carts.get((connection, marketplace_order_id))

    async def join_cart(self, connection: str, cart_key: str, marketplace_order_ids: Collection[str]) -> dict[str, str]:
        for order_id in marketplace_order_ids:
            if (connection, order_id) not in self.carts:
                self.carts[(connection, order_id)] = cart_key
                self.order.append((connection, order_id))
        return {order_id: self.carts[(connection, order_id)] for order_id in marketplace_order_ids}

    async def cart_orders(self, connection: str, cart_key: str) -> list[str]:
        return [order_id for (c, order_id) in self.order if c == connection and self.carts[(c, order_id)] == cart_key]


class SandboxTokens:
    """A TokenSource that refreshes against the sandbox's /oauth/token (rotating refresh tokens), with
    invalid_grant as AuthorizationBroken; one refresh at a time."""

    def __init__(self, sandbox: MercadoLibreSandbox, base_url: str) -> None:
        first = sandbox.connect()
        self._sandbox = sandbox
        self._url = base_url + "/oauth/token"
        self._access: str | None = first["access_token"]
        self._refresh = first["refresh_token"]
        self._lock = asyncio.Lock()
        self.refreshes = 0
        self.rejections: list[str] = []

    async def access_token(self) -> str:
        async with self._lock:
            if self._access is None:
                await self._renew()
            assert self._access is not None
            return self._access

    async def rejected(self, token: str) -> None:
        self.rejections.append(token)
        if token == self._access:
            self._access = None

    async def _renew(self) -> None:
        form = {
            "grant_type": "refresh_token",
            "client_id": self._sandbox.oauth.client_id,
            "client_secret": self._sandbox.oauth.client_secret,
            "refresh_token": self._refresh,
        }
        async with httpx.AsyncClient() as http:
            response = await http.post(self._url, data=form)
        if response.status_code == 400 and response.json().get("error") == "invalid_grant":
            raise AuthorizationBroken("Mercado Libre refused the authorization (invalid_grant): reconnect")
        if response.status_code != 200:
            raise MarketplaceError(f"token refresh answered {response.status_code}", status=None, transient=True)
        answer = response.json()
        self._access, self._refresh = answer["access_token"], answer["refresh_token"]
        self.refreshes += 1


# -- the world: a sandbox on a socket, the adapter on it -------------------------------------------------------


@dataclass
class World:
    sandbox: MercadoLibreSandbox
    clock: Clock
    base_url: str
    carts: MemoryCarts
    tokens: SandboxTokens
    alerts: list[tuple[str, str]] = field(default_factory=list)
    adapters: list[MercadoLibreMarketplace] = field(default_factory=list)

    def adapter(self, **options: Any) -> MercadoLibreMarketplace:
        async def alert(cart_key: str, message: str) -> None:
            self.alerts.append((cart_key, message))

        settings: dict[str, Any] = {
            "connection": CONNECTION,
            "app_id": self.sandbox.application_id,
            "seller_id": self.sandbox.seller_id,
            "site_id": "MLB",
            "tokens": self.tokens,
            "carts": self.carts,
            "alert": alert,
            "base_url": self.base_url,
            "fulfillment_warehouse_id": "ml-full",
            "timeout_seconds": 2.0,
        }
        made = MercadoLibreMarketplace(**(settings | options))
        self.adapters.append(made)
        return made

    def calls(self, path_part: str, method: str | None = None) -> list[Any]:
        return [
            r
            for r in self.sandbox.requests
            if path_part in r.path and (method is None or r.method == method) and not r.path.startswith("/oauth")
        ]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Any]:
    """`await serve(sandbox)`: the sandbox on a free loopback port, its base URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(sandbox: MercadoLibreSandbox) -> str:
        server = uvicorn.Server(
            uvicorn.Config(sandbox.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def make_world(serve: Any, **sandbox_options: Any) -> World:
    clock = Clock()
    clock.now = time.time()
    sandbox = make_sandbox(clock, **sandbox_options)
    base_url = await serve(sandbox)
    return World(sandbox, clock, base_url, MemoryCarts(), SandboxTokens(sandbox, base_url))


@pytest_asyncio.fixture
async def world(serve: Any) -> AsyncIterator[World]:
    made = await make_world(serve)
    yield made
    for adapter in made.adapters:
        await adapter.aclose()


@pytest_asyncio.fixture
async def meli(world: World) -> MercadoLibreMarketplace:
    return world.adapter()


def body_of(world: World, index: int = -1) -> bytes:
    """A notification exactly as the sandbox would POST it."""
    return json.dumps(world.sandbox.notifications[index].body(1, datetime.now(UTC))).encode()


def order_note(order_id: int | str) -> MarketplaceNotification:
    return MarketplaceNotification(marketplace_order_id=str(order_id), topic="orders_v2")


async def key_of(meli: MercadoLibreMarketplace, order_id: int | str) -> str:
    keyed = await meli.order_key(order_note(order_id))
    assert keyed is not None
    return keyed.marketplace_order_id


# -- notifications -----------------------------------------------------------------------------------------------


async def test_an_orders_v2_notification_names_the_order_and_its_delivery(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT])
    sent = world.sandbox.notifications[-1]
    note = meli.parse_notification({}, body_of(world))
    assert note == MarketplaceNotification(marketplace_order_id=str(order.id), topic="orders_v2", delivery_id=sent.id)


async def test_a_claims_notification_names_the_claim_in_both_topic_models(serve: Any) -> None:
    for topic in ("claims", "post_purchase"):
        world = await make_world(serve, claims_topic=topic)
        meli = world.adapter()
        try:
            order = world.sandbox.create_order([SHIRT])
            claim = world.sandbox.open_claim(order.id, type="return")
            note = meli.parse_notification({}, body_of(world))
            assert note.marketplace_order_id == f"claim-{claim.id}" and note.topic == "claims"
            assert note.delivery_id == world.sandbox.notifications[-1].id
        finally:
            await meli.aclose()


@pytest.mark.parametrize(("field_name", "value"), [("application_id", 1234), ("user_id", 999)])
async def test_a_notification_of_another_app_or_seller_is_refused_401(
    world: World, meli: MercadoLibreMarketplace, field_name: str, value: int
) -> None:
    world.sandbox.create_order([SHIRT])
    body = json.loads(body_of(world)) | {field_name: value}
    with pytest.raises(NotificationRejected) as refused:
        meli.parse_notification({}, json.dumps(body).encode())
    assert refused.value.status == 401 and field_name in str(refused.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"resource": "/orders/1", "topic": "orders_v2", "application_id": "x"}', "application_id"),
        (b'{"resource": "/orders/abc", "topic": "orders_v2"}', "resource"),
        (b'{"resource": "/items/MLB1", "topic": "orders_v2"}', "resource"),
        (b'{"resource": "/orders/1", "topic": "Orders V2"}', "topic"),
        (b'{"resource": "/orders/1"}', "topic"),
        (b'{"resource": "/orders/1", "topic": "claims"}', "claims"),
    ],
)
async def test_a_body_the_connector_cannot_use_is_refused_400(
    world: World, meli: MercadoLibreMarketplace, body: bytes, reason: str
) -> None:
    data = body
    if body.startswith(b"{"):
        fields = json.loads(body)
        fields.setdefault("application_id", world.sandbox.application_id)
        fields.setdefault("user_id", world.sandbox.seller_id)
        data = json.dumps(fields).encode()
    with pytest.raises(NotificationRejected) as refused:
        meli.parse_notification({}, data)
    assert refused.value.status == 400 and reason in str(refused.value)


async def test_a_topic_the_connector_does_not_use_is_acknowledged_and_concerns_no_order(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    # Mercado Libre retries anything but a 200 for an hour: a shipments notification is taken, then dropped.
    order = world.sandbox.create_order([SHIRT], status="payment_required", notify=False)
    world.sandbox.pay(order.id)
    shipments = [n for n in world.sandbox.notifications if n.topic == "shipments"]
    body = shipments[-1].body(1, datetime.now(UTC))
    note = meli.parse_notification({}, json.dumps(body).encode())
    assert note.topic == "shipments" and note.delivery_id == shipments[-1].id
    before = len(world.sandbox.requests)
    assert await meli.order_key(note) is None
    assert len(world.sandbox.requests) == before


async def test_parsing_is_pure_and_fast(world: World, meli: MercadoLibreMarketplace) -> None:
    world.sandbox.create_order([SHIRT])
    body = body_of(world)
    before = len(world.sandbox.requests)
    started = time.perf_counter()
    for _ in range(2000):
        meli.parse_notification({}, body)
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.001  # well within Mercado Libre's 500 ms
    assert len(world.sandbox.requests) == before  # no call to Mercado Libre


# -- carts: order_key ---------------------------------------------------------------------------------------------


async def test_an_order_without_a_pack_is_a_cart_of_one_keyed_by_the_order(serve: Any) -> None:
    world = await make_world(serve, pack_single_orders=False)
    meli = world.adapter()
    try:
        order = world.sandbox.create_order([SHIRT])
        assert order.pack_id is None
        assert await key_of(meli, order.id) == str(order.id)
        # Known now: asked again, the store answers without reading Mercado Libre.
        reads = len(world.calls("/orders/"))
        assert await key_of(meli, order.id) == str(order.id)
        assert len(world.calls("/orders/")) == reads
    finally:
        await meli.aclose()


async def test_an_order_in_a_pack_of_one_is_keyed_by_its_pack(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    assert order.pack_id is not None
    assert await key_of(meli, order.id) == str(order.pack_id)


async def test_both_orders_of_a_pack_are_one_cart(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    first, second = pack.order_ids
    assert await key_of(meli, second) == str(pack.id)
    assert await key_of(meli, first) == str(pack.id)
    assert await world.carts.cart_orders(CONNECTION, str(pack.id)) == [str(second), str(first)]


async def test_a_pack_whose_id_changes_keeps_its_cart(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    old = str(pack.id)
    assert await key_of(meli, pack.order_ids[0]) == old
    renamed = world.sandbox.change_pack_id(pack.id)
    assert str(renamed.id) != old
    assert {await key_of(meli, order_id) for order_id in renamed.order_ids} == {old}
    order = await meli.fetch_order(old)
    assert order.marketplace_order_id == old and order.group_id == str(renamed.id)
    assert len(order.items) == 2


async def test_a_split_pack_stays_one_cart(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE], [PENNY]])
    key = await key_of(meli, pack.order_ids[0])
    children = world.sandbox.split_pack(pack.id, [pack.order_ids[:1], pack.order_ids[1:]])
    assert {await key_of(meli, order_id) for child in children for order_id in child.order_ids} == {key}
    order = await meli.fetch_order(key)
    assert sorted(item.sku_id for item in order.items) == ["1", "12", "8"]
    assert order.group_id == str(children[0].id)
    assert order.status is MarketplaceOrderStatus.PAID


async def test_a_pack_first_seen_after_its_split_is_one_cart_by_its_family(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    children = world.sandbox.split_pack(pack.id)
    keys = {await key_of(meli, child.order_ids[0]) for child in children}
    assert keys == {str(pack.id)}
    assert len((await meli.fetch_order(str(pack.id))).items) == 2


async def test_a_late_second_order_joins_its_cart_when_the_cart_is_read(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    first, late = pack.order_ids
    # Mercado Libre shows the pack before all its orders are in it (filling).
    stored = world.sandbox.pack(pack.id)
    stored.order_ids.remove(late)
    stored.status = "filling"
    key = await key_of(meli, first)
    assert await world.carts.cart_orders(CONNECTION, key) == [str(first)]
    early = await meli.fetch_order(key)
    assert early.status is MarketplaceOrderStatus.TO_BE_PAID and [i.sku_id for i in early.items] == ["1"]

    stored.order_ids.append(late)
    stored.status = "released"
    order = await meli.fetch_order(key)
    assert order.status is MarketplaceOrderStatus.PAID
    assert sorted(item.sku_id for item in order.items) == ["1", "8"]
    assert await world.carts.cart_orders(CONNECTION, key) == [str(first), str(late)]
    assert await key_of(meli, late) == key


async def test_a_cancel_purchase_claim_wakes_its_cart(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    claim = world.sandbox.open_claim(pack.order_ids[1], type="cancel_purchase")
    keyed = await meli.order_key(MarketplaceNotification(marketplace_order_id=f"claim-{claim.id}", topic="claims"))
    assert keyed is not None
    assert (keyed.marketplace_order_id, keyed.topic) == (str(pack.id), "claims")
    assert world.alerts == []
    # The cancellation itself shows on the orders once Mercado Libre cancels them.
    for order_id in pack.order_ids:
        world.sandbox.cancel(order_id)
    assert (await meli.fetch_order(str(pack.id))).status is MarketplaceOrderStatus.CANCELED


@pytest.mark.parametrize("kind", ["return", "mediations"])
async def test_returns_and_mediations_are_alerts_for_the_seller(
    world: World, meli: MercadoLibreMarketplace, kind: str
) -> None:
    order = world.sandbox.create_order([SHIRT])
    claim = world.sandbox.open_claim(order.id, type=kind, related_entities=["return"] if kind == "return" else [])
    note = MarketplaceNotification(marketplace_order_id=f"claim-{claim.id}", topic="claims")
    assert await meli.order_key(note) is None
    ((key, message),) = world.alerts
    assert key == str(order.pack_id)
    assert kind in message and str(claim.id) in message and str(order.id) in message
    world.sandbox.update_claim(claim.id, close_reason="payment_refunded")
    assert await meli.order_key(note) is None
    assert "closed (payment_refunded" in world.alerts[-1][1]


# -- the order ------------------------------------------------------------------------------------------------------


async def test_a_paid_pack_is_one_order_in_exact_cents(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT, PENNY], [ODD]], shipping_cost="15.50", logistic_type="cross_docking")
    key = await key_of(meli, pack.order_ids[0])
    order = await meli.fetch_order(key)
    assert order.marketplace_order_id == key == str(pack.id) and order.group_id == str(pack.id)
    assert order.status is MarketplaceOrderStatus.PAID
    assert [(i.sku_id, i.quantity, i.unit_price) for i in order.items] == [
        ("1", 2, 4990),
        ("12", 3, 10),
        ("5", 3, 1999),
    ]
    assert order.shipping.price == 1550
    assert order.payment_value == 2 * 4990 + 3 * 10 + 3 * 1999 + 1550 == 17557
    assert order.shipping.logistics is Logistics.MARKETPLACE_CARRIER and order.shipping.warehouse_id is None
    address = order.shipping.address
    assert address.country == "BRA" and address.state == "SP" and address.postal_code == "01310100"
    assert address.street == "Avenida Paulista" and address.number and address.city == "São Paulo"
    assert address.receiver_name and address.neighborhood == "Centro"
    buyer = world.sandbox.order(pack.order_ids[0]).buyer
    customer = order.customer
    assert (customer.first_name, customer.last_name, customer.email) == (buyer.first_name, buyer.last_name, buyer.email)
    assert (customer.document_type, customer.document) == ("CPF", buyer.doc_number)
    ml_orders = [world.sandbox.order(i) for i in pack.order_ids]
    assert order.created_at == min(o.date_created for o in ml_orders)
    assert order.updated_at == max(o.last_updated for o in ml_orders)


async def test_before_payment_the_cart_is_to_be_paid_and_the_address_hidden(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]], status="payment_required")
    key = await key_of(meli, pack.order_ids[0])
    order = await meli.fetch_order(key)
    assert order.status is MarketplaceOrderStatus.TO_BE_PAID
    address = order.shipping.address
    assert (address.street, address.number, address.postal_code, address.receiver_name) == ("", "", "", "")
    assert address.country == "BRA"
    assert (order.customer.email, order.customer.document) == ("", "")
    assert world.calls("/billing_info") == []  # hidden until payment: not even asked

    world.sandbox.pay(pack.order_ids[0])
    assert (await meli.fetch_order(key)).status is MarketplaceOrderStatus.TO_BE_PAID  # one order still unpaid
    world.sandbox.pay(pack.order_ids[1])
    paid = await meli.fetch_order(key)
    assert paid.status is MarketplaceOrderStatus.PAID
    assert paid.shipping.address.street == "Avenida Paulista" and paid.customer.document


async def test_a_cancelled_order_leaves_the_cart_and_all_cancelled_cancel_it(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    key = await key_of(meli, pack.order_ids[0])
    world.sandbox.cancel(pack.order_ids[0])
    order = await meli.fetch_order(key)
    assert order.status is MarketplaceOrderStatus.PAID and [i.sku_id for i in order.items] == ["8"]
    world.sandbox.cancel(pack.order_ids[1])
    assert (await meli.fetch_order(key)).status is MarketplaceOrderStatus.CANCELED


async def test_a_cancelled_cart_is_canceled_whatever_cannot_be_placed(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    no_sku = ItemSpec("Sem SKU", Decimal("10"), item_id="MLB987654321")
    order = world.sandbox.create_order([no_sku], site_id="MLA", status="cancelled", logistic_type=None)
    canceled = await meli.fetch_order(await key_of(meli, order.id))
    assert canceled.status is MarketplaceOrderStatus.CANCELED
    assert [item.sku_id for item in canceled.items] == ["MLB987654321"]


async def test_a_sale_without_a_shipment_is_not_integrable(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type=None)
    with pytest.raises(MarketplaceError, match="no shipment") as refused:
        await meli.fetch_order(await key_of(meli, order.id))
    assert not refused.value.transient


@pytest.mark.parametrize(
    ("logistic_type", "logistics"),
    [
        ("fulfillment", Logistics.MARKETPLACE_FULFILLMENT),
        ("cross_docking", Logistics.MARKETPLACE_CARRIER),
        ("drop_off", Logistics.MARKETPLACE_CARRIER),
        ("xd_drop_off", Logistics.MARKETPLACE_CARRIER),
        ("xd_same_day", Logistics.MARKETPLACE_CARRIER),
        ("self_service", Logistics.SELLER),
        ("me1", Logistics.SELLER),
        ("custom", Logistics.SELLER),
    ],
)
async def test_each_logistic_type_says_who_delivers(
    world: World, meli: MercadoLibreMarketplace, logistic_type: str, logistics: Logistics
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type=logistic_type, site_id="MLB")
    shipping = (await meli.fetch_order(await key_of(meli, order.id))).shipping
    assert shipping.logistics is logistics
    assert shipping.warehouse_id == ("ml-full" if logistics is Logistics.MARKETPLACE_FULFILLMENT else None)
    if logistic_type == "custom":  # only custom shipping shows the buyer's phone
        assert (await meli.fetch_order(str(order.pack_id))).customer.phone


async def test_every_shipment_is_read_in_the_new_format(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    await meli.fetch_order(await key_of(meli, order.id))
    (read,) = world.calls(f"/shipments/{order.shipment_id}")
    assert read.headers.get("x-format-new") == "true"
    (billing,) = world.calls("/billing_info")
    assert billing.headers.get("x-version") == "2"


async def test_an_item_without_seller_sku_parks_the_order_naming_it(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([ItemSpec("Sem SKU", Decimal("10"), item_id="MLB123456789")])
    with pytest.raises(MarketplaceError) as refused:
        await meli.fetch_order(await key_of(meli, order.id))
    assert not refused.value.transient
    assert "MLB123456789" in str(refused.value) and "seller_sku" in str(refused.value)


async def test_an_order_in_another_currency_than_the_sites_is_refused(world: World) -> None:
    meli = world.adapter(site_id="MLM")
    order = world.sandbox.create_order([SHIRT], site_id="MLB")
    with pytest.raises(MarketplaceError) as refused:
        await meli.fetch_order(await key_of(meli, order.id))
    assert not refused.value.transient and "BRL" in str(refused.value) and "MXN" in str(refused.value)


@pytest.mark.parametrize(("site_id", "price", "cents"), [("MLC", "15990", 1599000), ("MCO", "89900", 8990000)])
async def test_pesos_without_decimals_are_hundredths_like_every_vtex_amount(
    world: World, site_id: str, price: str, cents: int
) -> None:
    meli = world.adapter(site_id=site_id)
    order = world.sandbox.create_order([ItemSpec("Polera", Decimal(price), seller_sku="3")], site_id=site_id)
    mapped = await meli.fetch_order(await key_of(meli, order.id))
    assert mapped.items[0].unit_price == cents
    assert mapped.shipping.address.country == {"MLC": "CHL", "MCO": "COL"}[site_id]


async def test_a_key_the_store_does_not_know_is_read_as_an_order_id(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    # An import by order id: the order's cart is decided, and the id is not that cart's.
    with pytest.raises(MarketplaceError, match=f"belongs to the connector order {pack.id}"):
        await meli.fetch_order(str(pack.order_ids[0]))
    assert len((await meli.fetch_order(str(pack.id))).items) == 2
    with pytest.raises(MarketplaceError) as missing:
        await meli.fetch_order("999")
    assert missing.value.status == 404 and not missing.value.transient


# -- the changed-orders listing ---------------------------------------------------------------------------------


async def walk(meli: MercadoLibreMarketplace, start: ListingPosition, page_size: int) -> list[Any]:
    changes = []
    async for page in walk_changes(meli, start, page_size=page_size):
        changes.extend(page.changes)
    return changes


async def test_the_listing_walks_every_change_oldest_first_through_small_windows(world: World) -> None:
    meli = world.adapter(listing_window=12)
    start = datetime.fromtimestamp(world.clock.now, UTC)
    created = []
    for _ in range(40):
        world.clock.now += 1.5
        created.append(world.sandbox.create_order([SHIRT], notify=False))
    changes = await walk(meli, ListingPosition(since=start), page_size=7)
    assert [c.marketplace_order_id for c in changes] == [str(o.id) for o in created]
    assert [c.updated_at for c in changes] == sorted(c.updated_at for c in changes)
    # Offsets stay within the window: no deep paging.
    assert max(int(r.query.get("offset", "0")) for r in world.calls("/orders/search")) < 12
    # The whole history from the start (no position) too.
    assert len(await walk(meli, ListingPosition(), page_size=9)) == 40


async def test_an_order_changed_during_a_walk_is_met_again_later(world: World) -> None:
    meli = world.adapter(listing_window=10)
    start = datetime.fromtimestamp(world.clock.now, UTC)
    created = []
    for _ in range(20):
        world.clock.now += 1
        created.append(world.sandbox.create_order([SHIRT], status="payment_required", notify=False))
    pages = walk_changes(meli, ListingPosition(since=start), page_size=5)
    first = await anext(pages)
    assert [c.marketplace_order_id for c in first.changes] == [str(o.id) for o in created[:5]]
    world.clock.now += 1
    world.sandbox.pay(created[0].id, notify=False)  # read already: changes, moves to the end
    rest = [c async for page in pages for c in page.changes]
    listed = [c.marketplace_order_id for c in rest]
    assert listed == [str(o.id) for o in created[5:]] + [str(created[0].id)]


async def test_many_changes_at_one_instant_are_walked_whole(world: World) -> None:
    meli = world.adapter(listing_window=4)
    start = datetime.fromtimestamp(world.clock.now, UTC)
    world.clock.now += 1
    same = [world.sandbox.create_order([SHIRT], notify=False) for _ in range(11)]
    world.clock.now += 1
    after = [world.sandbox.create_order([SHIRT], notify=False) for _ in range(3)]
    changes = await walk(meli, ListingPosition(since=start), page_size=3)
    assert sorted(c.marketplace_order_id for c in changes) == sorted(str(o.id) for o in same + after)
    assert len(changes) == 14


async def test_an_empty_listing_is_its_last_page(world: World, meli: MercadoLibreMarketplace) -> None:
    position = ListingPosition(since=datetime.fromtimestamp(world.clock.now + 60, UTC))
    page = await meli.changed_orders_page(position, limit=10)
    assert page.changes == [] and page.last and page.next == position
    (search,) = world.calls("/orders/search")
    assert search.query["seller"] == str(world.sandbox.seller_id) and search.query["sort"] == "date_asc"
    assert "order.date_last_updated.from" in search.query


# -- invoices, tracking, cancellation -----------------------------------------------------------------------------


def invoice(number: str = "A-0001-00000042", **fields: Any) -> Invoice:
    return Invoice(invoice_number=number, invoice_value=9980, **fields)


async def test_outside_brazil_the_invoice_pdf_and_xml_go_to_each_pack_once(world: World) -> None:
    meli = world.adapter(site_id="MLA")
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]], site_id="MLA")
    key = await key_of(meli, pack.order_ids[0])
    world.sandbox.split_pack(pack.id)
    sent = invoice(embedded_invoice=NFE_XML, invoice_url="https://erp.example/invoices/42.pdf")

    def erp(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers  # Mercado Libre's token stays with Mercado Libre
        return httpx.Response(200, content=PDF_BYTES, headers={"content-type": "application/pdf"})

    meli = world.adapter(site_id="MLA", download_transport=httpx.MockTransport(erp))
    await meli.send_invoice(key, sent)
    documents = world.sandbox.fiscal_documents
    children = {o.pack_id for o in (world.sandbox.order(i) for i in pack.order_ids)}
    assert {d.pack_id for d in documents} == children and len(documents) == 4
    assert {(d.content_type, d.content) for d in documents} == {
        ("application/pdf", PDF_BYTES),
        ("application/xml", NFE_XML.encode()),
    }
    # Sent again (an answer lost): Mercado Libre's 409 means it is there.
    await meli.send_invoice(key, sent)
    assert len(world.sandbox.fiscal_documents) == 4 and world.alerts == []


async def test_an_invoice_without_a_pdf_is_an_alert_not_an_upload(world: World) -> None:
    meli = world.adapter(site_id="MLM")
    order = world.sandbox.create_order([SHIRT], site_id="MLM")
    key = await key_of(meli, order.id)
    await meli.send_invoice(key, invoice(invoice_key="ABC123"))
    assert world.calls("/fiscal_documents") == []
    ((alerted, message),) = world.alerts
    assert alerted == key and "A-0001-00000042" in message and "PDF" in message


async def test_chile_full_uploads_nothing_but_other_full_packs_do(world: World) -> None:
    pdf = base64.b64encode(PDF_BYTES).decode()
    chile = world.adapter(site_id="MLC")
    order = world.sandbox.create_order([SHIRT], site_id="MLC", logistic_type="fulfillment")
    await chile.send_invoice(await key_of(chile, order.id), invoice(embedded_invoice=pdf))
    assert world.calls("/fiscal_documents") == []
    mexico = world.adapter(site_id="MLM")
    full = world.sandbox.create_order([SHIRT], site_id="MLM", logistic_type="fulfillment")
    await mexico.send_invoice(await key_of(mexico, full.id), invoice(embedded_invoice=pdf))
    (upload,) = world.sandbox.fiscal_documents
    assert upload.pack_id == full.pack_id


async def test_an_order_without_a_pack_uploads_under_its_own_id(serve: Any) -> None:
    world = await make_world(serve, pack_single_orders=False)
    meli = world.adapter(site_id="MLA")
    try:
        order = world.sandbox.create_order([SHIRT], site_id="MLA")
        await meli.send_invoice(str(order.id), invoice(embedded_invoice=base64.b64encode(PDF_BYTES).decode()))
        (upload,) = world.sandbox.fiscal_documents
        assert upload.pack_id == order.id
    finally:
        await meli.aclose()


@pytest.mark.parametrize("mode", ["me1", "custom"])
async def test_seller_shipped_tracking_goes_to_seller_notifications_once(world: World, mode: str) -> None:
    meli = world.adapter(site_id="MLA")
    order = world.sandbox.create_order([SHIRT], site_id="MLA", logistic_type=mode)
    key = await key_of(meli, order.id)
    tracking = Tracking(
        invoice_number="42", courier="OCA", tracking_number="OP123456789AR", tracking_url="https://oca.example/t"
    )
    await meli.send_tracking(key, tracking)
    (sent,) = world.sandbox.seller_notifications
    assert sent.shipment_id == order.shipment_id
    body = sent.body
    assert (body["status"], body["substatus"], body["tracking_number"]) == ("shipped", None, "OP123456789AR")
    assert body["tracking_url"] == "https://oca.example/t" and body["payload"]["comment"] == "OCA"
    await meli.send_tracking(key, tracking)  # shipped with this number already: nothing more
    assert len(world.sandbox.seller_notifications) == 1


@pytest.mark.parametrize("logistic_type", ["cross_docking", "fulfillment", "self_service"])
async def test_mercado_envios_2_tracking_is_mercado_libres(world: World, logistic_type: str) -> None:
    meli = world.adapter(site_id="MLA")
    order = world.sandbox.create_order([SHIRT], site_id="MLA", logistic_type=logistic_type)
    await meli.send_tracking(await key_of(meli, order.id), Tracking(invoice_number="1", tracking_number="X1"))
    assert world.calls("/seller_notifications") == []


async def test_a_canceled_order_asks_the_seller_to_cancel_in_mercado_libre(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    key = await key_of(meli, pack.order_ids[0])
    await meli.notify_cancellation(key, "out of stock")
    ((alerted, message),) = world.alerts
    assert alerted == key and "out of stock" in message and str(pack.order_ids[0]) in message
    for order_id in pack.order_ids:
        world.sandbox.cancel(order_id)
    await meli.notify_cancellation(key, "out of stock")  # cancelled there already: nothing to ask
    assert len(world.alerts) == 1


# -- the client: tokens, rate limits, failures ----------------------------------------------------------------


async def test_a_401_is_retried_once_with_a_fresh_token(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    world.sandbox.expire_access_tokens()
    assert await key_of(meli, order.id) == str(order.pack_id)
    assert world.tokens.refreshes == 1 and len(world.tokens.rejections) == 1
    assert [r.status for r in world.calls(f"/orders/{order.id}")] == [401, 200]


async def test_calls_refused_together_report_the_token_once(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE], [PENNY]])
    key = await key_of(meli, pack.order_ids[0])
    world.sandbox.expire_access_tokens()
    # The cart's orders are read at once: three 401s, one report, one refresh.
    assert len((await meli.fetch_order(key)).items) == 3
    assert world.tokens.refreshes == 1 and len(world.tokens.rejections) == 1


async def test_a_second_401_is_transient(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    world.sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", 401, times=2))
    with pytest.raises(MarketplaceError) as refused:
        await key_of(meli, order.id)
    assert refused.value.status == 401 and refused.value.transient
    assert len(world.tokens.rejections) == 2


async def test_a_revoked_grant_is_authorization_broken_and_transient(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT])
    key = await key_of(meli, order.id)
    world.sandbox.revoke_grant()
    with pytest.raises(AuthorizationBroken) as broken:
        await meli.fetch_order(key)
    assert broken.value.transient
    with pytest.raises(AuthorizationBroken):
        await meli.order_key(order_note(order.id + 1))


async def test_a_429_is_transient_and_keeps_retry_after(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    world.sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", 429, retry_after=7))
    with pytest.raises(MercadoLibreRateLimited) as limited:
        await key_of(meli, order.id)
    assert limited.value.transient and limited.value.status == 429 and limited.value.retry_after == 7
    assert "too_many_requests" in str(limited.value)
    world.sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", 429))
    with pytest.raises(MercadoLibreRateLimited) as bare:
        await key_of(meli, order.id)
    assert bare.value.retry_after is None
    assert await key_of(meli, order.id) == str(order.pack_id)


@pytest.mark.parametrize(("status", "transient"), [(500, True), (503, True), (400, False), (403, False)])
async def test_failures_carry_mercado_libres_words_and_whether_to_retry(
    world: World, meli: MercadoLibreMarketplace, status: int, transient: bool
) -> None:
    order = world.sandbox.create_order([SHIRT])
    body = {"message": "Something specific", "error": "some_error", "status": status, "cause": ["the cause"]}
    world.sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", status, body=body))
    with pytest.raises(MarketplaceError) as failed:
        await key_of(meli, order.id)
    assert failed.value.status == status and failed.value.transient is transient
    assert "Something specific" in str(failed.value) and "some_error" in str(failed.value)
    assert "the cause" in str(failed.value)


async def test_a_timeout_is_transient(world: World) -> None:
    meli = world.adapter(timeout_seconds=0.3)
    order = world.sandbox.create_order([SHIRT])
    world.sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", 200, delay_seconds=0.8))
    with pytest.raises(MarketplaceError) as slow:
        await key_of(meli, order.id)
    assert slow.value.transient and slow.value.status is None


async def test_a_pack_renamed_between_reads_is_transient(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    # The order names the pack; while its pack is asked for, Mercado Libre renames it (the old id: 404).
    world.sandbox.add_fault(FaultRule("GET", f"/packs/{pack.id}", 404, delay_seconds=0.3))

    async def rename() -> None:
        await asyncio.sleep(0.1)
        world.sandbox.change_pack_id(pack.id)

    with pytest.raises(MarketplaceError) as gone:
        await asyncio.gather(key_of(meli, pack.order_ids[0]), rename())
    assert gone.value.transient and gone.value.status == 404
    assert world.carts.carts == {}
    # The next attempt reads the new pack; the key is the pack id seen first.
    renamed = world.sandbox.order(pack.order_ids[0]).pack_id
    assert await key_of(meli, pack.order_ids[0]) == str(renamed)


async def test_a_pack_mercado_libre_does_not_serve_still_keys_all_its_orders_alike(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
    world.sandbox.add_fault(FaultRule("GET", f"/packs/{pack.id}", 404, times=-1))
    assert [await key_of(meli, order_id) for order_id in pack.order_ids] == [str(pack.id)] * 2
    order = await meli.fetch_order(str(pack.id))
    assert order.status is MarketplaceOrderStatus.PAID and len(order.items) == 2


async def test_timestamps_in_the_search_are_mercado_libres_milliseconds(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    since = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    await meli.changed_orders_page(ListingPosition(since=since), limit=5)
    (search,) = world.calls("/orders/search")
    assert search.query["order.date_last_updated.from"] == "2025-03-01T12:00:00.123+00:00"


async def test_with_the_connectors_own_store_and_token_custody(serve: Any, tmp_path: Path) -> None:
    """The same adapter on what the worker gives it: the order store's carts and MercadoLibreTokens."""
    world = await make_world(serve)
    store = open_store(f"sqlite:///{tmp_path / 'orders.db'}")
    tokens = MercadoLibreTokens(
        store,
        connection=CONNECTION,
        client_id=world.sandbox.oauth.client_id,
        client_secret=world.sandbox.oauth.client_secret,
        sealer=SecretSealer({"k1": os.urandom(32)}, "k1"),
        logbook=Logbook(store, account="seller"),
        auth_base_url=world.base_url,
    )
    meli = world.adapter(tokens=tokens, carts=store)
    try:
        await tokens.connect(
            code=world.sandbox.issue_authorization_code(), redirect_uri=world.sandbox.oauth.redirect_uri
        )
        pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]])
        assert {await key_of(meli, order_id) for order_id in pack.order_ids} == {str(pack.id)}
        assert sorted(await store.cart_orders(CONNECTION, str(pack.id))) == sorted(str(i) for i in pack.order_ids)
        world.sandbox.expire_access_tokens()  # 401: rejected, refreshed under the lease, called again
        assert len((await meli.fetch_order(str(pack.id))).items) == 2
        assert world.sandbox.oauth.issued["refresh_token"] == 1
        world.sandbox.revoke_grant()
        with pytest.raises(AuthorizationBroken) as broken:
            await meli.fetch_order(str(pack.id))
        assert broken.value.transient
    finally:
        await meli.aclose()
        await tokens.aclose()
        await store.aclose()


# -- invoices Mercado Libre issues itself (Full, Brazil): from Mercado Libre into VTEX ------------------------------


def nfe_paths(world: World) -> list[str]:
    return [r.path for r in world.calls("/invoices/")]


def nfe_answer(world: World, order_id: int) -> dict[str, Any]:
    """The sandbox's answer for the order's NF-e, as JSON (to serve altered through a fault rule)."""
    (nfe,) = [i for i in world.sandbox.invoices.values() if order_id in i.order_ids]
    answer: dict[str, Any] = json.loads(json.dumps(invoice_json(nfe, user_id=world.sandbox.seller_id)))
    return answer


async def test_a_full_brazilian_cart_has_no_invoice_until_the_faturador_issues_it(serve: Any) -> None:
    world = await make_world(serve, invoice_delay_seconds=3600)  # the Faturador issues only when told here
    meli = world.adapter()
    try:
        order = world.sandbox.create_order([SHIRT, ODD], logistic_type="fulfillment", shipping_cost="15.50")
        key = await key_of(meli, order.id)
        shipment = world.sandbox.shipments[order.shipment_id or 0]
        assert (shipment.status, shipment.substatus) == ("handling", "invoice_pending")
        assert await meli.marketplace_invoices(key) == []  # not issued yet: nothing, and no error
        (asked,) = world.calls("/invoices/orders/")
        assert asked.path == f"/users/{world.sandbox.seller_id}/invoices/orders/{order.id}" and asked.status == 404

        nfe = world.sandbox.issue_invoice(order.id)
        (issued,) = await meli.marketplace_invoices(key)
        assert issued.type is InvoiceType.OUTPUT
        assert issued.invoice_number == f"{nfe.number}-{nfe.series}" == "1001-1"
        assert issued.invoice_value == 2 * 4990 + 3 * 1999 + 1550 == 17527
        assert issued.invoice_key == nfe.key and len(nfe.key) == 44 and nfe.key.isdigit()
        assert issued.embedded_invoice == nfe.xml and nfe.key in nfe.xml
        assert issued.invoice_url is None and issued.tracking is None
        assert issued.items == [
            InvoiceItem(sku_id="1", quantity=2, price=4990),
            InvoiceItem(sku_id="5", quantity=3, price=1999),
        ]
        # Mercado Libre writes Brasília time without an offset; VTEX gets ISO 8601 with it, to the millisecond.
        assert issued.issuance_date is not None and issued.issuance_date.endswith("-03:00")
        assert datetime.fromisoformat(issued.issuance_date) == nfe.issued_at
        (xml,) = world.calls("/invoices/documents/xml/")
        assert xml.path == f"/users/{world.sandbox.seller_id}/invoices/documents/xml/{nfe.id}/authorized"

        # Idempotent, and Mercado Libre is only read.
        assert await meli.marketplace_invoices(key) == [issued]
        assert {r.method for r in world.calls("/invoices/")} == {"GET"} and world.alerts == []
    finally:
        world.sandbox.reset()  # the Faturador's own issue, an hour away, is not waited for
        await meli.aclose()


async def test_a_pack_of_two_full_orders_has_one_nfe_with_every_line(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE, PENNY]], logistic_type="fulfillment", shipping_cost="12.00")
    key = await key_of(meli, pack.order_ids[1])
    await world.sandbox.drain()  # the Faturador issues the cart's one NF-e a moment after payment
    (nfe,) = world.sandbox.invoices.values()
    (issued,) = await meli.marketplace_invoices(key)
    # The lines as the VTEX order has them (the cart's orders in the order they joined it).
    placed = await meli.fetch_order(key)
    assert [(i.sku_id, i.quantity, i.price) for i in issued.items] == [
        (i.sku_id, i.quantity, i.unit_price) for i in placed.items
    ]
    assert sorted((i.sku_id, i.quantity, i.price) for i in issued.items) == [
        ("1", 2, 4990),
        ("12", 3, 10),
        ("8", 1, 7990),
    ]
    assert issued.invoice_value == 2 * 4990 + 7990 + 3 * 10 + 1200 == 19200
    assert issued.invoice_key == nfe.key and issued.embedded_invoice == nfe.xml
    # Each order of the cart is asked; both name the same NF-e, whose XML is read once.
    assert sorted(p.rsplit("/", 1)[1] for p in nfe_paths(world) if "/orders/" in p) == sorted(map(str, pack.order_ids))
    assert len(world.calls("/invoices/documents/xml/")) == 1


async def test_a_cart_mercado_libre_does_not_fulfill_has_no_marketplace_invoice(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    for logistic_type in ("cross_docking", "self_service", "me1"):
        order = world.sandbox.create_order([SHIRT], logistic_type=logistic_type)
        assert await meli.marketplace_invoices(await key_of(meli, order.id)) == []
    assert nfe_paths(world) == []  # the invoices resource is never asked


async def test_outside_brazil_a_full_cart_has_no_marketplace_invoice_and_nothing_is_read(world: World) -> None:
    meli = world.adapter(site_id="MLM")
    order = world.sandbox.create_order([SHIRT], site_id="MLM", logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    before = len(world.sandbox.requests)
    assert await meli.marketplace_invoices(key) == []
    assert len(world.sandbox.requests) == before


@pytest.mark.parametrize(("path", "status"), [("/invoices/orders/", 500), ("/invoices/documents/xml/", 503)])
async def test_mercado_libre_unable_to_answer_is_transient(
    world: World, meli: MercadoLibreMarketplace, path: str, status: int
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    await world.sandbox.drain()
    world.sandbox.add_fault(FaultRule("GET", path, status))
    with pytest.raises(MarketplaceError) as failed:
        await meli.marketplace_invoices(key)
    assert failed.value.transient and failed.value.status == status
    assert len(await meli.marketplace_invoices(key)) == 1  # and the next attempt reads it


async def test_only_the_authorized_sale_nfe_counts(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    await world.sandbox.drain()
    (nfe,) = world.sandbox.invoices.values()
    real = nfe_answer(world, order.id)
    path = f"/invoices/orders/{order.id}"
    for answer in (
        real | {"status": "processing"},
        real | {"status": "rejected"},
        real | {"transaction_status": "canceled"},
        real | {"fiscal_data": {"transaction_type": "symbolic_inbound_return"}},
    ):
        world.sandbox.add_fault(FaultRule("GET", path, 200, body=answer))
        assert await meli.marketplace_invoices(key) == []
    # A list of the order's documents: the sale's NF-e among them, in capitals as the guide writes AUTHORIZED.
    documents = [
        real | {"id": 1, "fiscal_data": {"transaction_type": "SYMBOLIC_INBOUND_RETURN"}},
        real | {"status": "AUTHORIZED"},
    ]
    world.sandbox.add_fault(FaultRule("GET", path, 200, body=cast(Any, documents)))
    (issued,) = await meli.marketplace_invoices(key)
    assert issued.invoice_key == nfe.key and issued.embedded_invoice == nfe.xml


async def test_the_token_goes_to_no_xml_location_outside_the_sellers_invoices(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    await world.sandbox.drain()
    real = nfe_answer(world, order.id)
    path = f"/invoices/orders/{order.id}"
    xml = real["attributes"]["xml_location"]
    for location in (
        f"https://elsewhere.example{xml}",
        f"//elsewhere.example{xml}",
        xml.replace(str(world.sandbox.seller_id), "999"),
        f"/users/{world.sandbox.seller_id}/invoices/../../orders/{order.id}",
        f"{xml}#fragment",
    ):
        world.sandbox.add_fault(
            FaultRule("GET", path, 200, body=real | {"attributes": {**real["attributes"], "xml_location": location}})
        )
        with pytest.raises(MarketplaceError, match="outside the seller's invoices") as refused:
            await meli.marketplace_invoices(key)
        assert not refused.value.transient
    assert world.calls("/invoices/documents/xml/") == []
    # The same place written in full on Mercado Libre's own host is fine.
    world.sandbox.add_fault(
        FaultRule(
            "GET", path, 200, body=real | {"attributes": {**real["attributes"], "xml_location": world.base_url + xml}}
        )
    )
    assert len(await meli.marketplace_invoices(key)) == 1


async def test_an_xml_over_the_cap_leaves_the_invoice_without_it(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    await world.sandbox.drain()
    (nfe,) = world.sandbox.invoices.values()
    nfe.xml = nfe.xml.replace("</nfeProc>", "<!--" + "x" * (1024 * 1024) + "--></nfeProc>")
    (issued,) = await meli.marketplace_invoices(key)
    assert issued.embedded_invoice is None and issued.invoice_key == nfe.key


async def test_a_401_on_the_nfe_reads_is_retried_with_a_fresh_token(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="fulfillment")
    key = await key_of(meli, order.id)
    await world.sandbox.drain()
    world.sandbox.add_fault(FaultRule("GET", "/invoices/documents/xml/", 401))
    (issued,) = await meli.marketplace_invoices(key)
    assert issued.embedded_invoice == next(iter(world.sandbox.invoices.values())).xml
    assert [r.status for r in world.calls("/invoices/documents/xml/")] == [401, 200]
    assert world.tokens.refreshes == 1


# -- the seller's NF-e imported into Brazilian shipments (Mercado Libre's label waits for it) ----------------------


@asynccontextmanager
async def world_with(serve: Any, **sandbox_options: Any) -> AsyncIterator[World]:
    made = await make_world(serve, **sandbox_options)
    try:
        yield made
    finally:
        for adapter in made.adapters:
            await adapter.aclose()


def seller_nfe(world: World, number: int, amount: str = "99.80") -> tuple[str, str]:
    """The access key and authorized XML (nfeProc) of an NF-e the seller's ERP issued."""
    issued = datetime.now(UTC)
    key = nfe_key("35", issued, world.sandbox.seller_id, 1, number)
    return key, nfe_xml(key, number, 1, amount, issued)


def nfe_invoice(key: str, xml: str, *skus: str) -> Invoice:
    """VTEX's invoice with its NF-e: the XML embedded, the access key, and the SKUs it covers."""
    items = [InvoiceItem(sku_id=sku, quantity=1, price=100) for sku in skus]
    return invoice(f"NF-{key[25:34]}", embedded_invoice=xml, invoice_key=key, items=items)


def waiting(world: World, shipment_id: int | None) -> tuple[str, str | None]:
    shipment = world.sandbox.shipments[shipment_id or 0]
    return shipment.status, shipment.substatus


@pytest.mark.parametrize("key_field", ["fiscal_key", "invoice_key"])
async def test_a_cross_docking_sale_gets_the_sellers_nfe_imported_once(serve: Any, key_field: str) -> None:
    async with world_with(serve, invoice_data_key_field=key_field) as world:
        meli = world.adapter()
        order = world.sandbox.create_order([SHIRT], logistic_type="cross_docking")
        key = await key_of(meli, order.id)
        assert waiting(world, order.shipment_id) == ("ready_to_ship", "invoice_pending")
        access_key, xml = seller_nfe(world, 4201)
        await meli.send_invoice(key, nfe_invoice(access_key, xml))
        imported = world.sandbox.imported_nfe[order.shipment_id or 0]
        assert imported.key == access_key and imported.xml == xml.encode()
        assert waiting(world, order.shipment_id) == ("ready_to_ship", "ready_to_print")
        (post,) = world.calls("/invoice_data", "POST")
        assert post.path == f"/shipments/{order.shipment_id}/invoice_data" and post.query == {"siteId": "MLB"}
        assert post.headers["content-type"] == "application/xml" and post.status == 200
        assert world.alerts == []
        # Sent again, base64 this time, while Mercado Libre's shipment still shows invoice_pending (its status
        # lags): what it holds is read, in this sandbox's field, and nothing is posted again.
        world.sandbox.set_shipment_status(order.shipment_id or 0, "ready_to_ship", "invoice_pending")
        again = nfe_invoice(access_key, base64.b64encode(xml.encode()).decode())
        await meli.send_invoice(key, again)
        assert len(world.calls("/invoice_data", "POST")) == 1 and world.alerts == []
        assert [r.status for r in world.calls("/invoice_data", "GET")] == [404, 200]


@pytest.mark.parametrize("code_in", ["error", "cause"])
async def test_a_duplicated_fiscal_key_for_this_shipment_is_done(serve: Any, code_in: str) -> None:
    # An earlier attempt imported it but its answer was lost, and Mercado Libre's reads lag behind.
    async with world_with(serve, nfe_error_code_in=code_in) as world:
        meli = world.adapter()
        order = world.sandbox.create_order([SHIRT])
        key = await key_of(meli, order.id)
        access_key, xml = seller_nfe(world, 4202)
        world.sandbox.import_nfe(order.shipment_id or 0, xml.encode())
        world.sandbox.set_shipment_status(order.shipment_id or 0, "ready_to_ship", "invoice_pending")
        world.sandbox.add_fault(FaultRule("GET", "/invoice_data", 404))
        await meli.send_invoice(key, nfe_invoice(access_key, xml))
        (post,) = world.calls("/invoice_data", "POST")
        assert post.status == 400  # duplicated_fiscal_key, read where this sandbox puts it
        assert [r.status for r in world.calls("/invoice_data", "GET")] == [404, 200] and world.alerts == []


@pytest.mark.parametrize(
    "embedded",
    [
        None,  # a number and a key only
        base64.b64encode(PDF_BYTES).decode(),  # the DANFE's PDF, no XML
    ],
)
async def test_without_the_nfe_xml_the_seller_is_told_the_label_stays_locked(
    world: World, meli: MercadoLibreMarketplace, embedded: str | None
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="drop_off")
    key = await key_of(meli, order.id)
    access_key, _ = seller_nfe(world, 4203)
    await meli.send_invoice(key, invoice(invoice_key=access_key, embedded_invoice=embedded))
    assert world.calls("/invoice_data") == [] and world.calls("/fiscal_documents") == []
    ((alerted, message),) = world.alerts
    assert alerted == key and f"label of sale {order.id} stays locked" in message
    assert "NF-e XML" in message and "embeddedInvoice" in message and "Mercado Libre's panel" in message
    assert waiting(world, order.shipment_id) == ("ready_to_ship", "invoice_pending")


@pytest.mark.parametrize(
    ("xml", "said"),
    [
        (NFE_XML, "not an NF-e"),
        ("other key", "not the NF-e of access key"),
        ("over 1 MB", "over 1 MB"),
    ],
)
async def test_an_xml_that_is_not_the_nfe_is_an_alert(
    world: World, meli: MercadoLibreMarketplace, xml: str, said: str
) -> None:
    order = world.sandbox.create_order([SHIRT], logistic_type="xd_drop_off")
    key = await key_of(meli, order.id)
    access_key, real = seller_nfe(world, 4204)
    _, other = seller_nfe(world, 4205)
    embedded = {"other key": other, "over 1 MB": real.replace("</nfeProc>", " " * 1024 * 1024 + "</nfeProc>")}
    await meli.send_invoice(key, nfe_invoice(access_key, embedded.get(xml, xml)))
    assert world.calls("/invoice_data") == []
    ((_, message),) = world.alerts
    assert said in message and "stays locked" in message


async def test_mercado_libre_unable_to_take_the_nfe_is_transient(world: World, meli: MercadoLibreMarketplace) -> None:
    order = world.sandbox.create_order([SHIRT])
    key = await key_of(meli, order.id)
    access_key, xml = seller_nfe(world, 4206)
    world.sandbox.add_fault(FaultRule("POST", "/invoice_data", 503))
    with pytest.raises(MarketplaceError) as failed:
        await meli.send_invoice(key, nfe_invoice(access_key, xml))
    assert failed.value.transient and world.alerts == []
    await meli.send_invoice(key, nfe_invoice(access_key, xml))  # the workflow's retry
    assert world.sandbox.imported_nfe[order.shipment_id or 0].key == access_key


async def test_mercado_libre_refusing_the_nfe_is_an_alert_with_its_words(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT])
    key = await key_of(meli, order.id)
    access_key, xml = seller_nfe(world, 4207)
    unauthorized = xml.split("<protNFe>")[0].replace('<?xml version="1.0" encoding="UTF-8"?>', "")
    unauthorized = unauthorized.replace("<nfeProc", "<wrap").replace("</NFe>", "</NFe></wrap>")
    await meli.send_invoice(key, nfe_invoice(access_key, unauthorized))  # an NF-e SEFAZ never authorized
    ((_, message),) = world.alerts
    assert f"refused NF-e {access_key}" in message and "diferente de autorizada" in message
    assert world.sandbox.imported_nfe == {}
    assert waiting(world, order.shipment_id) == ("ready_to_ship", "invoice_pending")


async def test_an_nfe_another_shipment_holds_is_an_alert(world: World, meli: MercadoLibreMarketplace) -> None:
    first, second = world.sandbox.create_order([SHIRT]), world.sandbox.create_order([BOTTLE])
    access_key, xml = seller_nfe(world, 4208)
    await meli.send_invoice(await key_of(meli, first.id), nfe_invoice(access_key, xml))
    await meli.send_invoice(await key_of(meli, second.id), nfe_invoice(access_key, xml))
    ((_, message),) = world.alerts
    assert f"shipment {second.shipment_id}" in message and "one shipment only" in message
    assert list(world.sandbox.imported_nfe) == [first.shipment_id]


async def test_another_nfe_mercado_libre_holds_is_an_alert_never_overwritten(
    world: World, meli: MercadoLibreMarketplace
) -> None:
    order = world.sandbox.create_order([SHIRT])
    key = await key_of(meli, order.id)
    held_key, held = seller_nfe(world, 4209)
    world.sandbox.import_nfe(order.shipment_id or 0, held.encode())  # in Mercado Libre's panel
    world.sandbox.set_shipment_status(order.shipment_id or 0, "ready_to_ship", "invoice_pending")
    access_key, xml = seller_nfe(world, 4210)
    await meli.send_invoice(key, nfe_invoice(access_key, xml))
    assert world.calls("/invoice_data", "POST") == [] and world.calls("/invoice_data", "PUT") == []
    ((_, message),) = world.alerts
    assert f"holds NF-e {held_key}" in message and access_key in message
    assert world.sandbox.imported_nfe[order.shipment_id or 0].key == held_key


async def test_a_shipment_no_longer_waiting_is_left_alone(
    world: World, meli: MercadoLibreMarketplace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=NFE_IMPORT_LOG)
    order = world.sandbox.create_order([SHIRT])
    key = await key_of(meli, order.id)
    world.sandbox.set_shipment_status(order.shipment_id or 0, "shipped", None)
    access_key, xml = seller_nfe(world, 4211)
    await meli.send_invoice(key, nfe_invoice(access_key, xml))
    assert world.calls("/invoice_data") == [] and world.alerts == []
    assert f"shipment {order.shipment_id} is shipped/None, not waiting for an NF-e" in caplog.text


@pytest.mark.parametrize("logistic_type", ["self_service", "fulfillment", "me1", "custom"])
async def test_other_brazilian_logistics_import_nothing(
    world: World, logistic_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=NFE_IMPORT_LOG)
    meli = world.adapter()
    order = world.sandbox.create_order([SHIRT], logistic_type=logistic_type)
    access_key, xml = seller_nfe(world, 4212)
    await meli.send_invoice(await key_of(meli, order.id), nfe_invoice(access_key, xml))
    assert world.calls("/invoice_data") == [] and world.calls("/fiscal_documents") == []
    assert world.alerts == [] and world.sandbox.imported_nfe == {}
    assert "no shipment whose label waits for an NF-e" in caplog.text
    assert world.calls(f"/shipments/{order.shipment_id}", "GET")  # its logistics read, not assumed


async def test_a_split_pack_gets_an_nfe_in_each_shipment(world: World, meli: MercadoLibreMarketplace) -> None:
    pack = world.sandbox.create_pack([[SHIRT], [BOTTLE]], logistic_type="cross_docking")
    key = await key_of(meli, pack.order_ids[0])
    world.sandbox.split_pack(pack.id)
    shirt, bottle = (world.sandbox.order(order_id) for order_id in pack.order_ids)
    assert shirt.shipment_id != bottle.shipment_id
    # One NF-e per shipment (an access key serves one): the seller invoices each part in VTEX.
    shirt_key, shirt_xml = seller_nfe(world, 4213)
    bottle_key, bottle_xml = seller_nfe(world, 4214)
    await meli.send_invoice(key, nfe_invoice(shirt_key, shirt_xml, "1"))
    await meli.send_invoice(key, nfe_invoice(bottle_key, bottle_xml, "8"))
    held = world.sandbox.imported_nfe
    assert (held[shirt.shipment_id or 0].key, held[bottle.shipment_id or 0].key) == (shirt_key, bottle_key)
    assert (
        waiting(world, shirt.shipment_id) == waiting(world, bottle.shipment_id) == ("ready_to_ship", "ready_to_print")
    )
    assert len(world.calls("/invoice_data", "POST")) == 2 and world.alerts == []
