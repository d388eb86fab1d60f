"""The Mercado Libre sandbox serves Mercado Libre's documented shapes: OAuth with rotating refresh tokens,
bearer checks, orders (buyer data hidden until payment), order search paging, packs and their splits,
shipments in both formats, claims, notifications and their retries, seller-side uploads, faults and the
admin API."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sandboxes.mercadolibre import FaultRule, ItemSpec, MercadoLibreSandbox, client_sender
from sandboxes.mercadolibre_models import OAuthError
from sandboxes.mercadolibre_oauth import ACCESS_TOKEN_SECONDS, INVALID_GRANT
from sandboxes.mercadolibre_seller import nfe_key, nfe_xml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BASE_URL = "http://api.mercadolibre.sandbox"
CALLBACK = "http://receiver.test/notifications"
ML_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}-04:00")
UTC_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SHIRT = ItemSpec("Camiseta Azul M", Decimal("49.90"), quantity=2, seller_sku="1", full_unit_price=Decimal("59.90"))
BOTTLE = ItemSpec("Garrafa Térmica", Decimal("79.90"), seller_sku="8", variation_id=174997747)


class Clock:
    """A clock tests move: token lifetimes and the search index lag are measured on it."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """The connector's notification endpoint, in this process: answers each POST with the next status
    (then 200), after `delay` seconds."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.bodies.append(json.loads(await request.body()))
            if self.delay:
                await asyncio.sleep(self.delay)
            return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

        return Starlette(routes=[Route("/notifications", receive, methods=["POST"])])


def make_sandbox(clock: Clock | None = None, receiver: Receiver | None = None, **options: Any) -> MercadoLibreSandbox:
    settings: dict[str, Any] = {
        "seed": 7,
        "token_latency_seconds": 0,
        "search_index_delay_seconds": 0,
        "notification_delay_seconds": 0,
        "duplicate_probability": 0,
        "invoice_delay_seconds": 0,
        "retry_delays": (0.01, 0.02, 0.04),
        "pack_single_orders": True,
        "clock": clock or Clock(),
    }
    if receiver is not None:
        transport = httpx.ASGITransport(app=receiver.app())
        settings["sender"] = client_sender(httpx.AsyncClient(transport=transport))
        settings["callback_url"] = CALLBACK
    return MercadoLibreSandbox(**(settings | options))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> MercadoLibreSandbox:
    return make_sandbox(clock)


