"""What the Mercado Libre sandbox keeps: sites, money and dates as Mercado Libre writes them, its error
bodies, the stored orders, packs, shipments and claims, fault rules and recorded requests.

Sources (see sandboxes.mercadolibre for the full list):
- Sites and currencies: one site per country (MLB Brazil/BRL, MLA Argentina/ARS, MLM Mexico/MXN, ...), as in
  every order example (`"currency_id": "BRL"` with items `MLB...`).
- Dates: the order, pack and shipment examples write local time with milliseconds and an offset
  (`"2022-04-08T17:01:30.000-04:00"`, https://developers.mercadolivre.com.br/gerenciamento-de-vendas and
  https://developers.mercadolibre.com.sv/en_us/manage-packages/packs-management); notifications are UTC
  ("Las notificaciones tienen zona horaria UTC", https://developers.mercadolibre.cl/productos-recibe-notificaciones).
- Money: JSON numbers, not strings, not cents (`"unit_price": 499`, `"declared_value": 15.1`).
- Errors: `{"message", "error", "status", "cause": []}`, with the table of
  https://developers.mercadolivre.com.br/pt_ar/erros (403 forbidden_error, 404 business_logic_error, 401
  unauthorized_request_error, 429 too_many_requests, 500 internal_server_error, 502 bad_gateway, 503
  service_not_available, 504 gateway_timeout); OAuth errors carry `error_description` instead of `message`
  (https://developers.mercadolibre.com.co/en_us/authentication-and-authorization, "Error Invalid Grant").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from sandboxes import faults

JSON = dict[str, Any]

# Mercado Libre's examples write local time at -04:00; the sandbox does the same for every resource date.
ML_OFFSET = timezone(timedelta(hours=-4))
# Brasília's official time (no daylight saving since 2019): the NF-e's dhEmi, and invoice dates without an offset.
BRASILIA = timezone(timedelta(hours=-3))


@dataclass(frozen=True)
class Site:
    id: str
    currency_id: str
    country_id: str
    country_name: str
    # A sample buyer address in the site's country, for shipments and billing data.
    state_id: str
    state_name: str
    city_name: str
    zip_code: str
    street_name: str
    # Currencies without cents (CLP, COP) are written as whole numbers.
    decimals: int = 2


SITES: dict[str, Site] = {
    site.id: site
    for site in (
        Site("MLB", "BRL", "BR", "Brasil", "BR-SP", "São Paulo", "São Paulo", "01310100", "Avenida Paulista"),
        Site("MLA", "ARS", "AR", "Argentina", "AR-C", "Capital Federal", "Buenos Aires", "1430", "Arias"),
        Site("MLM", "MXN", "MX", "Mexico", "MX-DIF", "Distrito Federal", "Ciudad de México", "06700", "Insurgentes"),
        Site("MLC", "CLP", "CL", "Chile", "CL-RM", "RM (Metropolitana)", "Santiago", "8320000", "Alameda", 0),
        Site("MCO", "COP", "CO", "Colombia", "CO-DC", "Bogotá D.C.", "Bogotá", "110111", "Carrera 7", 0),
        Site("MLU", "UYU", "UY", "Uruguay", "UY-MO", "Montevideo", "Montevideo", "11000", "18 de Julio"),
        Site("MPE", "PEN", "PE", "Peru", "PE-LIM", "Lima", "Lima", "15001", "Jirón de la Unión"),
    )
}

# Order statuses (https://developers.mercadolibre.com.ar/devsite/manage-sales-global-selling, "Order status",
# plus partially_refunded and pending_cancel from the sales guides).
ORDER_STATUSES = (
    "confirmed",
    "payment_required",
    "payment_in_process",
    "partially_paid",
    "paid",
    "partially_refunded",
    "pending_cancel",
    "cancelled",
    "invalid",
)
UNPAID_STATUSES = frozenset({"confirmed", "payment_required", "payment_in_process", "partially_paid"})

# How each logistic type the admin API takes is written in a shipment's `logistic {mode, type}`. The ME2 types
# are documented (https://developers.mercadolibre.com.mx/en_us/shipping-colectas-places; shipments guide:
# `"logistic": {"direction": "forward", "mode": "me2", "type": "drop_off"}`); the types of ME1 and custom
# shipping are not: [INFERRED] "default" and "custom".
LOGISTIC_TYPES: dict[str, tuple[str, str]] = {
    "fulfillment": ("me2", "fulfillment"),
    "cross_docking": ("me2", "cross_docking"),
    "drop_off": ("me2", "drop_off"),
    "xd_drop_off": ("me2", "xd_drop_off"),
    "xd_same_day": ("me2", "xd_same_day"),
    "self_service": ("me2", "self_service"),
    "me1": ("me1", "default"),
    "custom": ("custom", "custom"),
}
# In Brazil, the logistics whose label waits (substatus invoice_pending) until the seller imports the sale's NF-e
# ("drop_off (Mercado Envios Drop Off), xd_drop_off (Mercado Envios Places), xd_same_day (Mercado Envios Coleta
# Rápida) e cross_docking (Mercado Envios Coletas)", https://developers.mercadolivre.com.br/importar-nota-fiscal).
NFE_IMPORT_TYPES = frozenset({"drop_off", "xd_drop_off", "xd_same_day", "cross_docking"})
# Modes where the seller ships and reports tracking (POST /shipments/{id}/seller_notifications, ME1 guide).
SELLER_SHIPPED_MODES = frozenset({"me1", "custom"})

CLAIM_TYPES = ("mediations", "return", "fulfillment", "ml_case", "cancel_sale", "cancel_purchase", "change", "service")
CLAIM_STAGES = ("claim", "dispute", "recontact", "none", "stale")

SHIPMENT_STATUSES = ("pending", "handling", "ready_to_ship", "shipped", "delivered", "not_delivered", "cancelled")


# -- dates and money --------------------------------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def ml_date(moment: datetime | None) -> str | None:
    """A resource date as Mercado Libre writes it: local time at -04:00, milliseconds, `-04:00`."""
    if moment is None:
        return None
    return moment.astimezone(ML_OFFSET).isoformat(timespec="milliseconds")


def utc_stamp(moment: datetime) -> str:
    """A notification time: UTC, milliseconds and `Z` (`"2024-01-15T10:30:00.000Z"`)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_decimal(value: object, what: str) -> Decimal:
    """A price from the admin API or the Python API: a decimal string, an int or a Decimal (never a float,
    whose binary value is not the price the caller meant)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f'{what} must be a decimal string like "49.90", an integer or a Decimal')
    try:
        amount = Decimal(str(value)) if isinstance(value, int | str) else value
    except InvalidOperation:
        raise ValueError(f"{what} must be a decimal number, got {value!r}") from None
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a non-negative decimal number, got {value!r}")
    return amount


def quantize(amount: Decimal, site: Site) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-site.decimals), rounding=ROUND_HALF_UP)


def money(amount: Decimal) -> int | float:
    """A JSON number as Mercado Libre writes amounts: `499`, `49.9`, never `"49.90"` (json has no Decimal;
    any amount the sandbox makes has at most two decimals, which a float prints back exactly)."""
    normalized = amount.normalize()
    if normalized == normalized.to_integral_value():
        return int(normalized)
    return float(normalized)


# -- errors -----------------------------------------------------------------------------------------------------

# The documented error table (https://developers.mercadolivre.com.br/pt_ar/erros).
_DOCUMENTED_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad Request"),
    401: ("unauthorized_request_error", "user not authorized"),
    403: ("forbidden_error", "You don't have permission to access the resource"),
    404: ("business_logic_error", "Resource not found"),
    429: ("too_many_requests", "Too Many Requests"),
    500: ("internal_server_error", "Internal Server Error"),
    502: ("bad_gateway", "Bad Gateway"),
    503: ("service_not_available", "Service not available"),
    504: ("gateway_timeout", "Gateway Timeout"),
}


def error_body(status: int, error: str | None = None, message: str | None = None) -> JSON:
    """Mercado Libre's error shape; without `error`/`message`, the documented ones for the status."""
    default_error, default_message = _DOCUMENTED_ERRORS.get(status, _phrase(status))
    return {
        "message": message if message is not None else default_message,
        "error": error if error is not None else default_error,
        "status": status,
        "cause": [],
    }


