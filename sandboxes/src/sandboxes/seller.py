"""What a seller sends the VTEX sandbox, as the benchmarks and tests play the seller's part."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def invoice_notification(
    number: str,
    value: int,
    *,
    items: Sequence[dict[str, Any]],
    tracking: str | None = None,
    issued: datetime,
) -> dict[str, Any]:
    """An Output invoice for `POST /api/oms/pvt/orders/{orderId}/invoice` (InvoiceNotification), value and
    item prices in cents; with `tracking`, the tracking number rides in the invoice (one callback)."""
    return {
        "type": "Output",
        "invoiceNumber": number,
        "invoiceValue": str(value),
        "issuanceDate": issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "invoiceKey": None,
        "invoiceUrl": None,
        "embeddedInvoice": None,
        "courier": "Correios" if tracking else "",
        "trackingNumber": tracking,
        "trackingUrl": None,
        "dispatchedDate": None,
        "items": list(items),
    }
