"""The long-running commands: `run` (everything, with a Temporal dev server and the sandboxes when
needed), `worker`, `intake`, `console`, `codec-server`, and `migrate` (the store's schema)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client

from connector.cli.common import Invocation, app, require_sqlite_file
from connector.codec_server import create_codec_app
from connector.console.server import console_password, console_server
from connector.devserver import DevServerError, start_dev_server, stop_dev_server
from connector.embedded import MARKETPLACE_SANDBOX_PORT, VTEX_SANDBOX_PORT, require_sandboxes
from connector.http_server import HttpServer, PortUnavailable
from connector.metrics import refresh_order_gauges, serve_metrics
from connector.process import until_stopped
from connector.settings import Settings, SettingsError
from connector.stack import Stack
from connector.store.base import migrate_store, open_store
from connector.temporal_client import connect, payload_codec

TEMPORAL_UI_PORT = 8233

log = logging.getLogger("connector")


@dataclass(frozen=True)
class NoArgs:
    """The arguments of a command that takes none."""


@app.command("run", help="run the connector (embedded sandboxes without VTEX credentials)")
def run_command() -> Invocation[NoArgs]:
    return Invocation(_run, NoArgs())


@app.command("worker", help="run only the Temporal worker (and start the pollers)")
def worker_command() -> Invocation[NoArgs]:
    return Invocation(_worker, NoArgs())


@app.command("intake", help="run only the intake app (webhooks, VTEX callbacks, logs)")
def intake_command() -> Invocation[NoArgs]:
    return Invocation(_intake, NoArgs())


@app.command("console", help="run only the seller's console (web, CONSOLE_PORT)")
def console_command() -> Invocation[NoArgs]:
    return Invocation(_console, NoArgs())


@app.command("migrate", help="bring the order store's schema to this version's (the worker and intake need it)")
def migrate_command() -> Invocation[NoArgs]:
    return Invocation(_migrate, NoArgs())


@app.command("codec-server", help="run only the codec server (Web UI payload decryption)")
def codec_server_command() -> Invocation[NoArgs]:
    return Invocation(_codec_server, NoArgs())


async def _run(settings: Settings, args: NoArgs) -> int:
    try:
        if settings.embedded:
            require_sandboxes("`connector run` without VTEX credentials (embedded mode)")
        if settings.console_port:
            console_password(settings)  # a missing password stops the start, not a running stack
        codec = codec_server(settings)
    except SettingsError as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return 2
    await codec.start()
    try:
        return await _run_with_codec(settings, codec)
    finally:
        await codec.stop()


def codec_server(settings: Settings, *, create_key: bool = True) -> HttpServer:
    """The codec server decrypts for whoever calls it: it wants CODEC_AUTH_TOKEN as a bearer token, except
    in embedded mode (generated key, sandbox data only) on loopback, where `make run`'s dev-server Web UI
    calls it without one. SettingsError (one sentence naming the variable) otherwise."""
    token = settings.codec_auth_token.get_secret_value() if settings.codec_auth_token else ""
    if not token:
        if settings.payload_encryption_keys is not None:
            raise SettingsError(
                "CODEC_AUTH_TOKEN is required when PAYLOAD_ENCRYPTION_KEYS is set: the codec server decrypts "
                "order data for whoever calls it"
            )
        if not _is_loopback(settings.intake_host):
            raise SettingsError(
                f"CODEC_AUTH_TOKEN is required when the codec server listens beyond loopback "
                f"(INTAKE_HOST={settings.intake_host})"
            )
    app = create_codec_app(
        payload_codec(settings, refuse_plaintext=False, create_key=create_key),
        cors_origins=[origin.strip() for origin in settings.codec_cors_origins.split(",") if origin.strip()],
        auth_token=token or None,
    )
    return HttpServer(
        app, host=settings.intake_host, port=settings.codec_port, name="codec server", setting="CODEC_PORT"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _codec_server(settings: Settings, args: NoArgs) -> int:
    try:
        # Alone, it serves the key of a connector already run here (`make run`'s makes it): a new one
        # would decrypt nothing.
        server = codec_server(settings, create_key=False)
    except SettingsError as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return 2
    await server.start()
    print(f"codec server on {server.url} (Web UI: Settings > Codec Server)", flush=True)
    try:
        await until_stopped()
    finally:
        await server.stop()
    return 0


async def _run_with_codec(settings: Settings, codec: HttpServer) -> int:
    dev_server = None
    _serve_metrics(settings)
    try:
        client = await connect(settings, with_metrics=True)
    except RuntimeError:
        host, port = _loopback_address(settings.temporal_address)
        if host is None:
            print(f"connector: cannot reach Temporal at {settings.temporal_address}", file=sys.stderr)
            return 1
        try:
            dev_server = await start_dev_server(
                host=host,
                port=port,
                ui_port=TEMPORAL_UI_PORT,
                db_file=settings.data_dir / "temporal.db",
                codec_endpoint=codec.url,
            )
        except DevServerError as exc:
            print(f"connector: {exc}", file=sys.stderr)
            return 1
        client = await connect(settings, with_metrics=True)
    try:
        stack_ports = (VTEX_SANDBOX_PORT, MARKETPLACE_SANDBOX_PORT)
        async with (
            Stack(settings, client, sandbox_ports=stack_ports, pollers=True) as stack,
            _order_gauges(client),
        ):
            console = await _start_console(stack)
            _print_urls(
                stack,
                web_ui=f"http://{_loopback_address(settings.temporal_address)[0]}:{TEMPORAL_UI_PORT}"
                if dev_server
                else None,
                codec=codec.url,
                console=console,
            )
            demo = asyncio.create_task(_demo_orders(stack)) if stack.sandboxes else None
            await until_stopped()
            if demo is not None:
                demo.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await demo
            if console is not None:
                await console.stop()
    finally:
        if dev_server is not None:
            await stop_dev_server(dev_server)
    return 0


def _serve_metrics(settings: Settings, port: int | None = None, *, setting: str = "METRICS_PORT") -> None:
    port = settings.metrics_port if port is None else port
    if port:
        try:
            serve_metrics(port, settings.metrics_host)
        except OSError as exc:
            raise PortUnavailable(
                f"the metrics endpoint cannot listen on {settings.metrics_host}:{port}: "
                f"{exc.strerror or exc} (stop what holds it, or set {setting} to a free port, 0 turns it off)"
            ) from None


async def _worker(settings: Settings, args: NoArgs) -> int:
    await _require_store_schema(settings)
    _serve_metrics(settings)
    client = await connect(settings, with_metrics=True)
    async with Stack(settings, client, intake=False, pollers=True, migrate_store=False), _order_gauges(client):
        print(f"worker running on task queue {settings.temporal_task_queue} ({settings.temporal_address})", flush=True)
        await until_stopped()
    return 0


@contextlib.asynccontextmanager
async def _order_gauges(client: Client) -> AsyncIterator[None]:
    """Orders by status for Prometheus, refreshed from visibility while the worker runs."""
    task = asyncio.create_task(refresh_order_gauges(client))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _intake(settings: Settings, args: NoArgs) -> int:
    await _require_store_schema(settings)
    # Its own port, and no SDK runtime metrics (the worker's): the two may share a host.
    _serve_metrics(settings, settings.intake_metrics_port, setting="INTAKE_METRICS_PORT")
    client = await connect(settings)
    async with Stack(settings, client, worker=False, migrate_store=False) as stack:
        print(f"intake listening on {stack.intake_url}", flush=True)
        await until_stopped()
    return 0


async def _console(settings: Settings, args: NoArgs) -> int:
    require_sqlite_file(settings.store_url)  # run from another folder: say so, not "run connector migrate"
    await _require_store_schema(settings)
    client = await connect(settings, create_key=False)  # a new key would decrypt no order's state
    server = console_server(settings, client, open_store(settings.store_url, migrate=False))
    await server.start()
    print(f"seller's console on {server.url} (user {settings.console_user})", flush=True)
    try:
        await until_stopped()
    finally:
        await server.stop()
    return 0


async def _require_store_schema(settings: Settings) -> None:
    """The worker and the intake migrate nothing: an older schema stops them before anything starts
    (StoreError, one sentence naming `connector migrate`)."""
    store = open_store(settings.store_url, migrate=False)
    try:
        await store.ready()
    finally:
        await store.aclose()


async def _migrate(settings: Settings, args: NoArgs) -> int:
    before, after = await migrate_store(settings.store_url)
    if before == after:
        print(f"the order store's schema is already at the newest revision, {after}")
    elif before is None:
        print(f"the order store's schema is now at revision {after} (a new store, or one made before migrations)")
    else:
        print(f"the order store's schema was upgraded from revision {before} to {after}")
    return 0


def _loopback_address(address: str) -> tuple[str | None, int]:
    host, _, port = address.rpartition(":")
    return (host if host in ("127.0.0.1", "localhost") else None), int(port)


async def _start_console(stack: Stack) -> HttpServer | None:
    """The seller's console beside the stack (`connector run`), unless CONSOLE_PORT is 0."""
    if not stack.settings.console_port:
        return None
    assert stack.store is not None
    console = console_server(stack.settings, stack.client, stack.store)
    await console.start()
    return console


