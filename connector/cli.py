"""The `connector` command: run the stack, inspect, import and reprocess orders, create sandbox orders."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime

from rich.console import Console
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from connector.cancel import request_cancel
from connector.codec import CodecError
from connector.codec_server import create_codec_app
from connector.connections import connection_configs
from connector.console.server import console_password, console_server
from connector.devserver import DevServerError, start_dev_server, stop_dev_server
from connector.embedded import MARKETPLACE_SANDBOX_PORT, VTEX_SANDBOX_PORT, require_sandboxes, sandboxes_installed
from connector.http_server import HttpServer, PortUnavailable
from connector.import_command import ImportArgumentError, command_for, import_request, start_import, watch_import
from connector.importing import MAX_PAGE_SIZE, ImportInput
from connector.intake.logs import parse_statuses
from connector.logging_setup import setup_logging
from connector.metrics import refresh_order_gauges, serve_metrics
from connector.models import CancelRequest, OrderState, order_workflow_id
from connector.process import until_stopped
from connector.reprocess import Reprocessed, reprocess_matching, reprocess_order
from connector.settings import Settings, SettingsError, load_settings
from connector.stack import Stack
from connector.store.base import OrderStore, StoreError, migrate_store, open_store
from connector.store.format import format_logs
from connector.temporal_client import TemporalUnreachable, connect, payload_codec
from workflows.order import OrderLifecycle

TEMPORAL_UI_PORT = 8233

log = logging.getLogger("connector")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point. Exits with os._exit so temporalio's interpreter-teardown crash (sdk-python#300)
    can never replace the real exit status."""
    status = _main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class CommandError(Exception):
    """What a user asked for cannot be done; the message says what is wrong and what to do."""


