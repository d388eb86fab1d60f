"""Payload encryption: histories hold ciphertext; keys rotate; the codec server decrypts for the Web UI."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from connector.cli import codec_server
from connector.codec import CodecError, EncryptionCodec, parse_keys
from connector.codec_server import create_codec_app
from connector.models import (
    CancelRequest,
    MarketplaceNotification,
    OrderStatus,
    OrderWorkflowInput,
    order_workflow_id,
)
from connector.refused_payloads import REFUSED_ENCODING, REFUSED_ERROR_TYPE, ConnectorPayloadConverter
from connector.settings import SettingsError
from connector.stack import Stack
from tests.conftest import embedded_settings
from tests.helpers import wait_for_state
from workflows.order import OrderLifecycle

KEY_A, KEY_B = os.urandom(32), os.urandom(32)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_round_trip_and_rotation() -> None:
    old = EncryptionCodec({"a": KEY_A}, "a")
    sealed = await old.encode([plain("Ana Souza")])
    assert sealed[0].metadata["encoding"] == b"binary/encrypted" and b"Ana" not in sealed[0].data
    rotated = EncryptionCodec({"a": KEY_A, "b": KEY_B}, "b")
    assert await rotated.decode(sealed) == [plain("Ana Souza")]  # old payloads still readable
    assert (await rotated.encode([plain("x")]))[0].metadata["encryption-key-id"] == b"b"


async def test_an_unencrypted_payload_is_refused_with_a_log_line_not_its_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    codec = EncryptionCodec({"a": KEY_A}, "a")
    sealed = await codec.encode([plain("Ana Souza")])
    with caplog.at_level(logging.WARNING, logger="connector.codec"):
        decoded = await codec.decode([plain("Ana Souza"), sealed[0]])
    # Reading the marker raises a workflow-failing error: the SDK drops a signal carrying it, and fails a
    # workflow started with it, instead of failing (and retrying) workflow tasks.
    assert decoded[0] == Payload(metadata={"encoding": REFUSED_ENCODING})
    assert decoded[1] == plain("Ana Souza")  # what the connector wrote still decodes beside it
    with pytest.raises(ApplicationError, match="unencrypted payload was refused") as refused:
        ConnectorPayloadConverter().from_payloads(decoded[:1], [CancelRequest])
    assert refused.value.type == REFUSED_ERROR_TYPE and refused.value.non_retryable
    assert ConnectorPayloadConverter().from_payloads(decoded[1:], [str]) == ["Ana Souza"]
    (record,) = [r for r in caplog.records if r.name == "connector.codec"]
    assert record.levelno == logging.WARNING and "refused an unencrypted payload" in record.getMessage()
    assert "Ana" not in caplog.text
    # The codec server's codec only shows payloads to an operator: a plain one passes through.
    viewer = EncryptionCodec({"a": KEY_A}, "a", refuse_plaintext=False)
    assert await viewer.decode([plain("never encrypted")]) == [plain("never encrypted")]


async def test_unknown_keys_and_tampering_are_refused() -> None:
    sealed = await EncryptionCodec({"a": KEY_A}, "a").encode([plain("x")])
    with pytest.raises(CodecError, match="not configured"):
        await EncryptionCodec({"b": KEY_B}, "b").decode(sealed)
    tampered = Payload(metadata=sealed[0].metadata, data=sealed[0].data[:-1] + bytes([sealed[0].data[-1] ^ 1]))
    with pytest.raises(CodecError, match="authentication"):
        await EncryptionCodec({"a": KEY_A}, "a").decode([tampered])


def test_keys_parse_from_configuration() -> None:
    encoded = base64.b64encode(KEY_A).decode()
    assert parse_keys(f"k1:{encoded}, k2:{base64.b64encode(KEY_B).decode()}") == {"k1": KEY_A, "k2": KEY_B}
    for bad in ("", "k1:short", f":{encoded}", "k1:not base64!"):
        with pytest.raises(ValueError):
            parse_keys(bad)


async def test_workflow_history_holds_only_ciphertext(stack: Stack) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    stack.sandboxes.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    # A client without the key sees what the server stores.
    target = stack.client.service_client.config.target_host
    keyless = await Client.connect(target, data_converter=pydantic_data_converter)
    history = await keyless.get_workflow_handle(order_workflow_id("reference", order["id"])).fetch_history()
    raw = history.to_json()
    for secret in (order["buyer"]["email"], order["buyer"]["doc_number"], order["shipping"]["street_name"]):
        assert secret not in raw
    payloads = [
        payload
        for event in history.events
        for payload in (
            list(event.workflow_execution_started_event_attributes.input.payloads)
            + list(event.activity_task_completed_event_attributes.result.payloads)
        )
    ]
    assert payloads and all(p.metadata["encoding"] == b"binary/encrypted" for p in payloads)


async def test_codec_server_decrypts_for_the_web_ui_origin_only() -> None:
    codec = EncryptionCodec({"a": KEY_A}, "a", refuse_plaintext=False)
    app = create_codec_app(codec, cors_origins=["http://127.0.0.1:8233"], auth_token="operator-token")
    sealed = await codec.encode([plain("Ana Souza")])
    body = json_format.MessageToJson(Payloads(payloads=sealed))
    headers = {"Authorization": "Bearer operator-token", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        decoded = await http.post("/decode", content=body, headers=headers)
        no_token = await http.post("/decode", content=body)
        wrong_token = await http.post("/decode", content=body, headers={**headers, "Authorization": "Bearer guess"})
        not_bearer = await http.post("/decode", content=body, headers={"Authorization": "operator-token"})
        encode_no_token = await http.post("/encode", content=json_format.MessageToJson(Payloads(payloads=[plain("x")])))
        preflight = await http.options(
            "/decode",
            headers={
                "Origin": "http://127.0.0.1:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        foreign = await http.options(
            "/decode", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        garbage = await http.post("/decode", content=b"{", headers=headers)
    assert decoded.status_code == 200
    result = json_format.Parse(decoded.content, Payloads())
    assert list(result.payloads) == [plain("Ana Souza")]
    for refused in (no_token, wrong_token, not_bearer, encode_no_token):
        assert refused.status_code == 401 and "error" in refused.json()
        assert "Ana" not in refused.text
    assert preflight.status_code == 200  # browsers send preflights without the token
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
    assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
    assert garbage.status_code == 400


def test_the_codec_server_wants_a_token_once_keys_are_configured(tmp_path: Path) -> None:
    keys = f"k1:{base64.b64encode(KEY_A).decode()}"
    with pytest.raises(SettingsError, match="CODEC_AUTH_TOKEN is required when PAYLOAD_ENCRYPTION_KEYS is set"):
        codec_server(embedded_settings(payload_encryption_keys=keys, data_dir=tmp_path))
    # Embedded mode's generated key, sandbox data only: open on loopback (make run's dev-server UI) ...
    assert codec_server(embedded_settings(data_dir=tmp_path, codec_port=0)) is not None
    # ... but not beyond it.
    with pytest.raises(SettingsError, match="CODEC_AUTH_TOKEN is required when the codec server listens beyond"):
        codec_server(embedded_settings(data_dir=tmp_path, intake_host="0.0.0.0"))
    token = secrets.token_urlsafe(24)
    configured = embedded_settings(payload_encryption_keys=keys, codec_auth_token=token, data_dir=tmp_path)
    assert codec_server(configured) is not None


def test_the_codec_server_command_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector import cli

    keys = f"k1:{base64.b64encode(KEY_A).decode()}"
    settings = embedded_settings(payload_encryption_keys=keys, data_dir=tmp_path)
    monkeypatch.setattr(cli, "load_settings", lambda: settings)
    assert cli._main(["codec-server"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("connector: CODEC_AUTH_TOKEN is required")


async def test_a_signal_sent_without_the_key_is_refused_and_the_order_carries_on(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    stack.sandboxes.marketplace.notify(order["id"])
    before = await wait_for_state(
        stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    workflow_id = order_workflow_id("reference", order["id"])
    # Someone who reaches Temporal but holds no key (a plain `temporal workflow signal`, say).
    keyless = await Client.connect(
        stack.client.service_client.config.target_host,
        namespace=stack.client.namespace,
        data_converter=pydantic_data_converter,
    )
    with caplog.at_level(logging.WARNING):
        await keyless.get_workflow_handle(workflow_id).signal(
            "cancel", CancelRequest(reason="forged cancel", source="intruder")
        )
        # A signal the connector sends afterwards is still taken: the plain one did not jam the workflow.
        handle = stack.client.get_workflow_handle_for(OrderLifecycle.run, workflow_id)
        await handle.signal(
            OrderLifecycle.notify, MarketplaceNotification(marketplace_order_id=order["id"], source="poller")
        )
        after = await wait_for_state(
            stack.client,
            "reference",
            order["id"],
            lambda s: s.notifications_received > before.notifications_received,
        )
    assert after.status is OrderStatus.DISPATCH_AUTHORIZED
    assert not [entry for entry in after.timeline if entry.step == "cancel"]
    history = await handle.fetch_history()
    events = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert "cancel" in signals  # the server has it: the worker refused it
    refusals = [r for r in caplog.records if r.name == "connector.codec"]
    assert refusals and "refused an unencrypted payload" in refusals[0].getMessage()
    assert "forged cancel" not in caplog.text


async def test_a_workflow_started_without_the_key_fails_at_once_and_the_order_still_comes_in(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    workflow_id = order_workflow_id("reference", order["id"])
    keyless = await Client.connect(
        stack.client.service_client.config.target_host,
        namespace=stack.client.namespace,
        data_converter=pydantic_data_converter,
    )
    forged_input = OrderWorkflowInput(
        connection="reference",
        marketplace_order_id=order["id"],
        affiliate_id="FORGED",
        sales_channel="1",
    )
    with caplog.at_level(logging.WARNING):
        forged = await keyless.start_workflow(
            "OrderLifecycle", forged_input, id=workflow_id, task_queue=stack.settings.temporal_task_queue
        )
        # The workflow fails (closed, its reason in the Web UI) instead of retrying its first task forever.
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(forged.result(), timeout=15)
    cause = failed.value.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == REFUSED_ERROR_TYPE
    events = [event.event_type async for event in forged.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events  # nothing ran on the forged input
    assert [r for r in caplog.records if r.name == "connector.codec"]
    # The real notification starts a new run of the same order (a failed run may be followed) and integrates.
    stack.sandboxes.marketplace.notify(order["id"])
    state = await wait_for_state(
        stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED
    )
    assert state.vtex_order_id is not None
