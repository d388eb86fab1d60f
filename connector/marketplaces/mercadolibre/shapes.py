"""The JSON Mercado Libre answers, as far as the adapter reads it. Everything else is ignored, so a field
Mercado Libre adds later changes nothing; a field the adapter needs that is missing or of the wrong type
makes the read fail with the field named (never its value: buyers' data must not reach logs).

Sources, one per shape (field names as in each page's example):
- Order, `GET /orders/{id}`: https://developers.mercadolivre.com.br/gerenciamento-de-vendas and
  https://developers.mercadolibre.com.co/en_us/manage-project-apps/manage-sales (`id`, `status`,
  `date_created`, `last_updated`, `pack_id`, `order_items[] {item {id, title, seller_sku, variation_id},
  quantity, unit_price, currency_id}`, `currency_id`, `buyer {id, nickname, first_name, last_name, email}`,
  `shipping {id}`, `tags`). Ids are JSON numbers; some examples write them as strings: both are taken.
- Search, `GET /orders/search`: `{results: [order...], paging {total, offset, limit}}` (same pages,
  "Search orders").
- Pack, `GET /packs/{id}`: `{id, status, status_detail, family_pack_id, shipment {id}, orders [{id}]}`
  (https://developers.mercadolibre.com.sv/en_us/manage-packages/packs-management). Its dates are written
  `2022-04-08T17:00:48.000-0400` (no colon in the offset) where orders write `-04:00`: both are read.
- Shipment, `GET /shipments/{id}` with `x-format-new: true`: `{id, status, substatus, logistic {mode, type},
  tracking_number, destination {receiver_name, receiver_phone, shipping_address {address_id, street_name,
  street_number, zip_code, comment, city {name}, state {id, name}, country {id}, neighborhood {name}}},
  lead_time {cost, currency_id, shipping_method {name}}}` (https://developers.mercadolibre.com.gt/es_ar/envios).
- Shipment items, `GET /shipments/{id}/items`: `[{item_id, quantity, order_id}]` (ME1 guide,
  https://developers.mercadolibre.com.co/en_us/manage-project-apps/me1-order-states).
- Claim, `GET /post-purchase/v1/claims/{id}`: `{id, type, stage, status, resource, resource_id, reason_id,
  related_entities, resolution {reason}}` (https://developers.mercadolibre.com.ar/es_ar/api-docs-es/trabajar-con-reclamos).
- Billing data, `GET /orders/{id}/billing_info` with `x-version: 2`: `{buyer {billing_info {name, last_name,
  identification {type, number}}}}` (https://developers.mercadolivre.com.br/pt_br/tendencias/faturamento:
  "Para obter a resposta com a nova versão, envie o header 'x-version: 2'", for MLA, MLB, MLM, MLC, MCO, MEC).
- NF-e of the Faturador (Brazil), `GET /users/{user_id}/invoices/orders/{order_id}`: the guide says an invoice
  is read "por invoice_id, por order_id ou por shipment_id" and that once its status is AUTHORIZED "o XML
  será disponibilizado no campo xml_location" (https://developers.mercadolivre.com.br/obtendo-nota-fiscal); it
  shows no response example the adapter could read. The fields are [secondary], as integrators' code and test
  fixtures of real answers read them: `{id, status ("authorized"), transaction_status, invoice_number (a
  number), invoice_series (a string), amount, issued_date (Brasília time without an offset), attributes
  {invoice_key, authorization_date, xml_location, danfe_location}, fiscal_data {transaction_type}}`; some
  integrators also take `xml_location` and `invoice_key` at the top level and a list of documents, so both
  are read here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


def _id(value: object) -> str:
    """An id as Mercado Libre writes it (a JSON number, sometimes a string of digits), as a string."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        return value
    raise ValueError("must be a number")


