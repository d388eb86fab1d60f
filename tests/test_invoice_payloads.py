"""The invoice the connector hands VTEX for an order the marketplace fulfilled fits the Orders API spec."""

from __future__ import annotations

from connector.models import Invoice, InvoiceItem
from connector.vtex.payloads import sale_invoice_body
from tests.contract.openapi import ContractViolation, validate_request

HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "X-VTEX-API-AppKey": "vtexappkey-test-ABC",
    "X-VTEX-API-AppToken": "secret",
}
PATH = "/api/oms/pvt/orders/MLB-2000532-01/invoice"
NFE = Invoice(
    invoice_number="1234-1",
    invoice_value=8490,
    issuance_date="2026-12-06T04:00:00-03:00",
    invoice_key="35261200000000000000550010000012341000012345",
    embedded_invoice="<nfeProc/>",
    items=[InvoiceItem(sku_id="8", quantity=1, price=7990)],
)


def test_a_marketplace_issued_invoice_fits_the_order_invoice_notification() -> None:
    body = sale_invoice_body(NFE)
    assert validate_request("POST", PATH, {}, HEADERS, body, spec="Orders API")
    assert (body["type"], body["invoiceValue"], body["invoiceKey"]) == ("Output", "8490", NFE.invoice_key)
    assert body["items"] == [{"id": "8", "quantity": 1, "price": 7990}]
    assert "courier" not in body  # not nullable in the spec: left out, as nothing of the seller's ships


def test_a_broken_invoice_body_is_caught() -> None:
    body = sale_invoice_body(NFE)
    del body["invoiceNumber"]
    try:
        validate_request("POST", PATH, {}, HEADERS, body, spec="Orders API")
    except ContractViolation:
        return
    raise AssertionError("an invoice without its number passed the spec")
