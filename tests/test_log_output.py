"""What the connector logs, as a user sees it: one readable line per step (LOG_FORMAT=text) or one JSON
object per line with the order's and Temporal's ids as fields (LOG_FORMAT=json), and in neither a
configured secret or the customer's personal data.

A stack of its own, with every secret configured, runs an order's whole life and its failures (a VTEX
fault, a parked order, a callback with a wrong token, a webhook with a bad signature, a codec call
without the token) while the root logger takes everything at DEBUG through the real formatter.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sandboxes.vtex
from sandboxes.seller import invoice_notification
from sandboxes.vtex import FaultRule, VtexSandbox
from temporalio.testing import WorkflowEnvironment

from connector.cli import codec_server
from connector.logging_setup import LogFormat, setup_logging
from connector.models import OrderStatus
from connector.stack import Stack
from connector.temporal_client import connect
from tests.conftest import embedded_settings
from tests.helpers import seller, signed_webhook, wait_for_state

APP_TOKEN = secrets.token_urlsafe(32)
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+ +\S")


class _TokenedVtex(VtexSandbox):
    """The VTEX sandbox with an app token of this test's (the stack's VTEX client sends it on every call)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(app_token=APP_TOKEN, **options)


@pytest.fixture
def vtex_app_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(sandboxes.vtex, "VtexSandbox", _TokenedVtex)
    yield APP_TOKEN


class Captured:
    def __init__(self, log_format: LogFormat) -> None:
        self.stream = io.StringIO()
        self._format = log_format

    def __enter__(self) -> Captured:
        root = logging.getLogger()
        self._level = root.level
        handler = setup_logging(self._format, level=logging.DEBUG, stream=self.stream)
        assert handler is not None
        self._handler = handler
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
async def secret_stack(
    temporal_env: WorkflowEnvironment, tmp_path: Path, vtex_app_token: str
) -> AsyncIterator[tuple[Stack, dict[str, str]]]:
    configured = {
        "webhook secret": secrets.token_urlsafe(24),
        "callback token": secrets.token_urlsafe(24),
        "codec token": secrets.token_urlsafe(24),
        "payload key": base64.b64encode(os.urandom(32)).decode(),
        "VTEX app token": vtex_app_token,
    }
    settings = embedded_settings(
        data_dir=tmp_path / "data",
        store_url=f"sqlite:///{tmp_path / 'connector.db'}",
        temporal_address=temporal_env.client.service_client.config.target_host,
        webhook_secret=configured["webhook secret"],
        callback_token=configured["callback token"],
        codec_auth_token=configured["codec token"],
        payload_encryption_keys=f"logs-{uuid.uuid4().hex[:6]}:{configured['payload key']}",
        codec_port=0,
    )
    client = await connect(settings)  # this stack's own payload key
    async with Stack(settings, client) as stack:
        yield stack, configured


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_full_run_logs_readable_lines_and_no_secret_or_personal_data(
    secret_stack: tuple[Stack, dict[str, str]], log_format: LogFormat
) -> None:
    stack, configured = secret_stack
    box = stack.sandboxes
    assert box is not None
    with Captured(log_format) as captured:
        # A paid order, its placement failing once (VTEX 503), integrated, invoiced in VTEX: completed.
        box.vtex.add_fault(FaultRule(method="POST", path_contains="/api/fulfillment/pvt/orders", status=503))
        order = box.marketplace.new_order(items=[("1", 1)])
        box.marketplace.notify(order["id"])
        state = await wait_for_state(
            stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
        )
        vtex_id = state.vtex_order_id
        assert vtex_id is not None
        value = int(order["total_amount"].replace(".", ""))
        invoice = invoice_notification(
            f"NF-{order['id']}",
            value,
            items=[{"id": "1", "quantity": 1, "price": value}],
            tracking="TRK-1",
            issued=datetime.now(UTC),
        )
        response = await seller(box, "POST", f"/api/oms/pvt/orders/{vtex_id}/invoice", invoice)
        assert response.status_code == 200, response.text
        await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.COMPLETED)

        # An order with SKU problems: parked, with its reasons.
        parked = box.marketplace.new_order(items=[("4", 1), ("5", 1), ("6", 1)])
        box.marketplace.notify(parked["id"])
        await wait_for_state(stack.client, "reference", parked["id"], lambda s: s.status is OrderStatus.PARKED)

        # An order the connector cannot read (its street is not a string): parked, naming the field only.
        broken = box.marketplace.new_order(items=[("1", 1)])
        address = box.marketplace.orders[broken["id"]]["shipping"]
        address["street_name"] = [address["street_name"]]
        box.marketplace.notify(broken["id"])
        unreadable = await wait_for_state(
            stack.client, "reference", broken["id"], lambda s: s.status is OrderStatus.PARKED
        )

        # VTEX refusing an order in words that quote the customer's e-mail and document: parked, unquoted.
        echoed = box.marketplace.new_order(items=[("1", 1)])
        echoed_buyer = echoed["buyer"]
        quote = f"The e-mail {echoed_buyer['email']} does not belong to the document {echoed_buyer['doc_number']}"
        place = "/api/fulfillment/pvt/orders"
        box.vtex.add_fault(FaultRule(method="POST", path_contains=place, status=400, code="ORD999", message=quote))
        box.marketplace.notify(echoed["id"])
        refused = await wait_for_state(
            stack.client, "reference", echoed["id"], lambda s: s.status is OrderStatus.PARKED
        )

        async with httpx.AsyncClient(base_url=stack.intake_url) as http:
            # A callback with a wrong token, and a webhook signed with the wrong secret.
            wrong = await http.post(f"/vtex/reference/{secrets.token_urlsafe(24)}/pvt/orders/{vtex_id}/invoice")
            assert wrong.status_code == 404
            body, headers = signed_webhook(secrets.token_urlsafe(24), {"order_id": order["id"], "topic": "orders"})
            forged = await http.post("/webhooks/reference", content=body, headers=headers)
            assert forged.status_code == 401
        # The codec server, called without its token and with it.
        codec = codec_server(stack.settings)
        async with codec, httpx.AsyncClient(base_url=codec.url) as http:
            payloads = {"payloads": [{"metadata": {"encoding": "YmluYXJ5L3BsYWlu"}, "data": "e30="}]}
            assert (await http.post("/decode", json=payloads)).status_code == 401
            authorized = {"Authorization": f"Bearer {configured['codec token']}"}
            assert (await http.post("/decode", json=payloads, headers=authorized)).status_code == 200

    output = captured.text
    assert order["id"] in output and parked["id"] in output and "refused a webhook" in output
    assert "wrong token" in output and "Completing activity as failed" in output
    for name, secret in configured.items():
        assert secret not in output, f"the {name} is in the log"
    buyer, shipping = order["buyer"], order["shipping"]
    personal = {
        "document": buyer["doc_number"],
        "email": buyer["email"],
        "email of the unreadable order": broken["buyer"]["email"],
        "email VTEX quoted": echoed_buyer["email"],
        "document VTEX quoted": echoed_buyer["doc_number"],
        "phone": buyer["phone"],
        "phone digits": buyer["phone"].lstrip("+"),
        "last name": buyer["last_name"],
        "receiver": shipping["receiver_name"],
        "street": shipping["street_name"],
    }
    for name, value in personal.items():
        assert value not in output, f"the customer's {name} is in the log"

    # What VTEX said reaches the seller with the quoted data cut out (the history's failure too).
    said = " ".join(entry.message for entry in refused.timeline)
    assert "does not belong to the document [redacted]" in said, said
    history = await stack.client.get_workflow_handle(f"order:reference:{echoed['id']}").fetch_history()
    assert echoed_buyer["email"] not in str(history.to_json())
    # The timeline (and the workflow history's failure) name the field, not what it held.
    assert "Address.street: Input should be a valid string" in (unreadable.parked_reason or "")
    assert address["street_name"][0] not in (unreadable.parked_reason or "")

    if log_format == "text":
        check_text(output, order["id"])
    else:
        check_json(output, order["id"], vtex_id)