def _main(argv: Sequence[str] | None) -> int:
    """Every way a command can fail for a reason the user can fix ends here as one line on stderr,
    `connector: <what is wrong and what to do>`, and a non-zero status: 2 for the configuration, 1 for
    the rest (Temporal, the store, a port, an order that does not exist)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _refuse(exc, 2)
    setup_logging(settings.log_format)
    try:
        result: int = asyncio.run(args.handler(settings, args))
        return result
    except SettingsError as exc:  # found once running, e.g. embedded mode on an install without sandboxes
        return _refuse(exc, 2)
    except (TemporalUnreachable, CommandError, StoreError, PortUnavailable, CodecError) as exc:
        return _refuse(exc, 1)
    except KeyboardInterrupt:
        return 130


def _refuse(problem: Exception | str, status: int) -> int:
    print(f"connector: {' '.join(str(problem).split())}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description="VTEX marketplace order connector")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the connector (embedded sandboxes without VTEX credentials)")
    run.set_defaults(handler=_run)

    worker = commands.add_parser("worker", help="run only the Temporal worker (and start the pollers)")
    worker.set_defaults(handler=_worker)

    intake = commands.add_parser("intake", help="run only the intake app (webhooks, VTEX callbacks, logs)")
    intake.set_defaults(handler=_intake)

    console = commands.add_parser("console", help="run only the seller's console (web, CONSOLE_PORT)")
    console.set_defaults(handler=_console)

    migrate = commands.add_parser(
        "migrate", help="bring the order store's schema to this version's (the worker and intake need it)"
    )
    migrate.set_defaults(handler=_migrate)

    codec = commands.add_parser("codec-server", help="run only the codec server (Web UI payload decryption)")
    codec.set_defaults(handler=_codec_server)

    status = commands.add_parser("status", help="print an order's state and timeline")
    status.add_argument("marketplace_order_id")
    status.add_argument("--connection", help="connection name (default: CONNECTION_NAME)")
    status.set_defaults(handler=_status)

    reprocess = commands.add_parser(
        "reprocess", help="retry one order now, or every order parked with a status and/or error code"
    )
    reprocess.add_argument("marketplace_order_id", nargs="?")
    reprocess.add_argument("--status", choices=["parked", "reprocessing", "dead-lettered"])
    reprocess.add_argument("--code", help="error code, e.g. ORD027, FMT007, VALIDATION, HTTP503")
    reprocess.add_argument("--connection", help="connection name (default: CONNECTION_NAME for one order)")
    reprocess.set_defaults(handler=_reprocess)

    cancel = commands.add_parser("cancel", help="cancel an order (in VTEX too, if it reached VTEX)")
    cancel.add_argument("marketplace_order_id")
    cancel.add_argument("--reason", default="canceled in the marketplace")
    cancel.add_argument("--connection", help="connection name (default: CONNECTION_NAME)")
    cancel.set_defaults(handler=_cancel)

    importing = commands.add_parser(
        "import",
        help="bring in orders on purpose: by id, or every order changed in a time range",
        description=(
            "Bring in orders on purpose (a new connector polls from the time it starts and imports no history "
            "by surprise). Give marketplace order ids, or --since for every order whose latest change "
            "(created, paid, canceled...) falls in the range. An order the connector already knows is left "
            "alone, so importing again integrates nothing twice. The import runs in Temporal: Ctrl-C leaves it "
            "running, and the same command attaches to it again."
        ),
    )
    importing.add_argument("order_ids", nargs="*", metavar="ORDER_ID", help="marketplace order ids")
    importing.add_argument(
        "--since", help="range start: ISO 8601 with an offset (2026-11-01T00:00:00Z) or a date (midnight UTC)"
    )
    importing.add_argument("--until", help="range end, written like --since (default: when the import is asked)")
    importing.add_argument(
        "--page-size", type=int, default=MAX_PAGE_SIZE, help=f"orders per page (default and maximum {MAX_PAGE_SIZE})"
    )
    importing.add_argument("--connection", help="connection name (default: CONNECTION_NAME)")
    importing.add_argument("--no-wait", action="store_true", help="start the import, print its id and return")
    importing.set_defaults(handler=_import)

    logs = commands.add_parser("logs", help="show the order log (VTEX's log format) for a day")
    logs.add_argument("--date", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today, UTC)")
    logs.add_argument("--status", help="comma list of success, error, alert, pending (default: all)")
    logs.add_argument("--order", help="only this marketplace order id")
    logs.add_argument("--connection", help="only this connection (default: every connection)")
    logs.add_argument("-v", "--verbose", action="store_true", help="include the content payloads")
    logs.set_defaults(handler=_logs)

    if sandboxes_installed():  # a development or demo install (connector/embedded.py)
        from connector.sandbox_commands import add_sandbox_commands

        add_sandbox_commands(commands)
    return parser


async def _run(settings: Settings, args: argparse.Namespace) -> int:
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


async def _codec_server(settings: Settings, args: argparse.Namespace) -> int:
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


async def _worker(settings: Settings, args: argparse.Namespace) -> int:
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


async def _intake(settings: Settings, args: argparse.Namespace) -> int:
    await _require_store_schema(settings)
    # Its own port, and no SDK runtime metrics (the worker's): the two may share a host.
    _serve_metrics(settings, settings.intake_metrics_port, setting="INTAKE_METRICS_PORT")
    client = await connect(settings)
    async with Stack(settings, client, worker=False, migrate_store=False) as stack:
        print(f"intake listening on {stack.intake_url}", flush=True)
        await until_stopped()
    return 0


async def _console(settings: Settings, args: argparse.Namespace) -> int:
    _require_sqlite_file(settings.store_url)  # run from another folder: say so, not "run connector migrate"
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


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
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


async def _demo_orders(stack: Stack) -> None:
    """A new paid order now and then, so a newcomer sees orders flow in the Web UI. Every fifth one's
    webhook is "lost" on purpose: the poller picks it up within a poll interval."""
    interval = stack.settings.demo_order_interval_seconds
    if interval <= 0 or stack.sandboxes is None:
        return
    marketplace = stack.sandboxes.marketplace
    for count in itertools.count(1):
        order = marketplace.new_order()
        if count % 5:
            marketplace.notify(order["id"])
            log.info("demo order %s created in the marketplace sandbox", order["id"])
        else:
            log.info("demo order %s created without a webhook: the poller will find it", order["id"])
        await asyncio.sleep(interval)


def _connection(settings: Settings, args: argparse.Namespace) -> str:
    """The connection a command names (`--connection`, else CONNECTION_NAME); CommandError if none such
    is configured."""
    connection: str = args.connection or settings.connection_name
    names = [config.name for config in connection_configs(settings)]
    if connection not in names:
        where = "--connection" if args.connection else "CONNECTION_NAME"
        raise CommandError(
            f"no connection {connection!r} is configured ({where}); the configured ones: {', '.join(names)}"
        )
    return connection


def _no_order(order: str, connection: str, *, running: bool = False) -> CommandError:
    return CommandError(
        f"no {'running ' if running else ''}order {order} for connection {connection}: give the marketplace's "
        "order id (the one in the webhook), and --connection if it came through another connection"
    )


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    connection = _connection(settings, args)
    client: Client = await connect(settings, create_key=False)
    handle = client.get_workflow_handle_for(
        OrderLifecycle.run, order_workflow_id(connection, args.marketplace_order_id)
    )
    try:
        state: OrderState = await handle.query(OrderLifecycle.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise _no_order(args.marketplace_order_id, connection) from None
        raise
    except WorkflowQueryFailedError as exc:
        raise CommandError(
            f"the workflow of order {args.marketplace_order_id} could not answer ({exc}): is a worker running "
            "(`make run` or `connector worker`)?"
        ) from None
    print(format_state(state))
    return 0


def format_state(state: OrderState) -> str:
    lines = [
        f"order        {state.marketplace_order_id} ({state.connection})",
        f"status       {state.status.value}",
        f"VTEX order   {state.vtex_order_id or '-'}",
        f"run          {state.run_number} (continue-as-new starts a new one)",
    ]
    if state.parked_reason:
        lines.append(f"problem      {state.parked_reason}")
    if state.error_code:
        lines.append(f"error code   {state.error_code} (attempts: {state.reprocess_attempts})")
    lines.append("timeline")
    for entry in state.timeline:
        code = f"[{entry.code}] " if entry.code else ""
        lines.append(f"  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.step:<10} {entry.outcome:<8} {code}{entry.message}")
    return "\n".join(lines)


async def _reprocess(settings: Settings, args: argparse.Namespace) -> int:
    if args.marketplace_order_id is None and args.status is None and args.code is None:
        print(
            "connector reprocess: give an order id, or --status and/or --code for a bulk reprocess",
            file=sys.stderr,
        )
        return 2
    if args.marketplace_order_id or args.connection:
        _connection(settings, args)
    client = await connect(settings, create_key=False)
    reason = "reprocess requested from the command line"
    if args.marketplace_order_id:
        connection = args.connection or settings.connection_name
        outcome = await reprocess_order(
            client, connection=connection, marketplace_order_id=args.marketplace_order_id, reason=reason
        )
        order = args.marketplace_order_id
        if outcome is Reprocessed.UNKNOWN:
            raise _no_order(order, connection)
        if outcome is Reprocessed.FINISHED:
            raise CommandError(
                f"order {order} is finished (its after-sale window passed): act on it in VTEX and the marketplace"
            )
        if outcome is Reprocessed.RESTARTED:
            print(f"order {order}'s workflow had ended unfinished: started again; it meets its existing VTEX order")
            return 0
        print(f"reprocess requested for order {order}")
        return 0
    signaled = await reprocess_matching(
        client, status=args.status, code=args.code, connection=args.connection, reason=reason
    )
    print(f"reprocess requested for {len(signaled)} order(s)")
    for workflow_id in signaled:
        print(f"  {workflow_id}")
    return 0


async def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    connection = _connection(settings, args)
    client = await connect(settings, create_key=False)
    async with _existing_store(settings) as store:
        found = await request_cancel(
            client,
            store,
            connection=connection,
            marketplace_order_id=args.marketplace_order_id,
            request=CancelRequest(reason=args.reason, source="operator"),
        )
    if not found:
        raise _no_order(args.marketplace_order_id, connection, running=True)
    print(
        f"cancel requested for order {args.marketplace_order_id}; follow it with: connector status "
        f"{args.marketplace_order_id}"
    )
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        request = import_request(settings, args)
    except ImportArgumentError as exc:
        print(f"connector import: {exc}", file=sys.stderr)
        return 2
    client = await connect(settings, create_key=False)
    handle = await start_import(client, ImportInput(request=request), task_queue=settings.temporal_task_queue)
    if args.no_wait:
        print(f"import {handle.id} is running; watch it with: {command_for(request)}")
        return 0
    return await watch_import(handle, request, Console())


async def _logs(settings: Settings, args: argparse.Namespace) -> int:
    try:
        statuses = parse_statuses(args.status or "all")
    except ValueError as exc:
        print(f"connector logs: {exc}", file=sys.stderr)
        return 2
    # --connection is not checked against the configured ones: the log keeps a removed connection's lines.
    async with _existing_store(settings) as store:
        messages = await store.logs(
            account=settings.account_name,
            day=args.date or datetime.now(UTC).date(),
            statuses=statuses,
            marketplace_order_id=args.order,
            connection=args.connection,
        )
    print(format_logs(messages, verbose=args.verbose))
    return 0


# Where the errors of a store that cannot be opened or read come from (either backend, any driver).
STORE_ERROR_MODULES = frozenset({"sqlite3", "psycopg", "psycopg_pool", "sqlalchemy", "alembic"})


@contextlib.asynccontextmanager
async def _existing_store(settings: Settings) -> AsyncIterator[OrderStore]:
    """The store of a command that reads or notes orders. A SQLite file must be there already (a new,
    empty one would show nothing and note what no worker reads), and a store that cannot be opened or
    read is one sentence (StoreError), never with its password."""
    _require_sqlite_file(settings.store_url)
    try:
        store = open_store(settings.store_url, migrate=False)
        try:
            yield store
        finally:
            await store.aclose()
    except StoreError:
        raise  # the store's own, already one sentence for the operator
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] not in STORE_ERROR_MODULES:
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(
            f"cannot use the order store {_without_password(settings.store_url)} (STORE_URL): {reason}; check "
            "STORE_URL and that the database is up"
        ) from None


def _require_sqlite_file(url: str) -> None:
    scheme, _, rest = url.partition("://")
    path = rest.removeprefix("/")
    if scheme == "sqlite" and rest.startswith("/") and path and path != ":memory:" and not os.path.exists(path):
        raise StoreError(
            f"no order store at {os.path.abspath(path)} (STORE_URL): run this command from the folder `make run` "
            "runs in, or set STORE_URL to the connector's store"
        )


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{location}" if ":" in credentials else url


if __name__ == "__main__":
    main()