@pytest_asyncio.fixture
async def client(sandbox: MercadoLibreSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        yield http


@pytest_asyncio.fixture
async def api(sandbox: MercadoLibreSandbox, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client with a valid access token."""
    client.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
    return client


def refresh_form(sandbox: MercadoLibreSandbox, refresh_token: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": sandbox.oauth.client_id,
        "client_secret": sandbox.oauth.client_secret,
        "refresh_token": refresh_token,
    }


def decimals(response: httpx.Response) -> Any:
    """The body with every JSON number with a fraction read as a Decimal, as an adapter should."""
    return json.loads(response.content, parse_float=Decimal)


def assert_ml_error(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "error", "status", "cause"}
    assert body["status"] == status and body["cause"] == []
    if error is not None:
        assert body["error"] == error
    return body


# -- OAuth -------------------------------------------------------------------------------------------------------


async def test_authorization_code_then_refresh_rotates_the_refresh_token(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient
) -> None:
    code = sandbox.issue_authorization_code()
    first = await client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sandbox.oauth.client_id,
            "client_secret": sandbox.oauth.client_secret,
            "code": code,
            "redirect_uri": sandbox.oauth.redirect_uri,
        },
    )
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope", "user_id", "refresh_token"}
    assert tokens["expires_in"] == ACCESS_TOKEN_SECONDS == 21600
    assert tokens["token_type"] == "bearer" and tokens["scope"] == "offline_access read write"
    assert tokens["user_id"] == sandbox.seller_id
    assert tokens["access_token"].startswith("APP_USR-") and tokens["refresh_token"].startswith("TG-")

    refreshed = await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    assert refreshed.json()["access_token"] != tokens["access_token"]

    # The used refresh token, and the code, do not work a second time.
    reused = await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))
    assert reused.status_code == 400
    assert reused.json() == {"error_description": INVALID_GRANT, "error": "invalid_grant", "status": 400, "cause": []}
    again = await client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sandbox.oauth.client_id,
            "client_secret": sandbox.oauth.client_secret,
            "code": code,
            "redirect_uri": sandbox.oauth.redirect_uri,
        },
    )
    assert again.json()["error"] == "invalid_grant"
    # The new one does.
    newest = await client.post("/oauth/token", data=refresh_form(sandbox, refreshed.json()["refresh_token"]))
    assert newest.status_code == 200


async def test_two_concurrent_refreshes_with_one_token_exactly_one_wins(clock: Clock) -> None:
    # The token endpoint takes 50 ms: both requests are in flight at once.
    sandbox = make_sandbox(clock, token_latency_seconds=0.05)
    tokens = sandbox.connect()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        answers = await asyncio.gather(
            *(http.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"])) for _ in range(2))
        )
    assert sorted(answer.status_code for answer in answers) == [200, 400]
    loser = next(answer for answer in answers if answer.status_code == 400)
    assert loser.json()["error"] == "invalid_grant"
    assert sandbox.oauth.issued["refresh_token"] == 1


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "TG-unknown"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "TG-x", "client_secret": "wrong"}, "invalid_client"),
    ],
)
async def test_token_refusals_use_the_oauth_error_shape(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    data = {"client_id": sandbox.oauth.client_id, "client_secret": sandbox.oauth.client_secret, **form}
    response = await client.post("/oauth/token", data=data)
    assert response.status_code == 400
    assert set(response.json()) == {"error_description", "error", "status", "cause"}
    assert response.json()["error"] == error


async def test_the_token_request_must_be_form_encoded(sandbox: MercadoLibreSandbox, client: httpx.AsyncClient) -> None:
    tokens = sandbox.connect()
    response = await client.post("/oauth/token", json=refresh_form(sandbox, tokens["refresh_token"]))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    # The refusal did not spend the refresh token.
    assert (await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))).status_code == 200


async def test_a_revoked_grant_refuses_every_refresh_until_a_new_authorization(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient
) -> None:
    tokens = sandbox.connect()
    pending_code = sandbox.issue_authorization_code()
    sandbox.revoke_grant()
    refused = await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))
    assert refused.json()["error"] == "invalid_grant"
    resource = await client.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert_ml_error(resource, 401)
    # A code issued before the revocation is void too; a new authorization works.
    with pytest.raises(OAuthError, match="invalid_grant"):
        sandbox.oauth.exchange(
            {
                "grant_type": "authorization_code",
                "client_id": sandbox.oauth.client_id,
                "client_secret": sandbox.oauth.client_secret,
                "code": pending_code,
                "redirect_uri": sandbox.oauth.redirect_uri,
            }
        )
    fresh = sandbox.connect()
    assert (
        await client.get("/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    ).status_code == 200


async def test_access_tokens_live_six_hours(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient, clock: Clock
) -> None:
    tokens = sandbox.connect()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    clock.now += ACCESS_TOKEN_SECONDS - 1
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    clock.now += 1
    assert_ml_error(await client.get("/users/me", headers=headers), 401)
    # The admin knob does the same at once; the refresh token still works.
    renewed = sandbox.oauth.exchange(refresh_form(sandbox, tokens["refresh_token"]))
    sandbox.expire_access_tokens()
    assert_ml_error(await client.get("/users/me", headers={"Authorization": f"Bearer {renewed['access_token']}"}), 401)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer APP_USR-unknown"}, {"Authorization": "Basic Zm9vOmJhcg=="}],
    ids=["missing", "unknown", "not-bearer"],
)
async def test_resource_calls_need_a_bearer_token(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    order = sandbox.create_order([SHIRT])
    assert_ml_error(await client.get(f"/orders/{order.id}", headers=headers), 401, "unauthorized")
    # The claims API answers with its own documented 401 body.
    claim = sandbox.open_claim(order.id)
    body = assert_ml_error(await client.get(f"/post-purchase/v1/claims/{claim.id}", headers=headers), 401)
    assert body["error"] == "unauthorized_request_error"


async def test_a_token_in_the_query_string_is_not_accepted(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient
) -> None:
    token = sandbox.connect()["access_token"]
    assert_ml_error(await client.get("/users/me", params={"access_token": token}), 401)


# -- orders ------------------------------------------------------------------------------------------------------


async def test_an_order_has_mercado_libres_shape_with_decimal_amounts(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT, BOTTLE], shipping_cost="12.50", logistic_type="drop_off")
    response = await api.get(f"/orders/{order.id}")
    assert response.status_code == 200
    body = decimals(response)
    for name in (
        "id",
        "status",
        "status_detail",
        "date_created",
        "date_closed",
        "last_updated",
        "pack_id",
        "order_items",
        "total_amount",
        "paid_amount",
        "currency_id",
        "buyer",
        "seller",
        "payments",
        "shipping",
        "tags",
        "context",
    ):
        assert name in body, name
    assert body["id"] == order.id and isinstance(body["id"], int)
    assert body["status"] == "paid" and body["currency_id"] == "BRL"
    assert body["context"] == {"channel": "marketplace", "site": "MLB", "flows": []}
    assert all(ML_DATE.fullmatch(body[name]) for name in ("date_created", "date_closed", "last_updated"))
    first = body["order_items"][0]
    assert first["item"]["title"] == "Camiseta Azul M" and first["item"]["seller_sku"] == "1"
    assert first["item"]["id"].startswith("MLB") and first["item"]["variation_id"] is None
    assert first["quantity"] == 2
    assert first["unit_price"] == Decimal("49.9") and first["full_unit_price"] == Decimal("59.9")
    assert body["order_items"][1]["item"]["variation_id"] == 174997747
    # Amounts are JSON numbers (not strings, not cents).
    assert body["total_amount"] == Decimal("179.7") == Decimal("49.90") * 2 + Decimal("79.90")
    assert body["paid_amount"] == Decimal("192.2")
    (payment,) = body["payments"]
    assert payment["status"] == "approved" and payment["transaction_amount"] == Decimal("179.7")
    assert payment["shipping_cost"] == Decimal("12.5") and payment["total_paid_amount"] == Decimal("192.2")
    assert body["shipping"] == {"id": order.shipment_id}
    assert body["seller"] == {"id": sandbox.seller_id}
    assert "paid" in body["tags"]
    assert isinstance(json.loads(response.content)["total_amount"], float)


@pytest.mark.parametrize(("site_id", "currency"), [("MLB", "BRL"), ("MLA", "ARS"), ("MLM", "MXN")])
async def test_each_site_has_its_currency(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient, site_id: str, currency: str
) -> None:
    order = sandbox.create_order([ItemSpec("Item", Decimal("1500"))], site_id=site_id)
    body = (await api.get(f"/orders/{order.id}")).json()
    assert body["currency_id"] == currency and body["context"]["site"] == site_id
    assert body["order_items"][0]["item"]["id"].startswith(site_id)
    assert body["total_amount"] == 1500 and isinstance(body["total_amount"], int)


async def test_buyer_data_is_hidden_until_payment(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT], status="payment_required", logistic_type="custom")
    body = (await api.get(f"/orders/{order.id}")).json()
    assert set(body["buyer"]) == {"id", "nickname"}
    assert body["payments"] == [] and body["paid_amount"] == 0 and body["date_closed"] is None
    assert "not_paid" in body["tags"]
    billing = (await api.get(f"/orders/{order.id}/billing_info", headers={"x-version": "2"})).json()
    assert billing["buyer"]["billing_info"] == {}
    shipment = (await api.get(f"/shipments/{order.shipment_id}", headers={"x-format-new": "true"})).json()
    assert shipment["status"] == "pending"
    assert shipment["destination"]["receiver_name"] is None
    assert shipment["destination"]["shipping_address"]["street_name"] is None

    sandbox.pay(order.id)
    paid = (await api.get(f"/orders/{order.id}")).json()
    assert paid["status"] == "paid" and paid["paid_amount"] == 99.8
    assert paid["buyer"]["first_name"] and paid["buyer"]["last_name"]
    assert paid["buyer"]["email"].endswith("@mail.mercadolivre.com")
    billing = (await api.get(f"/orders/{order.id}/billing_info", headers={"x-version": "2"})).json()
    assert billing["buyer"]["billing_info"]["identification"]["type"] == "CPF"
    legacy_billing = (await api.get(f"/orders/{order.id}/billing_info")).json()
    assert {"type": "DOC_TYPE", "value": "CPF"} in legacy_billing["billing_info"]["additional_info"]
    shipment = (await api.get(f"/shipments/{order.shipment_id}", headers={"x-format-new": "true"})).json()
    assert shipment["destination"]["receiver_name"] == f"{paid['buyer']['first_name']} {paid['buyer']['last_name']}"
    assert shipment["destination"]["shipping_address"]["zip_code"] == "01310100"
    # Only custom shipping shows the receiver's phone.
    assert shipment["destination"]["receiver_phone"]


async def test_cancel_refunds_and_cancels_the_shipment(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT])
    sandbox.cancel(order.id)
    body = (await api.get(f"/orders/{order.id}")).json()
    assert body["status"] == "cancelled" and body["cancel_detail"]["requested_by"] == "buyer"
    assert body["payments"][0]["status"] == "refunded"
    shipment = (await api.get(f"/shipments/{order.shipment_id}", headers={"x-format-new": "true"})).json()
    assert shipment["status"] == "cancelled"


async def test_partial_refund_and_other_statuses(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT])
    sandbox.refund(order.id, "20.00")
    body = (await api.get(f"/orders/{order.id}")).json()
    assert body["status"] == "partially_refunded"
    assert body["payments"][0]["transaction_amount_refunded"] == 20
    sandbox.set_order_status(order.id, "pending_cancel")
    assert (await api.get(f"/orders/{order.id}")).json()["status"] == "pending_cancel"
    for status in ("confirmed", "payment_in_process", "partially_paid"):
        created = sandbox.create_order([SHIRT], status=status)
        assert (await api.get(f"/orders/{created.id}")).json()["status"] == status


async def test_an_unknown_order_is_404_in_mercado_libres_shape(api: httpx.AsyncClient) -> None:
    assert_ml_error(await api.get("/orders/2000000000000001"), 404, "not_found")
    assert_ml_error(await api.get("/orders/abc"), 404)
    assert_ml_error(await api.get("/nothing/here"), 404)


# -- order search ------------------------------------------------------------------------------------------------


async def test_search_pages_by_offset_and_caps_the_limit(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    created = [sandbox.create_order([SHIRT]).id for _ in range(55)]
    seen: list[int] = []
    offset = 0
    while True:
        page = (
            await api.get(
                "/orders/search",
                params={"seller": sandbox.seller_id, "sort": "date_asc", "offset": offset, "limit": 100},
            )
        ).json()
        assert set(page) >= {"results", "paging", "sort", "query"}
        assert page["paging"]["total"] == 55
        # Mercado Libre's pages are smaller than asked: paging.limit says how many.
        assert page["paging"]["limit"] == 51
        seen.extend(order["id"] for order in page["results"])
        offset += len(page["results"])
        if not page["results"] or offset >= page["paging"]["total"]:
            break
    assert seen == created
    newest_first = (
        await api.get("/orders/search", params={"seller": sandbox.seller_id, "sort": "date_desc", "limit": 3})
    ).json()
    assert [order["id"] for order in newest_first["results"]] == created[::-1][:3]


async def test_search_filters_by_last_update(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient, clock: Clock
) -> None:
    old = sandbox.create_order([SHIRT], status="payment_required")
    clock.now += 3600
    recent = sandbox.create_order([SHIRT])
    since = "2025-06-15T16:00:00.000-00:00"  # between the two (clock starts at 2025-06-15T15:06:40Z)
    params = {"seller": str(sandbox.seller_id), "order.date_last_updated.from": since}
    found = (await api.get("/orders/search", params=params)).json()
    assert [order["id"] for order in found["results"]] == [recent.id]
    # Paying the old order moves its last update into the window; the search still sorts by creation.
    sandbox.pay(old.id)
    found = (await api.get("/orders/search", params=params)).json()
    assert [order["id"] for order in found["results"]] == [old.id, recent.id]
    bounded = {**params, "order.date_last_updated.to": "2025-06-15T16:00:00.000-00:00"}
    assert (await api.get("/orders/search", params=bounded)).json()["results"] == []
    by_status = {"seller": str(sandbox.seller_id), "order.status": "paid"}
    assert (await api.get("/orders/search", params=by_status)).json()["paging"]["total"] == 2


async def test_search_refuses_a_date_without_offset_and_another_seller(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    no_offset = {"seller": str(sandbox.seller_id), "order.date_last_updated.from": "2025-06-15T16:00:00"}
    assert_ml_error(await api.get("/orders/search", params=no_offset), 400)
    assert_ml_error(await api.get("/orders/search", params={"seller": "1"}), 403)
    assert_ml_error(await api.get("/orders/search"), 400)
    assert_ml_error(await api.get("/orders/search", params={"seller": str(sandbox.seller_id), "sort": "price"}), 400)


async def test_search_shows_a_change_only_once_indexed(clock: Clock) -> None:
    sandbox = make_sandbox(clock, search_index_delay_seconds=30)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        http.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
        order = sandbox.create_order([SHIRT])
        params = {"seller": str(sandbox.seller_id)}
        assert (await http.get("/orders/search", params=params)).json()["paging"]["total"] == 0
        assert (await http.get(f"/orders/{order.id}")).status_code == 200  # the order itself is there
        clock.now += 30
        assert (await http.get("/orders/search", params=params)).json()["paging"]["total"] == 1


# -- packs -------------------------------------------------------------------------------------------------------


async def test_a_pack_holds_its_orders_and_one_shipment(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    pack = sandbox.create_pack([[SHIRT], [BOTTLE]], shipping_cost="15.00")
    body = (await api.get(f"/packs/{pack.id}")).json()
    assert set(body) == {
        "id",
        "status",
        "status_detail",
        "date_created",
        "last_updated",
        "family_pack_id",
        "buyer",
        "shipment",
        "orders",
    }
    assert body["status"] == "released" and body["family_pack_id"] is None
    assert [o["id"] for o in body["orders"]] == pack.order_ids and len(pack.order_ids) == 2
    orders = [(await api.get(f"/orders/{order_id}")).json() for order_id in pack.order_ids]
    assert {o["pack_id"] for o in orders} == {pack.id}
    assert {o["shipping"]["id"] for o in orders} == {body["shipment"]["id"]}
    assert {o["buyer"]["id"] for o in orders} == {body["buyer"]["id"]}
    assert all("pack_order" in o["tags"] for o in orders)
    # The cart's freight is paid once.
    assert sum(Decimal(str(o["payments"][0]["shipping_cost"])) for o in orders) == Decimal("15")
    items = (await api.get(f"/shipments/{body['shipment']['id']}/items")).json()
    assert sorted({item["order_id"] for item in items}) == sorted(pack.order_ids)


async def test_a_paid_pack_is_released_an_unpaid_one_filling(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    pack = sandbox.create_pack(2, status="payment_required")
    assert (await api.get(f"/packs/{pack.id}")).json()["status"] == "filling"
    sandbox.pay(pack.order_ids[0])
    assert (await api.get(f"/packs/{pack.id}")).json()["status"] == "filling"
    sandbox.pay_pack(pack.id)
    assert (await api.get(f"/packs/{pack.id}")).json()["status"] == "released"


async def test_split_pack_makes_child_packs_with_family_pack_id(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    pack = sandbox.create_pack(3)
    parent_shipment = sandbox.pack(pack.id).shipment_id
    first, second, third = pack.order_ids
    children = sandbox.split_pack(pack.id, [[first, second], [third]])
    assert_ml_error(await api.get(f"/packs/{pack.id}"), 404)
    bodies = [(await api.get(f"/packs/{child.id}")).json() for child in children]
    assert [b["family_pack_id"] for b in bodies] == [pack.id, pack.id]
    assert [[o["id"] for o in b["orders"]] for b in bodies] == [[first, second], [third]]
    shipments = {b["shipment"]["id"] for b in bodies}
    assert len(shipments) == 2 and parent_shipment not in shipments
    third_order = (await api.get(f"/orders/{third}")).json()
    assert third_order["pack_id"] == children[1].id and third_order["shipping"]["id"] == bodies[1]["shipment"]["id"]
    assert "pack_order" not in third_order["tags"]
    old = (await api.get(f"/shipments/{parent_shipment}", headers={"x-format-new": "true"})).json()
    assert old["status"] == "cancelled"


async def test_a_pack_id_can_change(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    pack = sandbox.create_pack(2)
    old_id = pack.id
    moved = sandbox.change_pack_id(old_id)
    assert moved.id != old_id
    assert_ml_error(await api.get(f"/packs/{old_id}"), 404)
    assert (await api.get(f"/packs/{moved.id}")).json()["orders"] == [{"id": i} for i in moved.order_ids]
    assert {(await api.get(f"/orders/{i}")).json()["pack_id"] for i in moved.order_ids} == {moved.id}


async def test_a_single_order_may_have_no_pack(clock: Clock) -> None:
    sandbox = make_sandbox(clock, pack_single_orders=False)
    order = sandbox.create_order([SHIRT])
    assert sandbox.order_json(order.id)["pack_id"] is None


# -- shipments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logistic_type", "mode", "type_"),
    [
        ("fulfillment", "me2", "fulfillment"),
        ("cross_docking", "me2", "cross_docking"),
        ("drop_off", "me2", "drop_off"),
        ("xd_drop_off", "me2", "xd_drop_off"),
        ("xd_same_day", "me2", "xd_same_day"),
        ("self_service", "me2", "self_service"),
        ("me1", "me1", "default"),
        ("custom", "custom", "custom"),
    ],
)
async def test_the_new_shipment_format_names_the_logistic(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient, logistic_type: str, mode: str, type_: str
) -> None:
    order = sandbox.create_order([SHIRT], site_id="MLA", logistic_type=logistic_type)
    response = await api.get(f"/shipments/{order.shipment_id}", headers={"x-format-new": "true"})
    body = response.json()
    assert body["logistic"] == {"direction": "forward", "mode": mode, "type": type_}
    for name in ("id", "status", "substatus", "origin", "destination", "lead_time", "source", "tracking_number"):
        assert name in body
    assert body["source"]["site_id"] == "MLA"
    assert ML_DATE.fullmatch(body["lead_time"]["estimated_delivery_time"]["date"])
    assert set(body["destination"]["shipping_address"]) >= {"street_name", "zip_code", "city", "state", "country"}


async def test_without_the_header_the_shipment_has_the_older_shape(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT], logistic_type="me1")
    legacy = (await api.get(f"/shipments/{order.shipment_id}")).json()
    assert legacy["mode"] == "me1" and "logistic" not in legacy and "receiver_address" in legacy
    assert legacy["order_id"] == order.id
    assert (await api.get(f"/orders/{order.id}/shipments")).json()["id"] == order.shipment_id


async def test_an_order_without_shipping_has_no_shipment(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT], logistic_type=None)
    assert (await api.get(f"/orders/{order.id}")).json()["shipping"] == {"id": None}


# -- claims ------------------------------------------------------------------------------------------------------


async def test_a_claim_has_the_documented_shape(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT])
    claim = sandbox.open_claim(order.id, type="cancel_purchase", reason_id="PDD9939", related_entities=["return"])
    body = (await api.get(f"/post-purchase/v1/claims/{claim.id}")).json()
    assert body["resource"] == "order" and body["resource_id"] == order.id
    assert (body["type"], body["stage"], body["status"], body["reason_id"]) == (
        "cancel_purchase",
        "claim",
        "opened",
        "PDD9939",
    )
    assert body["related_entities"] == ["return"]
    assert [p["role"] for p in body["players"]] == ["complainant", "respondent"]
    sandbox.update_claim(claim.id, stage="dispute", close_reason="payment_refunded")
    closed = (await api.get(f"/post-purchase/v1/claims/{claim.id}")).json()
    assert closed["status"] == "closed" and closed["resolution"]["reason"] == "payment_refunded"
    assert "mediator" in [p["role"] for p in closed["players"]]
    missing = assert_ml_error(await api.get("/post-purchase/v1/claims/1"), 404)
    assert missing["error"] == "business_logic_error"


# -- notifications -----------------------------------------------------------------------------------------------


async def test_changes_notify_the_callback_with_mercado_libres_body(clock: Clock) -> None:
    receiver = Receiver()
    sandbox = make_sandbox(clock, receiver)
    order = sandbox.create_order([SHIRT], status="payment_required")
    sandbox.pay(order.id)
    claim = sandbox.open_claim(order.id)
    sandbox.cancel(order.id)
    await sandbox.drain()
    topics = [(body["topic"], body["resource"]) for body in receiver.bodies]
    assert topics.count(("orders_v2", f"/orders/{order.id}")) == 3  # created, paid, cancelled
    assert ("claims", f"/post-purchase/v1/claims/{claim.id}") in topics
    assert ("shipments", f"/shipments/{order.shipment_id}") in topics
    body = receiver.bodies[0]
    assert set(body) == {"_id", "resource", "user_id", "topic", "application_id", "attempts", "sent", "received"}
    assert body["user_id"] == sandbox.seller_id and body["application_id"] == sandbox.application_id
    assert body["attempts"] == 1 and UTC_STAMP.fullmatch(body["sent"]) and UTC_STAMP.fullmatch(body["received"])


async def test_a_notification_is_retried_until_the_receiver_answers_200(clock: Clock) -> None:
    # 500, then 204 (not 200: Mercado Libre expects 200), then 200.
    receiver = Receiver(statuses=[500, 204])
    sandbox = make_sandbox(clock, receiver)
    sandbox.create_order([SHIRT])
    await sandbox.drain()
    assert [body["attempts"] for body in receiver.bodies] == [1, 2, 3]
    assert len({body["_id"] for body in receiver.bodies}) == 1
    assert len({body["received"] for body in receiver.bodies}) == 1
    (notification,) = sandbox.notifications
    assert notification.delivered and [a.status for a in notification.attempts] == [500, 204, 200]


async def test_an_answer_slower_than_the_timeout_is_a_failure(clock: Clock) -> None:
    receiver = Receiver(delay=0.2)
    sandbox = make_sandbox(clock, receiver, answer_timeout_seconds=0.05, retry_delays=(0.01,))
    sandbox.create_order([SHIRT])
    await sandbox.drain()
    (notification,) = sandbox.notifications
    assert not notification.delivered and len(notification.attempts) == 2
    assert all(a.error and "no answer" in a.error for a in notification.attempts)


async def test_undelivered_notifications_are_listed_in_missed_feeds(clock: Clock) -> None:
    receiver = Receiver(statuses=[503, 503, 503, 503])
    sandbox = make_sandbox(clock, receiver)
    order = sandbox.create_order([SHIRT])
    await sandbox.drain()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        http.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
        missed = (await http.get("/missed_feeds", params={"app_id": sandbox.application_id})).json()
        assert missed["total"] == 1
        (message,) = missed["messages"]
        assert message["resource"] == f"/orders/{order.id}" and message["response"]["http_code"] == 503
        assert_ml_error(await http.get("/missed_feeds"), 400)


async def test_notifications_are_sometimes_delivered_twice(clock: Clock) -> None:
    receiver = Receiver()
    sandbox = make_sandbox(clock, receiver, duplicate_probability=1.0)
    order = sandbox.create_order([SHIRT])
    sandbox.notify_order(order.id, times=2)
    await sandbox.drain()
    resources = [body["resource"] for body in receiver.bodies]
    assert resources == [f"/orders/{order.id}"] * len(resources) and len(resources) == 5
    assert len({body["_id"] for body in receiver.bodies}) == 5


async def test_claims_can_use_the_post_purchase_topic_model(clock: Clock) -> None:
    receiver = Receiver()
    sandbox = make_sandbox(clock, receiver, claims_topic="post_purchase")
    order = sandbox.create_order([SHIRT], notify=False)
    claim = sandbox.open_claim(order.id)
    await sandbox.drain()
    (body,) = receiver.bodies
    assert body["topic"] == "post_purchase" and body["actions"] == ["claims"]
    assert body["resource"] == f"/post-purchase/v1/claims/{claim.id}" and "id" in body and "_id" not in body


async def test_notifications_reach_a_real_http_receiver(clock: Clock) -> None:
    """The default sender over a real socket (uvicorn), as `make run` uses it."""
    receiver = Receiver()
    config = uvicorn.Config(receiver.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        sandbox = make_sandbox(clock)
        sandbox.callback_url = f"http://127.0.0.1:{port}/notifications"
        order = sandbox.create_order([SHIRT])
        await sandbox.drain()
        assert [body["resource"] for body in receiver.bodies] == [f"/orders/{order.id}"]
        assert sandbox.notifications[0].delivered
    finally:
        server.should_exit = True
        await task


# -- seller-side endpoints ---------------------------------------------------------------------------------------

ME1_SHIPPED = {
    "payload": {"service_id": 154, "comment": "despachado", "date": "2023-01-16T13:03:51.175-04:00"},
    "tracking_number": "OP123456789AR",
    "tracking_url": "http://www.url.test/40886674732",
    "status": "shipped",
    "substatus": "null",
}


async def test_seller_notifications_store_me1_tracking(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT], site_id="MLA", logistic_type="me1")
    response = await api.post(f"/shipments/{order.shipment_id}/seller_notifications", json=ME1_SHIPPED)
    assert response.status_code == 200 and response.json() == {"status": "OK"}
    (sent,) = sandbox.seller_notifications
    assert sent.shipment_id == order.shipment_id and sent.body == ME1_SHIPPED
    shipment = (await api.get(f"/shipments/{order.shipment_id}", headers={"x-format-new": "true"})).json()
    assert (shipment["status"], shipment["tracking_number"]) == ("shipped", "OP123456789AR")
    lost = {"status": "not_delivered", "substatus": "returning_to_sender"}
    assert (await api.post(f"/shipments/{order.shipment_id}/seller_notifications", json=lost)).status_code == 200
    # not_delivered is final.
    again = await api.post(f"/shipments/{order.shipment_id}/seller_notifications", json=ME1_SHIPPED)
    assert_ml_error(again, 400)


async def test_seller_notifications_refuse_mercado_envios_2(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT], logistic_type="cross_docking")
    response = await api.post(f"/shipments/{order.shipment_id}/seller_notifications", json=ME1_SHIPPED)
    assert_ml_error(response, 400)
    assert sandbox.seller_notifications == []


async def test_fiscal_documents_upload_outside_brazil(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    pack = sandbox.create_pack(2, site_id="MLA")
    files = [
        ("fiscal_document", ("factura.pdf", b"%PDF-1.4 factura", "application/pdf")),
        ("fiscal_document", ("factura.xml", b"<factura/>", "application/xml")),
    ]
    response = await api.post(f"/packs/{pack.id}/fiscal_documents", files=files)
    assert response.status_code == 200, response.text
    ids = response.json()["ids"]
    assert len(ids) == 2 and all(i.startswith(f"{sandbox.seller_id}_") for i in ids)
    stored = sandbox.fiscal_documents
    assert [(d.filename, d.content) for d in stored] == [
        ("factura.pdf", b"%PDF-1.4 factura"),
        ("factura.xml", b"<factura/>"),
    ]
    # One fiscal document per pack.
    again = await api.post(f"/packs/{pack.id}/fiscal_documents", files=files[:1])
    assert again.status_code == 409


async def test_fiscal_documents_are_refused_in_brazil_and_when_too_big(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    brazil = sandbox.create_pack(2, site_id="MLB")
    pdf = {"fiscal_document": ("nf.pdf", b"%PDF-1.4", "application/pdf")}
    assert_ml_error(await api.post(f"/packs/{brazil.id}/fiscal_documents", files=pdf), 400)
    mexico = sandbox.create_pack(2, site_id="MLM")
    big = {"fiscal_document": ("big.pdf", b"0" * (1024 * 1024 + 1), "application/pdf")}
    assert_ml_error(await api.post(f"/packs/{mexico.id}/fiscal_documents", files=big), 400)
    text = {"fiscal_document": ("nf.txt", b"text", "text/plain")}
    assert_ml_error(await api.post(f"/packs/{mexico.id}/fiscal_documents", files=text), 400)
    assert sandbox.fiscal_documents == []


async def test_an_order_without_pack_takes_the_fiscal_document_under_its_own_id(clock: Clock) -> None:
    sandbox = make_sandbox(clock, pack_single_orders=False)
    order = sandbox.create_order([SHIRT], site_id="MLC")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        http.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
        pdf = {"fiscal_document": ("boleta.pdf", b"%PDF-1.4", "application/pdf")}
        response = await http.post(f"/packs/{order.id}/fiscal_documents", files=pdf)
    assert response.status_code == 200
    assert sandbox.fiscal_documents[0].pack_id == order.id


async def test_the_faturador_issues_the_nfe_of_a_brazilian_full_cart(clock: Clock) -> None:
    receiver = Receiver()
    sandbox = make_sandbox(clock, receiver, invoice_delay_seconds=0.01)
    pack = sandbox.create_pack(2, logistic_type="fulfillment", status="payment_required")
    shipment_id = sandbox.pack(pack.id).shipment_id
    sandbox.pay_pack(pack.id)
    assert sandbox.shipments[shipment_id or 0].substatus == "invoice_pending"
    await sandbox.drain()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as http:
        http.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
        first, second = pack.order_ids
        invoice = decimals(await http.get(f"/users/{sandbox.seller_id}/invoices/orders/{first}"))
        assert invoice == decimals(await http.get(f"/users/{sandbox.seller_id}/invoices/orders/{second}"))
        key = invoice["attributes"]["invoice_key"]
        assert invoice["orders"] == [first, second] and len(key) == 44
        xml = await http.get(invoice["attributes"]["xml_location"])
        assert xml.headers["content-type"].startswith("application/xml") and key in xml.text
        shipment = (await http.get(f"/shipments/{shipment_id}", headers={"x-format-new": "true"})).json()
    assert (shipment["status"], shipment["substatus"]) == ("ready_to_ship", "in_warehouse")
    assert "invoices" in {body["topic"] for body in receiver.bodies}


# -- NF-e import (Brazil) ----------------------------------------------------------------------------------------


def sellers_nfe(sandbox: MercadoLibreSandbox, number: int, *, authorized: bool = True) -> tuple[str, bytes]:
    """An NF-e the seller's ERP issued: its access key and XML (an nfeProc, or the bare NFe SEFAZ never
    authorized)."""
    issued = datetime.now(UTC)
    key = nfe_key("35", issued, sandbox.seller_id, 1, number)
    xml = nfe_xml(key, number, 1, "99.80", issued)
    if not authorized:
        xml = xml[xml.index("<NFe>") : xml.index("<protNFe>")].replace("<NFe>", f'<NFe xmlns="{NFE_NS}">')
    return key, xml.encode()


NFE_NS = "http://www.portalfiscal.inf.br/nfe"
XML = {"Content-Type": "application/xml"}


def invoice_data(shipment_id: int | None, site: str | None = "MLB") -> str:
    return f"/shipments/{shipment_id}/invoice_data" + (f"?siteId={site}" if site else "")


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The refusal's message, once its status and code (in `error` or in a cause) are checked."""
    body = assert_ml_error_shape(response, status)
    assert code in (body["error"], *(cause["code"] for cause in body["cause"])), body
    return str(body["message"])


def assert_ml_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "error", "status", "cause"} and body["status"] == status
    return body


