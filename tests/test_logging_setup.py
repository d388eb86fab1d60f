"""The log formatters on records like the ones the connector and Temporal's loggers make."""

from __future__ import annotations

import io
import json
import logging
import sys

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

from connector.logging_setup import JsonFormatter, TextFormatter, context, setup_logging


def record(
    message: str, *, name: str = "temporalio.workflow", exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, (), None)
    if exc is not None:
        try:
            raise exc
        except BaseException:
            made.exc_info = sys.exc_info()
    made.__dict__.update(extra)
    return made


WORKFLOW = {"workflow_id": "order:acme-br:1001", "run_id": "r-1", "workflow_type": "OrderLifecycle", "attempt": 1}
ACTIVITY = {
    "workflow_id": "order:acme-br:1001",
    "workflow_run_id": "r-1",
    "workflow_type": "OrderLifecycle",
    "activity_type": "place_order",
    "activity_id": "3",
}


def test_the_order_and_temporal_ids_become_fields() -> None:
    fields = context(record("x", temporal_activity=ACTIVITY, vtex_order_id="MKP-1001-01"))
    assert fields == {
        "connection": "acme-br",
        "marketplace_order_id": "1001",
        "vtex_order_id": "MKP-1001-01",
        "workflow_id": "order:acme-br:1001",
        "run_id": "r-1",
        "workflow_type": "OrderLifecycle",
        "activity_type": "place_order",
    }
    assert context(record("x", temporal_workflow={"workflow_id": "poller:acme-br"})) == {
        "connection": "acme-br",
        "workflow_id": "poller:acme-br",
    }
    assert context(record("x", name="connector.intake.app")) == {}


def test_a_text_line_is_short_and_names_the_order() -> None:
    line = TextFormatter().format(record("place success", temporal_workflow=WORKFLOW))
    assert line.endswith(" WARNING workflow     [1001] place success")
    named = TextFormatter().format(record("order 1001 placed", temporal_workflow=WORKFLOW))
    assert named.endswith(" workflow     order 1001 placed")
    assert "\n" not in line and "{" not in line


def test_a_handled_activity_failure_is_one_line_an_unexpected_one_keeps_its_traceback() -> None:
    handled = record(
        "Completing activity as failed",
        name="temporalio.activity",
        exc=ApplicationError("VTEX said 503", type="VtexTransient"),
        temporal_activity=ACTIVITY,
        __temporal_error_identifier="ActivityFailure",
    )
    line = TextFormatter().format(handled)
    assert line.endswith("activity     [1001] Completing activity as failed: VtexTransient: VTEX said 503")
    assert "exception" not in json.loads(JsonFormatter().format(handled))
    bug = record("Completing activity as failed", name="temporalio.activity", exc=KeyError("sku"))
    assert "Traceback" in TextFormatter().format(bug)
    assert "KeyError" in json.loads(JsonFormatter().format(bug))["exception"]


def test_a_json_line_is_one_object_with_the_fields() -> None:
    entry = json.loads(JsonFormatter().format(record("order 1001 place success", temporal_workflow=WORKFLOW)))
    assert entry["level"] == "WARNING" and entry["logger"] == "temporalio.workflow"
    assert entry["message"] == "order 1001 place success" and entry["time"].endswith("Z")
    assert entry["marketplace_order_id"] == "1001" and entry["connection"] == "acme-br"


def test_setup_takes_temporals_info_off_the_message_and_replaces_its_own_handler() -> None:
    root = logging.getLogger()
    level = root.level
    first = setup_logging("text", stream=io.StringIO())
    stream = io.StringIO()
    second = setup_logging("json", stream=stream)
    assert second is not None
    try:
        assert first not in root.handlers and second in root.handlers
        assert setup_logging("text") is None  # handlers there (pytest's): left as they are, like basicConfig
        assert second in root.handlers
        assert workflow.logger.workflow_info_on_message is False
        assert activity.logger.activity_info_on_message is False
        logging.getLogger("connector.test").info("hello")
        assert json.loads(stream.getvalue())["message"] == "hello"
    finally:
        root.removeHandler(second)
        root.setLevel(level)
