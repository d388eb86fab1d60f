"""The connector as it is deployed, for benchmarks and fault tests: a Temporal dev server (SQLite file), the
VTEX and marketplace sandboxes, the worker and the intake, each its own process on free loopback ports.

`async with Cluster(run_dir) as cluster:` starts everything and stops it (process groups killed) however
the block ends. Helpers create marketplace orders, send signed webhooks, inject VTEX faults and read what
the VTEX sandbox placed, which is how "completed" (dispatch authorized) and "duplicated" are judged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from sandboxes.marketplace import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from temporalio.client import Client

from bench.processes import ManagedProcess, ProcessFailed
from connector.devserver import dev_server_command

CONNECTION = "reference"
AFFILIATE = "MKP"
APP_KEY = "vtexappkey-sandbox-KEY"
APP_TOKEN = "sandbox-app-token"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
CALLBACK_TOKEN = "bench-callback-token-0123456789"
PLACE_PATH = "/api/fulfillment/pvt/orders"
START_TIMEOUT = 60.0
# Retry timing for runs that must finish in minutes (the defaults wait 60 s to 1 h between attempts).
FAST_RETRIES = {
    # Low, so an injected timeout (an answer held past it) costs seconds, not the default 20 s.
    "VTEX_TIMEOUT_SECONDS": "2",
    "ACTIVITY_ATTEMPTS": "5",
    "ACTIVITY_INITIAL_INTERVAL_SECONDS": "0.2",
    "REPROCESS_FIRST_DELAY_SECONDS": "1",
    "REPROCESS_MAX_DELAY_SECONDS": "5",
    "DEAD_LETTER_RETRY_SECONDS": "10",
    "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
    "POLLING_ENABLED": "false",
}
# The only variables of the caller's environment the processes see: a developer's VTEX_*, TEMPORAL_*
# or .env must not leak into a run (the processes run in the run directory, away from any .env).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held open together so they are distinct."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class Ports:
    temporal: int
    ui: int
    vtex: int
    marketplace: int
    intake: int
    # Prometheus ports of the worker and the intake: the connector's metrics, the Temporal SDK's.
    worker_metrics: tuple[int, int]
    intake_metrics: tuple[int, int]

    @classmethod
    def pick(cls) -> Ports:
        temporal, ui, vtex, marketplace, intake, *metrics = free_ports(9)
        return cls(
            temporal,
            ui,
            vtex,
            marketplace,
            intake,
            worker_metrics=(metrics[0], metrics[1]),
            intake_metrics=(metrics[2], metrics[3]),
        )


@dataclass(frozen=True)
class Webhook:
    status: int
    seconds: float  # time to the acknowledgement (the last attempt's, after redeliveries)
    sent_at: float  # wall clock (time.time()) when the first attempt left


@dataclass(frozen=True)
class Tally:
    sent: int
    completed: int
    duplicated: int
    lost: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def line(self) -> str:
        return f"sent {self.sent}, completed {self.completed}, duplicated {self.duplicated}, lost {self.lost}"


class ServerStore(StrEnum):
    """Where the dev server keeps its state. SQLite's own defaults sync every commit to disk, which on a
    2-core VM costs about 40 % of the throughput; WAL with synchronous=NORMAL survives a killed server
    (only an OS crash may lose the last commits), so the runs use it unless told otherwise."""

    SQLITE_WAL = "sqlite-wal"
    SQLITE_SYNC = "sqlite-sync"
    MEMORY = "memory"

    def flags(self, db_file: Path) -> list[str]:
        if self is ServerStore.MEMORY:
            return []
        pragmas = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        return ["--db-filename", str(db_file), *(pragmas if self is ServerStore.SQLITE_WAL else [])]


def _without_store_flags(command: list[str]) -> list[str]:
    """The dev server command minus its store flags (file and pragmas), which ServerStore decides."""
    kept: list[str] = []
    skip = False
    for argument in command:
        if skip:
            skip = False
        elif argument in ("--db-filename", "--sqlite-pragma"):
            skip = True
        else:
            kept.append(argument)
    return kept


class Cluster:
    def __init__(
        self,
        run_dir: Path,
        *,
        settings: Mapping[str, str] | None = None,
        server_store: ServerStore = ServerStore.SQLITE_WAL,
    ) -> None:
        """`settings` are connector environment variables on top of FAST_RETRIES (e.g. ACCEPT_UNPAID_ORDERS)."""
        self.run_dir = run_dir.resolve()
        self.ports = Ports.pick()
        self.settings = {**FAST_RETRIES, **(settings or {})}
        self.temporal_address = f"127.0.0.1:{self.ports.temporal}"
        self.vtex_url = f"http://127.0.0.1:{self.ports.vtex}"
        self.marketplace_url = f"http://127.0.0.1:{self.ports.marketplace}"
        self.intake_url = f"http://127.0.0.1:{self.ports.intake}"
        self.webhook_url = f"{self.intake_url}/webhooks/{CONNECTION}"
        # With VTEX credentials set the connector requires a payload key; a fresh one per run.
        self.payload_key = f"bench:{base64.b64encode(os.urandom(32)).decode()}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The command `make run` uses (search attributes, log level), with the store chosen here.
        db_file = self.run_dir / "temporal.db"
        temporal_command = _without_store_flags(
            dev_server_command(host="127.0.0.1", port=self.ports.temporal, ui_port=self.ports.ui, db_file=db_file)
        )
        self.server_store = server_store
        self.temporal = self._process("temporal", [*temporal_command, *server_store.flags(db_file), "--headless"])
        self.sandboxes = self._connector(
            "sandboxes", "--vtex-port", str(self.ports.vtex), "--marketplace-port", str(self.ports.marketplace)
        )
        self.worker = self._connector("worker")
        self.intake = self._connector("intake")
        self._http: httpx.AsyncClient | None = None
        self._client: Client | None = None

    # -- processes --------------------------------------------------------------------------------

    def _process(self, name: str, command: list[str]) -> ManagedProcess:
        return ManagedProcess(name, command, env=self.env(), cwd=self.run_dir, log_file=self.run_dir / f"{name}.log")

    def _connector(self, *args: str) -> ManagedProcess:
        return self._process(args[0], [sys.executable, "-m", "connector.cli", *args])

    def env(self, **overrides: str) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DATA_DIR": str(self.run_dir / "data"),
            "STORE_URL": f"sqlite:///{self.run_dir / 'store.db'}",
            "VTEX_BASE_URL": self.vtex_url,
            "VTEX_APP_KEY": APP_KEY,
            "VTEX_APP_TOKEN": APP_TOKEN,
            "MARKETPLACE_BASE_URL": self.marketplace_url,
            "CALLBACK_TOKEN": CALLBACK_TOKEN,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PAYLOAD_ENCRYPTION_KEYS": self.payload_key,
            "INTAKE_PORT": str(self.ports.intake),
            "CONNECTOR_PUBLIC_URL": self.intake_url,
            # Off unless a process is given its own ports (the defaults would collide across processes).
            "METRICS_PORT": "0",
            "TEMPORAL_METRICS_PORT": "0",
            "INTAKE_METRICS_PORT": "0",
            **self.settings,
            **overrides,
        }

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))
        await self.start_temporal()
        await self.sandboxes.start(self.env())
        await self._until_http_ok(self.sandboxes, f"{self.vtex_url}/_sandbox/faults")
        await self._until_http_ok(self.sandboxes, f"{self.marketplace_url}/admin/orders")
        await self.start_worker()
        await self.start_intake()

    async def stop(self, *, keep_databases: bool = False) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for process in (self.intake, self.worker, self.sandboxes, self.temporal):
            await process.stop()
        if not keep_databases:
            for database in self.run_dir.glob("*.db*"):
                database.unlink()
            shutil.rmtree(self.run_dir / "data", ignore_errors=True)

    async def start_temporal(self) -> None:
        await self.temporal.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.temporal.check_alive()
            try:
                self._client = await Client.connect(self.temporal_address)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"the Temporal dev server did not answer:\n{self.temporal.tail()}") from None
                await asyncio.sleep(0.2)

    async def start_worker(self, **overrides: str) -> None:
        await self.worker.start(self.env(**_metrics_env(self.ports.worker_metrics), **overrides))
        deadline = time.monotonic() + START_TIMEOUT
        # `connector worker` prints this once its workers poll.
        while "worker running on task queue" not in self.worker.since_start():
            self.worker.check_alive()
            if time.monotonic() > deadline:
                raise ProcessFailed(f"the worker did not start:\n{self.worker.tail()}")
            await asyncio.sleep(0.1)

    async def start_intake(self, **overrides: str) -> None:
        await self.intake.start(self.env(**_metrics_env(self.ports.intake_metrics), **overrides))
        await self._until_http_ok(self.intake, f"{self.intake_url}/health")

    async def _until_http_ok(self, process: ManagedProcess, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            process.check_alive()
            try:
                if (await self.http.get(url)).is_success:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{process.name} did not answer {url}:\n{process.tail()}")
            await asyncio.sleep(0.1)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise ProcessFailed("the cluster is not started")
        return self._http

    @property
    def client(self) -> Client:
        """A Temporal client (default data converter: enough for histories and descriptions)."""
        if self._client is None:
            raise ProcessFailed("the Temporal dev server is not started")
        return self._client

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop(keep_databases=True)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A failed run keeps its databases next to the logs for a post-mortem.
        await self.stop(keep_databases=exc_type is not None)

    async def count_workflows(self, query: str) -> int:
        """Workflows matching a visibility query (a count is not a billable query)."""
        return (await self.client.count_workflows(query)).count

    async def wait_for_count(self, query: str, count: int, *, within: float, poll: float = 0.5) -> int:
        """The count of `query`, once it reached `count` or `within` seconds passed."""
        deadline = time.monotonic() + within
        while True:
            found = await self.count_workflows(query)
            if found >= count or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(poll)

    # -- marketplace ------------------------------------------------------------------------------

    async def create_orders(
        self,
        count: int,
        *,
        status: str = "paid",
        items: list[dict[str, Any]] | None = None,
        concurrency: int = 20,
    ) -> list[str]:
        """Orders in the marketplace sandbox without a webhook (the caller notifies)."""
        body: dict[str, Any] = {"status": status, "notify": False, **({"items": items} if items else {})}
        gate = asyncio.Semaphore(concurrency)

        async def one() -> str:
            async with gate:
                response = await self.http.post(f"{self.marketplace_url}/admin/orders", json=body)
            response.raise_for_status()
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def marketplace_action(self, order_id: str, action: str) -> None:
        """`pay` or `cancel` an order in the marketplace sandbox (it then notifies the webhook itself)."""
        response = await self.http.post(f"{self.marketplace_url}/admin/orders/{order_id}/{action}")
        response.raise_for_status()

    async def send_webhook(
        self, order_id: str, *, delivery_id: str | None = None, redeliver_for: float = 0.0
    ) -> Webhook:
        """POST a signed notification as the marketplace would. With `redeliver_for`, a 5xx or a refused
        connection is delivered again (after Retry-After, at most 1 s) for that many seconds."""
        body = json.dumps(
            {"topic": "orders", "resource": f"/orders/{order_id}", "order_id": order_id, "sent_at": time.time()}
        ).encode()
        delivery_id = delivery_id or str(uuid.uuid4())
        sent_at = time.time()
        give_up = time.monotonic() + redeliver_for
        while True:
            # Each attempt signed afresh, as the marketplace signs it (its timestamp is covered).
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(WEBHOOK_SECRET, timestamp, delivery_id, body),
            }
            started = time.perf_counter()
            try:
                response = await self.http.post(self.webhook_url, content=body, headers=headers)
                status, retry_after = response.status_code, _retry_after(response)
            except httpx.TransportError:
                status, retry_after = 0, 0.5
            if (status and status < 500) or time.monotonic() >= give_up:
                return Webhook(status, time.perf_counter() - started, sent_at)
            await asyncio.sleep(min(retry_after, 1.0))

    async def notify_all(
        self, order_ids: Iterable[str], *, concurrency: int = 50, redeliver_for: float = 0.0
    ) -> list[Webhook]:
        """One signed webhook per order, each with its own delivery id, `concurrency` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(order_id: str) -> Webhook:
            async with gate:
                return await self.send_webhook(order_id, delivery_id=uuid.uuid4().hex, redeliver_for=redeliver_for)

        return list(await asyncio.gather(*(one(order_id) for order_id in order_ids)))

    # -- VTEX sandbox -----------------------------------------------------------------------------

    async def add_fault(self, rule: Mapping[str, Any]) -> None:
        (await self.http.post(f"{self.vtex_url}/_sandbox/faults", json=dict(rule))).raise_for_status()

    async def clear_faults(self) -> None:
        (await self.http.delete(f"{self.vtex_url}/_sandbox/faults")).raise_for_status()

    async def vtex_orders(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.vtex_url}/_sandbox/orders")
        response.raise_for_status()
        orders: list[dict[str, Any]] = response.json()
        return orders

    async def vtex_requests(self) -> list[dict[str, Any]]:
        """The API requests the VTEX sandbox recorded (its latest 10,000), with the status it answered."""
        response = await self.http.get(f"{self.vtex_url}/_sandbox/requests")
        response.raise_for_status()
        requests: list[dict[str, Any]] = response.json()
        return requests

    async def vtex_order_id(self, marketplace_order_id: str) -> str:
        """The OMS id VTEX gave the marketplace order (`{affiliateId}-{marketplaceOrderId}-{NN}`)."""
        for order in await self.vtex_orders():
            if order["marketplace_order_id"] == marketplace_order_id:
                return str(order["order_id"])
        raise ProcessFailed(f"the VTEX sandbox holds no order for marketplace order {marketplace_order_id}")

    async def seller(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, within: float = 5.0
    ) -> httpx.Response:
        """The seller acting in VTEX through its API (OMS: get order, invoice, tracking), with the app key
        and token; VTEX then calls the connector back on its marketplaceServicesEndpoint, in the
        background. OMS shows a new order a moment after its placement: a 404 is asked again for
        `within` seconds."""
        headers = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}
        deadline = time.monotonic() + within
        while True:
            response = await self.http.request(
                method, f"{self.vtex_url}{path}", json=None if body is None else dict(body), headers=headers
            )
            if response.status_code != 404 or time.monotonic() >= deadline:
                return response
            await asyncio.sleep(0.1)

    async def dispatch_times(self) -> dict[str, datetime]:
        """Marketplace order id → when VTEX authorized its dispatch (the sandbox's clock)."""
        return {
            order["marketplace_order_id"]: datetime.fromisoformat(order["authorized_date"])
            for order in await self.vtex_orders()
            if order["authorized_date"]
        }

    async def wait_for_dispatch(
        self, order_ids: Iterable[str], *, within: float, at_least: int | None = None, poll: float = 0.5
    ) -> dict[str, datetime]:
        """Dispatch times of the given orders, once all (or `at_least`) are authorized or `within` seconds
        passed."""
        wanted = set(order_ids)
        target = len(wanted) if at_least is None else at_least
        deadline = time.monotonic() + within
        while True:
            times = await self.dispatch_times()
            done = {order_id: at for order_id, at in times.items() if order_id in wanted}
            if len(done) >= target or time.monotonic() >= deadline:
                return done
            await asyncio.sleep(poll)

    async def tally(self, order_ids: Iterable[str]) -> Tally:
        """Completed = dispatch authorized. Duplicated = an order VTEX holds twice, or created twice: VTEX
        (and the sandbox) refuse a second placement with FMT009, so a second 2xx placement is a duplicate."""
        sent = set(order_ids)
        orders = [order for order in await self.vtex_orders() if order["marketplace_order_id"] in sent]
        per_order = Counter(order["marketplace_order_id"] for order in orders)
        placed = placements(await self.vtex_requests())
        duplicated = {order_id for order_id in sent if per_order[order_id] > 1 or placed[order_id] > 1}
        completed = len({order["marketplace_order_id"] for order in orders if order["authorized_date"]})
        return Tally(sent=len(sent), completed=completed, duplicated=len(duplicated), lost=len(sent) - completed)


def placements(requests: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Marketplace order id → placements VTEX answered with a 2xx, from the sandbox's recorded requests."""
    return Counter(
        str((request["body"] or {}).get("marketplaceOrderId"))
        for request in requests
        if request["path"] == PLACE_PATH and 200 <= request["status"] < 300
    )


def _metrics_env(ports: tuple[int, int]) -> dict[str, str]:
    """A process's own metrics ports: the connector's (a worker's METRICS_PORT, an intake's
    INTAKE_METRICS_PORT) and the Temporal SDK's."""
    return {"METRICS_PORT": str(ports[0]), "INTAKE_METRICS_PORT": str(ports[0]), "TEMPORAL_METRICS_PORT": str(ports[1])}


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else 0.5
