"""Where the VTEX docs leave room, the sandbox varies: the OMS id's seller suffix, OMS visibility and
List orders indexing lag. Plus List orders itself, and Authorize dispatch on canceled orders."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sandboxes.vtex import ORDER_ID_SUFFIXES, VtexSandbox
from sandboxes.vtex_callbacks import client_sender

from tests.contract.openapi import validate_request
from tests.test_vtex_sandbox import (
    HEADERS,
    ORDER,
    PLACE,
    QUERY,
    _escape,
    assert_matches_spec,
    assert_vtex_error,
    make_sandbox,
)

OMS_ORDERS = "/api/oms/pvt/orders"
# ListOrders answers `application/json; charset=utf-8` in the spec.
LIST_ANSWER = (
    f"/paths/{_escape(OMS_ORDERS)}/get/responses/200/content/{_escape('application/json; charset=utf-8')}/schema"
)
ENDPOINT = "http://marketplace.test/vtex"


class Clock:
    """A sandbox clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def http_for(sandbox: VtexSandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex", headers=HEADERS)


def order(marketplace_order_id: str = "1001", **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER) | {"marketplaceOrderId": marketplace_order_id, "marketplaceServicesEndpoint": ENDPOINT}
    body.update(changes)
    return body


async def place(client: httpx.AsyncClient, body: dict[str, Any], affiliate_id: str = "MKP") -> str:
    response = await client.post(PLACE, params={**QUERY, "affiliateId": affiliate_id}, json=body)
    assert response.status_code == 200, response.text
    order_id: str = response.json()["orderId"]
    return order_id


async def authorize(client: httpx.AsyncClient, path_id: str, marketplace_order_id: str = "1001") -> httpx.Response:
    return await client.post(
        f"{PLACE}/{path_id}/fulfill", params=QUERY, json={"marketplaceOrderId": marketplace_order_id}
    )


# --- the seller suffix -----------------------------------------------------------------------------------


def test_default_suffix_is_drawn_once_per_sandbox_and_seedable() -> None:
    drawn = {VtexSandbox(seed=seed).order_id_suffix for seed in range(40)}
    assert drawn <= set(ORDER_ID_SUFFIXES) and len(drawn) > 1  # not always -01
    assert VtexSandbox(seed=7).order_id_suffix == VtexSandbox(seed=7).order_id_suffix
    assert VtexSandbox().order_id_suffix in ORDER_ID_SUFFIXES
    sandbox = VtexSandbox(seed=3)
    suffix = sandbox.order_id_suffix
    sandbox.reset()
    assert sandbox.order_id_suffix == suffix


def test_pinned_suffix_is_normalised_and_checked() -> None:
    assert VtexSandbox(order_id_suffix="02").order_id_suffix == "-02"
    assert VtexSandbox(order_id_suffix="-11").order_id_suffix == "-11"
    for bad in ("", "-1", "01-", "-001", "-00", "ab"):
        with pytest.raises(ValueError):
            VtexSandbox(order_id_suffix=bad)
    with pytest.raises(ValueError):
        VtexSandbox(oms_visibility_delay_seconds=-1)
    with pytest.raises(ValueError):
        VtexSandbox(list_index_delay_seconds=-0.1)


@pytest.mark.parametrize("suffix", ["-02", "-05"])
async def test_every_order_path_uses_the_varied_id(suffix: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=httpx_receiver_app())) as to_receiver:
        sandbox = make_sandbox(order_id_suffix=suffix, callback_sender=client_sender(to_receiver))
        async with await http_for(sandbox) as client:
            placed = await client.post(PLACE, params=QUERY, json=order())
            order_id = placed.json()["orderId"]
            # Place fulfillment order answers the OMS id (the spec's `orderId`).
            assert order_id == f"MKP-1001{suffix}"
            assert set(sandbox.orders) == {order_id}
            # Authorize dispatch: the spec's `{affiliateId}-{marketplaceOrderId}`, or the OMS id.
            assert (await authorize(client, "MKP-1001")).json()["orderId"] == order_id
            assert (await authorize(client, order_id)).status_code == 201
            assert_vtex_error(await authorize(client, "MKP-1001-01" if suffix != "-01" else "MKP-1001-09"), 404, None)

            got = await client.get(f"{OMS_ORDERS}/{order_id}")
            assert (got.status_code, got.json()["orderId"]) == (200, order_id)
            assert_vtex_error(await client.get(f"{OMS_ORDERS}/MKP-1001-01"), 404, None, "MKP-1001-01")
            by_sequence = await client.get(f"{OMS_ORDERS}/seq{got.json()['sequence']}")
            assert by_sequence.json()["orderId"] == order_id

            sale = {
                "type": "Output",
                "issuanceDate": "2024-01-31T18:25:43-05:00",
                "invoiceNumber": "NFe-1",
                "invoiceValue": 10480,
                "items": [{"id": "1", "quantity": 2, "price": 4990}],
            }
            invoiced = await client.post(f"{OMS_ORDERS}/{order_id}/invoice", json=sale)
            assert (invoiced.status_code, invoiced.json()["orderId"]) == (200, order_id)
            tracking = {"trackingNumber": "BR1", "trackingUrl": None, "courier": None, "dispatchedDate": None}
            tracked = await client.patch(f"{OMS_ORDERS}/{order_id}/invoice/NFe-1", json=tracking)
            assert (tracked.status_code, tracked.json()["orderId"]) == (200, order_id)
            back = sale | {"type": "Input", "invoiceNumber": "NFe-1-R"}
            assert (await client.post(f"{OMS_ORDERS}/{order_id}/invoice", json=back)).status_code == 200
            canceled = await client.post(f"{OMS_ORDERS}/{order_id}/cancel", json={"reason": "gone"})
            assert (canceled.status_code, canceled.json()["orderId"]) == (200, order_id)
            await sandbox.drain_callbacks()

            assert [(a.event, a.order_id, a.url, a.status) for a in sandbox.callbacks] == [
                ("invoice", order_id, f"{ENDPOINT}/pub/orders/{order_id}/invoice", 200),
                ("invoice", order_id, f"{ENDPOINT}/pub/orders/{order_id}/invoice", 200),
                ("cancel", order_id, f"{ENDPOINT}/pvt/orders/{order_id}/cancel", 200),
            ]
            assert sandbox.orders[order_id].status == "canceled"
            # A duplicate is recognised whatever the suffix.
            again = await client.post(PLACE, params=QUERY, json=order())
            assert_vtex_error(again, 400, "FMT0060")


