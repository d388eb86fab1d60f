"""The order log message (VTEX's eight fields plus our keys), the id map entry, the hand-off record and
a queued hand-off."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


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
