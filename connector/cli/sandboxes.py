"""`connector sandboxes` and `connector create-order`: offered only where the sandboxes are installed
(connector/embedded.py), i.e. a development or demo install, never the production image: connector/cli
imports this module only then, and importing it registers the two commands."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import urlsplit

import httpx
import typer
from sandboxes.marketplace import MarketplaceSandbox
from sandboxes.vtex import VtexSandbox

from connector.cli.common import Invocation, app
from connector.connections import connection_configs
from connector.embedded import MARKETPLACE_SANDBOX_PORT, VTEX_SANDBOX_PORT
from connector.http_server import HttpServer
from connector.process import until_stopped
from connector.settings import Settings

DEFAULT_MARKETPLACE_URL = f"http://127.0.0.1:{MARKETPLACE_SANDBOX_PORT}"


@dataclass(frozen=True)
class SandboxesArgs:
    vtex_port: int = VTEX_SANDBOX_PORT
    marketplace_port: int = MARKETPLACE_SANDBOX_PORT
    host: str = "127.0.0.1"


@app.command("sandboxes", help="run only the VTEX and marketplace sandboxes")
def sandboxes_command(
    vtex_port: int = SandboxesArgs.vtex_port,
    marketplace_port: int = SandboxesArgs.marketplace_port,
    host: str = SandboxesArgs.host,
) -> Invocation[SandboxesArgs]:
    return Invocation(_sandboxes, SandboxesArgs(vtex_port, marketplace_port, host))


@dataclass(frozen=True)
class CreateOrderArgs:
    item: list[str] = field(default_factory=list)
    status: str = "paid"
    pickup: bool = False
    marketplace_url: str | None = None


@app.command("create-order", help="create an order in the marketplace sandbox")
def create_order_command(
    item: Annotated[list[str] | None, typer.Option(metavar="SKU[:QTY]", help="an item line (repeatable)")] = None,
    status: Annotated[Literal["paid", "payment_pending", "cancelled"], typer.Option()] = "paid",
    pickup: Annotated[bool, typer.Option("--pickup", help="pickup in point instead of delivery")] = False,
    marketplace_url: Annotated[
        str | None, typer.Option(help=f"marketplace sandbox URL (default {DEFAULT_MARKETPLACE_URL})")
    ] = None,
) -> Invocation[CreateOrderArgs]:
    return Invocation(_create_order, CreateOrderArgs(list(item or []), status, pickup, marketplace_url))


async def _sandboxes(settings: Settings, args: SandboxesArgs) -> int:
    """The sandboxes on their own, for a split try-out (the benchmarks, fault tests): the worker and
    intake then use them as if they were VTEX and a marketplace (VTEX_BASE_URL, the sandbox key)."""
    vtex = VtexSandbox()
    servers = [HttpServer(vtex.app, host=args.host, port=args.vtex_port, name="vtex-sandbox")]
    public = str(settings.connector_public_url).rstrip("/")
    for offset, config in enumerate(connection_configs(settings)):
        marketplace = MarketplaceSandbox(
            webhook_url=f"{public}/webhooks/{config.name}",
            webhook_secret=config.webhook_secret or _env_secret(settings),
        )
        servers.append(
            HttpServer(marketplace.app, host=args.host, port=args.marketplace_port + offset, name=config.name)
        )
    for server in servers:
        await server.start()
    print(f"VTEX sandbox         {servers[0].url} (app key {vtex.app_key}, token {vtex.app_token})", flush=True)
    for server in servers[1:]:
        print(f"Marketplace sandbox  {server.url} (connection {server.name})", flush=True)
    try:
        await until_stopped()
    finally:
        for server in reversed(servers):
            await server.stop()
    return 0


def _env_secret(settings: Settings) -> str | None:
    return settings.webhook_secret.get_secret_value() if settings.webhook_secret else None


async def _create_order(settings: Settings, args: CreateOrderArgs) -> int:
    base_url = args.marketplace_url or (
        str(settings.marketplace_base_url) if settings.marketplace_base_url else DEFAULT_MARKETPLACE_URL
    )
    items = []
    for spec in args.item:
        sku, _, quantity = spec.partition(":")
        if not sku or not (quantity or "1").isdigit():
            print(f"connector: --item {spec!r}: write SKU or SKU:QUANTITY, e.g. --item 1:2", file=sys.stderr)
            return 2
        items.append({"sku": sku, "quantity": int(quantity or 1)})
    body = {"status": args.status, "pickup": args.pickup, **({"items": items} if items else {})}
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10) as http:
        try:
            response = await http.post("/admin/orders", json=body)
        except httpx.HTTPError as exc:
            print(
                f"connector: the marketplace sandbox does not answer at {base_url} ({type(exc).__name__}): start "
                "it with `make run` (or `connector sandboxes`), or give --marketplace-url",
                file=sys.stderr,
            )
            return 1
    if response.status_code != 201:
        print(
            f"connector: the marketplace sandbox refused the order: {' '.join(response.text.split())}", file=sys.stderr
        )
        return 1
    order = response.json()
    print(f"created order {order['id']} ({urlsplit(base_url).netloc}); follow it with: connector status {order['id']}")
    return 0