def oauth_error_body(status: int, error: str, description: str) -> JSON:
    """The OAuth error shape: `error_description` where the resources put `message`."""
    return {"error_description": description, "error": error, "status": status, "cause": []}


def _phrase(status: int) -> tuple[str, str]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.lower().replace(" ", "_").replace("-", "_"), phrase


class MlApiError(Exception):
    """An error answer of the API: HTTP status and Mercado Libre's body."""

    def __init__(self, status: int, error: str | None = None, message: str | None = None) -> None:
        self.status = status
        self.payload = error_body(status, error, message)
        super().__init__(f"{status} {self.payload['error']}: {self.payload['message']}")


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.payload = oauth_error_body(status, error, description)
        super().__init__(f"{status} {error}: {description}")


def not_found(what: str) -> MlApiError:
    # The packs guide documents `404 not_found "Resource not found"` for the resources; the claims error
    # table says business_logic_error. Resources outside claims use the packs guide's.
    return MlApiError(404, "not_found", f"{what} not found")


def bad_request(message: str) -> MlApiError:
    return MlApiError(400, "bad_request", message)


# -- stored resources -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSpec:
    """One line of an order the admin API or the Python API creates."""

    title: str
    unit_price: Decimal
    quantity: int = 1
    seller_sku: str | None = None
    variation_id: int | None = None
    # The listing price before a discount; defaults to unit_price.
    full_unit_price: Decimal | None = None
    # The listing id (`MLB1234567890`); drawn when absent.
    item_id: str | None = None


