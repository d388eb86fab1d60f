"""Log messages as a terminal table, for the `connector logs` command."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from connector.store.models import LogMessage

_HEADERS = ("TIME (UTC)", "CODE", "STATUS", "CONNECTION", "MARKETPLACE ORDER", "VTEX ORDER", "OPERATION", "MESSAGE")
_GAP = "  "


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cells(message: LogMessage) -> tuple[str, ...]:
    return (
        message.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        message.code,
        message.status.value.capitalize(),
        message.connection,
        message.marketplace_order_id,
        message.vtex_order_id or "-",
        _one_line(message.operation),
        _one_line(message.business_message),
    )


def format_logs(messages: Sequence[LogMessage], verbose: bool = False) -> str:
    """One line per message; `verbose` adds the content payloads, indented, under each line."""
    if not messages:
        return "no log messages"
    rows = [_cells(message) for message in messages]
    # The last column is left unpadded: business messages are long and the terminal wraps them.
    widths = [max(len(row[i]) for row in [_HEADERS, *rows]) for i in range(len(_HEADERS) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return _GAP.join([*padded, cells[-1]])

    lines = [line(_HEADERS)]
    for message, row in zip(messages, rows, strict=True):
        lines.append(line(row))
        if verbose:
            contents = (
                ("source", message.content_source),
                ("translated", message.content_translated),
                ("destination", message.content_destination),
            )
            lines.extend(f"    {label}: {text}" for label, text in contents if text)
    return "\n".join(lines)
