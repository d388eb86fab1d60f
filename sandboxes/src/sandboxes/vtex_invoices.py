"""OMS invoices: Order invoice notification (`POST /api/oms/pvt/orders/{orderId}/invoice`,
`InvoiceNotification`) and the tracking update (`PATCH .../invoice/{invoiceNumber}`,
`Updatepartialinvoice.SendTrackingNumber`), kept on the order and shown as Get order's packages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeGuard

from sandboxes.vtex_fulfillment import READY_FOR_HANDLING
from sandboxes.vtex_models import (
    JSON,
    SandboxInvoice,
    SandboxOrder,
    VtexApiError,
    bad_request,
    new_receipt,
    now_utc,
)

OUTPUT = "Output"
INPUT = "Input"
INVOICED = "invoiced"
# Dispatch must be authorized first; a canceled order, or one on its way there, takes no more invoices.
_INVOICEABLE = frozenset({READY_FOR_HANDLING, "start-handling", "handling", INVOICED})
# The PATCH body's fields and where they go; the spec requires all four, all but trackingNumber nullable.
_TRACKING = {
    "trackingNumber": "tracking_number",
    "trackingUrl": "tracking_url",
    "courier": "courier",
    "dispatchedDate": "dispatched_date",
}


def parse_invoice(body: Any, order: SandboxOrder) -> SandboxInvoice:
    data = _object(body)
    kind = data.get("type")
    if kind not in (OUTPUT, INPUT):
        raise bad_request('type must be "Output" or "Input"')
    issuance_date = _required_text(data, "issuanceDate")
    _check_date(issuance_date, "issuanceDate")
    dispatched_date = _text(data, "dispatchedDate")
    _check_date(dispatched_date, "dispatchedDate")
    return SandboxInvoice(
        type=kind,
        invoice_number=_required_text(data, "invoiceNumber"),
        invoice_value=_cents(data.get("invoiceValue")),
        issuance_date=issuance_date,
        items=_items(data.get("items"), order),
        invoice_url=_text(data, "invoiceUrl"),
        invoice_key=_text(data, "invoiceKey"),
        embedded_invoice=_text(data, "embeddedInvoice"),
        courier=_text(data, "courier"),
        tracking_number=_text(data, "trackingNumber"),
        tracking_url=_text(data, "trackingUrl"),
        dispatched_date=dispatched_date,
    )


def store_invoice(order: SandboxOrder, invoice: SandboxInvoice, order_value: int) -> tuple[SandboxInvoice, bool]:
    """Keep a new invoice (True) or renew a known one's receipt (False): the spec says sending an
    invoice number again only generates a new receipt. Output invoices covering `order_value` make
    the order `invoiced`."""
    known = order.invoice(invoice.invoice_number)
    if known is not None:
        known.receipt = new_receipt()
        return known, False
    if order.status not in _INVOICEABLE:
        message = f"Order {order.order_id} is in state {order.status} and cannot accept invoice"
        raise VtexApiError(400, "ORD039", message)
    invoice.receipt = new_receipt()
    order.invoices.append(invoice)
    order.last_change = now_utc()
    if order.status != INVOICED and order.invoice_total(OUTPUT) >= order_value:
        order.status = INVOICED
        order.invoiced_date = order.last_change
    return invoice, True


def find_invoice(order: SandboxOrder, invoice_number: str) -> SandboxInvoice:
    invoice = order.invoice(invoice_number)
    if invoice is None:
        raise VtexApiError(404, "ORD038", f"Invoices not found from order {order.order_id}")
    return invoice


def update_tracking(invoice: SandboxInvoice, body: Any) -> None:
    data = _object(body)
    missing = [name for name in _TRACKING if name not in data]
    if missing:
        raise bad_request(f"{', '.join(missing)} required")
    _required_text(data, "trackingNumber")
    values = {attribute: _text(data, name) for name, attribute in _TRACKING.items()}
    _check_date(values["dispatched_date"], "dispatchedDate")
    for attribute, value in values.items():
        setattr(invoice, attribute, value)
    invoice.receipt = new_receipt()


def invoice_callback_body(invoice: SandboxInvoice) -> JSON:
    """What VTEX POSTs to `{marketplaceServicesEndpoint}/pub/orders/{orderId}/invoice`: the fields the
    invoice-tracking guide names, `invoiceValue` in integer cents as in the External Seller spec."""
    return {
        "type": invoice.type,
        "invoiceNumber": invoice.invoice_number,
        "invoiceValue": invoice.invoice_value,
        "issuanceDate": invoice.issuance_date,
        "invoiceUrl": invoice.invoice_url,
        "invoiceKey": invoice.invoice_key,
        "embeddedInvoice": invoice.embedded_invoice,
        "courier": invoice.courier,
        "trackingNumber": invoice.tracking_number,
        "trackingUrl": invoice.tracking_url,
        "items": [{k: item[k] for k in ("id", "quantity", "price")} for item in invoice.items],
    }


def package_json(order: SandboxOrder, invoice: SandboxInvoice) -> JSON:
    """One of Get order's `packageAttachment.packages`."""
    first_line: dict[str, int] = {}
    for index, line in enumerate(order.body["items"]):
        first_line.setdefault(line["id"], index)
    return {
        "items": [
            {
                "itemIndex": first_line[item["id"]],
                "quantity": item["quantity"],
                "price": item["price"],
                "description": item["description"],
                "unitMultiplier": 1.0,
            }
            for item in invoice.items
        ],
        "courier": invoice.courier,
        "invoiceNumber": invoice.invoice_number,
        "invoiceValue": invoice.invoice_value,
        "invoiceUrl": invoice.invoice_url,
        "issuanceDate": invoice.issuance_date,
        "trackingNumber": invoice.tracking_number,
        "invoiceKey": invoice.invoice_key,
        "trackingUrl": invoice.tracking_url,
        # The schema does not let embeddedInvoice be null.
        "embeddedInvoice": invoice.embedded_invoice or "",
        "type": invoice.type,
        "courierStatus": None,
        "cfop": None,
        "restitutions": _restitutions(invoice),
        "volumes": 1,
        "EnableInferItems": None,
    }


