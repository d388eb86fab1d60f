"""The invoices Mercado Libre issues itself, which VTEX must be given: for a cart Mercado Libre fulfills from
its own warehouse the invoice flows from Mercado Libre into VTEX, not the other way (VTEX's known issue
meli-full-orders-not-creating-invoice-in-vtex: a Full order's `embeddedInvoice` comes from Mercado Libre).

Which carts, each with its source:
- Brazil (MLB) only. Mercado Libre's invoicing service, the Faturador, "é indispensável em Mercado Envios
  Full" and issues its NF-e "automaticamente (apenas em Mercado Envios Full)"; for the other logistics it
  issues one only when the seller asks (https://developers.mercadolivre.com.br/api-fiscal-faturamento-de-venda),
  and then the seller's own invoicing, through VTEX, is the source: those carts get nothing here. One NF-e
  covers all the orders of a cart ("Caso seja um pedido de carrinho, o integrador deverá informar todos os
  números das vendas", same page). Mexico and Argentina document invoices of their own ("facturas de ventas
  facturadas por Mercado Libre", `GET /invoices/io/documents/stream/order/{id}/pdf|xml`,
  https://developers.mercadolibre.com.mx/descarga-facturas-mlm) through other resources and shapes, which
  the sandbox does not serve: not read here (a known gap).
- Only carts Mercado Libre ships from its warehouse (logistic type `fulfillment`: MARKETPLACE_FULFILLMENT).
  Any other cart, and every cart of another site: an empty list, and the invoices resource is never asked
  (on MLB the cart is read, without billing data, to learn its logistics; elsewhere nothing is read).

Reading:
- `GET /users/{seller}/invoices/orders/{order_id}` for each paid order of the cart still on: an invoice is
  read "por invoice_id, por order_id ou por shipment_id" (https://developers.mercadolivre.com.br/obtendo-nota-fiscal).
  Answers are told apart by invoice id: the cart's one NF-e, or one per part of a pack Mercado Libre split.
- 404 (or 204): no NF-e issued for that order yet; nothing for it, no error (the caller asks again later).
- An answer is one invoice or [secondary] a list of documents. Only the sale's NF-e counts
  (`fiscal_data.transaction_type` absent or `sale`: the guide lists SALE, SALE_RETURN, DEVOLUTION, INBOUND,
  SYMBOLIC_INBOUND_RETURN... under one order), and only once authorized ("assim que o status da nota for
  AUTHORIZED", same guide; compared without case: real answers write `authorized` [secondary]), never a
  cancelled one (`status` or `transaction_status`). Pending, processing, rejected: not issued, no error.
- The XML: "o XML será disponibilizado no campo xml_location" (same guide): the path in
  `attributes.xml_location` (or `xml_location`), `/users/{seller}/invoices/documents/xml/{id}/authorized` in
  real answers [secondary], else that path built from the invoice's id. The token only ever goes to Mercado
  Libre's API: a location on another host, or outside the seller's invoices, is refused (not transient).
  404 (or 204): the XML is not served yet; that invoice waits for the next call. The body must be UTF-8 XML
  holding the invoice's access key (an authorized NF-e's nfeProc always does).
- 5xx, 429, timeouts, a refused token: transient MarketplaceErrors (client.py); an answer that cannot be
  read is not transient.

The Invoice (connector.models), from the invoice's JSON (shapes.NfeInvoice):
- type Output (a sale).
- invoice_number: `"{invoice_number}-{invoice_series}"` (`"1001-1"`). Mercado Libre gives the NF-e's number
  and series apart, and an NF-e is unique only with its series (numbering restarts in each series: the
  seller's ERP and the Faturador may both have a number 1001, in different series). A hyphen because VTEX
  puts the invoice number in URL paths (`/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}`), where a
  slash would not do. A series written with leading zeros is the same series ("001" is "1"); without a
  series, the number alone.
- invoice_value: `amount` in cents, exact (a Decimal times 100; a fraction of a cent is refused).
- issuance_date: `issued_date` in ISO 8601 with an offset. Real answers write Brasília time without one
  [secondary]: read as UTC-03:00, Brasília's time all year since Brazil ended daylight saving in 2019.
- invoice_key: the access key (`attributes.invoice_key`, or `invoice_key`): 44 digits, else not readable.
- embedded_invoice: the NF-e XML as Mercado Libre serves it, at most MAX_XML_BYTES (1 MiB), read as a
  stream. An NF-e file cannot exceed 500 KB to be authorized (SEFAZ's limit [secondary]: "os arquivos XML
  não poderão exceder a 500 Kbytes"), so an authorized one with its protocol fits twice over, and the
  Invoice crosses Temporal's payloads (2 MB at most) with room to spare. A larger answer is not an NF-e
  SEFAZ authorized: the invoice is given without it (a warning logged) rather than held back.
- invoice_url: none. Mercado Libre gives the DANFE as `attributes.danfe_location`, a path of its API that
  needs the seller's token, not an address VTEX or a buyer could open.
- items: the lines of the orders the NF-e covers (the cart's orders whose look-up answered it), as the order
  was placed in VTEX (mapping.invoice_items): seller_sku, quantity, unit price in cents.
- no tracking: Mercado Libre's own logistics carries Full shipments.

Idempotent, and no side effect on Mercado Libre: GETs only, no alert, the same NF-e always the same Invoice.
(Reading the cart records a late order of its pack in the cart store, as every read of a cart does.)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

from pydantic import ValidationError

from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.mercadolibre.carts import Carts, digits
from connector.marketplaces.mercadolibre.client import MercadoLibreClient, ResponseTooLarge, read_json
from connector.marketplaces.mercadolibre.mapping import (
    PAID_STATUSES,
    Cart,
    NotIntegrable,
    cart_logistics,
    invoice_items,
)
from connector.marketplaces.mercadolibre.shapes import NfeInvoice, Order, read, unreadable
from connector.marketplaces.mercadolibre.sites import BRAZIL, Site
from connector.models import Invoice, InvoiceType, Logistics

log = logging.getLogger(__name__)

# Sites whose Full sales Mercado Libre invoices itself through a resource the adapter reads.
FATURADOR_SITES = frozenset({BRAZIL})
MAX_XML_BYTES = 1024 * 1024
# Brasília's official time (no daylight saving since 2019): how Mercado Libre's zone-less invoice dates read.
BRASILIA = timezone(timedelta(hours=-3))
NOT_YET = frozenset({404, 204})
CANCELLED = frozenset({"cancelled", "canceled"})
SALE = "sale"
_ACCESS_KEY = re.compile(r"\d{44}")
_SAFE_PATH = re.compile(r"(/[A-Za-z0-9_.-]+)+")
_SAFE_QUERY = re.compile(r"[A-Za-z0-9_.=&-]*")


@dataclass
class _Found:
    """One NF-e and the cart's orders whose look-up answered it."""

    invoice: NfeInvoice
    orders: list[Order] = field(default_factory=list)


