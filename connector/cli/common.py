"""What every command shares: the typer app, how a command hands its work to `_main` (an Invocation),
the errors `_main` turns into one line, the connection and store checks, and how tables and JSON are
printed."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from connector.connections import connection_configs
from connector.settings import Settings
from connector.store.base import OrderStore, StoreError, open_store

app = typer.Typer(
    name="connector",
    help="VTEX marketplace order connector",
    add_completion=False,
    pretty_exceptions_enable=False,
)

A = TypeVar("A")


@dataclass(frozen=True)
class Invocation(Generic[A]):
    """What a command line asks for: its handler and its arguments. Parsing only builds it; `_main` loads
    the settings, then runs it (so a typo is refused before any setting is read)."""

    handler: Callable[[Settings, A], Awaitable[int]]
    args: A

    async def run(self, settings: Settings) -> int:
        return await self.handler(settings, self.args)


class CommandError(Exception):
    """What a user asked for cannot be done; the message says what is wrong and what to do (status 1)."""


class UsageProblem(Exception):
    """An argument the command cannot use; the message says which and how to write it (status 2)."""


# Options more than one command has, spelled once.
ConnectionOption = Annotated[str | None, typer.Option(help="connection name (default: CONNECTION_NAME)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table (for scripts)")]


def connection_of(settings: Settings, given: str | None) -> str:
    """The connection a command names (`--connection`, else CONNECTION_NAME); CommandError if none such
    is configured."""
    connection = given or settings.connection_name
    names = [config.name for config in connection_configs(settings)]
    if connection not in names:
        where = "--connection" if given else "CONNECTION_NAME"
        raise CommandError(
            f"no connection {connection!r} is configured ({where}); the configured ones: {', '.join(names)}"
        )
    return connection


def no_order(order: str, connection: str, *, running: bool = False) -> CommandError:
    return CommandError(
        f"no {'running ' if running else ''}order {order} for connection {connection}: give the marketplace's "
        "order id (the one in the webhook), and --connection if it came through another connection"
    )


# Where the errors of a store that cannot be opened or read come from (either backend, any driver).
STORE_ERROR_MODULES = frozenset({"sqlite3", "psycopg", "psycopg_pool", "sqlalchemy", "alembic"})


@contextlib.asynccontextmanager
async def existing_store(settings: Settings) -> AsyncIterator[OrderStore]:
    """The store of a command that reads or notes orders. A SQLite file must be there already (a new,
    empty one would show nothing and note what no worker reads), and a store that cannot be opened or
    read is one sentence (StoreError), never with its password."""
    require_sqlite_file(settings.store_url)
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
            f"cannot use the order store {without_password(settings.store_url)} (STORE_URL): {reason}; check "
            "STORE_URL and that the database is up"
        ) from None


def require_sqlite_file(url: str) -> None:
    scheme, _, rest = url.partition("://")
    path = rest.removeprefix("/")
    if scheme == "sqlite" and rest.startswith("/") and path and path != ":memory:" and not os.path.exists(path):
        raise StoreError(
            f"no order store at {os.path.abspath(path)} (STORE_URL): run this command from the folder `make run` "
            "runs in, or set STORE_URL to the connector's store"
        )


def without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{location}" if ":" in credentials else url


# --- output ------------------------------------------------------------------------------------------

# Where nobody watches (a pipe, a file), a row is one line however long, so grep and cut work on it.
PIPE_WIDTH = 100_000


def output() -> Console:
    """The console for a command's output on stdout (no markup or highlighting of the data)."""
    return Console(markup=False, highlight=False, soft_wrap=False)


def table(console: Console, *headers: str, wrapping: Collection[str] = ()) -> Table:
    """A table in the commands' style; in a pipe, plain columns with the header as the first line. In a
    narrow terminal only the `wrapping` columns (free text) wrap: times, ids and codes stay whole."""
    rows = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, pad_edge=False, show_edge=False)
    for header in headers:
        rows.add_column(header, no_wrap=header not in wrapping)
    return rows


def print_table(console: Console, rendered: Table) -> None:
    if console.is_terminal:
        console.print(rendered)
    else:
        sys.stdout.write(plain(rendered) + "\n")


def plain(rendered: Table) -> str:
    """The table as plain text: no colors, one line a row however long, no trailing blanks."""
    wide = Console(width=PIPE_WIDTH, markup=False, highlight=False, no_color=True, force_terminal=False)
    with wide.capture() as captured:
        wide.print(rendered)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def print_json(value: Any) -> None:
    """`value` (plain data, ISO datetimes already) as JSON on stdout, and nothing else."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def one_line(text: str) -> str:
    return " ".join(text.split())


def dash(value: object | None) -> str:
    return "-" if value is None or value == "" else str(value)