def _print_urls(stack: Stack, *, web_ui: str | None, codec: str, console: HttpServer | None) -> None:
    settings = stack.settings
    lines = [f"connector running ({'embedded sandboxes' if settings.embedded else 'VTEX ' + settings.vtex_url()})"]
    if console is not None:
        # The generated password of embedded mode is shown; a configured one never is.
        password = "CONSOLE_PASSWORD" if settings.console_password else f"password {console_password(settings)}"
        lines.append(f"  Seller's console     {console.url} (user {settings.console_user}, {password})")
    if web_ui:
        lines.append(f"  Temporal Web UI      {web_ui}")
    lines.append(f"  Codec server         {codec} (payloads are encrypted; the Web UI decrypts through it)")
    if settings.metrics_port:
        lines.append(f"  Metrics              http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    if settings.temporal_metrics_port:
        lines.append(f"  SDK metrics          http://{settings.metrics_host}:{settings.temporal_metrics_port}/metrics")
    lines.append(f"  Temporal             {settings.temporal_address} (namespace {settings.temporal_namespace})")
    lines.append(f"  Webhook              {stack.webhook_url(settings.connection_name)}")
    if stack.sandboxes:
        lines.append(f"  VTEX sandbox         {stack.sandboxes.vtex_server.url}")
        lines.append(f"  Marketplace sandbox  {stack.sandboxes.marketplace_server.url}")
        lines.append(f"  Demo orders every {settings.demo_order_interval_seconds:g}s; Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


# SKU 6 has no stock in the sandbox's catalog (README, "Sandboxes").
DEMO_SKU_WITHOUT_STOCK = "6"


async def _demo_orders(stack: Stack) -> None:
    """A new paid order now and then, so a newcomer sees orders flow in the Web UI. Every fifth one's
    webhook is "lost" on purpose: the poller picks it up within a poll interval. Every seventh asks for
    a SKU without stock, so the seller's console has an order to act on (parked: add stock)."""
    interval = stack.settings.demo_order_interval_seconds
    if interval <= 0 or stack.sandboxes is None:
        return
    marketplace = stack.sandboxes.marketplace
    for count in itertools.count(1):
        order = (
            marketplace.new_order(items=[(DEMO_SKU_WITHOUT_STOCK, 1)]) if count % 7 == 0 else marketplace.new_order()
        )
        if count % 5:
            marketplace.notify(order["id"])
            log.info("demo order %s created in the marketplace sandbox", order["id"])
        else:
            log.info("demo order %s created without a webhook: the poller will find it", order["id"])
        await asyncio.sleep(interval)