def held_key(body: dict[str, Any]) -> str:
    return str(body.get("fiscal_key") or body.get("invoice_key"))


@pytest.mark.parametrize("logistic_type", ["cross_docking", "drop_off", "xd_drop_off", "xd_same_day"])
async def test_a_brazilian_carrier_shipment_waits_for_the_sellers_nfe(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient, logistic_type: str
) -> None:
    order = sandbox.create_order([SHIRT], logistic_type=logistic_type, status="payment_required")
    shipment = f"/shipments/{order.shipment_id}"
    sandbox.pay(order.id)
    before = (await api.get(shipment, headers={"x-format-new": "true"})).json()
    assert (before["status"], before["substatus"]) == ("ready_to_ship", "invoice_pending")
    key, xml = sellers_nfe(sandbox, 501)
    notified = len(sandbox.notifications)
    imported = await api.post(invoice_data(order.shipment_id), content=xml, headers=XML)
    assert imported.status_code == 200, imported.text
    assert held_key(imported.json()) == key and imported.json()["status"] == "approved"
    after = (await api.get(shipment, headers={"x-format-new": "true"})).json()
    assert (after["status"], after["substatus"]) == ("ready_to_ship", "ready_to_print")
    assert [n.resource for n in sandbox.notifications[notified:]] == [shipment]
    held = await api.get(invoice_data(order.shipment_id))
    assert held.status_code == 200 and held.json() == imported.json()
    assert sandbox.imported_nfe[order.shipment_id or 0].xml == xml
    listed = (await api.get("/_sandbox/imported-nfe")).json()
    assert [(n["shipment_id"], n["key"]) for n in listed] == [(order.shipment_id, key)]
    # Outside Brazil, and for Flex in Brazil, the label is there at once.
    for site_id, kind in (("MLA", logistic_type), ("MLB", "self_service")):
        other = sandbox.shipments[sandbox.create_order([SHIRT], site_id=site_id, logistic_type=kind).shipment_id or 0]
        assert (other.status, other.substatus) == ("ready_to_ship", "printed")


