"""The `connector` command: run the stack, inspect, list, import and reprocess orders, create sandbox orders.

typer builds the command line from the commands' modules (servers.py: run, worker, intake, console,
codec-server, migrate; orders.py: status, orders, reprocess, cancel; importing.py: import; logs.py: logs;
mercadolibre.py: mercadolibre connect and status; sandboxes.py: sandboxes and create-order, only where the
sandboxes are installed). A command only turns its arguments into an Invocation; `_main` loads the settings,
runs it, and is the one place a problem the user can fix becomes one line on stderr and an exit status.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from connector.cli import importing, logs, mercadolibre, orders, servers
from connector.cli.common import CommandError, Invocation, UsageProblem, app
from connector.cli.servers import codec_server
from connector.codec import CodecError
from connector.embedded import sandboxes_installed
from connector.http_server import PortUnavailable
from connector.logging_setup import setup_logging
from connector.settings import SettingsError, load_settings
from connector.store.base import StoreError
from connector.temporal_client import TemporalUnreachable

if sandboxes_installed():  # a development or demo install (connector/embedded.py)
    from connector.cli import sandboxes  # noqa: F401  (registers its commands)

__all__ = ["CommandError", "Invocation", "app", "codec_server", "command_names", "main", "parse"]
_COMMAND_MODULES = (importing, logs, mercadolibre, orders, servers)  # imported for the commands they register


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point. Exits with os._exit so temporalio's interpreter-teardown crash (sdk-python#300)
    can never replace the real exit status."""
    status = _main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _main(argv: Sequence[str] | None) -> int:
    """Every way a command can fail for a reason the user can fix ends here as one line on stderr,
    `connector: <what is wrong and what to do>`, and a non-zero status: 2 for the command line and the
    configuration, 1 for the rest (Temporal, the store, a port, an order that does not exist)."""
    try:
        invocation = parse(sys.argv[1:] if argv is None else argv)
    except typer.TyperException as exc:
        return _refuse(_usage_sentence(exc), 2)
    if isinstance(invocation, int):  # --help
        return invocation
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _refuse(exc, 2)
    setup_logging(settings.log_format)
    try:
        return asyncio.run(invocation.run(settings))
    except (SettingsError, UsageProblem) as exc:  # found once running, e.g. embedded mode without sandboxes
        return _refuse(exc, 2)
    except (TemporalUnreachable, CommandError, StoreError, PortUnavailable, CodecError) as exc:
        return _refuse(exc, 1)
    except KeyboardInterrupt:
        return 130


def parse(argv: Sequence[str]) -> Invocation[Any] | int:
    """The command line as an Invocation, or the status of one that printed its help. A command line the
    commands cannot take raises typer's exception (typer.TyperException)."""
    command = typer.main.get_command(app)
    result = command.main(args=list(argv), prog_name="connector", standalone_mode=False)
    if isinstance(result, Invocation):
        return result
    return result if isinstance(result, int) else 0


def command_names() -> set[str]:
    """The commands this install offers."""
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    return set(command.commands)


def _usage_sentence(exc: typer.TyperException) -> str:
    """typer's message as one sentence with where to read more, instead of a usage block."""
    message = " ".join(exc.format_message().split()).replace("Value error, ", "").replace(". Did you", ": did you")
    context = getattr(exc, "ctx", None)
    where = context.command_path if context is not None else "connector"
    return f"{message[:1].lower()}{message[1:].rstrip('.')} (see `{where} --help`)"


def _refuse(problem: Exception | str, status: int) -> int:
    print(f"connector: {' '.join(str(problem).split())}", file=sys.stderr)
    return status
