"""The order log message (VTEX's eight fields plus our keys), the id map entry, the hand-off record, a
queued hand-off, and a connection's sealed marketplace tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class LogStatus(StrEnum):
    """The four statuses of VTEX's order logs.

    The guide's status table lists Success, Error, Alert and Pending; its field list names "warning"
    where the table has Alert, and its code table marks D, F and H Warning. Warning is read as Alert,
    not as a fifth status: the log endpoint accepts `status=warning` for it (connector/intake/logs.py).
    """

    SUCCESS = "success"
    ERROR = "error"
    ALERT = "alert"
    PENDING = "pending"


class LogMessage(BaseModel):
    """One step of one order, as VTEX's order-log guide describes it.

    Content fields hold JSON text with personal data and secrets removed (see connector/logbook.py).
    """

    id: str = Field(description="Operation id, unique; writing the same id twice keeps the first.")
    code: str = Field(description="A-Q from VTEX's order-log table, or one of the connector's own codes.")
    operation: str
    direction: str
    content_source: str = ""
    content_translated: str = ""
    content_destination: str = ""
    business_message: str
    status: LogStatus
    account: str
    connection: str
    marketplace_order_id: str
    vtex_order_id: str | None = None
    created_at: datetime


class IdMapping(BaseModel):
    connection: str
    marketplace_order_id: str
    vtex_order_id: str


class HandoffRecord(BaseModel):
    """What the connector last did with a marketplace order: when it was handed to its workflow (our
    clock), when the workflow's latest marketplace read began (our clock) and the version it read
    (the marketplace's clock, comparable with its changed-orders listing)."""

    notified_at: datetime | None = None
    read_at: datetime | None = None
    version: datetime | None = None


class QueuedHandoff(BaseModel):
    """A notification the intake accepted and queued, waiting to be handed to its order's workflow."""

    id: int
    connection: str
    notification: str  # MarketplaceNotification as JSON (the store does not depend on connector.models)
    attempts: int


class TokenWrite(BaseModel):
    """What a writer sets on a connection's marketplace-token row: the tokens, SEALED (encrypted by the caller,
    connector/codec.py SecretSealer, under the key `key_id`: the store never sees a token in the clear), the
    access token's expiry, and whether the marketplace refused the authorization."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    sealed_refresh_token: str = Field(repr=False)
    sealed_access_token: str | None = Field(default=None, repr=False)
    access_expires_at: datetime | None = None
    broken_reason: str | None = None
    broken_at: datetime | None = None


class StoredToken(TokenWrite):
    """A connection's marketplace-token row as stored: the write's fields plus its `version` (one more on
    every write, the compare-and-set key), the refresh lease (`lease_owner` until `lease_until`) and when the
    tokens or their state last changed."""

    connection: str
    version: int
    lease_owner: str | None = None
    lease_until: datetime | None = None
    updated_at: datetime

    def write(self, **changes: object) -> TokenWrite:
        """This row's tokens and state as a write, with `changes` (e.g. `broken_reason=...`)."""
        return TokenWrite.model_validate({**self.model_dump(include=set(TokenWrite.model_fields)), **changes})