@pytest.mark.parametrize("code_in", ["error", "cause"])
async def test_the_nfe_import_refuses_as_mercado_libre_does(clock: Clock, code_in: str) -> None:
    sandbox = make_sandbox(clock, nfe_error_code_in=code_in)
    waiting, other = sandbox.create_order([SHIRT]), sandbox.create_order([BOTTLE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as api:
        api.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
        key, xml = sellers_nfe(sandbox, 601)
        target = invoice_data(waiting.shipment_id)
        for site in (None, "MLA"):
            answer = await api.post(invoice_data(waiting.shipment_id, site), content=xml, headers=XML)
            assert "MLB" in refused(answer, 400, "invalid_operation_for_site_id")
        as_json = await api.post(target, content=xml, headers={"Content-Type": "application/json"})
        refused(as_json, 415, "unsupported_media_type")
        refused(await api.post(target, content=b"NF 601", headers=XML), 400, "error_parse_invoice_data")
        refused(await api.post(target, content=b"<nfeProc/>", headers=XML), 400, "invalid_parameter")
        _, bare = sellers_nfe(sandbox, 602, authorized=False)
        assert "autorizada" in refused(await api.post(target, content=bare, headers=XML), 400, "invalid_nfe_cstat")
        batch = b"<lote>" + bare + sellers_nfe(sandbox, 603, authorized=False)[1] + b"</lote>"
        refused(await api.post(target, content=batch, headers=XML), 400, "batch_nfe_not_supported")
        assert sandbox.imported_nfe == {} and sandbox.shipments[waiting.shipment_id or 0].substatus == "invoice_pending"

        text_xml = {"Content-Type": "text/xml; charset=utf-8"}
        assert (await api.post(target + "&x=1", content=xml, headers=text_xml)).status_code == 200
        refused(await api.post(target, content=xml, headers=XML), 400, "duplicated_fiscal_key")  # sent twice
        elsewhere = invoice_data(other.shipment_id)
        refused(await api.post(elsewhere, content=xml, headers=XML), 400, "duplicated_fiscal_key")
        second_key, second = sellers_nfe(sandbox, 604)
        refused(await api.post(target, content=second, headers=XML), 400, "shipment_invoice_already_saved")

        flex = sandbox.create_order([SHIRT], logistic_type="self_service")
        answer = await api.post(invoice_data(flex.shipment_id), content=second, headers=XML)
        assert "self_service" in refused(answer, 400, "invalid_shipment")
        unpaid = sandbox.create_order([SHIRT], status="payment_required")
        answer = await api.post(invoice_data(unpaid.shipment_id), content=second, headers=XML)
        assert "pending/None" in refused(answer, 400, "invalid_shipment")

        refused(await api.get(elsewhere), 404, "not_found_shipment_invoice")
        refused(await api.put(elsewhere, content=second, headers=XML), 404, "not_found_shipment_invoice")
        # PUT replaces what a shipment holds (the path with a trailing slash, as some integrators write it).
        slash = f"/shipments/{waiting.shipment_id}/invoice_data/?siteId=MLB"
        assert (await api.put(slash, content=second, headers=XML)).status_code == 200
        assert held_key((await api.get(target)).json()) == second_key != key
        assert sandbox.shipments[waiting.shipment_id or 0].substatus == "ready_to_print"


async def test_faults_apply_to_the_nfe_import(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT])
    _, xml = sellers_nfe(sandbox, 701)
    sandbox.add_fault(FaultRule("POST", "/invoice_data", 503))
    assert_ml_error(await api.post(invoice_data(order.shipment_id), content=xml, headers=XML), 503)
    assert sandbox.imported_nfe == {}
    sandbox.add_fault(FaultRule("POST", "/invoice_data", 502, after_effect=True))
    assert_ml_error(await api.post(invoice_data(order.shipment_id), content=xml, headers=XML), 502)
    assert list(sandbox.imported_nfe) == [order.shipment_id]  # imported; only the answer was lost


async def test_the_invoice_data_shape_is_drawn_per_sandbox(clock: Clock) -> None:
    drawn = {seed: make_sandbox(clock, seed=seed) for seed in range(8)}
    assert {(s.invoice_data_key_field, s.nfe_error_code_in) for s in drawn.values()} == {
        (field, place) for field in ("fiscal_key", "invoice_key") for place in ("error", "cause")
    }
    assert make_sandbox(clock, seed=3).invoice_data_key_field == drawn[3].invoice_data_key_field
    for key_field, id_field in (("fiscal_key", "id"), ("invoice_key", "invoice_id")):
        sandbox = make_sandbox(clock, invoice_data_key_field=key_field)
        order = sandbox.create_order([SHIRT])
        key, xml = sellers_nfe(sandbox, 801)
        sandbox.import_nfe(order.shipment_id or 0, xml)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE_URL) as api:
            api.headers["Authorization"] = f"Bearer {sandbox.connect()['access_token']}"
            body = (await api.get(invoice_data(order.shipment_id))).json()
        assert body[key_field] == key and isinstance(body[id_field], int)
        assert (body["invoice_number"], body["invoice_amount"], body["status"]) == ("801", 99.8, "approved")


