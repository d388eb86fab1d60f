"""Writes order log messages in VTEX's format: every step of every order, success or not.

Codes A-Q are VTEX's (deprecated-order-logs.md); the X codes are the connector's own, listed in the
README. Content is stored as JSON text with personal data, secrets and payment data removed: the log is
shown to sellers and served over HTTP, and is not the place for customer records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from temporalio import activity

from connector.models import ProblemKind, ValidationReport
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
        "connectorEndpoint",
        "x-vtex-api-apptoken",
        "app_token",
        "appToken",
    }
)
REDACTED = "[redacted]"


# D, "we couldn't obtain the information of SKU": the SKU is missing from the simulation's items. The
# catalog not knowing the SKU, or the SKU not being in the trade policy (the guide's first check for D),
# is why it is missing; validation then reports that cause instead of NOT_IN_SIMULATION.
SKU_MISSING_PROBLEMS = frozenset(
    {ProblemKind.NOT_IN_SIMULATION, ProblemKind.SKU_NOT_FOUND, ProblemKind.NOT_IN_SALES_CHANNEL}
)


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

    @staticmethod
    def validation_line(report: ValidationReport) -> tuple[str, LogStatus]:
        """The code and status of `validate_order`'s line: X2 when it passed, else the guide's most specific.

        F (SKU inactive) and D (SKU information missing) when every problem is of that one kind; I ("couldn't
        prepare ... due to {list all errors}") otherwise. The line always lists every problem at once, as the
        guide asks, so the seller fixes all of them in one round: labelling a mixed list D or F would
        misname its other problems, and splitting it into one line per kind would scatter the one list.
        D and F are the guide's Warning, which is our alert (LogStatus); I is an error.
        """
        if report.ok:
            return "X2", LogStatus.SUCCESS
        kinds = {problem.kind for problem in report.problems}
        if kinds == {ProblemKind.SKU_INACTIVE}:
            return "F", LogStatus.ALERT
        if kinds <= SKU_MISSING_PROBLEMS:
            return "D", LogStatus.ALERT
        return "I", LogStatus.ERROR

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
    """Deterministic inside an activity, unique otherwise.

    One id per workflow run, activity, attempt and code: a re-run of the same attempt writes nothing
    twice, while a new run (continue-as-new, a reset) numbers its activities from 1 again and so needs
    its run id to keep its lines from colliding with the earlier run's.
    """
    if activity.in_activity():
        info = activity.info()
        if info.workflow_id is not None:
            return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{info.attempt}/{code}"
        # A standalone activity (started by a client, not a workflow) has a run id of its own.
        return f"activity:{info.activity_id}/{info.activity_run_id}/{info.attempt}/{code}"
    # The random part keeps two lines written within the same microsecond apart.
    return f"order:{connection}:{marketplace_order_id}/{datetime.now(UTC).isoformat()}/{uuid4().hex}/{code}"
