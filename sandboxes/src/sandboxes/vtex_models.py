"""Data the VTEX sandbox keeps and exposes: recorded requests, placed orders, fault rules, errors."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandboxes import faults

JSON = dict[str, Any]

# The sandbox account is its own (and only) seller, as in a plain VTEX seller account.
SELLER_ID = "1"
ACCOUNT_NAME = "sandbox"
DEFAULT_SALES_CHANNEL = 1


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def new_receipt() -> str:
    # OMS receipts are dash-less GUIDs (`38e0e47da2934847b489216d208cfd91` in the specs).
    return uuid.uuid4().hex


def receipt_body(order_id: str, receipt: str, date: str) -> JSON:
    """The `{date, orderId, receipt}` answer of OMS cancel and invoice calls."""
    return {"date": date, "orderId": order_id, "receipt": receipt}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; the app token value masked
    body: Any  # parsed JSON, or None when absent or not JSON
    status: int  # 0 only while the request is still being handled
    # When it arrived (event-loop clock, seconds): lets tests check that retries waited long enough.
    received_at: float = 0.0

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class SandboxInvoice:
    """An invoice the seller sent (Orders API `InvoiceNotification`), with cents as integers."""

    type: str  # "Output" (a sale) or "Input" (a return)
    invoice_number: str
    invoice_value: int
    issuance_date: str
    items: list[JSON]  # [{"id", "quantity", "price", "description"}]
    invoice_url: str | None = None
    invoice_key: str | None = None
    embedded_invoice: str | None = None
    courier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    dispatched_date: str | None = None
    receipt: str = ""  # the latest; sending the same invoice number again replaces it


@dataclass
class SandboxCancellation:
    """A Cancel order request OMS accepted; the marketplace still has to agree (see vtex_cancel)."""

    reason: str | None
    requested_by_user: bool
    date: str  # when OMS accepted it, ISO 8601: the cancel answer's `date`
    receipt: str
    # The marketplace notification: "pending" (on its way), "delivered" (2xx) or "failed" (gave up).
    callback: str = "pending"


@dataclass
class SandboxOrder:
    order_id: str  # OMS id, `{affiliateId}-{marketplaceOrderId}-{NN}` (NN: the sandbox's seller suffix)
    marketplace_order_id: str
    affiliate_id: str
    sales_channel: int
    status: str
    body: JSON  # the place-order request body, as received (array form unwrapped)
    creation_date: datetime
    is_created_async: bool
    sequence: str = ""
    last_change: datetime = field(default_factory=now_utc)
    authorized_date: datetime | None = None
    invoiced_date: datetime | None = None
    invoices: list[SandboxInvoice] = field(default_factory=list)
    cancellation: SandboxCancellation | None = None
    # On the sandbox clock (seconds): when OMS Get order starts to find the order, and when List orders
    # has indexed it. 0: from the start.
    oms_visible_at: float = 0.0
    list_indexed_at: float = 0.0

    def invoice(self, invoice_number: str) -> SandboxInvoice | None:
        return next((i for i in self.invoices if i.invoice_number == invoice_number), None)

    def invoice_total(self, kind: str) -> int:
        """Cents invoiced as `kind`: "Output" for sales, "Input" for returns."""
        return sum(invoice.invoice_value for invoice in self.invoices if invoice.type == kind)

    def to_json(self) -> JSON:
        data = asdict(self)
        for key in ("creation_date", "last_change", "authorized_date", "invoiced_date"):
            value = data[key]
            data[key] = iso(value) if isinstance(value, datetime) else None
        return data


@dataclass
class FaultRule(faults.FaultRule):
    """An injected failure (sandboxes/faults.py) answered with VTEX's error body: `code` and `message`."""

    code: str | None = None
    message: str = "Sandbox injected fault"


_FAULT_TYPES = {**faults.FIELD_TYPES, "code": (str, type(None)), "message": (str,)}


def fault_rule_from_json(data: object) -> FaultRule:
    """Build a FaultRule from the admin API's JSON; ValueError says what is wrong."""
    return faults.rule_from_json(FaultRule, data, types=_FAULT_TYPES, required=("method", "path_contains", "status"))


class VtexApiError(Exception):
    """A VTEX error answer: HTTP status plus VTEX's `{"error": {...}}` body."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> JSON:
        return error_body(self.code, self.message)


def error_body(code: str | None, message: str) -> JSON:
    # The shape Checkout/Fulfillment use for errors (exception is always null to callers).
    return {"error": {"code": code, "message": message, "exception": None}}


def parse_sales_channel(value: str | None) -> int:
    """`sc` is an integer trade policy; absent, VTEX uses the default one."""
    if value is None or value == "":
        return DEFAULT_SALES_CHANNEL
    if not value.isdigit():
        raise VtexApiError(400, "FMT0036", "Invalid sales channel")
    return int(value)


def bad_request(message: str, code: str | None = "CHK00308") -> VtexApiError:
    # CHK00308 is the Checkout table's generic "Bad Request"; specific codes are used where one exists.
    return VtexApiError(400, code, message)