async def test_an_nfe_the_faturador_issues_unlocks_a_carrier_shipment_too(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT], logistic_type="cross_docking")
    invoice = sandbox.issue_invoice(order.id)  # the seller had Mercado Libre's Faturador issue it
    shipment = sandbox.shipments[order.shipment_id or 0]
    assert (shipment.status, shipment.substatus) == ("ready_to_ship", "ready_to_print")
    assert held_key((await api.get(invoice_data(order.shipment_id))).json()) == invoice.key


# -- faults ------------------------------------------------------------------------------------------------------


async def test_an_injected_429_carries_mercado_libres_body_and_an_optional_retry_after(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT])
    sandbox.add_fault(FaultRule("GET", "/orders/", 429, retry_after=3))
    limited = await api.get(f"/orders/{order.id}")
    assert assert_ml_error(limited, 429, "too_many_requests")["message"] == "Too Many Requests"
    assert limited.headers["Retry-After"] == "3"
    assert (await api.get(f"/orders/{order.id}")).status_code == 200  # times=1: spent
    # Mercado Libre documents no Retry-After: without one in the rule there is none.
    sandbox.add_fault(FaultRule(None, "/packs/", 429, times=2))
    for _ in range(2):
        response = await api.get("/packs/1")
        assert response.status_code == 429 and "Retry-After" not in response.headers
    assert (await api.get("/packs/1")).status_code == 404


