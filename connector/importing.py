"""`connector import`: what an operator asks for (orders by id, or every order changed in a range), the
progress the import workflow keeps, and the import's workflow id.

The workflow id is derived from the request, so asking again for the same orders attaches to the import
still running, and starts it anew (re-checking everything, integrating nothing twice) once it ended.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Self

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from connector.models import ListingPosition, OrderChange

# The marketplaces' own maximum page size (the reference marketplace's is 100).
MAX_PAGE_SIZE = 100
# Refusals kept by id and reason in the progress; past this many only the count grows (the order log
# has every quarantined one).
MAX_REFUSALS = 100


class ImportRequest(BaseModel):
    connection: str
    # Raw, as the operator typed them: an id the connector cannot take is refused in the summary.
    order_ids: list[str] = Field(default_factory=list)
    since: AwareDatetime | None = None
    # None: the time the import was asked for (resolved once by the workflow).
    until: AwareDatetime | None = None
    page_size: int = MAX_PAGE_SIZE

    @field_validator("order_ids")
    @classmethod
    def _once_each(cls, ids: list[str]) -> list[str]:
        return list(dict.fromkeys(ids))

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # The same instant written with another offset is the same request (and workflow id).
        return value.astimezone(UTC) if value is not None else None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.until is not None and self.since is None:
            raise ValueError("--until needs --since")
        if self.order_ids and self.since is not None:
            raise ValueError("give marketplace order ids or a range (--since), not both")
        if not self.order_ids and self.since is None:
            raise ValueError("give marketplace order ids, or --since for every order changed from then on")
        if self.until is not None and self.since is not None and self.until < self.since:
            raise ValueError("--until is before --since")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"the page size must be from 1 to {MAX_PAGE_SIZE} (the marketplaces' maximum)")
        return self


def import_workflow_id(request: ImportRequest) -> str:
    """`import:{connection}:{16 hex}` over what is imported; the page size only says how, so it is left out."""
    normalized = request.model_dump(mode="json", include={"connection", "order_ids", "since", "until"})
    normalized["order_ids"] = sorted(normalized["order_ids"])
    digest = hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()
    return f"import:{request.connection}:{digest[:16]}"


class ImportRefusal(BaseModel):
    marketplace_order_id: str
    reason: str


class ImportProgress(BaseModel):
    """The import's state, its `progress` query and, once done, its result."""

    connection: str
    # Ids: how many there are, and how many are done. A range: None, and where the next page starts.
    total: int | None = None
    ids_done: int = 0
    position: ListingPosition | None = None
    # The range's end once resolved, and the newest change read (a listing that repeats it is stuck).
    until: datetime | None = None
    last_change: OrderChange | None = None
    pages: int = 0
    seen: int = 0
    handed_off: int = 0
    already_known: int = 0
    refused: int = 0
    refusals: list[ImportRefusal] = Field(default_factory=list)
    last_error: str | None = None
    failures_in_a_row: int = 0
    done: bool = False

    @property
    def refusals_not_listed(self) -> int:
        return self.refused - len(self.refusals)


class ImportInput(BaseModel):
    request: ImportRequest
    # Carried over continue-as-new; None for a new import.
    progress: ImportProgress | None = None
    # Pages before the workflow continues as new (history stays short); a test makes it small.
    pages_per_run: int = Field(default=100, ge=1)


class ImportPage(BaseModel):
    """One activity call: a page of the listing from `position`, or the next slice of ids."""

    connection: str
    position: ListingPosition | None = None
    until: datetime | None = None
    previous_last: OrderChange | None = None
    order_ids: list[str] = Field(default_factory=list)
    page_size: int = MAX_PAGE_SIZE


class ImportPageResult(BaseModel):
    seen: int
    handed_off: int
    already_known: int
    refusals: list[ImportRefusal]
    # A range only: where the next page starts and the newest change read.
    next: ListingPosition | None = None
    last_change: OrderChange | None = None
    # A range only: nothing of it is left (the listing's end, or a change after `until`).
    done: bool = False
