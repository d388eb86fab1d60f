"""Logging for every entry point (`connector run`, `worker`, `intake`, the other commands), set up once.

`LOG_FORMAT=text` (the default): one short readable line per message on stderr,
`01:02:03 INFO    workflow     order 1001 place success: placed as MKP-1001-01`.
`LOG_FORMAT=json`: one JSON object per line with `time`, `level`, `logger`, `message` and, when known, the
order's `connection`, `marketplace_order_id` and `vtex_order_id` and Temporal's `workflow_id`, `run_id`,
`workflow_type` and `activity_type` as fields of their own (`exception` for a traceback).

Temporal's workflow and activity loggers append a dict of workflow or activity info to every message;
here they only put it in the record's `extra` (`temporal_workflow` / `temporal_activity`), from which the
fields above are taken. A log call inside an activity that goes through a plain logger gets the same
fields from the running activity's info.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

LogFormat = Literal["text", "json"]

# Libraries whose INFO lines (one per HTTP request or connection) drown the connector's own.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "uvicorn.access")
# Short names on the console for loggers whose full name says little.
SHORT_NAMES = {"temporalio.workflow": "workflow", "temporalio.activity": "activity"}
CONTEXT_FIELDS = (
    "connection",
    "marketplace_order_id",
    "vtex_order_id",
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
)


def setup_logging(
    log_format: LogFormat = "text", *, level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler | None:
    """Send every logger's records through one handler on the root logger, in `log_format`; returns it.
    Calling it again replaces the handler it installed before (tests switch formats). Without a `stream`,
    a root logger someone else gave handlers (a host application, a test runner) is left as it is, as
    `logging.basicConfig` does (None)."""
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if stream is None and any(not isinstance(handler, _ConnectorHandler) for handler in root.handlers):
        return None
    for handler in list(root.handlers):
        if isinstance(handler, _ConnectorHandler):
            root.removeHandler(handler)
    handler = _ConnectorHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_add_context)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class _ConnectorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup_logging` installs (told apart from others so a second call replaces it). Without
    a stream of its own it writes to whatever `sys.stderr` is when a record comes, as logging's last-resort
    handler does (a test harness swaps and closes the one there was when it was set up)."""

    def __init__(self, stream: TextIO | None) -> None:
        self._own: TextIO | None = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._own if self._own is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        if self._own is not None:
            self._own = value


def context(record: logging.LogRecord) -> dict[str, str]:
    """The order and Temporal fields known for a record (see the module docstring), only those known."""
    fields: dict[str, str] = {}
    details: Mapping[str, Any] = getattr(record, "temporal_activity", None) or {}
    if details:
        _put(fields, "workflow_id", details.get("workflow_id"))
        _put(fields, "run_id", details.get("workflow_run_id"))
        _put(fields, "workflow_type", details.get("workflow_type"))
        _put(fields, "activity_type", details.get("activity_type"))
    details = getattr(record, "temporal_workflow", None) or {}
    if details:
        _put(fields, "workflow_id", details.get("workflow_id"))
        _put(fields, "run_id", details.get("run_id"))
        _put(fields, "workflow_type", details.get("workflow_type"))
    workflow_id = fields.get("workflow_id", "")
    kind, _, rest = workflow_id.partition(":")
    if kind == "order" and ":" in rest:
        connection, _, order_id = rest.partition(":")
        _put(fields, "connection", connection)
        _put(fields, "marketplace_order_id", order_id)
    elif kind in ("poller", "import") and rest:
        _put(fields, "connection", rest.partition(":")[0])
    for name in ("connection", "marketplace_order_id", "vtex_order_id"):
        _put(fields, name, getattr(record, name, None), replace=True)
    return {name: fields[name] for name in CONTEXT_FIELDS if name in fields}


def _put(fields: dict[str, str], name: str, value: object, *, replace: bool = False) -> None:
    if value is not None and value != "" and (replace or name not in fields):
        fields[name] = str(value)


def _add_context(record: logging.LogRecord) -> bool:
    """A plain logger's record inside an activity gets the activity's info, as Temporal's adapter gives."""
    if getattr(record, "temporal_activity", None) is None and activity.in_activity():
        info = activity.info()
        record.temporal_activity = {
            "workflow_id": info.workflow_id,
            "workflow_run_id": info.workflow_run_id,
            "workflow_type": info.workflow_type,
            "activity_type": info.activity_type,
        }
    return True


def _message(record: logging.LogRecord) -> tuple[str, bool]:
    """The record's message, and whether its exception is told in it already. Temporal's "Completing
    activity as failed" with an ApplicationError (a failure the connector named, retried or handled by
    the workflow) becomes one line with the error instead of a traceback."""
    message = record.getMessage()
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, ApplicationError) and getattr(record, "__temporal_error_identifier", None):
        return f"{message}: {error.type or 'ApplicationError'}: {error.message}", True
    return message, False


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL   logger       message`, the order id added when the message does not name it."""

    def format(self, record: logging.LogRecord) -> str:
        message, told = _message(record)
        fields = context(record)
        order = fields.get("marketplace_order_id")
        if order and order not in message:
            message = f"[{order}] {message}"
        name = SHORT_NAMES.get(record.name, record.name.rpartition(".")[2].lstrip("_"))
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {name:<12} {message}"
        if record.exc_info and not told:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        message, told = _message(record)
        moment = time.gmtime(record.created)
        entry: dict[str, object] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', moment)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            **context(record),
        }
        if record.exc_info and not told:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