async def test_faults_for_500_404_and_a_replaced_body(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    order = sandbox.create_order([SHIRT])
    sandbox.add_fault(FaultRule("GET", f"/orders/{order.id}", 500))
    assert_ml_error(await api.get(f"/orders/{order.id}"), 500, "internal_server_error")
    sandbox.add_fault(FaultRule("GET", "/orders/", 404, body={"message": "Order not found", "error": "not_found"}))
    assert (await api.get(f"/orders/{order.id}")).json() == {"message": "Order not found", "error": "not_found"}


async def test_an_after_effect_fault_loses_only_the_answer(
    sandbox: MercadoLibreSandbox, api: httpx.AsyncClient
) -> None:
    order = sandbox.create_order([SHIRT], site_id="MLA", logistic_type="me1")
    sandbox.add_fault(FaultRule("POST", "/seller_notifications", 502, after_effect=True))
    response = await api.post(f"/shipments/{order.shipment_id}/seller_notifications", json=ME1_SHIPPED)
    assert_ml_error(response, 502, "bad_gateway")
    assert len(sandbox.seller_notifications) == 1  # the tracking was stored


async def test_a_429_on_the_token_endpoint_is_local_rate_limited(
    sandbox: MercadoLibreSandbox, client: httpx.AsyncClient
) -> None:
    tokens = sandbox.connect()
    sandbox.add_fault(FaultRule("POST", "/oauth/token", 429))
    response = await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))
    assert response.status_code == 429 and response.json()["error"] == "local_rate_limited"
    # Refused before it reached the server: the refresh token was not spent.
    assert (await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))).status_code == 200


