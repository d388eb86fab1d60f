"""Temporal clients built one way everywhere: the pydantic data converter plus the encryption codec."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from connector.codec import EncryptionCodec, generated_local_key, parse_keys
from connector.settings import Settings, SettingsError


def payload_codec(settings: Settings) -> EncryptionCodec:
    if settings.payload_encryption_keys is None:
        if not settings.embedded:
            raise SettingsError("PAYLOAD_ENCRYPTION_KEYS is required when VTEX credentials are set")
        keys, current = generated_local_key(settings.data_dir)
        return EncryptionCodec(keys, current)
    try:
        keys = parse_keys(settings.payload_encryption_keys.get_secret_value())
        return EncryptionCodec(keys, settings.payload_encryption_key_id or next(iter(keys)))
    except ValueError as exc:
        raise SettingsError(f"PAYLOAD_ENCRYPTION_KEYS / PAYLOAD_ENCRYPTION_KEY_ID: {exc}") from None


def data_converter(settings: Settings) -> DataConverter:
    return dataclasses.replace(pydantic_data_converter, payload_codec=payload_codec(settings))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
