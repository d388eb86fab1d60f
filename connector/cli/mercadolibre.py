"""`connector mercadolibre connect` and `connector mercadolibre status`: a Mercado Libre connection's OAuth
authorization, kept in the order store (connector/marketplaces/mercadolibre/tokens.py)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from connector.cli.common import (
    CommandError,
    ConnectionOption,
    Invocation,
    JsonOption,
    UsageProblem,
    app,
    connection_of,
    existing_store,
    print_json,
)
from connector.connections import ConnectionConfig, connection_configs
from connector.logbook import Logbook
from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.mercadolibre.tokens import AuthorizationStatus, MercadoLibreTokens, authorization_status
from connector.settings import Settings
from connector.temporal_client import secret_sealer

MARKETPLACE = "mercadolibre"

mercadolibre_app = typer.Typer(
    name="mercadolibre",
    help="connect a Mercado Libre account to a connection, or see whether it is connected",
)
app.add_typer(mercadolibre_app)


@dataclass(frozen=True)
class ConnectArgs:
    connection: str | None = None
    code: str | None = None
    redirect_uri: str | None = None
    refresh_token: str | None = None
    json: bool = False


@dataclass(frozen=True)
class StatusArgs:
    connection: str | None = None
    json: bool = False


@mercadolibre_app.command(
    "connect",
    help=(
        "Store the connection's first Mercado Libre tokens: give the authorization code Mercado Libre sent to "
        "the app's redirect URI once the seller authorized the app (--code with that --redirect-uri), or a "
        "refresh token (--refresh-token; `-` reads it from stdin, out of the shell's history). It is used at "
        "once, so from then on only the connector holds the live one. Also what a connection whose "
        "authorization broke needs: its orders resume."
    ),
    short_help="store a Mercado Libre account's tokens (an authorization code or a refresh token)",
)
def connect_command(
    connection: ConnectionOption = None,
    code: Annotated[str | None, typer.Option(help="the authorization code (TG-...), valid 10 minutes, once")] = None,
    redirect_uri: Annotated[
        str | None, typer.Option(help="the redirect URI the app was authorized with (with --code)")
    ] = None,
    refresh_token: Annotated[
        str | None, typer.Option(help="a refresh token instead of a code (`-`: read it from stdin)")
    ] = None,
    as_json: JsonOption = False,
) -> Invocation[ConnectArgs]:
    return Invocation(_connect, ConnectArgs(connection, code, redirect_uri, refresh_token, as_json))


@mercadolibre_app.command("status", help="whether the connection's Mercado Libre account is connected")
def status_command(connection: ConnectionOption = None, as_json: JsonOption = False) -> Invocation[StatusArgs]:
    return Invocation(_status, StatusArgs(connection, as_json))


async def _connect(settings: Settings, args: ConnectArgs) -> int:
    if args.refresh_token is not None and (args.code is not None or args.redirect_uri is not None):
        raise UsageProblem("give either --code with --redirect-uri, or --refresh-token, not both")
    if args.refresh_token is None and (args.code is None or args.redirect_uri is None):
        raise UsageProblem(
            "give --code and --redirect-uri (the authorization code Mercado Libre sent to the app's redirect URI, "
            "and that URI), or --refresh-token"
        )
    config = _mercadolibre_config(settings, args.connection)
    if not config.mercadolibre_app_id or not config.mercadolibre_client_secret:
        raise CommandError(
            f"connection {config.name} has no mercadolibre_app_id and mercadolibre_client_secret: set both in "
            "CONNECTIONS_FILE (the app's id and secret in Mercado Libre's developer panel)"
        )
    refresh_token = args.refresh_token
    if refresh_token == "-":
        refresh_token = sys.stdin.readline().strip()
        if not refresh_token:
            raise UsageProblem("--refresh-token -: stdin gave no token")
    sealer = secret_sealer(settings, create_key=False)
    # The command says what happened in a sentence of its own; the module's lines are for the worker's log.
    logging.getLogger("connector.marketplaces.mercadolibre.tokens").setLevel(logging.WARNING)
    async with existing_store(settings) as store:
        # The store first: a code is used once, and must not be spent on a store that cannot take the tokens.
        await store.ready()
        tokens = MercadoLibreTokens(
            store,
            connection=config.name,
            client_id=config.mercadolibre_app_id,
            client_secret=config.mercadolibre_client_secret,
            sealer=sealer,
            logbook=Logbook(store, account=settings.account_name),
            auth_base_url=config.mercadolibre_auth_url,
        )
        try:
            if refresh_token is not None:
                status = await tokens.connect_with_refresh_token(refresh_token)
            else:
                assert args.code is not None and args.redirect_uri is not None
                status = await tokens.connect(code=args.code, redirect_uri=args.redirect_uri)
        except MarketplaceError as exc:
            retry = f" (mercadolibre_auth_url: {config.mercadolibre_auth_url}); try again" if exc.transient else ""
            raise CommandError(f"{exc}{retry}") from None
        finally:
            await tokens.aclose()
    if args.json:
        print_json(_as_json(status))
    else:
        print(
            f"the Mercado Libre account of connection {config.name} is connected: its tokens are stored "
            f"(access token valid until {_when(status.access_expires_at)})"
        )
    return 0


async def _status(settings: Settings, args: StatusArgs) -> int:
    config = _mercadolibre_config(settings, args.connection)
    async with existing_store(settings) as store:
        status = await authorization_status(store, config.name)
    if args.json:
        print_json(_as_json(status))
        return 0
    name = config.name
    reconnect = f"`connector mercadolibre connect --connection {name} --code CODE --redirect-uri URL`"
    if status.state == "connected":
        print(
            f"connection {name}: connected to Mercado Libre (access token valid until "
            f"{_when(status.access_expires_at)}, refreshed when needed; tokens stored {_when(status.updated_at)})"
        )
    elif status.state == "broken":
        print(
            f"connection {name}: authorization broken since {_when(status.broken_at)}: {status.reason}; its orders "
            f"wait: reconnect the account with {reconnect}"
        )
    else:
        print(f"connection {name}: not connected to Mercado Libre: connect the account with {reconnect}")
    return 0


def _mercadolibre_config(settings: Settings, given: str | None) -> ConnectionConfig:
    name = connection_of(settings, given)
    config = next(config for config in connection_configs(settings) if config.name == name)
    if config.marketplace != MARKETPLACE:
        raise CommandError(
            f"connection {name} is not a Mercado Libre connection (its marketplace is {config.marketplace!r}): "
            'give --connection of one with "marketplace": "mercadolibre" in CONNECTIONS_FILE'
        )
    return config


def _as_json(status: AuthorizationStatus) -> dict[str, object]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "connection": status.connection,
        "state": status.state,
        "reason": status.reason,
        "broken_at": moment(status.broken_at),
        "access_expires_at": moment(status.access_expires_at),
        "updated_at": moment(status.updated_at),
    }


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"
