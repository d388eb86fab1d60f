"""Payload encryption: customer data (names, documents, addresses) never sits in plain text in workflow
history. AES-256-GCM with key ids, so keys can rotate: new payloads use the current key, old payloads
keep naming the key that encrypted them, and every configured key can still decrypt.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from connector.refused_payloads import REFUSED_ENCODING

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12

log = logging.getLogger("connector.codec")


class CodecError(Exception):
    """A payload that cannot be decrypted here: unknown key id, or tampered with."""


class EncryptionCodec(PayloadCodec):
    """`refuse_plaintext` (the default, what workers and clients use): an unencrypted payload decodes to
    the REFUSED_ENCODING marker (connector/refused_payloads.py: reading it fails the workflow or drops the
    signal), with a warning that names its encoding, never its content. Off, it passes
    through as it is (the codec server, which only shows payloads to an operator)."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str, *, refuse_plaintext: bool = True) -> None:
        if current_key_id not in keys:
            raise ValueError(f"the current key id {current_key_id!r} is not among the configured keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current_key_id
        self.refuse_plaintext = refuse_plaintext

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._current.encode())
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: self._current.encode()}, data=nonce + sealed)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(self._refused(payload) if self.refuse_plaintext else payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecError(
                    f"a payload is encrypted with key {key_id!r}, which is not configured here: add that key to "
                    "PAYLOAD_ENCRYPTION_KEYS, or (embedded mode) run from the folder `make run` runs in, whose "
                    "data/payload-key holds it, or set DATA_DIR to that data folder"
                )
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                plain = cipher.decrypt(nonce, sealed, key_id.encode())
            except InvalidTag:
                raise CodecError(
                    f"a payload under key {key_id!r} fails authentication with the key configured here under that "
                    "id (another key, or a tampered payload): use the connector's own PAYLOAD_ENCRYPTION_KEYS, or "
                    "(embedded mode) run from the folder `make run` runs in, or set DATA_DIR to its data folder"
                ) from None
            decoded.append(Payload.FromString(plain))
        return decoded

    @staticmethod
    def _refused(payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding", b"").decode(errors="replace")[:40] or "none"
        log.warning(
            "refused an unencrypted payload (encoding %r, %d bytes): it was not written by a client holding "
            "the payload key; a signal carrying it is dropped, a workflow started with it fails",
            encoding,
            len(payload.data),
        )
        return Payload(metadata={"encoding": REFUSED_ENCODING})


class SecretSealer:
    """Small secrets the connector keeps at rest (a marketplace's OAuth tokens in the order store) sealed under
    the payload keys: AES-256-GCM, the current key seals, every configured key opens. The key id is kept beside
    the ciphertext (the caller stores it), so after a rotation (`PAYLOAD_ENCRYPTION_KEYS=new:...,old:...`) what
    the old key sealed still opens, and the next write seals under the new one.

    `context` (what the secret is and whose: e.g. the connection and the field) is authenticated with it: a
    ciphertext copied into another row or column does not open."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise ValueError(f"the current key id {current_key_id!r} is not among the configured keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = current_key_id

    def seal(self, plain: str, *, context: str) -> str:
        """`plain` sealed under the current key (`key_id`), as base64 text."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(nonce, plain.encode(), _associated(self.key_id, context))
        return base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, key_id: str, context: str) -> str:
        """What `seal` sealed under `key_id` for `context`; CodecError (naming the key, never the secret) when
        that key is not configured here or the text fails authentication."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(
                f"a stored secret is encrypted with key {key_id!r}, which is not configured here: add that key to "
                "PAYLOAD_ENCRYPTION_KEYS (keep old keys after a rotation), or (embedded mode) run from the folder "
                "`make run` runs in, or set DATA_DIR to that data folder"
            )
        try:
            raw = base64.b64decode(sealed, validate=True)
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(key_id, context)).decode()
        except (ValueError, InvalidTag):
            raise CodecError(
                f"a stored secret under key {key_id!r} fails authentication with the key configured here under that "
                "id (another key, or a changed row): use the connector's own PAYLOAD_ENCRYPTION_KEYS, or (embedded "
                "mode) run from the folder `make run` runs in, or set DATA_DIR to its data folder"
            ) from None


def _associated(key_id: str, context: str) -> bytes:
    return f"{key_id}\n{context}".encode()


def parse_keys(text: str) -> dict[str, bytes]:
    """`id1:base64key,id2:base64key` (32-byte keys, AES-256)."""
    keys = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key_id, _, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ValueError(f"key {key_id!r} is not base64") from None
        if not key_id or len(key) != 32:
            raise ValueError(f"key {key_id!r} must be id:<base64 of 32 bytes>")
        keys[key_id] = key
    if not keys:
        raise ValueError("no key given")
    return keys


class MissingLocalKey(Exception):
    """Embedded mode's payload key is not in the data folder and this command may not make one."""


def generated_local_key(data_dir: Path, *, create: bool = True) -> tuple[dict[str, bytes], str]:
    """Embedded mode: one key made once and kept in the data folder (histories outlive restarts). A
    command that only reads or signals orders (`create=False`) must find it: a new key could decrypt
    nothing the worker wrote, nor the worker what the command sends (MissingLocalKey)."""
    path = data_dir / "payload-key"
    if not path.exists() and not create:
        raise MissingLocalKey(
            f"no payload key at {path.absolute()}: run this command from the folder `make run` runs in, or set "
            "DATA_DIR to that data folder (or PAYLOAD_ENCRYPTION_KEYS to the connector's keys)"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"local-1:{base64.b64encode(secrets.token_bytes(32)).decode()}")
        path.chmod(0o600)
    keys = parse_keys(path.read_text())
    return keys, next(iter(keys))