# -- admin API ---------------------------------------------------------------------------------------------------


async def test_the_admin_api_drives_a_sale_end_to_end(sandbox: MercadoLibreSandbox, client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/_sandbox/packs",
        json={
            "site_id": "MLA",
            "status": "payment_required",
            "logistic_type": "me1",
            "orders": [
                {"items": [{"title": "Remera", "unit_price": "15000.50", "quantity": 2, "seller_sku": "1"}]},
                {"items": [{"title": "Botella", "unit_price": "8000", "seller_sku": "8"}]},
            ],
        },
    )
    assert created.status_code == 201, created.text
    pack = created.json()["pack"]
    first, second = (order["id"] for order in created.json()["orders"])
    assert created.json()["orders"][0]["order_items"][0]["unit_price"] == 15000.5
    assert (await client.post(f"/_sandbox/packs/{pack['id']}/pay", json={})).json()["status"] == "released"
    claim = await client.post(f"/_sandbox/orders/{first}/claims", json={"type": "return", "stage": "claim"})
    assert claim.status_code == 201 and claim.json()["resource_id"] == first
    children = (await client.post(f"/_sandbox/packs/{pack['id']}/split", json={})).json()
    assert [child["family_pack_id"] for child in children] == [pack["id"], pack["id"]]
    moved = (await client.post(f"/_sandbox/packs/{children[0]['id']}/change-id", json={})).json()
    assert moved["orders"] == [{"id": first}]
    cancelled = (await client.post(f"/_sandbox/orders/{second}/cancel", json={})).json()
    assert cancelled["status"] == "cancelled"
    detail = (await client.get(f"/_sandbox/orders/{first}")).json()
    assert detail["pack"]["id"] == moved["id"] and detail["shipment"]["logistic"]["mode"] == "me1"

    tokens = (await client.post("/_sandbox/oauth/connect")).json()
    client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    shipment_id = detail["shipment"]["id"]
    assert (await client.post(f"/shipments/{shipment_id}/seller_notifications", json=ME1_SHIPPED)).status_code == 200
    sent = (await client.get("/_sandbox/seller-notifications")).json()
    assert sent[0]["shipment_id"] == shipment_id and sent[0]["body"]["tracking_number"] == "OP123456789AR"
    recorded = (await client.get("/_sandbox/requests")).json()
    assert recorded[-1]["headers"]["authorization"] == "***"
    notifications = (await client.get("/_sandbox/notifications")).json()
    assert {n["topic"] for n in notifications} >= {"orders_v2", "claims", "shipments"}

    assert (await client.post("/_sandbox/oauth/revoke")).status_code == 204
    assert_ml_error(await client.get("/users/me"), 401)
    refused = await client.post("/oauth/token", data=refresh_form(sandbox, tokens["refresh_token"]))
    assert refused.json()["error"] == "invalid_grant"
    code = (await client.post("/_sandbox/oauth/code", json={})).json()["code"]
    assert code.startswith("TG-")
    assert (await client.get("/_sandbox/oauth")).json()["generation"] == 1