class MarketplaceInvoices:
    def __init__(self, *, client: MercadoLibreClient, carts: Carts, site: Site, seller_id: str) -> None:
        self._client = client
        self._carts = carts
        self._site = site
        self._seller = seller_id

    async def issued(self, key: str) -> list[Invoice]:
        """The NF-e Mercado Libre issued for the cart `key` (a Full cart on a Faturador site), in the order of
        the cart's orders; empty for any other cart and while none is issued."""
        if self._site.id not in FATURADOR_SITES:
            return []
        cart = await self._carts.read(key, billing=False)
        if self._logistics(cart) is not Logistics.MARKETPLACE_FULFILLMENT:
            return []
        found: dict[str, _Found] = {}
        paid = [order for order in cart.active if order.status in PAID_STATUSES]
        for order in paid:
            for invoice in await self._of_order(order.id):
                found.setdefault(invoice.id, _Found(invoice)).orders.append(order)
        invoices: list[Invoice] = []
        for entry in found.values():
            xml = await self._xml(entry.invoice)
            if xml is None:
                continue  # issued, its XML not served yet: the next call gives it
            invoices.append(self._invoice(key, entry, xml or None))
        return invoices

    # -- reading ------------------------------------------------------------------------------------------

    async def _of_order(self, order_id: str) -> list[NfeInvoice]:
        """The order's authorized sale NF-e (none: not issued yet)."""
        order_id = digits(order_id, "order")
        what = f"the NF-e of order {order_id}"
        response = await self._client.send(
            "GET",
            f"/users/{self._seller}/invoices/orders/{order_id}",
            what=what,
            headers={"Accept": "application/json"},
            accept=NOT_YET,
        )
        if response.status_code in NOT_YET:
            return []
        data = read_json(response, what)
        entries = data if isinstance(data, list) else [data]
        invoices: list[NfeInvoice] = []
        for entry in entries:
            try:
                invoice = read(NfeInvoice, entry)
            except ValueError as exc:
                raise MarketplaceError(
                    f"Mercado Libre's {what} cannot be read: {exc}", status=None, transient=False
                ) from None
            if self._is_issued_sale(invoice):
                invoices.append(invoice)
        return invoices

    @staticmethod
    def _is_issued_sale(invoice: NfeInvoice) -> bool:
        kind = (invoice.fiscal_data.transaction_type if invoice.fiscal_data is not None else None) or SALE
        status = (invoice.status or "").lower()
        cancelled = (invoice.transaction_status or "").lower() in CANCELLED
        if kind.lower() != SALE:
            return False
        if status != "authorized" or cancelled:
            log.info("Mercado Libre NF-e %s is %s: not an issued invoice (yet)", invoice.id, status or "without status")
            return False
        return True

    async def _xml(self, invoice: NfeInvoice) -> str | None:
        """The NF-e XML; None while Mercado Libre does not serve it yet; "" when it is over MAX_XML_BYTES."""
        what = f"the XML of NF-e {invoice.id}"
        path = self._location(invoice)
        try:
            response = await self._client.send(
                "GET",
                path,
                what=what,
                headers={"Accept": "application/xml, text/xml"},
                accept=NOT_YET,
                max_bytes=MAX_XML_BYTES,
            )
        except ResponseTooLarge:
            log.warning(
                "Mercado Libre's XML of NF-e %s is over %d bytes, which no authorized NF-e is: the invoice goes "
                "to VTEX without it",
                invoice.id,
                MAX_XML_BYTES,
            )
            return ""
        if response.status_code in NOT_YET:
            return None
        try:
            text = response.content.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            raise MarketplaceError(f"{what} is not UTF-8 text", status=None, transient=False) from None
        if not text.startswith("<"):
            raise MarketplaceError(f"{what} is not XML", status=None, transient=False)
        key = invoice.key
        if key is not None and key not in text:
            raise MarketplaceError(f"{what} is not the NF-e of access key {key}", status=None, transient=False)
        return text

    def _location(self, invoice: NfeInvoice) -> str:
        """Where the XML is, as a path of Mercado Libre's API (the token goes nowhere else)."""
        invoice_id = digits(invoice.id, "NF-e")
        location = invoice.location
        if not location:
            return f"/users/{self._seller}/invoices/documents/xml/{invoice_id}/authorized"
        parts = urlsplit(location.strip())
        base = self._client.base_url
        same_host = (parts.scheme, parts.netloc) == (base.scheme, base.netloc.decode("ascii"))
        refused = (
            ((parts.scheme or parts.netloc) and not same_host)
            or parts.fragment
            or _SAFE_PATH.fullmatch(parts.path) is None
            or not parts.path.startswith(f"/users/{self._seller}/invoices/")
            or any(segment in (".", "..") for segment in parts.path.split("/"))
            or _SAFE_QUERY.fullmatch(parts.query) is None
        )
        if refused:
            raise MarketplaceError(
                f"Mercado Libre names the XML of NF-e {invoice_id} at {location[:200]!r}, outside the seller's "
                "invoices on its API: not read (the connection's token goes nowhere else)",
                status=None,
                transient=False,
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # -- mapping ------------------------------------------------------------------------------------------

    def _invoice(self, key: str, entry: _Found, xml: str | None) -> Invoice:
        invoice = entry.invoice
        what = f"Mercado Libre's NF-e {invoice.id} of cart {key}"
        access_key = (invoice.key or "").strip()
        if _ACCESS_KEY.fullmatch(access_key) is None:
            raise MarketplaceError(f"{what} has no 44-digit access key", status=None, transient=False)
        if invoice.invoice_number is None or invoice.amount is None:
            missing = "invoice_number" if invoice.invoice_number is None else "amount"
            raise MarketplaceError(f"{what} cannot be read: no {missing}", status=None, transient=False)
        try:
            return Invoice(
                type=InvoiceType.OUTPUT,
                invoice_number=_number(invoice.invoice_number, invoice.invoice_series),
                invoice_value=_cents(invoice.amount, what),
                issuance_date=_issued(invoice.issued_date, what),
                invoice_key=access_key,
                embedded_invoice=xml,
                invoice_url=None,
                items=invoice_items(entry.orders),
            )
        except NotIntegrable as exc:
            raise MarketplaceError(str(exc), status=None, transient=False) from None
        except ValidationError as exc:
            reason = unreadable(exc)
            raise MarketplaceError(f"{what} cannot be mapped: {reason}", status=None, transient=False) from None

    @staticmethod
    def _logistics(cart: Cart) -> Logistics | None:
        try:
            return cart_logistics(cart)
        except NotIntegrable as exc:
            raise MarketplaceError(str(exc), status=None, transient=False) from None


def _number(number: str, series: str | None) -> str:
    """`number-series` (see the module's docstring), leading zeros of both dropped."""
    text = number.lstrip("0") or "0"
    series = (series or "").strip()
    if not series:
        return text
    if series.isascii() and series.isdigit():
        series = series.lstrip("0") or "0"
    return f"{text}-{series}"


def _cents(amount: Decimal, what: str) -> int:
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise MarketplaceError(f"{what} has an amount of a fraction of a cent", status=None, transient=False)
    return int(cents)


def _issued(value: str | None, what: str) -> str | None:
    """ISO 8601 with an offset; a date without one is Brasília time."""
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MarketplaceError(
            f"{what} cannot be read: issued_date is not a date", status=None, transient=False
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BRASILIA)
    return moment.isoformat(timespec="milliseconds")