def _restitutions(invoice: SandboxInvoice) -> JSON:
    # "applies only to invoices with the Input type": a return refunds what it lists.
    if invoice.type != INPUT:
        return {}
    items = [
        {
            "useFreight": False,
            "isCompensation": False,
            "compensationValue": 0,
            "id": item["id"],
            "quantity": item["quantity"],
            "price": item["price"],
            "description": item["description"] or "",
        }
        for item in invoice.items
    ]
    return {"Refund": {"value": invoice.invoice_value, "giftCardData": None, "items": items}}


def _object(body: Any) -> JSON:
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    return body


def _text(data: JSON, name: str) -> str | None:
    # The guides: "In case one of the parameters does not have a value, you must still send it as null".
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return value


def _required_text(data: JSON, name: str) -> str:
    value = _text(data, name)
    if not value:
        raise bad_request(f"{name} is required")
    return value


def _check_date(value: str | None, name: str) -> None:
    if value is None:
        return
    try:
        # Python 3.11 reads VTEX's forms, seven fractional digits and `Z` included.
        datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 date") from None


def _cents(value: Any) -> int:
    # A string in the Orders spec, an integer in the guides' example: both are cents.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("invoiceValue must be a whole number of cents, without a decimal separator")
    if value <= 0:
        raise bad_request("invoiceValue must be greater than 0")
    return value


def _items(value: Any, order: SandboxOrder) -> list[JSON]:
    if not isinstance(value, list):
        raise bad_request("items is required and must be an array")
    ordered = {line["id"] for line in order.body["items"]}
    items = []
    for item in value:
        if not isinstance(item, dict):
            raise bad_request("Each item must be an object with id, quantity and price")
        sku_id = _required_text(item, "id")
        quantity, price = item.get("quantity"), item.get("price")
        if not _is_int(quantity) or quantity <= 0:
            raise bad_request(f"Item {sku_id}: quantity must be a positive integer")
        if not _is_int(price) or price < 0:
            raise bad_request(f"Item {sku_id}: price must be an integer number of cents")
        if sku_id not in ordered:
            raise bad_request(f"Item {sku_id} is not in order {order.order_id}")
        items.append({"id": sku_id, "quantity": quantity, "price": price, "description": _text(item, "description")})
    return items


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