@dataclass
class Buyer:
    id: int
    nickname: str
    first_name: str
    last_name: str
    email: str
    doc_type: str
    doc_number: str
    phone: str


@dataclass
class OrderLine:
    item_id: str
    title: str
    category_id: str
    seller_sku: str | None
    variation_id: int | None
    quantity: int
    unit_price: Decimal
    full_unit_price: Decimal
    sale_fee: Decimal


@dataclass
class Payment:
    id: int
    status: str  # approved, refunded, ...
    status_detail: str
    transaction_amount: Decimal
    shipping_cost: Decimal
    total_paid_amount: Decimal
    date_created: datetime
    date_approved: datetime | None
    date_last_modified: datetime
    transaction_amount_refunded: Decimal = Decimal(0)
    installments: int = 1
    payment_method_id: str = "master"
    payment_type: str = "credit_card"


@dataclass
class Order:
    id: int
    site_id: str
    status: str
    date_created: datetime
    last_updated: datetime
    lines: list[OrderLine]
    buyer: Buyer
    seller_id: int
    shipping_cost: Decimal  # what the buyer pays for shipping (0: free shipping)
    pack_id: int | None = None
    shipment_id: int | None = None
    date_closed: datetime | None = None
    # When the buyer's payment was first approved: from then on the buyer's data is shown.
    paid_at: datetime | None = None
    payments: list[Payment] = field(default_factory=list)
    cancel_detail: JSON | None = None
    # (visible to search from, last_updated as indexed): /orders/search shows the latest visible entry.
    index: list[tuple[float, datetime]] = field(default_factory=list)

    @property
    def items_total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))


@dataclass
class Pack:
    id: int
    status: str  # filling, filled, released, cancelled
    date_created: datetime
    last_updated: datetime
    buyer_id: int
    order_ids: list[int]
    shipment_id: int | None
    family_pack_id: int | None = None
    status_detail: str | None = None