def check_text(output: str, order_id: str) -> None:
    lines = output.splitlines()
    # No dict of workflow or activity info appended to a message; one short line per step.
    assert "'workflow_id'" not in output and "'activity_id'" not in output
    steps = [line for line in lines if f"order {order_id} " in line and " workflow " in line]
    assert any(" place success: " in line for line in steps), steps
    assert all(TEXT_LINE.match(line) and len(line) < 200 for line in steps), steps
    logged = [line for line in lines if TEXT_LINE.match(line)]
    assert len(logged) > 10
    # Activity failures the workflow handles are one line with the error, no traceback.
    failed = [line for line in lines if "Completing activity as failed" in line]
    assert failed and all(f"[{order_id}]" in line or order_id in line for line in failed[:1]), failed


def check_json(output: str, order_id: str, vtex_id: str) -> None:
    entries = [json.loads(line) for line in output.splitlines()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    steps = [e for e in entries if e["logger"] == "temporalio.workflow" and e.get("marketplace_order_id") == order_id]
    assert steps, entries
    for entry in steps:
        assert entry["connection"] == "reference" and entry["workflow_id"] == f"order:reference:{order_id}"
        assert entry["run_id"] and entry["workflow_type"] == "OrderLifecycle"
        assert "{" not in entry["message"]  # Temporal's info dict is in the fields, not the message
    placed = next(e for e in steps if " place success" in e["message"])
    assert placed["vtex_order_id"] == vtex_id
    activities = [e for e in entries if e.get("activity_type") and e.get("marketplace_order_id") == order_id]
    assert activities and all(e["workflow_id"] == f"order:reference:{order_id}" for e in activities)
