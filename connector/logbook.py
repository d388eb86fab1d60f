"""Writes order log messages in VTEX's format: every step of every order, success or not.

Codes A-Q are VTEX's (deprecated-order-logs.md); the X codes are the connector's own, listed in the
README. Content is stored as JSON text with personal data, secrets and payment data removed: the log is
shown to sellers and served over HTTP, and is not the place for customer records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from connector.store.base import OrderStore
from connector.store.models import LogMessage, LogStatus

# Keys whose values never reach the log, whatever their depth in a payload.
REDACTED_KEYS = frozenset(
    {
        "clientProfileData",
        "customer",
        "buyer",
        "address",
        "selectedAddresses",
        "email",
        "document",
        "doc_number",
        "phone",
        "firstName",
        "lastName",
        "first_name",
        "last_name",
        "receiverName",
        "receiver_name",
        "street",
        "street_name",
        "street_number",
        "paymentData",
        "payments",
        "X-VTEX-API-AppToken",
        "marketplaceServicesEndpoint",
        "x-vtex-api-apptoken",
        "app_token",
        "appToken",
    }
)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: (REDACTED if key in REDACTED_KEYS else redact(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def as_content(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(redact(value), ensure_ascii=False, sort_keys=True, default=str)


class Logbook:
    def __init__(self, store: OrderStore, *, account: str) -> None:
        self.store = store
        self._account = account

    async def record(
        self,
        *,
        code: str,
        operation: str,
        direction: str,
        status: LogStatus,
        business_message: str,
        connection: str,
        marketplace_order_id: str,
        vtex_order_id: str | None = None,
        source: Any = None,
        translated: Any = None,
        destination: Any = None,
    ) -> None:
        await self.store.write_log(
            LogMessage(
                id=_operation_id(code, connection, marketplace_order_id),
                code=code,
                operation=operation,
                direction=direction,
                content_source=as_content(source),
                content_translated=as_content(translated),
                content_destination=as_content(destination),
                business_message=business_message,
                status=status,
                account=self._account,
                connection=connection,
                marketplace_order_id=marketplace_order_id,
                vtex_order_id=vtex_order_id,
                created_at=datetime.now(UTC),
            )
        )


def _operation_id(code: str, connection: str, marketplace_order_id: str) -> str:
    """Deterministic inside an activity (one line per attempt and code, so a re-run writes nothing
    twice); unique otherwise."""
    if activity.in_activity():
        info = activity.info()
        return f"{info.workflow_id}/{info.activity_id}/{info.attempt}/{code}"
    return f"order:{connection}:{marketplace_order_id}/{datetime.now(UTC).isoformat()}/{code}"
