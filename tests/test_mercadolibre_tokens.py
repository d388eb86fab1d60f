"""Mercado Libre's OAuth tokens in the connector's custody (connector/marketplaces/mercadolibre/tokens.py):
against the Mercado Libre sandbox over real HTTP (uvicorn on a free port) and the real store, SQLite and
PostgreSQL (CONNECTOR_TEST_POSTGRES_URL, as tests/test_store.py).

Workers are MercadoLibreTokens instances, each on a store of its own over one database, as two worker
processes would be. The connector's clock and the sandbox's move together (`Clock`): six hours on, every
access token has expired on both sides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from prometheus_client import REGISTRY
from sandboxes.mercadolibre import FaultRule, MercadoLibreSandbox

from connector.codec import SecretSealer, generated_local_key
from connector.logbook import Logbook
from connector.marketplaces.base import AuthorizationBroken, MarketplaceError
from connector.marketplaces.mercadolibre.tokens import BROKEN_MESSAGE, MercadoLibreTokens, authorization_status
from connector.store.base import OrderStore, migrate_store, open_store
from connector.store.models import LogMessage, LogStatus
from tests import test_store
from tests.test_cli import REPO, connector
from tests.test_cli_errors import one_sentence
from tests.test_mercadolibre_sandbox import Clock, make_sandbox
from tests.test_store_migrations import sync_connection

# Every store test on both backends, with test_store's fixtures.
url = test_store.url
postgres_url = test_store.postgres_url

CONNECTION = "meli"
ACCOUNT = "seller"
SIX_HOURS = 6 * 3600.0


@dataclass
class World:
    """The sandbox on a real socket, the store's URL, and every secret the connector was given or received."""

    sandbox: MercadoLibreSandbox
    base_url: str
    store_url: str
    clock: Clock
    http: httpx.AsyncClient
    key: bytes  # the payload key "k1"
    sealer: SecretSealer
    secrets: set[str] = field(default_factory=set)
    stores: list[OrderStore] = field(default_factory=list)

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now, UTC)

    def store(self) -> OrderStore:
        opened = open_store(self.store_url)
        self.stores.append(opened)
        return opened

    def worker(self, store: OrderStore | None = None, **options: Any) -> MercadoLibreTokens:
        """One worker's token source, on a store of its own unless given one."""
        store = store if store is not None else self.store()
        settings: dict[str, Any] = {
            "connection": CONNECTION,
            "client_id": self.sandbox.oauth.client_id,
            "client_secret": self.sandbox.oauth.client_secret,
            "sealer": self.sealer,
            "logbook": Logbook(store, account=ACCOUNT),
            "auth_base_url": self.base_url,
            "http": self.http,
            "clock": self.moment,
        }
        return MercadoLibreTokens(store, **(settings | options))

    def code(self) -> str:
        code = self.sandbox.issue_authorization_code()
        self.secrets.add(code)
        return code

    def later(self, seconds: float = SIX_HOURS) -> None:
        self.clock.now += seconds

    def token_requests(self) -> int:
        return sum(1 for request in self.sandbox.requests if request.path == "/oauth/token")

    async def me(self, token: str) -> int:
        """A resource call with `token`: its status."""
        response = await self.http.get(f"{self.base_url}/users/me", headers={"Authorization": f"Bearer {token}"})
        return response.status_code


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Any]:
    """Serves a sandbox on a free loopback port: `await serve(sandbox)` is its base URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(sandbox: MercadoLibreSandbox) -> str:
        config = uvicorn.Config(sandbox.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
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


async def make_world(serve: Any, store_url: str, **sandbox_options: Any) -> World:
    clock = Clock()
    clock.now = time.time()
    sandbox = make_sandbox(clock, **({"token_latency_seconds": 0.05} | sandbox_options))
    base_url = await serve(sandbox)
    world: World

    async def keep(response: httpx.Response) -> None:
        # Every token the connector receives: none may reach a log line or the store in the clear.
        if response.request.url.path == "/oauth/token" and response.status_code == 200:
            await response.aread()
            answer = response.json()
            world.secrets |= {answer["access_token"], answer["refresh_token"]}

    http = httpx.AsyncClient(event_hooks={"response": [keep]})
    key = os.urandom(32)
    world = World(
        sandbox, base_url, store_url, clock, http, key, SecretSealer({"k1": key}, "k1"), {sandbox.oauth.client_secret}
    )
    return world


@pytest_asyncio.fixture
async def world(serve: Any, url: str) -> AsyncIterator[World]:
    made = await make_world(serve, url)
    yield made
    await made.http.aclose()
    for store in made.stores:
        await store.aclose()


def broken_gauge() -> float | None:
    return REGISTRY.get_sample_value("connector_marketplace_authorization_broken", {"connection": CONNECTION})


async def alert_lines(store: OrderStore) -> list[LogMessage]:
    day = datetime.now(UTC).date()
    return await store.logs(account=ACCOUNT, day=day, statuses=[LogStatus.ALERT], connection=CONNECTION)


# -- serving and refreshing ------------------------------------------------------------------------------------


async def test_a_connected_account_is_served_the_stored_token_until_five_minutes_before_it_expires(
    world: World,
) -> None:
    worker = world.worker()
    status = await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    assert status.state == "connected" and broken_gauge() == 0
    assert status.access_expires_at is not None
    assert abs((status.access_expires_at - world.moment()).total_seconds() - SIX_HOURS) < 5
    token = await worker.access_token()
    assert await world.me(token) == 200
    assert await worker.access_token() == token
    assert world.sandbox.oauth.issued == {"authorization_code": 1, "refresh_token": 0}

    world.later(SIX_HOURS - 301)  # 5 minutes and 1 second left: still served
    assert await worker.access_token() == token
    world.later(2)  # under 5 minutes left: refreshed first
    fresh = await worker.access_token()
    assert fresh != token and await world.me(fresh) == 200
    assert world.sandbox.oauth.issued["refresh_token"] == 1


async def test_two_workers_asking_at_once_with_an_expired_token_refresh_once_and_share_it(world: World) -> None:
    first, second = world.worker(), world.worker()
    await first.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    old = await second.access_token()

    for round in range(1, 4):  # the rotated refresh token is never lost: each later refresh works
        world.later()
        tokens = await asyncio.gather(first.access_token(), second.access_token())
        assert tokens[0] == tokens[1] != old
        assert world.sandbox.oauth.issued["refresh_token"] == round
        assert world.sandbox.oauth.refused == []
        assert await world.me(tokens[0]) == 200
        old = tokens[0]
    assert broken_gauge() == 0


async def test_a_rejection_reported_while_another_worker_refreshes_never_loses_the_rotated_token(
    serve: Any, url: str
) -> None:
    world = await make_world(serve, url, token_latency_seconds=0.3)
    try:
        refreshing, rejecting = world.worker(), world.worker()
        await refreshing.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
        old = await refreshing.access_token()
        await refreshing.rejected(old)

        async def reject_meanwhile() -> None:
            await asyncio.sleep(0.1)  # the first worker's refresh is on its way to Mercado Libre
            await rejecting.rejected(old)

        fresh, _ = await asyncio.gather(refreshing.access_token(), reject_meanwhile())
        assert fresh != old
        assert await rejecting.access_token() == fresh  # the pair the first worker got was stored
        world.later()
        assert await world.me(await rejecting.access_token()) == 200  # and its refresh token still works
        assert world.sandbox.oauth.refused == [] and broken_gauge() == 0
    finally:
        await world.http.aclose()
        for store in world.stores:
            await store.aclose()


async def test_many_callers_on_many_workers_send_one_refresh(world: World) -> None:
    workers = [world.worker() for _ in range(4)]
    await workers[0].connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    for round in range(1, 3):
        world.later()
        tokens = await asyncio.gather(*(worker.access_token() for worker in workers for _ in range(5)))
        assert len(set(tokens)) == 1
        assert world.sandbox.oauth.issued["refresh_token"] == round
    assert world.sandbox.oauth.refused == []


async def test_a_worker_whose_lease_ran_out_mid_refresh_neither_breaks_the_connection_nor_loses_the_token(
    serve: Any, url: str
) -> None:
    # Every token request takes 0.4 s; the first worker's lease lasts 0.1 s, so the second takes the lease and
    # refreshes with the same refresh token: Mercado Libre accepts the first request and refuses the second.
    world = await make_world(serve, url, token_latency_seconds=0.4)
    try:
        slow, other = world.worker(lease_seconds=0.1), world.worker()
        await slow.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
        world.later()
        first = asyncio.create_task(slow.access_token())
        await asyncio.sleep(0.2)
        second = await other.access_token()
        assert await first == second
        assert world.sandbox.oauth.issued["refresh_token"] == 1
        assert [refusal["error"] for refusal in world.sandbox.oauth.refused] == ["invalid_grant"]
        # The refusal was about a token no longer stored: nothing broke, and the stored one goes on rotating.
        assert broken_gauge() == 0 and await alert_lines(world.stores[0]) == []
        assert (await slow.status()).state == "connected"
        world.later()
        assert await world.me(await other.access_token()) == 200
        assert world.sandbox.oauth.issued["refresh_token"] == 2
    finally:
        await world.http.aclose()
        for store in world.stores:
            await store.aclose()


async def test_a_stale_writer_cannot_replace_a_newer_rotated_token(world: World) -> None:
    store = world.store()
    worker = world.worker(store)
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    stale = await store.marketplace_token(CONNECTION)
    assert stale is not None
    world.later()
    await worker.access_token()  # rotates: the stale row's refresh token is used up
    assert await store.replace_marketplace_token(CONNECTION, stale.version, stale.write()) is None
    current = await store.marketplace_token(CONNECTION)
    assert current is not None and current.version == stale.version + 1
    assert current.sealed_refresh_token != stale.sealed_refresh_token
    world.later()
    assert await world.me(await worker.access_token()) == 200  # the newer token is the stored one


async def test_a_token_mercado_libre_rejects_is_refreshed_only_while_it_is_the_stored_one(world: World) -> None:
    worker = world.worker()
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    token = await worker.access_token()
    world.sandbox.expire_access_tokens()  # Mercado Libre ends it before its six hours
    assert await world.me(token) == 401
    await worker.rejected(token)
    fresh = await worker.access_token()
    assert fresh != token and await world.me(fresh) == 200
    assert world.sandbox.oauth.issued["refresh_token"] == 1
    # A late 401 for the token before changes nothing: the stored one is not marked expired.
    await worker.rejected(token)
    await worker.rejected("APP_USR-not-a-token")
    assert await worker.access_token() == fresh
    assert world.sandbox.oauth.issued["refresh_token"] == 1


# -- invalid_grant -------------------------------------------------------------------------------------------


async def test_invalid_grant_breaks_the_connection_visibly_until_it_is_connected_again(world: World) -> None:
    first, second = world.worker(), world.worker()
    await first.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    world.sandbox.revoke_grant()  # the seller removed the app
    world.later()
    with pytest.raises(AuthorizationBroken) as refused:
        await first.access_token()
    assert (
        str(refused.value)
        == BROKEN_MESSAGE
        == (
            "Mercado Libre refused the connection's authorization (invalid_grant): reconnect the account with "
            "`connector mercadolibre connect ...`"
        )
    )
    assert refused.value.transient and refused.value.status == 400
    assert broken_gauge() == 1
    (line,) = await alert_lines(world.stores[0])
    assert (line.code, line.status, line.operation, line.marketplace_order_id) == (
        "X22",
        LogStatus.ALERT,
        "Marketplace authorization",
        "-",
    )
    assert "connector mercadolibre connect --connection meli" in line.business_message
    status = await authorization_status(world.stores[1], CONNECTION)
    assert status.state == "broken" and status.reason is not None and "invalid_grant" in status.reason
    assert status.broken_at == world.moment()

    # While broken, no worker calls Mercado Libre: each refuses at once.
    calls = world.token_requests()
    for worker in (first, second, first):
        with pytest.raises(AuthorizationBroken, match="reconnect the account"):
            await worker.access_token()
    assert world.token_requests() == calls
    assert len(await alert_lines(world.stores[0])) == 1  # one line for one break

    # Connected again (a new authorization): the connection works, the metric says so.
    status = await second.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    assert (status.state, status.reason, status.broken_at) == ("connected", None, None)
    assert broken_gauge() == 0
    token = await first.access_token()
    assert await world.me(token) == 200
    world.later()
    assert await world.me(await first.access_token()) == 200


async def test_a_connection_never_connected_says_so_and_a_configured_refresh_token_seeds_it(world: World) -> None:
    worker = world.worker()
    with pytest.raises(AuthorizationBroken, match=r"the Mercado Libre connection meli is not connected: connect"):
        await worker.access_token()
    assert broken_gauge() == 1 and world.token_requests() == 0
    assert (await worker.status()).state == "not connected"

    configured = world.sandbox.connect()["refresh_token"]  # what CONNECTIONS_FILE would hold
    world.secrets.add(configured)
    assert await worker.seed(configured) is True
    assert await worker.seed("TG-another") is False  # the store's tokens stand
    token = await worker.access_token()  # the first use refreshes with the configured token
    assert await world.me(token) == 200 and world.sandbox.oauth.issued["refresh_token"] == 1
    assert broken_gauge() == 0


async def test_connecting_with_a_refresh_token_uses_it_at_once(world: World) -> None:
    worker = world.worker()
    given = world.sandbox.connect()["refresh_token"]
    world.secrets.add(given)
    status = await worker.connect_with_refresh_token(given)
    assert status.state == "connected" and world.sandbox.oauth.issued["refresh_token"] == 1
    assert await world.me(await worker.access_token()) == 200
    # The given token was rotated: it is of no use to anyone any more, and saying it again is refused.
    with pytest.raises(MarketplaceError, match=r"refused the refresh token \(invalid_grant\)") as refused:
        await worker.connect_with_refresh_token(given)
    assert not refused.value.transient
    assert (await worker.status()).state == "connected"  # a refused connect changes nothing stored


async def test_connect_refusals_say_what_to_do(world: World) -> None:
    worker = world.worker()
    with pytest.raises(MarketplaceError, match=r"refused the authorization code \(invalid_grant\): a code works once"):
        await worker.connect(code="TG-unknown", redirect_uri=world.sandbox.oauth.redirect_uri)
    with pytest.raises(MarketplaceError, match="refused the authorization code"):
        await worker.connect(code=world.code(), redirect_uri="https://elsewhere.example/callback")
    wrong = world.worker(client_secret="not-the-secret")
    with pytest.raises(MarketplaceError, match=r"invalid_client\): check the connection meli's mercadolibre_app_id"):
        await wrong.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    assert (await worker.status()).state == "not connected"


# -- failures that pass -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_an_unavailable_token_endpoint_is_transient_and_holds_nothing(world: World, status: int) -> None:
    worker, other = world.worker(), world.worker()
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    world.later()
    world.sandbox.add_fault(FaultRule("POST", "/oauth/token", status))
    with pytest.raises(MarketplaceError) as failed:
        await worker.access_token()
    assert not isinstance(failed.value, AuthorizationBroken)
    assert failed.value.transient and failed.value.status == status
    assert f"HTTP {status}" in str(failed.value)
    assert broken_gauge() == 0 and (await worker.status()).state == "connected"
    # The lease was given back: another worker refreshes at once, with the refresh token still stored.
    started = time.monotonic()
    assert await world.me(await other.access_token()) == 200
    assert time.monotonic() - started < 2


async def test_a_token_endpoint_that_does_not_answer_in_time_is_transient(world: World) -> None:
    worker = world.worker(timeout_seconds=0.2)
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    world.later()
    world.sandbox.add_fault(FaultRule("POST", "/oauth/token", 500, delay_seconds=1.0))
    with pytest.raises(MarketplaceError, match=r"did not answer within 0.2 s") as failed:
        await worker.access_token()
    assert failed.value.transient and failed.value.status is None
    assert await world.me(await worker.access_token()) == 200


async def test_an_unreachable_token_endpoint_is_transient(world: World) -> None:
    worker = world.worker()
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    world.later()
    away = world.worker(auth_base_url="http://127.0.0.1:1")
    with pytest.raises(MarketplaceError, match="cannot reach Mercado Libre's token endpoint") as failed:
        await away.access_token()
    assert failed.value.transient


# -- at rest, and in the logs ---------------------------------------------------------------------------------


async def test_tokens_are_encrypted_at_rest_and_a_rotated_key_still_opens_them(world: World) -> None:
    worker = world.worker()
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    token = await worker.access_token()
    with sync_connection(world.store_url) as connection:
        (row,) = [tuple(row) for row in connection.exec_driver_sql("SELECT * FROM marketplace_tokens")]
    raw = repr(row)
    assert CONNECTION in raw and "k1" in raw
    assert world.secrets and not [secret for secret in world.secrets if secret in raw]
    assert "APP_USR" not in raw and "TG-" not in raw

    # PAYLOAD_ENCRYPTION_KEYS=k2:...,k1:...: k1's rows still open, the next write seals under k2.
    rotated = SecretSealer({"k2": os.urandom(32), "k1": world.key}, "k2")
    after = world.worker(sealer=rotated)
    assert await after.access_token() == token
    world.later()
    fresh = await after.access_token()
    stored = await world.stores[-1].marketplace_token(CONNECTION)
    assert stored is not None and stored.key_id == "k2"
    assert await world.me(fresh) == 200
    # Without the key the row names, the tokens cannot be read: said, transient, and naming the key only.
    without = world.worker(sealer=SecretSealer({"k1": os.urandom(32)}, "k1"))
    with pytest.raises(MarketplaceError, match=r"key 'k2', which is not configured here") as failed:
        await without.access_token()
    assert failed.value.transient


async def test_no_token_code_or_secret_reaches_a_log_line_or_an_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    worker, other = world.worker(), world.worker()
    said: list[str] = []
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    token = await worker.access_token()
    world.later()
    await asyncio.gather(worker.access_token(), other.access_token())  # a refresh
    await worker.rejected(await worker.access_token())
    await worker.access_token()
    world.sandbox.add_fault(FaultRule("POST", "/oauth/token", 429))
    await worker.rejected(await worker.access_token())
    with pytest.raises(MarketplaceError) as unavailable:
        await worker.access_token()
    said.append(str(unavailable.value))
    world.sandbox.revoke_grant()
    with pytest.raises(AuthorizationBroken) as broken:
        await worker.access_token()
    said.append(str(broken.value))
    with pytest.raises(MarketplaceError) as refused:
        await worker.connect(code=token, redirect_uri=world.sandbox.oauth.redirect_uri)
    said.append(str(refused.value))
    await worker.connect(code=world.code(), redirect_uri=world.sandbox.oauth.redirect_uri)
    given = world.sandbox.connect()["refresh_token"]
    world.secrets.add(given)
    await other.connect_with_refresh_token(given)
    await other.access_token()

    assert len(world.secrets) > 8
    log_lines = [line.model_dump_json() for line in await alert_lines(world.stores[0])]
    assert log_lines  # the X22 line
    for text in (caplog.text, *said, *log_lines):
        assert not [secret for secret in world.secrets if secret in text], text
    assert "refreshed the Mercado Libre access token of connection meli" in caplog.text


# -- the CLI -------------------------------------------------------------------------------------------------


@dataclass
class Cli:
    world: World
    env: dict[str, str]
    cwd: Path

    async def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return await connector(*args, env={**self.env, **(env or {})}, cwd=self.cwd)


@pytest_asyncio.fixture
async def cli(serve: Any, tmp_path: Path) -> AsyncIterator[Cli]:
    store_url = f"sqlite:///{tmp_path / 'data' / 'connector.db'}"
    await migrate_store(store_url)
    keys, current = generated_local_key(tmp_path / "data")  # embedded mode's key, as `make run` makes it
    world = await make_world(serve, store_url)
    world.sealer = SecretSealer(keys, current)
    oauth = world.sandbox.oauth
    connections = {
        "connections": [
            {
                "name": CONNECTION,
                "marketplace": "mercadolibre",
                "marketplace_base_url": world.base_url,
                "mercadolibre_app_id": oauth.client_id,
                "mercadolibre_client_secret": oauth.client_secret,
                "mercadolibre_site": "MLB",
                "mercadolibre_auth_url": world.base_url,
            },
            {"name": "nameless", "marketplace": "mercadolibre"},
            {"name": "reference", "marketplace_base_url": "http://127.0.0.1:1"},
        ]
    }
    (tmp_path / "connections.json").write_text(json.dumps(connections))
    env = {
        "CONNECTIONS_FILE": str(tmp_path / "connections.json"),
        "CONNECTION_NAME": CONNECTION,
        "STORE_URL": store_url,
        "DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    yield Cli(world, env, tmp_path)
    await world.http.aclose()
    for store in world.stores:
        await store.aclose()


async def test_the_connect_and_status_commands(cli: Cli) -> None:
    world = cli.world
    code, out, err = await cli.run("mercadolibre", "status", "--connection", CONNECTION)
    assert (code, err) == (0, "")
    assert out.startswith("connection meli: not connected to Mercado Libre: connect the account with `connector")

    redirect = world.sandbox.oauth.redirect_uri
    code, out, err = await cli.run("mercadolibre", "connect", "--code", world.code(), "--redirect-uri", redirect)
    assert (code, err) == (0, ""), err
    assert out.startswith("the Mercado Libre account of connection meli is connected: its tokens are stored")
    code, out, _ = await cli.run("mercadolibre", "status", "--connection", CONNECTION, "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["connection"], shown["state"], shown["reason"]) == (CONNECTION, "connected", None)
    datetime.fromisoformat(shown["access_expires_at"])

    # The worker's source serves the stored tokens.
    worker = world.worker()
    assert await world.me(await worker.access_token()) == 200

    # Broken: shown with its reason and since when.
    world.sandbox.revoke_grant()
    world.later()
    with pytest.raises(AuthorizationBroken):
        await worker.access_token()
    code, out, _ = await cli.run("mercadolibre", "status")
    assert code == 0
    assert out.startswith("connection meli: authorization broken since ")
    assert "invalid_grant" in out and "reconnect the account with `connector mercadolibre connect" in out
    code, out, _ = await cli.run("mercadolibre", "status", "--json")
    shown = json.loads(out)
    assert shown["state"] == "broken" and "invalid_grant" in shown["reason"]
    assert datetime.fromisoformat(shown["broken_at"]) == world.moment()

    # Reconnected with a refresh token, read from stdin (out of the shell's history).
    given = world.sandbox.connect()["refresh_token"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        "mercadolibre",
        "connect",
        "--refresh-token",
        "-",
        "--json",
        env={**os.environ, "PYTHONPATH": str(REPO), **cli.env},
        cwd=cli.cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(f"{given}\n".encode()), timeout=60)
    assert (process.returncode, stderr) == (0, b""), stderr.decode()
    assert json.loads(stdout)["state"] == "connected"
    assert await world.me(await worker.access_token()) == 200
    assert given.encode() not in stdout


async def test_the_mercadolibre_commands_say_each_mistake_in_one_sentence(cli: Cli, tmp_path: Path) -> None:
    world = cli.world
    redirect = world.sandbox.oauth.redirect_uri
    cases: list[tuple[list[str], dict[str, str], int, str]] = [
        (["connect"], {}, 2, "connector: give --code and --redirect-uri (the authorization code"),
        (["connect", "--code", "TG-x"], {}, 2, "connector: give --code and --redirect-uri"),
        (
            ["connect", "--code", "TG-x", "--redirect-uri", redirect, "--refresh-token", "TG-y"],
            {},
            2,
            "connector: give either --code with --redirect-uri, or --refresh-token, not both",
        ),
        (["conect"], {}, 2, "connector: no such command 'conect': did you mean 'connect'?"),
        (
            ["status", "--connection", "nope"],
            {},
            1,
            "connector: no connection 'nope' is configured (--connection); the configured ones: meli, nameless, "
            "reference",
        ),
        (
            ["connect", "--connection", "reference", "--refresh-token", "TG-x"],
            {},
            1,
            "connector: connection reference is not a Mercado Libre connection (its marketplace is 'reference')",
        ),
        (
            ["connect", "--connection", "nameless", "--refresh-token", "TG-x"],
            {},
            1,
            "connector: connection nameless has no mercadolibre_app_id and mercadolibre_client_secret: set both",
        ),
        (
            ["connect", "--code", "TG-unknown", "--redirect-uri", redirect],
            {},
            1,
            "connector: Mercado Libre refused the authorization code (invalid_grant): a code works once",
        ),
        (
            ["connect", "--refresh-token", "TG-used"],
            {},
            1,
            "connector: Mercado Libre refused the refresh token (invalid_grant)",
        ),
        (
            ["connect", "--refresh-token", "TG-x"],
            {"STORE_URL": f"sqlite:///{tmp_path / 'elsewhere' / 'connector.db'}"},
            1,
            f"connector: no order store at {tmp_path / 'elsewhere' / 'connector.db'} (STORE_URL)",
        ),
        (
            ["status"],
            {"STORE_URL": f"sqlite:///{tmp_path / 'elsewhere' / 'connector.db'}"},
            1,
            f"connector: no order store at {tmp_path / 'elsewhere' / 'connector.db'} (STORE_URL)",
        ),
        (
            ["connect", "--refresh-token", "TG-x"],
            {"DATA_DIR": str(tmp_path / "elsewhere")},
            2,
            f"connector: no payload key at {tmp_path / 'elsewhere' / 'payload-key'}: run this command",
        ),
    ]
    for args, env, status, expected in cases:
        code, out, err = await cli.run("mercadolibre", *args, env=env)
        line = one_sentence(code, out, err)
        assert code == status, (args, line)
        assert line.startswith(expected), (args, line)
    assert world.sandbox.oauth.issued == {"authorization_code": 0, "refresh_token": 0}

    # Mercado Libre out of reach: one sentence, nothing stored, and the code not spent.
    unreachable = json.loads((tmp_path / "connections.json").read_text())
    unreachable["connections"][0]["mercadolibre_auth_url"] = "http://127.0.0.1:1"
    (tmp_path / "away.json").write_text(json.dumps(unreachable))
    line = one_sentence(
        *await cli.run(
            "mercadolibre",
            "connect",
            "--code",
            world.code(),
            "--redirect-uri",
            redirect,
            env={"CONNECTIONS_FILE": str(tmp_path / "away.json")},
        )
    )
    assert line.startswith("connector: cannot reach Mercado Libre's token endpoint: ConnectError"), line
    assert "(mercadolibre_auth_url: http://127.0.0.1:1); try again" in line
