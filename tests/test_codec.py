"""Payload encryption: histories hold ciphertext; keys rotate; the codec server decrypts for the Web UI."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from connector.codec import CodecError, EncryptionCodec, parse_keys
from connector.codec_server import create_codec_app
from connector.models import OrderStatus, order_workflow_id
from connector.stack import Stack
from tests.helpers import wait_for_state

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
    assert await rotated.decode([plain("never encrypted")]) == [plain("never encrypted")]


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
    codec = EncryptionCodec({"a": KEY_A}, "a")
    app = create_codec_app(codec, cors_origins=["http://127.0.0.1:8233"], auth_token="operator-token")
    sealed = await codec.encode([plain("Ana Souza")])
    body = json_format.MessageToJson(Payloads(payloads=sealed))
    headers = {"Authorization": "Bearer operator-token", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        decoded = await http.post("/decode", content=body, headers=headers)
        no_token = await http.post("/decode", content=body)
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
    assert no_token.status_code == 401
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
    assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
    assert garbage.status_code == 400
