"""The connector's processes in one event loop: sandboxes (embedded mode), intake app, worker, pollers.

The run command and the integration tests start the very same stack; only the Temporal client and the
ports differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType

from temporalio.client import Client
from temporalio.worker import Worker

from connector.connections import Connection, build_connections
from connector.embedded import Sandboxes, start_sandboxes
from connector.http_server import HttpServer
from connector.intake.app import create_intake_app
from connector.intake.handoff_queue import HandOffQueue
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceAdapter
from connector.marketplaces.factory import build_adapters, mercadolibre_tokens
from connector.poller_start import start_pollers
from connector.retention import Retention, purge_periodically
from connector.settings import Settings
from connector.store.base import OrderStore, open_store
from connector.temporal_client import secret_sealer
from connector.vtex.client import VtexClient
from worker import create_workers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Stack:
    """`async with Stack(settings, client) as stack:` runs everything until the block ends."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        *,
        sandbox_ports: tuple[int, int] = (0, 0),
        pollers: bool = False,
        intake: bool = True,
        worker: bool = True,
        vtex_order_id_suffix: str | None = None,
        migrate_store: bool = True,
    ) -> None:
        """`vtex_order_id_suffix` pins the embedded VTEX sandbox's seller suffix (default: a random one).
        `migrate_store`: bring the store's schema to the newest revision at start (`connector run`, the
        tests); without, an older schema stops the start with a StoreError naming `connector migrate`."""
        self.settings = settings
        self.client = client
        self._sandbox_ports = sandbox_ports
        self._pollers = pollers
        self._run_intake = intake
        self._run_worker = worker
        self._vtex_order_id_suffix = vtex_order_id_suffix
        self._migrate_store = migrate_store
        self._retention: asyncio.Task[None] | None = None
        self.sandboxes: Sandboxes | None = None
        self.connections: Mapping[str, Connection] = {}
        self._adapters: Mapping[str, MarketplaceAdapter] = {}
        self._vtex: VtexClient | None = None
        self.store: OrderStore | None = None
        self.logbook: Logbook | None = None
        self._intake: HttpServer | None = None
        self._handoffs: HandOffQueue | None = None
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []

    @property
    def intake_url(self) -> str:
        if self._intake is None:
            return str(self.settings.connector_public_url).rstrip("/")
        return self._intake.url

    def webhook_url(self, connection: str) -> str:
        return f"{self.intake_url}/webhooks/{connection}"

    @property
    def adapters(self) -> Mapping[str, MarketplaceAdapter]:
        """The marketplace adapters the stack's intake and workers use, by connection."""
        return self._adapters

    async def start(self) -> None:
        settings = self.settings
        marketplace_urls: dict[str, str] = {}
        if settings.embedded:
            self.sandboxes = await start_sandboxes(
                settings, ports=self._sandbox_ports, vtex_order_id_suffix=self._vtex_order_id_suffix
            )
            marketplace_urls = self.sandboxes.marketplace_urls()
            settings = settings.model_copy(update={"vtex_base_url": self.sandboxes.vtex_server.url})
        intake_port = settings.intake_port or free_port(settings.intake_host)
        if self.settings.intake_port == 0:
            # Tests ask for any port: the callback URL VTEX gets must name the one chosen.
            settings = settings.model_copy(
                update={"connector_public_url": f"http://{settings.intake_host}:{intake_port}"}
            )
        self.settings = settings
        self.connections = self._with_sandbox_accounts(build_connections(settings, marketplace_urls=marketplace_urls))
        self._vtex = self._vtex_client(settings)
        self.store = open_store(settings.store_url, migrate=self._migrate_store)
        await self.store.ready()
        self.logbook = Logbook(self.store, account=settings.account_name)
        self._adapters = build_adapters(
            self.connections, store=self.store, logbook=self.logbook, sealer=lambda: secret_sealer(settings)
        )
        await self._seed_marketplace_tokens(settings)
        self._handoffs = HandOffQueue(
            self.client,
            task_queue=settings.temporal_task_queue,
            connections=self.connections,
            adapters=self._adapters,
            store=self.store,
            logbook=self.logbook,
        )
        intake_app = create_intake_app(
            self.client,
            handoffs=self._handoffs,
            connections=self.connections,
            adapters=self._adapters,
            store=self.store,
            account=settings.account_name,
            vtex=self._vtex,
            log_credentials=self._vtex_credentials(settings),
        )
        if self._run_intake:
            self._intake = HttpServer(
                intake_app, host=settings.intake_host, port=intake_port, name="intake", setting="INTAKE_PORT"
            )
            self._handoffs.start()
            await self._intake.start()
        if self.sandboxes is not None:
            for name, marketplace in self.sandboxes.marketplaces.items():
                marketplace.webhook_url = self.webhook_url(name)
                marketplace.webhook_secret = self.connections[name].webhook_secret
            for name, meli in self.sandboxes.mercadolibre.items():
                meli.callback_url = self.webhook_url(name)
        if not self._run_worker:
            return
        self._workers = create_workers(
            self.client,
            task_queue=settings.temporal_task_queue,
            vtex_task_queue=settings.vtex_task_queue,
            vtex_activities_per_second=settings.vtex_activities_per_second,
            vtex=self._vtex,
            logbook=self.logbook,
            store=self.store,
            vtex_rate_key=f"vtex:{settings.account_name}",
            seller_id=settings.vtex_seller_id,
            connections=self.connections,
            adapters=self._adapters,
            graceful_shutdown=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
            max_cached_workflows=settings.worker_max_cached_workflows,
        )
        self._worker_tasks = [asyncio.create_task(worker.run(), name="worker") for worker in self._workers]
        retention = Retention(
            success_days=settings.log_retention_days,
            error_days=settings.log_error_retention_days,
            after_sale_days=settings.after_sale_window_days,
        )
        self._retention = asyncio.create_task(purge_periodically(self.store, retention), name="log-retention")
        if self._pollers and settings.polling_enabled:
            await start_pollers(self.client, task_queue=settings.temporal_task_queue, connections=self.connections)

    async def stop(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await asyncio.gather(*(worker.shutdown() for worker in self._workers))
        for task in self._worker_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sandboxes is not None:
            # Abandon VTEX callbacks still being retried: the intake they target is going away.
            self.sandboxes.vtex.reset()
        if self._intake is not None:
            await self._intake.stop()
        if self._handoffs is not None:
            await self._handoffs.stop()  # after the server: what it accepted last is queued, kept for the next start
        for adapter in self._adapters.values():
            await adapter.aclose()
        if self._vtex is not None:
            await self._vtex.aclose()
        if self.store is not None:
            await self.store.aclose()
        if self.sandboxes is not None:
            await self.sandboxes.stop()

    def _with_sandbox_accounts(self, connections: dict[str, Connection]) -> dict[str, Connection]:
        """Embedded Mercado Libre connections take the sandbox's application and seller where not configured."""
        if self.sandboxes is None:
            return connections
        for name, meli in self.sandboxes.mercadolibre.items():
            connection = connections[name]
            connections[name] = dataclasses.replace(
                connection,
                mercadolibre_app_id=connection.mercadolibre_app_id or meli.oauth.client_id,
                mercadolibre_client_secret=connection.mercadolibre_client_secret or meli.oauth.client_secret,
                mercadolibre_site=connection.mercadolibre_site or meli.site_id,
                mercadolibre_seller_id=connection.mercadolibre_seller_id or str(meli.seller_id),
                mercadolibre_auth_url=self.sandboxes.mercadolibre_servers[name].url,
            )
        return connections

    async def _seed_marketplace_tokens(self, settings: Settings) -> None:
        """A Mercado Libre connection's first refresh token into the store (once; the store's rotated ones are
        used after that). An embedded sandbox connects itself: the seller's authorization, done here."""
        assert self.store is not None and self.logbook is not None
        for name, connection in self.connections.items():
            if connection.marketplace != "mercadolibre":
                continue
            tokens = mercadolibre_tokens(
                connection, store=self.store, logbook=self.logbook, sealer=secret_sealer(settings)
            )
            try:
                if connection.mercadolibre_refresh_token:
                    await tokens.seed(connection.mercadolibre_refresh_token)
                elif self.sandboxes is not None and name in self.sandboxes.mercadolibre:
                    if (await tokens.status()).state == "not connected":
                        await tokens.seed(str(self.sandboxes.mercadolibre[name].connect()["refresh_token"]))
            finally:
                await tokens.aclose()

    def _vtex_credentials(self, settings: Settings) -> tuple[str, str]:
        """The app key and token: the VTEX sandbox's in embedded mode, else the configured pair."""
        if settings.embedded:
            assert self.sandboxes is not None
            return self.sandboxes.vtex.app_key, self.sandboxes.vtex.app_token
        assert settings.vtex_app_key is not None and settings.vtex_app_token is not None
        return settings.vtex_app_key, settings.vtex_app_token.get_secret_value()

    def _vtex_client(self, settings: Settings) -> VtexClient:
        app_key, app_token = self._vtex_credentials(settings)
        return VtexClient(
            base_url=settings.vtex_url(),
            app_key=app_key,
            app_token=app_token,
            timeout_seconds=settings.vtex_timeout_seconds,
        )

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