@dataclass
class Shipment:
    id: int
    site_id: str
    logistic_type: str  # a key of LOGISTIC_TYPES
    status: str
    substatus: str | None
    date_created: datetime
    last_updated: datetime
    order_ids: list[int]
    buyer_id: int
    declared_value: Decimal
    cost: Decimal
    estimated_delivery: datetime
    tracking_number: str | None = None
    tracking_url: str | None = None
    tracking_method: str | None = None
    service_id: int | None = None

    @property
    def mode(self) -> str:
        return LOGISTIC_TYPES[self.logistic_type][0]

    @property
    def type(self) -> str:
        return LOGISTIC_TYPES[self.logistic_type][1]

    @property
    def takes_nfe_import(self) -> bool:
        """A Brazilian shipment whose label waits for the seller's NF-e."""
        return self.site_id == "MLB" and self.logistic_type in NFE_IMPORT_TYPES


@dataclass
class Claim:
    id: int
    order_id: int
    site_id: str
    type: str
    stage: str
    status: str  # opened, closed
    reason_id: str
    buyer_id: int
    seller_id: int
    date_created: datetime
    last_updated: datetime
    related_entities: list[str] = field(default_factory=list)
    resolution: JSON | None = None


@dataclass
class FiscalDocument:
    """A file the seller uploaded to POST /packs/{pack_id}/fiscal_documents."""

    id: str
    pack_id: int
    filename: str
    content_type: str
    content: bytes
    uploaded_at: datetime

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "pack_id": self.pack_id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.content),
            "uploaded_at": self.uploaded_at.isoformat(),
        }


@dataclass
class SellerNotification:
    """A body the seller POSTed to /shipments/{id}/seller_notifications (ME1/custom tracking)."""

    shipment_id: int
    body: JSON
    received_at: datetime

    def to_json(self) -> JSON:
        return {"shipment_id": self.shipment_id, "body": self.body, "received_at": self.received_at.isoformat()}


@dataclass
class Invoice:
    """An NF-e Mercado Libre's Faturador issued (Brazil): one for all the orders of a cart."""

    id: int
    order_ids: list[int]
    number: int
    series: int
    key: str
    amount: Decimal
    issued_at: datetime
    xml: str


@dataclass
class ImportedNfe:
    """The NF-e Mercado Libre holds for a Brazilian shipment (`/shipments/{id}/invoice_data`): one the seller
    imported, or the Faturador's when the seller had it issue one. Number, series, date and amount are the
    XML's (`ide/nNF`, `ide/serie`, `ide/dhEmi`, `total/ICMSTot/vNF`), None when it lacks them."""

    id: int
    shipment_id: int
    key: str
    xml: bytes
    content_type: str
    imported_at: datetime
    number: str | None = None
    series: str | None = None
    issued: str | None = None
    amount: str | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "shipment_id": self.shipment_id,
            "key": self.key,
            "content_type": self.content_type,
            "size": len(self.xml),
            "imported_at": self.imported_at.isoformat(),
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; the bearer token masked
    body: Any  # parsed JSON, the form fields, or a note for multipart; None when absent
    status: int  # 0 while being handled
    received_at: float  # event-loop clock

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class FaultRule(faults.FaultRule):
    """An injected failure (sandboxes/faults.py). The body is Mercado Libre's error for the status unless
    `body` replaces it. No Retry-After unless `retry_after` is set: Mercado Libre documents no such header
    on its 429 (https://developers.mercadolivre.com.br/pt_br/rate-limit-erro-429 recommends exponential
    backoff with jitter instead)."""

    body: JSON | None = None


_FAULT_TYPES = {**faults.FIELD_TYPES, "body": (dict, type(None))}


def fault_rule_from_json(data: object) -> FaultRule:
    """A FaultRule from the admin API's JSON; ValueError says what is wrong."""
    return faults.rule_from_json(FaultRule, data, types=_FAULT_TYPES, required=("path_contains", "status"))