def httpx_receiver_app() -> Any:
    """A marketplace that accepts every notification."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def test_admin_status_route_takes_the_spec_id_too() -> None:
    sandbox = make_sandbox(order_id_suffix="-04")
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        changed = await client.post("/_sandbox/orders/MKP-1001/status", json={"status": "canceled"})
        assert (changed.status_code, changed.json()["order_id"]) == (200, order_id)
        assert (await client.post("/_sandbox/orders/MKP-1001-01/status", json={"status": "x"})).status_code == 404


# --- authorize dispatch on a canceled order --------------------------------------------------------------


@pytest.mark.parametrize("status", ["canceled", "cancellation-requested"])
async def test_authorize_dispatch_refuses_a_canceled_order(status: str) -> None:
    sandbox = make_sandbox(order_id_suffix="-02")
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        assert (await client.post(f"/_sandbox/orders/{order_id}/status", json={"status": status})).status_code == 200
        for path_id in ("MKP-1001", order_id):
            refused = await authorize(client, path_id)
            assert_vtex_error(refused, 400, "FMT0056", "Incompleted orders cannot change status")
        assert sandbox.orders[order_id].status == status
        assert sandbox.orders[order_id].authorized_date is None


# --- OMS visibility lag -------------------------------------------------------------------------------------


async def test_new_order_is_unknown_to_oms_until_the_delay_passes() -> None:
    clock = Clock()
    sandbox = make_sandbox(oms_visibility_delay_seconds=0.2, clock=clock)
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        url = f"{OMS_ORDERS}/{order_id}"
        # As for an unknown order: 404 with VTEX's error body, on every OMS order route.
        assert_vtex_error(await client.get(url), 404, None, order_id)
        assert_vtex_error(await client.post(f"{url}/cancel", json={"reason": "x"}), 404, None, order_id)
        sale = {"type": "Output", "issuanceDate": "2024-01-31", "invoiceNumber": "1", "invoiceValue": 1, "items": []}
        assert_vtex_error(await client.post(f"{url}/invoice", json=sale), 404, None, order_id)
        sequence = sandbox.orders[order_id].sequence
        assert_vtex_error(await client.get(f"{OMS_ORDERS}/seq{sequence}"), 404, None)
        # The Fulfillment API has it at once: dispatch can be authorized meanwhile.
        assert (await authorize(client, "MKP-1001")).status_code == 201
        clock.now += 0.19
        assert (await client.get(url)).status_code == 404
        clock.now += 0.02
        shown = await client.get(url)
        assert (shown.status_code, shown.json()["status"]) == (200, "ready-for-handling")
        assert sandbox.orders[order_id].cancellation is None  # the early cancel never happened


async def test_default_delay_is_random_per_order_up_to_0_3_seconds_and_seedable() -> None:
    clock = Clock()
    first = VtexSandbox(seed=5, clock=clock)
    second = VtexSandbox(seed=5, clock=clock)
    for sandbox in (first, second):
        async with await http_for(sandbox) as client:
            for number in range(8):
                await place(client, order(str(number)))
    offsets = [o.oms_visible_at - clock.now for o in first.orders.values()]
    assert all(0 <= offset <= 0.3 for offset in offsets)
    assert len(set(offsets)) == len(offsets)  # drawn per order
    assert offsets == [o.oms_visible_at - clock.now for o in second.orders.values()]


async def test_visibility_lag_on_the_real_clock() -> None:
    sandbox = make_sandbox(oms_visibility_delay_seconds=0.05)
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        assert (await client.get(f"{OMS_ORDERS}/{order_id}")).status_code == 404
        await asyncio.sleep(0.06)
        assert (await client.get(f"{OMS_ORDERS}/{order_id}")).status_code == 200


async def test_zero_disables_the_visibility_lag() -> None:
    sandbox = make_sandbox(oms_visibility_delay_seconds=0, clock=Clock())
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        assert (await client.get(f"{OMS_ORDERS}/{order_id}")).status_code == 200


# --- List orders -----------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> VtexSandbox:
    return make_sandbox(order_id_suffix="-02", clock=clock, list_index_delay_seconds=0.5)


@pytest_asyncio.fixture
async def client(sandbox: VtexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with await http_for(sandbox) as http:
        yield http


async def list_orders(client: httpx.AsyncClient, sandbox: VtexSandbox, **query: str) -> dict[str, Any]:
    response = await client.get(OMS_ORDERS, params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_matches_spec("Orders API", LIST_ANSWER, body)
    sent = sandbox.requests[-1]
    assert validate_request(sent.method, sent.path, sent.query, sent.headers, sent.body, spec="Orders API") == (
        "ListOrders"
    )
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [entry["orderId"] for entry in body["list"]]


async def test_list_shows_orders_only_once_indexed(
    client: httpx.AsyncClient, sandbox: VtexSandbox, clock: Clock
) -> None:
    order_id = await place(client, order())
    assert (await client.get(f"{OMS_ORDERS}/{order_id}")).status_code == 200  # Get order is live
    empty = await list_orders(client, sandbox, q="1001")
    assert empty["list"] == [] and empty["paging"] == {"total": 0, "pages": 0, "currentPage": 1, "perPage": 15}
    clock.now += 0.5
    body = await list_orders(client, sandbox, q="1001")
    (entry,) = body["list"]
    assert {k: entry[k] for k in ("orderId", "marketPlaceOrderId", "affiliateId", "status", "origin")} == {
        "orderId": order_id,
        "marketPlaceOrderId": "1001",
        "affiliateId": "MKP",
        "status": "waiting-ffmt-authorization",
        "origin": "Fulfillment",
    }
    assert (entry["totalValue"], entry["totalItems"], entry["items"], entry["clientName"]) == (
        10480,
        2,
        None,
        "Ada Lovelace",
    )
    assert body["paging"] == {"total": 1, "pages": 1, "currentPage": 1, "perPage": 15}
    stats = body["stats"]["stats"]["totalValue"]
    assert (stats["Count"], stats["Sum"], stats["Facets"]["origin"]["Fulfillment"]["Count"]) == (1, 10480, 1)


async def test_list_index_lag_counts_from_oms_visibility(clock: Clock) -> None:
    sandbox = make_sandbox(oms_visibility_delay_seconds=0.2, list_index_delay_seconds=0.5, clock=clock)
    async with await http_for(sandbox) as client:
        order_id = await place(client, order())
        clock.now += 0.6
        assert ids(await list_orders(client, sandbox)) == []
        clock.now += 0.1
        assert ids(await list_orders(client, sandbox)) == [order_id]


async def test_full_text_search(client: httpx.AsyncClient, sandbox: VtexSandbox, clock: Clock) -> None:
    mine = await place(client, order("1001"))
    longer = await place(client, order("10011"))
    other_affiliate = await place(client, order("1001"), affiliate_id="XYZ")
    grace = order("2002")
    grace["clientProfileData"] |= {"email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper"}
    grace["clientProfileData"]["document"] = "99988877766"
    hopper = await place(client, grace)
    clock.now += 1
    # The marketplace order id is a word of the order id: 1001 does not find 10011.
    assert sorted(ids(await list_orders(client, sandbox, q="1001"))) == sorted([mine, other_affiliate])
    assert ids(await list_orders(client, sandbox, q="MKP-1001")) == [mine]
    assert ids(await list_orders(client, sandbox, q=mine.lower())) == [mine]
    assert ids(await list_orders(client, sandbox, q="10011")) == [longer]
    assert ids(await list_orders(client, sandbox, q="grace@example.com")) == [hopper]
    assert ids(await list_orders(client, sandbox, q="99988877766")) == [hopper]
    assert ids(await list_orders(client, sandbox, q="hopper")) == [hopper]
    assert ids(await list_orders(client, sandbox, q="Grace Hopper")) == [hopper]
    assert ids(await list_orders(client, sandbox, q="100")) == []
    assert ids(await list_orders(client, sandbox, q="1001", f_affiliateId="XYZ")) == [other_affiliate]
    assert len(ids(await list_orders(client, sandbox, f_affiliateId="MKP"))) == 3


async def test_status_filter_order_and_paging(client: httpx.AsyncClient, sandbox: VtexSandbox, clock: Clock) -> None:
    placed = [await place(client, order(str(number))) for number in range(1, 6)]
    await authorize(client, "MKP-1", "1")
    clock.now += 1
    newest_first = await list_orders(client, sandbox)
    assert ids(newest_first) == placed[::-1]
    ready = await list_orders(client, sandbox, f_status="ready-for-handling")
    assert ids(ready) == [placed[0]]
    both = await list_orders(client, sandbox, f_status="ready-for-handling,waiting-ffmt-authorization")
    assert len(both["list"]) == 5
    by_id = await list_orders(client, sandbox, orderBy="orderId,asc", per_page="2", page="3")
    assert ids(by_id) == [placed[4]]
    assert by_id["paging"] == {"total": 5, "pages": 3, "currentPage": 3, "perPage": 2}
    beyond = await list_orders(client, sandbox, per_page="2", page="4")
    assert beyond["list"] == [] and beyond["paging"]["total"] == 5
    stats = newest_first["stats"]["stats"]["totalItems"]
    assert (stats["Count"], stats["Sum"], stats["Mean"], stats["StdDev"]) == (5, 10, 2.0, 0.0)


@pytest.mark.parametrize(
    "query",
    [
        {"page": "0"},
        {"page": "31"},
        {"page": "two"},
        {"per_page": "101"},
        {"per_page": "0"},
        {"orderBy": "price,asc"},
        {"orderBy": "creationDate"},
    ],
)
async def test_list_refuses_what_the_spec_rules_out(client: httpx.AsyncClient, query: dict[str, str]) -> None:
    assert_vtex_error(await client.get(OMS_ORDERS, params=query), 400, None)


async def test_list_needs_the_key_pair(sandbox: VtexSandbox) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://vtex") as bare:
        assert_vtex_error(await bare.get(OMS_ORDERS), 401, "CHK003")