async def test_the_admin_fault_api(sandbox: MercadoLibreSandbox, api: httpx.AsyncClient) -> None:
    rule = {"method": "GET", "path_contains": "/users/me", "status": 429, "retry_after": 2, "times": 1}
    assert (await api.post("/_sandbox/faults", json=rule)).status_code == 201
    assert (await api.get("/_sandbox/faults")).json()[0]["retry_after"] == 2
    limited = await api.get("/users/me")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert (await api.get("/users/me")).status_code == 200
    assert (await api.post("/_sandbox/faults", json={"status": 500})).status_code == 400
    assert (await api.post("/_sandbox/faults", json={**rule, "bogus": 1})).status_code == 400
    assert (await api.post("/_sandbox/faults", json=rule)).status_code == 201
    assert (await api.delete("/_sandbox/faults")).status_code == 204
    assert (await api.get("/users/me")).status_code == 200


async def test_admin_refusals_and_reset(sandbox: MercadoLibreSandbox, client: httpx.AsyncClient) -> None:
    bad_site = await client.post("/_sandbox/orders", json={"site_id": "XXX"})
    assert_ml_error(bad_site, 400)
    float_price = await client.post("/_sandbox/orders", json={"items": [{"title": "x", "unit_price": 1.1}]})
    assert_ml_error(float_price, 400)
    assert_ml_error(await client.post("/_sandbox/orders/123/pay", json={}), 404)
    drawn = (await client.post("/_sandbox/orders", json={})).json()
    assert drawn["order_items"][0]["item"]["seller_sku"] in {"1", "2", "3", "8"}
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert sandbox.orders == {} and (await client.get("/_sandbox/orders")).json() == []
