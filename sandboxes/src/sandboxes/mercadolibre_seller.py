"""What the seller sends Mercado Libre after a sale, checked as documented: tracking of seller-shipped
orders, fiscal documents outside Brazil, and the NF-e Mercado Libre's Faturador issues in Brazil.

- Tracking, ME1 (https://developers.mercadolibre.com.co/en_us/manage-project-apps/me1-order-states):
  `POST /shipments/{id}/seller_notifications` with `{"payload": {"service_id", "comment", "date"},
  "tracking_number", "tracking_url", "status": "shipped", "substatus": null}` answers `{"status": "OK"}`;
  statuses shipped (substatus null), delivered (null), not_delivered (returning_to_sender); "not_delivered
  is a final and irreversible status". The guide's own example sends `"substatus": "null"` as a string,
  so both are taken. [INFERRED] other shipping modes (ME2, where Mercado Libre's carrier tracks) are
  refused with 400, as is a shipment not yet paid for, and a shipped without a tracking number.
- Fiscal documents (https://developers.mercadolibre.com.co/en_us/manage-project-apps/upload-invoices):
  `POST /packs/{pack_id}/fiscal_documents`, multipart with one or two `fiscal_document` files (PDF, and
  optionally its XML: application/pdf, application/xml, text/xml), at most 1 MB, one fiscal document per
  pack; an order without pack_id uses its order id in place of the pack id. "Available in all sites, except
  Mercado Livre Brasil"; Chile's Full packs do not use it. Answer `{"ids": ["{seller}_{uuid}", ...]}`.
  [INFERRED] refusals are 400 in the documented error shape; a second upload to the same pack is 409.
- NF-e import, Brazil (https://developers.mercadolivre.com.br/importar-nota-fiscal): "Sellers Pessoa Jurídica
  (PJ) contribuintes podem importar as notas fiscais de venda ... para pedidos com as logísticas drop_off,
  xd_drop_off, xd_same_day e cross_docking"; the import "altera o status do envio, destrancando o substatus
  invoice_pending e permitindo a geração da etiqueta de envio". The page's excerpts show no request, so the
  calls are [secondary], as integrators' public code makes them: `GET|POST|PUT
  /shipments/{id}/invoice_data?siteId=MLB` (some write `invoice_data/?siteId=MLB`), the raw authorized
  NF-e XML as the body (`application/xml`, some send `text/xml`). Refusals are 400s with the codes and
  Portuguese texts integrators copy from Mercado Libre's table (NFE_REFUSALS). What the sandbox checks
  ([INFERRED] where the table only names the code): the body parses as XML and holds one NF-e (several
  `infNFe`: batch_nfe_not_supported) with a 44-digit access key (`protNFe/infProt/chNFe`, or the `infNFe`
  Id "NFe" + key; both, when both are there, the same: else invalid_parameter); it is authorized
  (`protNFe/infProt/cStat` 100, a bare `NFe` without protocol is not: invalid_nfe_cstat); the key is not
  held by any shipment yet (duplicated_fiscal_key, the same NF-e sent twice included); the shipment holds
  no other NF-e (shipment_invoice_already_saved), takes one (an MLB shipment of those four logistics) and
  waits for it (substatus invoice_pending; else invalid_shipment, naming its status). `siteId=MLB` is
  required (invalid_operation_for_site_id: "Só é permitida a execução de operações para o site MLB"),
  another Content-Type is 415 [INFERRED: an integrator meets a 415 for JSON there]. GET without an NF-e is
  404 not_found_shipment_invoice (the code an integrator matches). PUT replaces the NF-e a shipment holds
  (404 when it holds none) and changes no status [INFERRED]. Where the code sits is open (integrators read
  `error`, `error_code` or a cause's `code`): the sandbox puts it in `error`, or in `cause [{code,
  message}]` under `error: bad_request`, drawn per sandbox.
- Faturador (https://developers.mercadolivre.com.br/pt_br/api-fiscal-faturamento-de-venda): one NF-e for
  all the orders of a cart, issued automatically for Full, otherwise on the seller's request
  (`POST /users/{user_id}/invoices/orders {"orders": [...]}`). The sandbox issues it on its own for paid
  Brazilian Full packs (after `invoice_delay_seconds`) or through its admin API; see mercadolibre_views
  for how it is read. Its XML is an nfeProc in the NF-e layout 4.00 (`infNFe Id="NFe{key}"`, `ide {mod 55,
  serie, nNF, dhEmi}` with Brasília's offset, `total/ICMSTot/vNF`, `protNFe/infProt {chNFe, cStat 100}`).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from sandboxes.mercadolibre_models import (
    BRASILIA,
    JSON,
    SELLER_SHIPPED_MODES,
    FiscalDocument,
    MlApiError,
    Shipment,
    bad_request,
)

MAX_FISCAL_DOCUMENT_BYTES = 1024 * 1024
FISCAL_CONTENT_TYPES = frozenset({"application/pdf", "application/xml", "text/xml"})
TRACKING_STATUSES = {"shipped": None, "delivered": None, "not_delivered": "returning_to_sender"}
FINAL_SHIPMENT_STATUSES = frozenset({"not_delivered", "cancelled"})
NFE_CONTENT_TYPES = frozenset({"application/xml", "text/xml"})
# Mercado Libre's NF-e import refusals as integrators copy them: code -> (status, message, hint).
NFE_REFUSALS: dict[str, tuple[int, str, str]] = {
    "shipment_invoice_already_saved": (
        400,
        "Já existe uma nota fiscal salva para o envio informado.",
        "Para que a nota fiscal possa ser salva, o envio necessita estar no substatus de invoice_pending.",
    ),
    "duplicated_fiscal_key": (
        400,
        "Já existe uma nota fiscal salva com a chave fiscal informada.",
        "O número de chave fiscal da nota precisa ser único.",
    ),
    "invalid_nfe_cstat": (
        400,
        "A nota fiscal possui um status diferente de autorizada.",
        "Envie uma nota autorizada pela Sefaz.",
    ),
    "invalid_operation_for_site_id": (
        400,
        "Operação inválida para a região informada.",
        "Só é permitida a execução de operações para o site MLB.",
    ),
    "error_parse_invoice_data": (
        400,
        "Erro ao converter dados da nota fiscal para json.",
        "Verifique se a nota fiscal foi informada de forma correta.",
    ),
    "invalid_parameter": (
        400,
        "A nota fiscal informada não contém o número de identificação.",
        "Verifique o número de identificação na nota fiscal informada.",
    ),
    "batch_nfe_not_supported": (
        400,
        "Não é possível informar nota fiscal com formato em lote",
        "Enviar XML de uma nota fiscal individual",
    ),
    "invalid_shipment": (
        400,
        "O shipment se encontra em um status em que a importação da NF-e não é aceita",
        "Verifique o status do shipment antes de enviar a NF-e.",
    ),
    "not_found_shipment_invoice": (404, "Not found shipment invoice", "Nenhuma nota fiscal salva para o envio."),
    "unsupported_media_type": (415, "Unsupported Content-Type", "Envie o XML com application/xml ou text/xml."),
}
_NFE_KEY = re.compile(r"\d{44}")
AUTHORIZED = "100"


@dataclass(frozen=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(raw: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body (the standard library's MIME parser: the sandboxes carry no
    form-parsing dependency)."""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data" or "boundary=" not in content_type:
        raise bad_request("The body must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise bad_request("The multipart body could not be read")
    parts = []
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        name = part.get_param("name", header="content-disposition")
        parts.append(
            Part(
                name=name if isinstance(name, str) else None,
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=data,
            )
        )
    return parts


def fiscal_documents(
    parts: list[Part], *, pack_id: int, site_id: str, logistic_type: str | None, seller_id: int, now: datetime
) -> list[FiscalDocument]:
    """The documents of one upload, checked; MlApiError when Mercado Libre would refuse them."""
    if site_id == "MLB":
        raise bad_request("Fiscal documents upload is not available for Mercado Livre Brasil")
    if site_id == "MLC" and logistic_type == "fulfillment":
        raise bad_request("Fiscal documents upload is not available for Full packs in Chile")
    files = [part for part in parts if part.name == "fiscal_document"]
    if not files:
        raise bad_request("The fiscal_document file is required")
    if len(files) > 2:
        raise bad_request("At most one PDF and its XML can be uploaded")
    documents = []
    for part in files:
        if part.content_type not in FISCAL_CONTENT_TYPES:
            raise bad_request(
                f"Invalid file type {part.content_type}: use application/pdf, application/xml or text/xml"
            )
        if len(part.data) > MAX_FISCAL_DOCUMENT_BYTES:
            raise bad_request("The file exceeds the 1 MB limit")
        if not part.data:
            raise bad_request("The file is empty")
        documents.append(
            FiscalDocument(
                id=f"{seller_id}_{uuid.uuid4()}",
                pack_id=pack_id,
                filename=part.filename or "fiscal_document",
                content_type=part.content_type,
                content=part.data,
                uploaded_at=now,
            )
        )
    if sum(1 for d in documents if d.content_type == "application/pdf") > 1:
        raise bad_request("Only one PDF fiscal document per pack")
    return documents


def apply_tracking(shipment: Shipment, body: Any) -> JSON:
    """Check a seller_notifications body against the shipment and apply it; returns the body as stored."""
    if shipment.mode not in SELLER_SHIPPED_MODES:
        raise bad_request(f"Shipment {shipment.id} is {shipment.mode}: its carrier reports the tracking")
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    status = body.get("status")
    if status not in TRACKING_STATUSES:
        raise bad_request("status must be shipped, delivered or not_delivered")
    substatus = body.get("substatus")
    substatus = None if substatus in (None, "null") else substatus
    if substatus != TRACKING_STATUSES[status]:
        raise bad_request(f"substatus {substatus!r} is not valid for status {status}")
    if shipment.status in FINAL_SHIPMENT_STATUSES:
        raise MlApiError(400, "bad_request", f"Shipment {shipment.id} is {shipment.status}, a final status")
    if shipment.status == "pending":
        raise bad_request(f"Shipment {shipment.id} is pending payment")
    payload = body.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise bad_request("payload must be an object")
    tracking_number = body.get("tracking_number")
    if tracking_number is not None and not isinstance(tracking_number, str):
        raise bad_request("tracking_number must be a string")
    if status == "shipped" and not (tracking_number or shipment.tracking_number):
        raise bad_request("tracking_number is required to mark a shipment shipped")
    tracking_url = body.get("tracking_url")
    if tracking_url is not None and not isinstance(tracking_url, str):
        raise bad_request("tracking_url must be a string")
    shipment.status, shipment.substatus = status, substatus
    if tracking_number:
        shipment.tracking_number = tracking_number
    if tracking_url:
        shipment.tracking_url = tracking_url
    if isinstance(payload, dict) and isinstance(payload.get("service_id"), int):
        shipment.service_id = payload["service_id"]
    return dict(body)


@dataclass(frozen=True)
class NfeDocument:
    """What the sandbox reads of an imported NF-e XML."""

    key: str
    number: str | None
    series: str | None
    issued: str | None
    amount: str | None


def nfe_refusal(code: str, *, in_cause: bool, detail: str | None = None) -> MlApiError:
    """Mercado Libre's refusal `code` (NFE_REFUSALS), with the code in `error` or in the causes."""
    status, message, hint = NFE_REFUSALS[code]
    error = MlApiError(status, "bad_request" if in_cause else code, f"{message} ({detail})" if detail else message)
    if in_cause:
        error.payload["cause"] = [{"code": code, "message": hint}]
    return error


def read_nfe(raw: bytes, *, in_cause: bool) -> NfeDocument:
    """The one authorized NF-e an import body holds; its refusal otherwise."""
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError:
        raise nfe_refusal("error_parse_invoice_data", in_cause=in_cause, detail="the body is not XML") from None
    infos = [element for element in root.iter() if _local(element.tag) == "infNFe"]
    if len(infos) > 1:
        raise nfe_refusal("batch_nfe_not_supported", in_cause=in_cause)
    keys = {(element.text or "").strip() for element in root.iter() if _local(element.tag) == "chNFe"}
    keys |= {info.get("Id", "").removeprefix("NFe") for info in infos}
    keys.discard("")
    if len(keys) != 1 or not _NFE_KEY.fullmatch(next(iter(keys))):
        raise nfe_refusal("invalid_parameter", in_cause=in_cause, detail="no single 44-digit access key")
    statuses = [(element.text or "").strip() for element in root.iter() if _local(element.tag) == "cStat"]
    if statuses[-1:] != [AUTHORIZED]:
        raise nfe_refusal("invalid_nfe_cstat", in_cause=in_cause)
    return NfeDocument(
        key=keys.pop(),
        number=_text_of(root, "nNF"),
        series=_text_of(root, "serie"),
        issued=_text_of(root, "dhEmi"),
        amount=_text_of(root, "vNF"),
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text_of(root: ElementTree.Element, name: str) -> str | None:
    found = next((element for element in root.iter() if _local(element.tag) == name), None)
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def nfe_key(site_state_code: str, issued: datetime, seller_id: int, series: int, number: int) -> str:
    """A 44-digit NF-e access key in the official layout (state, AAMM, CNPJ, model 55, series, number,
    emission type, code, check digit)."""
    cnpj = f"{seller_id % 10**14:014d}"
    body = f"{site_state_code}{issued:%y%m}{cnpj}55{series:03d}{number:09d}1{number % 10**8:08d}"
    weights = [2, 3, 4, 5, 6, 7, 8, 9]
    total = sum(int(digit) * weights[i % 8] for i, digit in enumerate(reversed(body)))
    check = 11 - total % 11
    return body + str(0 if check >= 10 else check)


def nfe_xml(key: str, number: int, series: int, amount: str, issued: datetime) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<nfeProc xmlns="http://www.portalfiscal.inf.br/nfe" versao="4.00">'
        f'<NFe><infNFe Id="NFe{key}" versao="4.00"><ide><mod>55</mod><serie>{series}</serie><nNF>{number}</nNF>'
        f"<dhEmi>{issued.astimezone(BRASILIA).isoformat(timespec='seconds')}</dhEmi></ide><total><ICMSTot><vNF>{amount}</vNF></ICMSTot></total>"
        f"</infNFe></NFe><protNFe><infProt><chNFe>{key}</chNFe><cStat>100</cStat></infProt></protNFe></nfeProc>"
    )
