"""The console's filters, as one Temporal visibility query (the same for the list, the counts, the CSV
export and a bulk reprocess, so a dry-run count is exactly what a bulk run will touch)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from connector.lifecycle import ORDER_WORKFLOW_TYPES
from connector.models import OrderStatus

S = OrderStatus
# Orders a person has to look at: waiting on a retry, on the seller, on a payment, or on an after-sale
# event the connector does not settle by itself.
NEEDS_ACTION = (
    S.PARKED,
    S.DEAD_LETTERED,
    S.REPROCESSING,
    S.PENDING_APPROVAL,
    S.AWAITING_PAYMENT,
    S.AFTER_SALE,
    S.LATE_PAYMENT,
)
NEEDS_ACTION_VALUES = tuple(status.value for status in NEEDS_ACTION)
# What a (bulk) reprocess acts on: orders waiting for a retry; the others wait on someone else.
REPROCESSABLE_VALUES = tuple(status.value for status in (S.PARKED, S.DEAD_LETTERED, S.REPROCESSING))
# Ids, connection names and error codes: letters, digits and a few separators. Anything else is refused
# rather than quoted, so no filter value can change the visibility query's meaning.
_SAFE = re.compile(r"^[A-Za-z0-9._:@/-]{1,100}$")


class FilterError(ValueError):
    """A filter value the console cannot search for; the message is shown to the seller."""


@dataclass(frozen=True)
class OrderFilter:
    connection: str | None = None
    status: str | None = None
    code: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    search: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, str]) -> OrderFilter:
        """From a query string or a form; empty fields are no filter."""

        def text(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            if not value:
                return None
            if not _SAFE.match(value):
                raise FilterError(f"{name}: only letters, digits and . _ : @ / - are allowed")
            return value

        def day(name: str) -> date | None:
            value = (params.get(name) or "").strip()
            if not value:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise FilterError(f"{name}: a date like 2026-12-01") from None

        status = text("status")
        if status is not None and status not in NEEDS_ACTION_VALUES:
            raise FilterError(f"status: one of {', '.join(NEEDS_ACTION_VALUES)}")
        return cls(
            connection=text("connection"),
            status=status,
            code=text("code"),
            created_from=day("created_from"),
            created_to=day("created_to"),
            search=text("search"),
        )

    def query(self, statuses: Sequence[str] = NEEDS_ACTION_VALUES) -> str:
        """Running orders in `statuses` (narrowed to the filter's status) that match every filter."""
        clauses = [ORDER_WORKFLOW_TYPES, "ExecutionStatus = 'Running'"]
        wanted = [s for s in statuses if self.status in (None, s)] or ["none"]
        clauses.append("OrderStatus IN (" + ", ".join(f"'{s}'" for s in wanted) + ")")
        if self.connection is not None:
            clauses.append(f"Connection = '{self.connection}'")
        if self.code is not None:
            clauses.append(f"ErrorCode = '{self.code}'")
        if self.created_from is not None:
            clauses.append(f"StartTime >= '{_midnight(self.created_from).isoformat()}'")
        if self.created_to is not None:  # the whole day is included
            clauses.append(f"StartTime < '{_midnight(self.created_to + timedelta(days=1)).isoformat()}'")
        if self.search is not None:
            clauses.append(f"(MarketplaceOrderId = '{self.search}' OR VtexOrderId = '{self.search}')")
        return " AND ".join(clauses)

    def with_status(self, status: str | None) -> OrderFilter:
        return replace(self, status=status)

    def with_code(self, code: str | None) -> OrderFilter:
        return replace(self, code=code)

    def params(self) -> str:
        """The filter as a query string (links, the CSV export, the next page)."""
        values = {
            "connection": self.connection,
            "status": self.status,
            "code": self.code,
            "created_from": self.created_from.isoformat() if self.created_from else None,
            "created_to": self.created_to.isoformat() if self.created_to else None,
            "search": self.search,
        }
        return urlencode({name: value for name, value in values.items() if value})


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
