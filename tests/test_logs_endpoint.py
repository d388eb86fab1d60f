"""VTEX's log contract: GET /{account}/logs/?DateAt=yyyy-mm-dd&status=..., spellings as in its guide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import httpx
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from connector.intake.logs import logs_routes, parse_statuses
from connector.store.base import OrderStore, open_store
from connector.store.models import LogStatus
from tests.test_store import ACCOUNT, message

VTEX_KEYS = [
    "id",
    "Operation",
    "Direction",
    "ContentSource",
    "ContentTransalted",
    "ContentDestination",
    "BusinessMessage",
    "Status",
]


APP_KEY, APP_TOKEN = "vtexappkey-mystore-ABCDEF", "Qm7xR2vK9pLw4sTz8nBc3yHd6fJg1eUa"
AUTHENTICATED = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}


def logs_app(store: OrderStore) -> Starlette:
    return Starlette(routes=logs_routes(store, account=ACCOUNT, credentials=(APP_KEY, APP_TOKEN)))


def authenticated(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://connector", headers=AUTHENTICATED)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    store = open_store("sqlite:///:memory:")
    for id, status in (("1", LogStatus.SUCCESS), ("2", LogStatus.ERROR), ("3", LogStatus.ALERT)):
        await store.write_log(message(id, status=status, content_translated='{"t": 1}'))
    await store.write_log(message("4", status=LogStatus.PENDING, created_at=datetime(2024, 5, 2, tzinfo=UTC)))
    async with authenticated(logs_app(store)) as http:
        yield http
    await store.aclose()


async def statuses_of(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get(f"/{ACCOUNT}/logs/?DateAt=2024-05-01&{query}")
    assert response.status_code == 200, response.text
    return [entry["Status"] for entry in response.json()["Messages"]]


async def test_messages_carry_vtex_keys_first_with_its_spelling(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/{ACCOUNT}/logs/", params={"DateAt": "2024-05-01", "status": "all"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["Messages", "Paging"]
    first = body["Messages"][0]
    assert list(first)[:8] == VTEX_KEYS
    assert first["id"] == "1"
    assert first["ContentTransalted"] == '{"t": 1}'
    assert first["Status"] == "Success"
    assert first["Code"] == "A" and first["MarketplaceOrderId"] == "1001"
    assert first["Connection"] == "reference"
    assert first["Date"] == "2024-05-01T12:00:00+00:00"


async def test_the_connection_tells_two_marketplaces_lines_for_one_order_id_apart() -> None:
    store = open_store("sqlite:///:memory:")
    # Two marketplaces that both number an order 1001.
    await store.write_log(message("ref", connection="reference"))
    await store.write_log(message("other", connection="other-marketplace", status=LogStatus.ERROR))
    async with authenticated(logs_app(store)) as http:

        async def lines(**params: str) -> list[tuple[str, str, str]]:
            response = await http.get(f"/{ACCOUNT}/logs/", params={"DateAt": "2024-05-01", **params})
            assert response.status_code == 200, response.text
            return [(m["id"], m["Connection"], m["MarketplaceOrderId"]) for m in response.json()["Messages"]]

        assert await lines() == [("other", "other-marketplace", "1001"), ("ref", "reference", "1001")]
        assert await lines(connection="reference") == [("ref", "reference", "1001")]
        assert await lines(connection="other-marketplace", status="error") == [("other", "other-marketplace", "1001")]
        assert await lines(connection="other-marketplace", status="success") == []
        assert await lines(connection="nobody") == []
        assert len(await lines(connection="")) == 2  # an empty filter, like an empty status, filters nothing
    await store.aclose()


async def test_both_paths_answer_and_the_default_is_every_status(client: httpx.AsyncClient) -> None:
    for path in (f"/{ACCOUNT}/logs", f"/{ACCOUNT}/logs/"):
        response = await client.get(path, params={"DateAt": "2024-05-01"})
        assert [m["Status"] for m in response.json()["Messages"]] == ["Success", "Error", "Alert"]
    response = await client.get(f"/{ACCOUNT}/logs/", params={"DateAt": "2024-05-02"})
    assert [m["Status"] for m in response.json()["Messages"]] == ["Pending"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=success,error", ["Success", "Error"]),
        ("status=sucess,error", ["Success", "Error"]),
        ("status=SUCCESS, Alert", ["Success", "Alert"]),
        ("status=warning", ["Alert"]),
        ("status=pending", []),
        ("status=", ["Success", "Error", "Alert"]),
        ("status=error,all", ["Success", "Error", "Alert"]),
        ("status=error&status=alert", ["Error", "Alert"]),
    ],
)
async def test_status_filter(client: httpx.AsyncClient, query: str, expected: list[str]) -> None:
    assert await statuses_of(client, query) == expected


async def test_another_account_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/another-seller/logs/", params={"DateAt": "2024-05-01"})
    assert (response.status_code, response.json()) == (404, {"error": "unknown account"})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-VTEX-API-AppKey": APP_KEY},
        {"X-VTEX-API-AppToken": APP_TOKEN},
        {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN[:-1] + "x"},
        {"X-VTEX-API-AppKey": "vtexappkey-other-ABCDEF", "X-VTEX-API-AppToken": APP_TOKEN},
        {"x-vtex-api-appkey": APP_KEY, "x-vtex-api-apptoken": ""},
    ],
    ids=["none", "key-only", "token-only", "wrong-token", "wrong-key", "empty-token"],
)
async def test_without_the_app_key_and_token_nothing_is_shown(headers: dict[str, str]) -> None:
    store = open_store("sqlite:///:memory:")
    await store.write_log(message("1"))
    transport = httpx.ASGITransport(app=logs_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://connector", headers=headers) as http:
        for account in (ACCOUNT, "another-seller"):  # no account probing either
            response = await http.get(f"/{account}/logs/", params={"DateAt": "2024-05-01"})
            assert response.status_code == 401
            assert "X-VTEX-API-AppKey and X-VTEX-API-AppToken" in response.json()["error"]
            assert APP_TOKEN not in response.text
    await store.aclose()


async def test_header_names_are_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"/{ACCOUNT}/logs/",
        params={"DateAt": "2024-05-01"},
        headers={"x-vtex-api-appkey": APP_KEY, "X-VTEX-API-APPTOKEN": APP_TOKEN},
    )
    assert response.status_code == 200


async def test_pages_walk_a_day_without_gaps_or_repeats() -> None:
    store = open_store("sqlite:///:memory:")
    # Several lines at the same instant: the order must still be stable (created_at, then id).
    for n in range(23):
        await store.write_log(message(f"line-{n:02}", created_at=datetime(2024, 5, 1, 12, n // 5, tzinfo=UTC)))
    seen: list[str] = []
    async with authenticated(logs_app(store)) as http:
        page, more = 1, True
        while more:
            response = await http.get(
                f"/{ACCOUNT}/logs/", params={"DateAt": "2024-05-01", "page": str(page), "pageSize": "5"}
            )
            assert response.status_code == 200
            body = response.json()
            assert body["Paging"]["page"] == page and body["Paging"]["pageSize"] == 5
            assert len(body["Messages"]) == (5 if page < 5 else 3)
            seen += [m["id"] for m in body["Messages"]]
            more = body["Paging"]["hasMore"]
            page += 1
        default = await http.get(f"/{ACCOUNT}/logs/", params={"DateAt": "2024-05-01"})
    assert seen == [f"line-{n:02}" for n in range(23)]
    assert default.json()["Paging"] == {"page": 1, "pageSize": 100, "hasMore": False}
    await store.aclose()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "DateAt is required"),
        ("DateAt=", "DateAt is required"),
        ("DateAt=01/05/2024", "DateAt must be a date as yyyy-mm-dd"),
        ("DateAt=20240501", "DateAt must be a date as yyyy-mm-dd"),
        ("DateAt=2024-02-30", "DateAt must be a date as yyyy-mm-dd"),
        ("DateAt=2024-05-01&status=success,bogus", "unknown status 'bogus'"),
        ("DateAt=2024-05-01&page=0", "page must be a whole number from 1"),
        ("DateAt=2024-05-01&page=-1", "page must be a whole number from 1"),
        ("DateAt=2024-05-01&page=two", "page must be a whole number from 1"),
        ("DateAt=2024-05-01&pageSize=1001", "pageSize must be a whole number from 1 to 1000"),
        ("DateAt=2024-05-01&pageSize=1.5", "pageSize must be a whole number from 1 to 1000"),
    ],
)
async def test_bad_queries_are_400_with_a_reason(client: httpx.AsyncClient, query: str, reason: str) -> None:
    response = await client.get(f"/{ACCOUNT}/logs/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == ["error"]
    assert reason in response.json()["error"]


def test_parse_statuses_serves_the_cli_too() -> None:
    assert parse_statuses("all") is None
    assert parse_statuses(" Sucess ,WARNING") == {LogStatus.SUCCESS, LogStatus.ALERT}
    with pytest.raises(ValueError, match="'nope'"):
        parse_statuses("error,nope")


QUERY_NAMES = st.sampled_from(["DateAt", "status", "page", "pageSize", "connection", "other"])
QUERY_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=15)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    account=st.sampled_from([ACCOUNT, "another-seller", "x" * 60]),
    query=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=6),
    credentials=st.sampled_from(["right", "none", "wrong"]),
)
async def test_fuzzed_log_requests_never_fail_on_our_side(
    account: str, query: list[tuple[str, str]], credentials: str
) -> None:
    """Anything asked of the endpoint gets a 200, or a 4xx with a reason; the store is only read."""
    store = open_store("sqlite:///:memory:")
    await store.write_log(message("1"))
    headers = {
        "right": AUTHENTICATED,
        "none": {},
        "wrong": {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": "W" + APP_TOKEN[1:]},
    }[credentials]
    transport = httpx.ASGITransport(app=logs_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://connector", headers=headers) as http:
        response = await http.get(f"/{account}/logs/", params=tuple(query))
    expected = {200, 400, 404} if credentials == "right" else {401}
    assert response.status_code in expected, (response.status_code, response.text)
    assert "error" in response.json() or "Messages" in response.json()
    assert [m.id for m in await store.logs(account=ACCOUNT, day=date(2024, 5, 1))] == ["1"]
    await store.aclose()
