"""What goes back to Mercado Libre after VTEX placed a cart's order: invoices, tracking, cancellations, each
the way Mercado Libre documents it for the cart's site and logistics.

Invoices (`send_invoice`):
- Brazil (MLB): the fiscal-documents resource is "available in all sites, except Mercado Livre Brasil"
  (https://developers.mercadolivre.com.br/en_us/upload-invoices). What Brazil needs instead is the NF-e
  *imported* into the shipment, which unlocks its label ("destrancando o substatus invoice_pending e
  permitindo a geração da etiqueta de envio", https://developers.mercadolivre.com.br/importar-nota-fiscal),
  per logistic type:
  - drop_off, xd_drop_off, xd_same_day, cross_docking (Mercado Libre's carrier, its label): the NF-e XML
    VTEX has (`embeddedInvoice`) is imported into each shipment waiting for it (substatus invoice_pending),
    `POST /shipments/{id}/invoice_data?siteId=MLB` with the raw XML [secondary]; idempotent (what Mercado
    Libre holds is read first), and an invoice without an NF-e XML, or one Mercado Libre refuses, is an
    alert line saying the label stays locked and what to do. nfe_import.py has the rules and sources.
  - self_service (Flex): nothing. Its label needs no import; attaching the NF-e to the pack (`POST
    /packs/{pack_id}/fiscal_documents`) would only give the buyer a copy and "não altera o status do envio"
    (https://developers.mercadolivre.com.br/anexar-nota-fiscal), so it is left to the seller.
  - ME1 and custom: nothing (the seller's own carrier ships; no label of Mercado Libre's waits).
  - fulfillment (Full): nothing. Mercado Libre's Faturador issues the NF-e itself, automatically for Full
    (https://developers.mercadolivre.com.br/pt_br/api-fiscal-faturamento-de-venda), and it flows the other
    way, from Mercado Libre into VTEX (invoices.py; VTEX's known issue
    meli-full-orders-not-creating-invoice-in-vtex).
  The Faturador is never asked for an NF-e here: that would issue a second one for a sale VTEX's ERP
  invoiced already.
- Chile, Full packs: nothing either ("To Mercado Libre Chile, the pack with Full shipping will not use this
  resource", the upload-invoices page).
- Every other case, Full outside Chile included (the page excludes no other): `POST
  /packs/{pack_id}/fiscal_documents`, multipart, field `fiscal_document`: the PDF (at most 1 MB, "one
  fiscal_document per pack") and, when VTEX has it, the XML with it ("Attach XML file"). An order without a
  pack uses its own id in the packs path; a cart split in several packs uploads to each. The PDF is
  VTEX's embedded invoice when it is one (base64 of a PDF), else the file at the invoice's URL (fetched,
  1 MB at most, a PDF by its first bytes); an XML embedded invoice goes with it. Mercado Libre takes files
  only: an invoice with neither a PDF nor a URL to one (a number and a key) cannot be uploaded, so the
  seller is told (an alert line) to upload it in Mercado Libre, and the step is done.
- Idempotent per pack: Mercado Libre keeps one fiscal document per pack and answers a second upload with
  409 (the sandbox's [INFERRED] reading), taken as "already there". A later partial invoice of a pack
  that has one is therefore not uploaded either; the alert says so.
- A return (Input) invoice: Mercado Libre has no resource for it (returns run through its claims), so
  nothing is sent.

Tracking (`send_tracking`): only the shipments the seller ships and reports, Mercado Envíos 1 and custom
shipping: `POST /shipments/{id}/seller_notifications` with `{"tracking_number", "tracking_url", "status":
"shipped", "substatus": null, "payload": {"comment", "date"}}`
(https://developers.mercadolibre.com.co/en_us/manage-project-apps/me1-order-states; the guide's payload also
has Mercado Libre's `service_id` for the carrier, which VTEX does not know: it is left out). Mercado
Envíos 2 shipments (Full, Colecta, drop-off, Flex) are tracked by Mercado Libre's logistics: nothing is
sent. Idempotent: a shipment Mercado Libre already shows shipped or delivered with this tracking number is
left alone; a cancelled or not_delivered one ("a final and irreversible status") is not touched and the
seller is told.

Cancellation (`notify_cancellation`): Mercado Libre documents no call for a seller to cancel a paid sale.
The feedback resource (`POST /orders/{id}/feedback` with `fulfilled: false`) was that once; its guide now
says it "is valid only for tracking shipment delivered statuses" and "should be always applied to change
status to delivered in sales without Mercado Envíos"
(https://developers.mercadolibre.com.ar/en_us/feedback-on-sale). So when Mercado Libre still shows an order
of the cart on, the seller is told, in an alert line, to cancel the sale in Mercado Libre (which refunds
the buyer), and the step is done. Refusing instead (a non-transient error) would park the canceled order
for good: reprocessing would only refuse again, since nothing the connector can do changes the answer.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from connector.http_pool import pooled_client
from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.mercadolibre.carts import Carts, digits
from connector.marketplaces.mercadolibre.client import FilePart, MercadoLibreClient
from connector.marketplaces.mercadolibre.mapping import Cart, NotIntegrable, cart_logistics
from connector.marketplaces.mercadolibre.nfe_import import NfeImport
from connector.marketplaces.mercadolibre.sites import BRAZIL, CHILE, Site
from connector.models import Invoice, InvoiceType, Logistics, Tracking

log = logging.getLogger(__name__)

Alert = Callable[[str, str], Awaitable[None]]

MAX_DOCUMENT_BYTES = 1024 * 1024
PDF = "application/pdf"
XML = "application/xml"
SELLER_SHIPPED_MODES = frozenset({"me1", "custom"})
DONE_STATUSES = frozenset({"shipped", "delivered"})
FINAL_STATUSES = frozenset({"cancelled", "not_delivered"})
_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FollowUp:
    def __init__(
        self,
        *,
        client: MercadoLibreClient,
        carts: Carts,
        site: Site,
        alert: Alert,
        download_timeout_seconds: float = 10.0,
        download_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._carts = carts
        self._site = site
        self._alert = alert
        self._clock = clock
        self._nfe_import = NfeImport(client=client, carts=carts, alert=alert)
        # The invoice's URL is the seller's (its ERP): fetched without Mercado Libre's token.
        self._download = pooled_client(timeout=download_timeout_seconds, transport=download_transport)

    async def aclose(self) -> None:
        await self._download.aclose()

    # -- invoices -------------------------------------------------------------------------------------------

    async def send_invoice(self, key: str, invoice: Invoice) -> None:
        number = invoice.invoice_number
        if invoice.type is InvoiceType.INPUT:
            log.info("cart %s: return invoice %s not sent (Mercado Libre takes none)", key, number)
            return
        if self._site.id == BRAZIL:
            xml = _embedded(invoice.embedded_invoice)[1] if invoice.embedded_invoice else None
            await self._nfe_import.send(key, invoice, xml)
            return
        cart = await self._carts.read(key, billing=False)
        if self._site.id == CHILE and self._logistics(cart) is Logistics.MARKETPLACE_FULFILLMENT:
            log.info("cart %s: invoice %s not uploaded (Chile, Full)", key, number)
            return
        files = await self._documents(key, invoice)
        if not files:
            return
        for target in cart.upload_targets():
            response = await self._client.send(
                "POST",
                f"/packs/{digits(target, 'pack')}/fiscal_documents",
                what=f"invoice {number} of pack {target}",
                files=files,
                accept=frozenset({409}),
            )
            if response.status_code == 409:
                log.info("cart %s: pack %s already has a fiscal document (invoice %s)", key, target, number)

    async def _documents(self, key: str, invoice: Invoice) -> list[FilePart]:
        """The PDF (and XML) Mercado Libre takes for the invoice; none (and the seller told) when VTEX gave
        nothing Mercado Libre can take."""
        number = invoice.invoice_number
        name = _FILE_NAME.sub("_", number)[:80] or "invoice"
        pdf: bytes | None = None
        xml: bytes | None = None
        if invoice.embedded_invoice:
            pdf, xml = _embedded(invoice.embedded_invoice)
        problem = None
        if pdf is None and invoice.invoice_url:
            pdf, problem = await self._fetch_pdf(invoice.invoice_url)
        if pdf is None:
            where = f" ({problem})" if problem else ""
            await self._alert(
                key,
                f"Invoice {number} was not uploaded to Mercado Libre{where}: Mercado Libre takes the invoice as a "
                "PDF file, and VTEX has no PDF of it for the connector. Upload it in Mercado Libre's sale.",
            )
            return []
        if len(pdf) > MAX_DOCUMENT_BYTES or (xml is not None and len(xml) > MAX_DOCUMENT_BYTES):
            await self._alert(
                key,
                f"Invoice {number} was not uploaded to Mercado Libre: Mercado Libre takes files of 1 MB at most. "
                "Upload it in Mercado Libre's sale.",
            )
            return []
        files: list[FilePart] = [("fiscal_document", (f"{name}.pdf", pdf, PDF))]
        if xml is not None:
            files.append(("fiscal_document", (f"{name}.xml", xml, XML)))
        return files

    async def _fetch_pdf(self, url: str) -> tuple[bytes | None, str | None]:
        """The PDF at the invoice's URL, or why not (a transient failure raises: try again later)."""
        if not url.lower().startswith(("https://", "http://")):
            return None, "its URL is not http(s)"
        try:
            async with self._download.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 500:
                    raise MarketplaceError(
                        f"the invoice's URL answered HTTP {response.status_code}", status=None, transient=True
                    )
                if not response.is_success:
                    return None, f"its URL answered HTTP {response.status_code}"
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_DOCUMENT_BYTES:
                        return None, "the file at its URL is over 1 MB"
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"the invoice's URL could not be read: {type(exc).__name__}", status=None, transient=True
            ) from None
        if not bytes(content[:1024]).lstrip().startswith(b"%PDF"):
            return None, "the file at its URL is not a PDF"
        return bytes(content), None

    # -- tracking -------------------------------------------------------------------------------------------

    async def send_tracking(self, key: str, tracking: Tracking) -> None:
        cart = await self._carts.read(key, billing=False)
        for shipment_id in cart.shipment_ids():
            shipment = cart.shipments.get(shipment_id)
            if shipment is None or (shipment.logistic.mode or "").lower() not in SELLER_SHIPPED_MODES:
                continue  # Mercado Libre's logistics track it
            status = (shipment.status or "").lower()
            if status in DONE_STATUSES and shipment.tracking_number == tracking.tracking_number:
                continue
            if status in FINAL_STATUSES:
                await self._alert(
                    key,
                    f"Tracking {tracking.tracking_number} (invoice {tracking.invoice_number}) was not sent to "
                    f"Mercado Libre: its shipment {shipment.id} is {status}.",
                )
                continue
            await self._client.send(
                "POST",
                f"/shipments/{digits(shipment.id, 'shipment')}/seller_notifications",
                what=f"the tracking of invoice {tracking.invoice_number} on shipment {shipment.id}",
                json_body=self._shipped(tracking),
            )

    def _shipped(self, tracking: Tracking) -> dict[str, object]:
        return {
            "payload": {
                "comment": tracking.courier or "",
                "date": self._clock().astimezone(UTC).isoformat(timespec="milliseconds"),
            },
            "tracking_number": tracking.tracking_number,
            "tracking_url": tracking.tracking_url,
            "status": "shipped",
            "substatus": None,
        }

    # -- cancellation ---------------------------------------------------------------------------------------

    async def notify_cancellation(self, key: str, reason: str) -> None:
        cart = await self._carts.read(key, shipments=False, billing=False)
        on = [order.id for order in cart.active]
        if not on:
            return  # Mercado Libre shows every order of the cart cancelled already
        await self._alert(
            key,
            f"The order was canceled in VTEX ({reason}), but Mercado Libre still shows "
            f"{'sale' if len(on) == 1 else 'sales'} {', '.join(on)} on and offers no API for a seller to cancel: "
            "cancel it in Mercado Libre (My sales) so the buyer is refunded.",
        )

    @staticmethod
    def _logistics(cart: Cart) -> Logistics | None:
        try:
            return cart_logistics(cart)
        except NotIntegrable as exc:
            raise MarketplaceError(str(exc), status=None, transient=False) from None


def _embedded(content: str) -> tuple[bytes | None, bytes | None]:
    """VTEX's embedded invoice as (PDF, XML): XML text as is, base64 of a PDF (or of an XML) decoded."""
    text = content.strip()
    if text.startswith("<"):
        return None, text.encode()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None, None
    if raw.lstrip().startswith(b"%PDF"):
        return raw, None
    if raw.lstrip().startswith(b"<"):
        return None, raw
    return None, None
