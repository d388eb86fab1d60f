"""Brazil's NF-e import: the NF-e a seller issues in its own ERP (and gives VTEX with the invoice) imported
into the Mercado Libre shipment waiting for it, so that Mercado Libre releases the shipping label.

Why, and for which shipments:
- "Sellers Pessoa Jurídica (PJ) contribuintes podem importar as notas fiscais de venda através de nossa API
  de forma automática para pedidos com as logísticas drop_off (Mercado Envios Drop Off), xd_drop_off
  (Mercado Envios Places), xd_same_day (Mercado Envios Coleta Rápida) e cross_docking (Mercado Envios
  Coletas)"; "A importação da Nota Fiscal é o processo que altera o status do envio, destrancando o
  substatus invoice_pending e permitindo a geração da etiqueta de envio"
  (https://developers.mercadolivre.com.br/importar-nota-fiscal, updated 2026-06-08). And "only in MLB the
  seller is obliged to inform the Nota Fiscal ... If you do not use our invoicing system, you must send the
  invoice for this sale in order to print the label and send the product"
  (https://developers.mercadolibre.com.ar/en_us/cross-docking). Without the import such a sale never ships.
- Flex (`self_service`): attaching the NF-e to the pack (`POST /packs/{pack_id}/fiscal_documents`) only
  gives the buyer a copy, "não altera o status do envio e não está relacionado à geração de etiqueta"
  (https://developers.mercadolivre.com.br/anexar-nota-fiscal); it is optional and nothing is sent (the
  seller may attach it in Mercado Libre). ME1 and custom shipping: the seller's carrier ships, no label of
  Mercado Libre's waits. Full (`fulfillment`): Mercado Libre's Faturador issues the NF-e itself, which
  flows the other way (invoices.py). None of these is imported.
- Sellers PF and non-taxpayer PJ send a DC-e instead, and "Não é possível importar ou fazer upload de DC-e
  via API" (3 days after the sale, else Mercado Libre cancels it; importar-nota-fiscal page): their VTEX
  invoice carries no NF-e XML, and the alert below sends them to Mercado Libre's panel.

The calls ([secondary]: the doc excerpts show no request or answer; integrators' public code agrees):
- `GET /shipments/{shipment_id}/invoice_data?siteId=MLB`: the NF-e Mercado Libre holds for the shipment,
  e.g. `{"id": 429348053945853, "status": "approved", ...}`; 404 (`not_found_shipment_invoice`) when none.
  Which fields carry the access key and the id is not settled: one integrator compares `fiscal_key` (beside
  `id`, `invoice_number`, `invoice_serie`, `invoice_date`, `invoice_amount`), another reads `invoice_id` and
  `invoice_key`. All are read, the key at the top level or under `attributes` (as the Faturador's invoices
  nest it, shapes.NfeInvoice), and `key` / `access_key` too.
- `POST /shipments/{shipment_id}/invoice_data?siteId=MLB` (some write `invoice_data/?siteId=MLB`): the
  raw authorized NF-e XML (`<nfeProc>`) as the body, `Content-Type: application/xml` (some send text/xml).
  `PUT` on the same path replaces the NF-e held: never used here (see below).
- Refusals are 400s whose codes integrators copy from one table of Mercado Libre's, with its Portuguese
  texts: `shipment_invoice_already_saved` ("Já existe uma nota fiscal salva para o envio informado"; "o envio
  necessita estar no substatus de invoice_pending"), `duplicated_fiscal_key` ("Já existe uma nota fiscal
  salva com a chave fiscal informada"; "O número de chave fiscal da nota precisa ser único"),
  `invalid_nfe_cstat`, `wrong_receiver_cnpj`, `nfe_order_value_divergence`, `invalid_shipment`... and two
  that ask to wait: `shipment_already_being_processed` ("Aguardar o processamento da primeira requisição")
  and `internal_error` ("Aguarde e tente novamente"). Where the code sits varies by reader (`error`,
  `error_code`, a cause's `code`): all three are looked at.

What is done with a sale (Output) invoice on MLB:
- The shipments: those of the cart's orders still on that are Mercado Envíos 2 with one of the four types
  above. A cart Mercado Libre split ships in several, and an access key serves one shipment only
  (duplicated_fiscal_key), so each needs an NF-e of its own: an invoice goes to the shipments holding the
  SKUs it lists (all of them when it lists none, names none of theirs, or there is one shipment).
- Only a shipment waiting for its NF-e (substatus `invoice_pending`; integrators check `ready_to_ship` +
  `invoice_pending` before importing, as the hint above says): any other (already `ready_to_print`,
  shipped, cancelled) has nothing to import, and that is logged.
- The NF-e: VTEX's embedded invoice as XML (raw or base64: followup._embedded), at most 1 MB, holding an
  access key (`<chNFe>` or the `infNFe` Id, "NFe" + 44 digits), the invoice's `invoiceKey` when VTEX has a
  44-digit one. Without one (VTEX has only a number, a key, a URL or a PDF), not an NF-e, or too large:
  an alert line says the label stays locked until the NF-e XML is imported and how to do it (send the
  invoice to VTEX with its XML, or import it in Mercado Libre's panel), and the step is done: trying again
  changes nothing.
- Idempotent per shipment: GET first. Mercado Libre holding this access key: done. Holding another NF-e (or
  one whose key its answer does not show): an alert, never overwritten, since a PUT would replace what the
  seller or Mercado Libre put there. None: POST. A POST refused as duplicated_fiscal_key or
  shipment_invoice_already_saved is read again: this key on this shipment (an earlier attempt whose answer
  was lost) is done; anything else is the alert.
- Any other 4xx is Mercado Libre refusing the document (the seller's CNPJ, the value, the date, a key another
  sale used...): an alert with Mercado Libre's words, step done. shipment_already_being_processed,
  internal_error, 5xx, 408, 429, timeouts and a refused token are transient (client.py raises most of
  them): the workflow tries again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.mercadolibre.carts import Carts, digits
from connector.marketplaces.mercadolibre.client import MercadoLibreClient, parse_json, read_json, reason
from connector.marketplaces.mercadolibre.mapping import Cart
from connector.marketplaces.mercadolibre.shapes import Shipment
from connector.marketplaces.mercadolibre.sites import BRAZIL
from connector.models import Invoice

log = logging.getLogger(__name__)

Alert = Callable[[str, str], Awaitable[None]]

IMPORT_MODE = "me2"
IMPORT_TYPES = frozenset({"drop_off", "xd_drop_off", "xd_same_day", "cross_docking"})
WAITING = "invoice_pending"
SITE = {"siteId": BRAZIL}
XML = "application/xml"
# Twice what SEFAZ authorizes (an NF-e XML of 500 KB at most: invoices.py), as for every fiscal file here.
MAX_XML_BYTES = 1024 * 1024
NOT_HELD = frozenset({404, 204})
# Answers that are Mercado Libre refusing the document (a 401 is the token's, client.py's; 408 and 429 are
# transient).
REFUSALS = frozenset(range(400, 500)) - {401, 408, 429}
ALREADY_THERE = frozenset({"duplicated_fiscal_key", "shipment_invoice_already_saved"})
DUPLICATED_KEY = "duplicated_fiscal_key"
TRY_AGAIN = frozenset({"shipment_already_being_processed", "internal_error"})
KEY_FIELDS = ("fiscal_key", "invoice_key", "key", "access_key")
ID_FIELDS = ("id", "invoice_id")
_ACCESS_KEY = re.compile(r"\d{44}")
_CH_NFE = re.compile(rb"<(?:\w+:)?chNFe>\s*(\d{44})\s*</(?:\w+:)?chNFe>")
_INF_NFE_ID = re.compile(rb"<(?:\w+:)?infNFe\b[^>]*?\bId\s*=\s*[\"']NFe(\d{44})[\"']")


@dataclass(frozen=True)
class Nfe:
    """The NF-e to import: its access key and its XML as VTEX gave it."""

    key: str
    xml: bytes


@dataclass(frozen=True)
class Held:
    """What Mercado Libre holds for a shipment: its id and access key, as far as the answer shows them."""

    id: str | None
    key: str | None


class NfeImport:
    def __init__(self, *, client: MercadoLibreClient, carts: Carts, alert: Alert) -> None:
        self._client = client
        self._carts = carts
        self._alert = alert

    async def send(self, key: str, invoice: Invoice, xml: bytes | None) -> None:
        """Import the sale invoice's NF-e (`xml`: VTEX's embedded XML, None when it has none) into each
        shipment of the cart `key` waiting for it (see the module's docstring)."""
        cart = await self._carts.read(key, billing=False)
        waiting = self._waiting(key, cart, invoice)
        if not waiting:
            return
        nfe, problem = _nfe(invoice, xml)
        if nfe is None:
            await self._alert(
                key,
                f"The shipping label of {_sales(cart, waiting)} stays locked in Mercado Libre until the NF-e XML "
                f"of invoice {invoice.invoice_number} is imported, and the connector cannot import it: {problem}. "
                "Send the invoice to VTEX with its NF-e XML (embeddedInvoice), or import the NF-e in Mercado "
                "Libre's panel.",
            )
            return
        for shipment in waiting:
            await self._import(key, cart, shipment, nfe, invoice.invoice_number)

    # -- which shipments ------------------------------------------------------------------------------------

    def _waiting(self, key: str, cart: Cart, invoice: Invoice) -> list[Shipment]:
        """The cart's shipments this invoice's NF-e unlocks that still wait for one."""
        number = invoice.invoice_number
        shipments = _shipments(cart)
        importing = [s for s in shipments if _imports_nfe(s)]
        if not importing:
            kinds = ", ".join(sorted({f"{s.logistic.mode}/{s.logistic.type}" for s in shipments})) or "none read"
            log.info(
                "cart %s: invoice %s not imported (no shipment whose label waits for an NF-e: %s)", key, number, kinds
            )
            return []
        waiting = []
        for shipment in _addressed(cart, importing, invoice):
            if (shipment.substatus or "").lower() == WAITING:
                waiting.append(shipment)
            else:
                log.info(
                    "cart %s: shipment %s is %s/%s, not waiting for an NF-e: invoice %s not imported",
                    key,
                    shipment.id,
                    shipment.status,
                    shipment.substatus,
                    number,
                )
        return waiting

    # -- one shipment ---------------------------------------------------------------------------------------

    async def _import(self, key: str, cart: Cart, shipment: Shipment, nfe: Nfe, number: str) -> None:
        held = await self._held(shipment)
        if held is not None:
            await self._settle(key, cart, shipment, nfe, number, held)
            return
        what = f"the NF-e of invoice {number} for shipment {shipment.id}"
        response = await self._client.send(
            "POST",
            _path(shipment),
            what=what,
            params=SITE,
            headers={"Content-Type": XML, "Accept": "application/json"},
            content=nfe.xml,
            accept=REFUSALS,
        )
        if response.is_success:
            log.info("cart %s: NF-e %s of invoice %s imported into shipment %s", key, nfe.key, number, shipment.id)
            return
        codes = _error_codes(response)
        if codes & TRY_AGAIN:
            raise MarketplaceError(
                f"Mercado Libre answered HTTP {response.status_code} to {what}: {reason(response)}",
                status=response.status_code,
                transient=True,
            )
        if codes & ALREADY_THERE:
            held = await self._held(shipment)
            if held is not None:
                await self._settle(key, cart, shipment, nfe, number, held)
                return
        own = " Mercado Libre takes an access key for one shipment only: this one needs an NF-e of its own."
        await self._alert(
            key,
            f"Mercado Libre refused NF-e {nfe.key} of invoice {number} for shipment {shipment.id} "
            f"({_sales(cart, [shipment])}): {reason(response)}.{own if DUPLICATED_KEY in codes else ''} "
            "Its shipping label stays locked until an NF-e is imported: import a correct one in Mercado Libre's "
            "panel.",
        )

    async def _held(self, shipment: Shipment) -> Held | None:
        """The NF-e Mercado Libre holds for the shipment (None: none)."""
        what = f"the NF-e of shipment {shipment.id}"
        response = await self._client.send(
            "GET",
            _path(shipment),
            what=what,
            params=SITE,
            headers={"Accept": "application/json"},
            accept=NOT_HELD,
        )
        if response.status_code in NOT_HELD:
            return None
        data = read_json(response, what)
        if not isinstance(data, dict):
            raise MarketplaceError(
                f"Mercado Libre's {what} cannot be read: not an object", status=None, transient=False
            )
        held = Held(id=_held_id(data), key=_held_key(data))
        return held if held.id is not None or held.key is not None else None

    async def _settle(self, key: str, cart: Cart, shipment: Shipment, nfe: Nfe, number: str, held: Held) -> None:
        """Mercado Libre holds an NF-e for the shipment: this one (done), or another (the seller is told)."""
        if held.key == nfe.key:
            log.info("cart %s: shipment %s holds NF-e %s of invoice %s already", key, shipment.id, nfe.key, number)
            return
        what = f"NF-e {held.key}" if held.key else f"an NF-e (id {held.id}) whose access key its answer does not show"
        await self._alert(
            key,
            f"Mercado Libre holds {what} for shipment {shipment.id} ({_sales(cart, [shipment])}), not NF-e "
            f"{nfe.key} of invoice {number}: the connector does not replace it. If it is not the sale's NF-e, "
            "replace it in Mercado Libre's panel.",
        )


# -- helpers -----------------------------------------------------------------------------------------------


def _shipments(cart: Cart) -> list[Shipment]:
    return [shipment for sid in cart.shipment_ids() if (shipment := cart.shipments.get(sid)) is not None]


def _imports_nfe(shipment: Shipment) -> bool:
    logistic = shipment.logistic
    return (logistic.mode or "").lower() == IMPORT_MODE and (logistic.type or "").lower() in IMPORT_TYPES


def _addressed(cart: Cart, shipments: Sequence[Shipment], invoice: Invoice) -> list[Shipment]:
    """The shipments an invoice is for: those holding a SKU it lists; all of them when it lists none or
    names none of theirs (one NF-e per shipment: see the module's docstring)."""
    listed = {item.sku_id for item in invoice.items}
    named = [s for s in shipments if listed & _skus(cart, s.id)]
    return named or list(shipments)


def _skus(cart: Cart, shipment_id: str) -> set[str]:
    return {
        (line.item.seller_sku or "").strip()
        for order in cart.active
        if order.shipment_id == shipment_id
        for line in order.order_items
    }


def _sales(cart: Cart, shipments: Iterable[Shipment]) -> str:
    ids = {shipment.id for shipment in shipments}
    orders = [order.id for order in cart.active if order.shipment_id in ids]
    return f"{'sale' if len(orders) == 1 else 'sales'} {', '.join(orders)}"


def _path(shipment: Shipment) -> str:
    return f"/shipments/{digits(shipment.id, 'shipment')}/invoice_data"


def _nfe(invoice: Invoice, xml: bytes | None) -> tuple[Nfe | None, str]:
    """The NF-e to import, or why VTEX's invoice gives none."""
    if xml is None:
        return None, "VTEX has no XML of it (its embeddedInvoice holds no NF-e XML)"
    if len(xml) > MAX_XML_BYTES:
        return None, "its XML is over 1 MB"
    keys = access_keys(xml)
    if not keys:
        return None, "its XML is not an NF-e (it holds no access key)"
    wanted = "".join((invoice.invoice_key or "").split())  # written in groups of four, at times
    if _ACCESS_KEY.fullmatch(wanted):
        return (Nfe(wanted, xml), "") if wanted in keys else (None, f"its XML is not the NF-e of access key {wanted}")
    if len(keys) > 1:
        return None, "its XML holds several NF-e (Mercado Libre takes one per shipment)"
    return Nfe(keys.pop(), xml), ""


def access_keys(xml: bytes) -> set[str]:
    """The access keys an NF-e XML names: its protocol's `chNFe` and its `infNFe` Id ("NFe" + the key)."""
    return {match.decode() for pattern in (_CH_NFE, _INF_NFE_ID) for match in pattern.findall(xml)}


def _held_id(data: dict[str, object]) -> str | None:
    for name in ID_FIELDS:
        value = data.get(name)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _held_key(data: dict[str, object]) -> str | None:
    attributes = data.get("attributes")
    for place in (data, attributes if isinstance(attributes, dict) else {}):
        for name in KEY_FIELDS:
            value = place.get(name)
            if isinstance(value, str) and _ACCESS_KEY.fullmatch(value.strip()):
                return value.strip()
    return None


def _error_codes(response: httpx.Response) -> frozenset[str]:
    """Mercado Libre's codes in a refusal: `error`, `error_code`, and the causes' `code` (or the causes
    themselves when they are strings)."""
    try:
        data = parse_json(response.content)
    except ValueError:
        return frozenset()
    if not isinstance(data, dict):
        return frozenset()
    found = [data.get("error"), data.get("error_code")]
    causes = data.get("cause") or data.get("causes") or []
    for cause in causes if isinstance(causes, list) else [causes]:
        found.append(cause.get("code") if isinstance(cause, dict) else cause)
    return frozenset(code.strip().lower() for code in found if isinstance(code, str) and code.strip())
