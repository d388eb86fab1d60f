"""VTEX's callbacks are checked against VTEX before they move an order.

VTEX does not sign them, so whoever learns a callback URL could otherwise make the connector tell the
marketplace the seller canceled (the customer refunded while VTEX ships) or push tracking links of their
choosing to customers. A cancellation is believed only when Get order shows the order canceled or being
canceled; an invoice only when Get order holds that invoice number, and what is forwarded is VTEX's own
copy of it (value, tracking, links), never the callback's.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.models import Invoice, InvoiceItem, InvoiceType
from connector.vtex.responses import OmsOrder, OmsPackage

# OMS statuses of an order VTEX is canceling or has canceled (Orders API order status list); VTEX sends
# the cancellation callback while the order is `cancellation-requested`, asking the marketplace to agree.
CANCELING_STATUSES = frozenset({"cancellation-requested", "canceling", "canceled"})
# What the callback may claim differently from VTEX's copy; a difference is worth an alert line.
COMPARED_FIELDS = ("invoice_value", "tracking_number", "tracking_url", "courier")


@dataclass(frozen=True)
class Confirmed:
    invoice: Invoice
    differing_fields: tuple[str, ...] = ()


def cancellation_problem(order: OmsOrder | None, vtex_order_id: str) -> str | None:
    """Why VTEX does not confirm the cancellation; None when it does."""
    if order is None:
        return f"VTEX has no order {vtex_order_id}"
    if order.status not in CANCELING_STATUSES:
        return f"VTEX shows the order {vtex_order_id} as {order.status!r}, not canceled"
    return None


def confirm_invoice(order: OmsOrder | None, vtex_order_id: str, claimed: Invoice) -> Confirmed | str:
    """VTEX's copy of the claimed invoice, or why there is none."""
    if order is None:
        return f"VTEX has no order {vtex_order_id}"
    for package in order.packages():
        if package.invoice_number == claimed.invoice_number:
            invoice = _from_package(package, order, claimed)
            differing = tuple(f for f in COMPARED_FIELDS if getattr(claimed, f) != getattr(invoice, f))
            return Confirmed(invoice, differing)
    return f"VTEX shows no invoice {claimed.invoice_number!r} on the order {vtex_order_id}"


def _from_package(package: OmsPackage, order: OmsOrder, claimed: Invoice) -> Invoice:
    skus = [item.id for item in order.items]
    items = [
        InvoiceItem(sku_id=skus[item.item_index], quantity=item.quantity, price=item.price)
        for item in package.items
        if 0 <= item.item_index < len(skus) and item.quantity > 0
    ]
    return Invoice(
        type=InvoiceType.INPUT if package.type == "Input" else InvoiceType.OUTPUT,
        invoice_number=claimed.invoice_number,
        invoice_value=package.invoice_value if package.invoice_value is not None else claimed.invoice_value,
        issuance_date=package.issuance_date,
        invoice_url=package.invoice_url,
        invoice_key=package.invoice_key,
        embedded_invoice=package.embedded_invoice,
        # A package without items (VTEX lists them by position) keeps the callback's, which name SKUs.
        items=items or claimed.items,
        courier=package.courier or None,
        tracking_number=package.tracking_number or None,
        tracking_url=package.tracking_url or None,
    )
