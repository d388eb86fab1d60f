"""The customer's personal data in a payload the connector sends, so that what a service echoes of it in an
error message is cut out before the message reaches an exception, a log line, the order log or a workflow
history (a VTEX validation error may quote the e-mail or the document it refuses)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The subtrees of VTEX's order payloads (fulfillment and Channel Order API) that describe a person.
PERSONAL_SUBTREES = frozenset({"clientProfileData", "address", "selectedAddresses", "invoiceAddress", "invoiceData"})
# Shorter values (a state, a country code, a house number) are too common to cut out of a sentence.
MIN_LENGTH = 4
REDACTED = "[redacted]"


def personal_values(payload: Any) -> frozenset[str]:
    """Every text under a personal subtree of `payload`, at any depth."""
    found: set[str] = set()

    def walk(value: Any, personal: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, personal or key in PERSONAL_SUBTREES)
        elif isinstance(value, list):
            for item in value:
                walk(item, personal)
        elif personal and isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if len(text) >= MIN_LENGTH:
                found.add(text)

    walk(payload, False)
    return frozenset(found)


def without(text: str, values: Iterable[str]) -> str:
    """`text` with each of `values` replaced (the longest first, so a value inside another goes with it)."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
