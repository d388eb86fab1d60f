"""What a refused (unencrypted) payload turns into when a workflow reads it: a workflow failure, not a jam.

The codec (connector/codec.py) swaps every unencrypted payload for a REFUSED_ENCODING marker. Reading the
marker raises an ApplicationError, which the SDK treats as a failure of the *workflow*, not of its task: a
workflow started with plain input (`temporal workflow start` by someone without the payload key) fails at
once with this message instead of retrying its first task forever, and a signal carrying a plain payload is
dropped with the SDK's log line while the order carries on. Kept free of I/O and third-party imports: the
workflow sandbox imports it.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter
from temporalio.exceptions import ApplicationError

REFUSED_ENCODING = b"binary/refused-unencrypted"
REFUSED_ERROR_TYPE = "UnencryptedPayloadRefused"


class RefusedPayloadConverter(EncodingPayloadConverter):
    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None  # never writes one: the marker only comes out of the codec

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise ApplicationError(
            "an unencrypted payload was refused: it was not written by a client holding the payload key "
            "(PAYLOAD_ENCRYPTION_KEYS); send it through the connector's CLI or a client with the key",
            type=REFUSED_ERROR_TYPE,
            non_retryable=True,
        )


class ConnectorPayloadConverter(PydanticPayloadConverter):
    """Pydantic's JSON conversion, plus the refusal marker (tried last when writing: it writes nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.converters = {**self.converters, REFUSED_ENCODING: RefusedPayloadConverter()}