def _moment(value: object) -> object:
    """ISO 8601 with an offset, in either form Mercado Libre writes (`-04:00`, `-0400`, `Z`)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date") from None
        if moment.tzinfo is None:
            raise ValueError("must carry an offset")
        return moment
    return value


def _money(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, float):
        # parse_json reads fractions as Decimal; a float here would already have lost the exact amount.
        raise ValueError("must be a decimal number")
    if isinstance(value, Decimal | int) and (not Decimal(value).is_finite() or value < 0):
        raise ValueError("must be a non-negative amount")
    return value


MlId = Annotated[str, BeforeValidator(_id)]
Moment = Annotated[datetime, BeforeValidator(_moment)]
Money = Annotated[Decimal, BeforeValidator(_money)]


class Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Named(Shape):
    id: str | None = None
    name: str | None = None


class Item(Shape):
    id: str | None = None
    title: str | None = None
    seller_sku: str | None = None
    variation_id: int | None = None


class OrderItem(Shape):
    item: Item
    quantity: int = Field(gt=0)
    unit_price: Money
    currency_id: str | None = None


class Buyer(Shape):
    id: MlId | None = None
    nickname: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class Reference(Shape):
    id: MlId | None = None


class Order(Shape):
    id: MlId
    status: str
    date_created: Moment | None = None
    last_updated: Moment | None = None
    pack_id: MlId | None = None
    order_items: list[OrderItem]
    currency_id: str | None = None
    buyer: Buyer = Buyer()
    shipping: Reference | None = None
    tags: list[str] = []

    @property
    def shipment_id(self) -> str | None:
        return self.shipping.id if self.shipping is not None else None


class ListedOrder(Shape):
    id: MlId
    # An offset is required: the listing is walked by comparing these instants.
    last_updated: Moment
    date_created: Moment


class Paging(Shape):
    total: int = Field(ge=0)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1)


class SearchPage(Shape):
    results: list[ListedOrder]
    paging: Paging


class Pack(Shape):
    id: MlId
    status: str
    status_detail: str | None = None
    family_pack_id: MlId | None = None
    shipment: Reference | None = None
    orders: list[Reference]

    @property
    def order_ids(self) -> list[str]:
        return [order.id for order in self.orders if order.id is not None]


class Logistic(Shape):
    mode: str | None = None
    type: str | None = None


class Address(Shape):
    address_id: MlId | None = None
    street_name: str | None = None
    street_number: str | None = None
    zip_code: str | None = None
    comment: str | None = None
    city: Named | None = None
    state: Named | None = None
    country: Named | None = None
    neighborhood: Named | None = None


class Destination(Shape):
    receiver_name: str | None = None
    receiver_phone: str | None = None
    shipping_address: Address | None = None


class ShippingMethod(Shape):
    name: str | None = None


class LeadTime(Shape):
    cost: Money | None = None
    currency_id: str | None = None
    shipping_method: ShippingMethod | None = None


class Shipment(Shape):
    id: MlId
    status: str | None = None
    substatus: str | None = None
    logistic: Logistic = Logistic()
    tracking_number: str | None = None
    destination: Destination | None = None
    lead_time: LeadTime | None = None


class ShipmentItem(Shape):
    order_id: MlId | None = None


class Resolution(Shape):
    reason: str | None = None


class Claim(Shape):
    id: MlId
    type: str
    stage: str | None = None
    status: str | None = None
    resource: str | None = None
    resource_id: MlId | None = None
    reason_id: str | None = None
    related_entities: list[str] = []
    resolution: Resolution | None = None


class Identification(Shape):
    type: str | None = None
    number: str | None = None


class BillingInfo(Shape):
    name: str | None = None
    last_name: str | None = None
    identification: Identification | None = None


class BillingBuyer(Shape):
    billing_info: BillingInfo | None = None


class Billing(Shape):
    buyer: BillingBuyer | None = None

    @property
    def info(self) -> BillingInfo:
        return (self.buyer.billing_info if self.buyer is not None else None) or BillingInfo()


def _text(value: object) -> object:
    """A code Mercado Libre writes as a number or a string (`"invoice_series": "12"` or `12`), as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Code = Annotated[str, BeforeValidator(_text)]


class InvoiceAttributes(Shape):
    invoice_key: str | None = None
    authorization_date: str | None = None
    xml_location: str | None = None
    danfe_location: str | None = None


class FiscalData(Shape):
    transaction_type: str | None = None


class NfeInvoice(Shape):
    """An invoice of Mercado Libre's Faturador (see the module's sources)."""

    id: MlId
    status: str | None = None
    transaction_status: str | None = None
    invoice_number: MlId | None = None
    invoice_series: Code | None = None
    amount: Money | None = None
    issued_date: str | None = None
    attributes: InvoiceAttributes = InvoiceAttributes()
    fiscal_data: FiscalData | None = None
    # The same two, at the top level, as some integrators read them.
    invoice_key: str | None = None
    xml_location: str | None = None

    @property
    def key(self) -> str | None:
        return self.attributes.invoice_key or self.invoice_key

    @property
    def location(self) -> str | None:
        return self.attributes.xml_location or self.xml_location


def unreadable(exc: ValidationError) -> str:
    """Why a body cannot be read, naming the fields and never their values (a buyer's data)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in errors[:3])


S = TypeVar("S", bound=Shape)


def read(shape: type[S], data: Any) -> S:
    """`data` as `shape`; ValueError with the fields that do not fit."""
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        raise ValueError(unreadable(exc)) from None
