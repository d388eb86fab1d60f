"""The JSON the Mercado Libre sandbox answers: orders, order search pages, packs, shipments (new and old
format), shipment items, claims, billing data and Faturador invoices.

Sources, one per shape (field names as in each page's example):
- Order: https://developers.mercadolivre.com.br/gerenciamento-de-vendas and
  https://developers.mercadolibre.com.co/en_us/manage-project-apps/manage-sales (`id`, `status`,
  `status_detail`, `date_created`, `date_closed`, `last_updated`, `pack_id`, `pickup_id`, `order_items[]
  {item {id, title, category_id, variation_id, seller_sku, variation_attributes}, quantity, unit_price,
  full_unit_price, currency_id, sale_fee, listing_type_id}`, `total_amount`, `paid_amount`, `currency_id`,
  `buyer`, `seller`, `payments[]`, `shipping {id}`, `tags`, `context {channel, site, flows}`); payments as
  in the order examples and Mercado Pago's merchant order (`transaction_amount`, `total_paid_amount`,
  `shipping_cost`, `taxes_amount`, `coupon_amount`, `transaction_amount_refunded`, `status`,
  `status_detail`, `installments`, `date_approved`...).
- Buyer data before payment: "payment_required: Order payment should be confirmed to display user
  information" (https://developers.mercadolibre.com.ar/devsite/manage-sales-global-selling) and "the buyer's
  address in destination is hidden until payment is confirmed" (https://developers.mercadolibre.com.gt/es_ar/envios).
  So until the first approved payment the order's buyer is `{id, nickname}`, the shipment's receiver and
  address fields are null and billing_info is empty [INFERRED: null/empty rather than absent]. After it,
  the buyer has first_name, last_name and a relay email ("...@mail.mercadolivre.com" in the docs' example).
- Search: `{query, results, sort {id, name}, available_sorts, filters, available_filters, paging {total,
  offset, limit}, display}` with `results` holding whole orders (sales guide, "Search orders").
- Pack: `{id, status, status_detail, date_created, last_updated, family_pack_id, buyer {id}, shipment {id},
  orders [{id}]}` (https://developers.mercadolibre.com.sv/en_us/manage-packages/packs-management and
  https://global-selling.mercadolibre.com/devsite/category-predictor/packs).
- Shipment, `x-format-new: true`: `{id, external_reference, status, substatus, date_created, last_updated,
  declared_value, currency_id, dimensions, logistic {direction, mode, type}, source {site_id, market_place,
  application_id}, tracking_number, tracking_method, origin {type, sender_id, shipping_address}, destination
  {type, receiver_id, receiver_name, receiver_phone, shipping_address}, lead_time {...}, tags}`
  (https://developers.mercadolibre.com.gt/es_ar/envios, https://developers.mercadolivre.com.br/en_us/introduction-services/shipment-handling;
  "receiver_address is equivalent to destination.shipping_address"; receiver_phone only for custom mode).
- Shipment without the header: the legacy shape the ME1 guide shows (`{id, mode, created_by, order_id,
  order_cost, base_cost, site_id, status, substatus, ...}`, https://developers.mercadolibre.com.co/en_us/manage-project-apps/me1-order-states)
  with `logistic_type`, `receiver_address` and `shipping_option` [INFERRED: the rest of the legacy fields].
- Shipment items: `GET /shipments/{id}/items` ("Items associated with a shipment", same guide)
  [INFERRED fields: item_id, description, quantity, variation_id, order_id].
- Claim: https://developers.mercadolibre.com.ar/es_ar/api-docs-es/trabajar-con-reclamos and
  https://developers.mercadolivre.com.br/pt_br/gerenciar-reclamacoes (`id, resource_id, status, type, stage,
  parent_id, resource, reason_id, fulfilled, quantity_type, players[{role, type, user_id,
  available_actions}], resolution, related_entities, site_id, date_created, last_updated`).
- Billing info: `GET /orders/{id}/billing_info`, `x-version: 2` shape and the older `additional_info`
  list without it (https://developers.mercadolibre.com.bo/en_us/introduction-services/billing-data).
- Faturador invoice (Brazil): the service issues it (`POST /users/{user_id}/invoices/orders`,
  https://developers.mercadolivre.com.br/pt_br/api-fiscal-faturamento-de-venda); it is read "por invoice_id,
  por order_id ou por shipment_id", and once its status is AUTHORIZED "o XML será disponibilizado no campo
  xml_location" (https://developers.mercadolivre.com.br/obtendo-nota-fiscal), which shows no response the
  sandbox could read. So `GET /users/{user_id}/invoices/{id}`, `.../invoices/orders/{order_id}` and
  `.../invoices/shipments/{shipment_id}` answer the shape integrators read from real answers [secondary]:
  `{id, status: "authorized", transaction_status, invoice_number (a number), invoice_series (a string),
  amount, issued_date and attributes.authorization_date (Brasília time, no offset), attributes {invoice_key,
  authorization_date, xml_location, danfe_location}, fiscal_data {transaction_type: "sale"}}`, with the XML
  at `attributes.xml_location` = `/users/{user_id}/invoices/documents/xml/{id}/authorized` [secondary] and
  the DANFE's path at `/users/{user_id}/invoices/sites/MLB/documents/danfe/{id}` [secondary; not served].
  `orders` (the cart's orders) is [INFERRED]. An invoice not issued yet is a 404 in the error shape.
- A shipment's NF-e, `GET /shipments/{id}/invoice_data?siteId=MLB` (Brazil; see mercadolibre_seller for the
  import): no answer is documented. Integrators' code shows `{"id": 429348053945853, "status": "approved"}`
  [secondary], one of them comparing the access key in `fiscal_key` beside `invoice_number`,
  `invoice_serie`, `invoice_date`, `invoice_amount` [secondary], another reading `invoice_id`,
  `invoice_key`, `cfop`, `invoice_type` [secondary]. The sandbox answers one of the two per sandbox
  (`invoice_data_key_field`): `{id, status, fiscal_key, invoice_number, invoice_serie, invoice_date,
  invoice_amount}` or `{invoice_id, status, invoice_key, invoice_number, invoice_series, invoice_date,
  invoice_amount, invoice_type}`, its values read from the XML [INFERRED: which fields go together, the
  amount a JSON number, the number and series strings as the XML writes them].
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sandboxes.mercadolibre_models import (
    BRASILIA,
    JSON,
    SITES,
    Claim,
    ImportedNfe,
    Invoice,
    Order,
    Pack,
    Payment,
    Shipment,
    ml_date,
    money,
)

SORTS = {"date_asc": "Date ascending", "date_desc": "Date descending"}


def order_json(order: Order, *, cart: bool = False, reveal: bool = False) -> JSON:
    """An order as GET /orders/{id} answers it; `cart`: its pack holds other orders too (tag pack_order).
    `reveal` shows the buyer's data even before payment (admin views only)."""
    site = SITES[order.site_id]
    paid_amount = sum(
        (p.total_paid_amount - p.transaction_amount_refunded for p in order.payments if p.status == "approved"),
        Decimal(0),
    )
    shown = reveal or order.paid_at is not None
    buyer: JSON = {"id": order.buyer.id, "nickname": order.buyer.nickname}
    if shown:
        buyer.update(first_name=order.buyer.first_name, last_name=order.buyer.last_name, email=order.buyer.email)
    tags = ["paid" if order.paid_at is not None else "not_paid"]
    if cart:
        tags.append("pack_order")
    if order.status == "cancelled":
        tags.append("not_delivered")
    return {
        "id": order.id,
        "status": order.status,
        "status_detail": None,
        "date_created": ml_date(order.date_created),
        "date_closed": ml_date(order.date_closed),
        "last_updated": ml_date(order.last_updated),
        "expiration_date": ml_date(order.date_created + timedelta(days=28)),
        "manufacturing_ending_date": None,
        "comment": None,
        "pack_id": order.pack_id,
        "pickup_id": None,
        "fulfilled": None,
        "order_request": {"return": None, "change": None},
        "order_items": [
            {
                "item": {
                    "id": line.item_id,
                    "title": line.title,
                    "category_id": line.category_id,
                    "variation_id": line.variation_id,
                    "seller_custom_field": None,
                    "seller_sku": line.seller_sku,
                    "variation_attributes": [],
                    "warranty": None,
                    "condition": "new",
                },
                "quantity": line.quantity,
                "requested_quantity": {"measure": "unit", "value": line.quantity},
                "unit_price": money(line.unit_price),
                "full_unit_price": money(line.full_unit_price),
                "currency_id": site.currency_id,
                "manufacturing_days": None,
                "sale_fee": money(line.sale_fee),
                "listing_type_id": "gold_special",
            }
            for line in order.lines
        ],
        "total_amount": money(order.items_total),
        "paid_amount": money(paid_amount),
        "currency_id": site.currency_id,
        "coupon": {"id": None, "amount": 0},
        "buyer": buyer,
        "seller": {"id": order.seller_id},
        "payments": [_payment_json(order, payment) for payment in order.payments],
        "shipping": {"id": order.shipment_id},
        "shipping_cost": None,
        "taxes": {"amount": None, "currency_id": None, "id": None},
        "cancel_detail": order.cancel_detail,
        "mediations": [],
        "feedback": {"buyer": None, "seller": None},
        "tags": tags,
        "internal_tags": [],
        "static_tags": [],
        "context": {"channel": "marketplace", "site": order.site_id, "flows": []},
    }


def _payment_json(order: Order, payment: Payment) -> JSON:
    currency = SITES[order.site_id].currency_id
    return {
        "id": payment.id,
        "order_id": order.id,
        "payer_id": order.buyer.id,
        "collector": {"id": order.seller_id},
        "site_id": order.site_id,
        "currency_id": currency,
        "status": payment.status,
        "status_detail": payment.status_detail,
        "status_code": None,
        "operation_type": "regular_payment",
        "payment_method_id": payment.payment_method_id,
        "payment_type": payment.payment_type,
        "installments": payment.installments,
        "installment_amount": money(payment.total_paid_amount / payment.installments),
        "transaction_amount": money(payment.transaction_amount),
        "transaction_amount_refunded": money(payment.transaction_amount_refunded),
        "taxes_amount": 0,
        "shipping_cost": money(payment.shipping_cost),
        "coupon_amount": 0,
        "overpaid_amount": 0,
        "total_paid_amount": money(payment.total_paid_amount),
        "marketplace_fee": money(sum((line.sale_fee * line.quantity for line in order.lines), Decimal(0))),
        "date_created": ml_date(payment.date_created),
        "date_approved": ml_date(payment.date_approved),
        "date_last_modified": ml_date(payment.date_last_modified),
        "reason": order.lines[0].title if order.lines else None,
    }


def search_json(results: list[JSON], *, total: int, offset: int, limit: int, sort: str, seller_id: int) -> JSON:
    return {
        "query": None,
        "display": "complete",
        "results": results,
        "sort": {"id": sort, "name": SORTS[sort]},
        "available_sorts": [{"id": key, "name": name} for key, name in SORTS.items() if key != sort],
        "filters": [{"id": "seller", "name": "Seller", "type": "text", "values": [{"id": str(seller_id)}]}],
        "available_filters": [
            {
                "id": "order.status",
                "name": "Order Status",
                "type": "text",
                "values": [{"id": status} for status in ("paid", "confirmed", "payment_required", "cancelled")],
            }
        ],
        "paging": {"total": total, "offset": offset, "limit": limit},
    }


def pack_json(pack: Pack) -> JSON:
    return {
        "id": pack.id,
        "status": pack.status,
        "status_detail": pack.status_detail,
        "date_created": ml_date(pack.date_created),
        "last_updated": ml_date(pack.last_updated),
        "family_pack_id": pack.family_pack_id,
        "buyer": {"id": pack.buyer_id},
        "shipment": {"id": pack.shipment_id} if pack.shipment_id is not None else None,
        "orders": [{"id": order_id} for order_id in pack.order_ids],
    }


def _address(order: Order, shown: bool) -> JSON:
    site = SITES[order.site_id]
    number = str(100 + order.buyer.id % 900)

    def show(value: Any) -> Any:
        return value if shown else None

    return {
        "address_id": show(order.buyer.id * 10 + 1),
        "address_line": show(f"{site.street_name} {number}"),
        "street_name": show(site.street_name),
        "street_number": show(number),
        "comment": show("Apto 12"),
        "zip_code": show(site.zip_code),
        "city": {"id": None, "name": show(site.city_name)},
        "state": {"id": site.state_id, "name": site.state_name},
        "country": {"id": site.country_id, "name": site.country_name},
        "neighborhood": {"id": None, "name": show("Centro")},
        "municipality": {"id": None, "name": None},
        "agency": None,
        "types": ["default_buying_address"],
        "latitude": show(-23.5613),
        "longitude": show(-46.6565),
        "geolocation_type": "ROOFTOP",
        "delivery_preference": "residential",
    }


def shipment_json(shipment: Shipment, orders: Mapping[int, Order], *, seller_id: int) -> JSON:
    """GET /shipments/{id} with `x-format-new: true`."""
    site = SITES[shipment.site_id]
    first = orders[shipment.order_ids[0]]
    shown = first.paid_at is not None
    fulfillment = shipment.logistic_type == "fulfillment"
    return {
        "id": shipment.id,
        "external_reference": None,
        "status": shipment.status,
        "substatus": shipment.substatus,
        "date_created": ml_date(shipment.date_created),
        "last_updated": ml_date(shipment.last_updated),
        "declared_value": money(shipment.declared_value),
        "currency_id": site.currency_id,
        "dimensions": {"height": 10, "width": 20, "length": 30, "weight": 800},
        "logistic": {"direction": "forward", "mode": shipment.mode, "type": shipment.type},
        "source": {"site_id": shipment.site_id, "market_place": "MELI", "application_id": None},
        "tracking_number": shipment.tracking_number,
        "tracking_method": shipment.tracking_method,
        "origin": {
            "type": "fulfillment_center" if fulfillment else "selling_address",
            "sender_id": seller_id,
            "shipping_address": {
                "node": {"logistic_center_id": f"{site.country_id}SP01" if fulfillment else None, "node_id": None},
                "address_id": seller_id * 10,
                "address_line": "Rua do Vendedor 500",
                "street_name": "Rua do Vendedor",
                "street_number": "500",
                "zip_code": site.zip_code,
                "city": {"id": None, "name": site.city_name},
                "state": {"id": site.state_id, "name": site.state_name},
                "country": {"id": site.country_id, "name": site.country_name},
            },
        },
        "destination": {
            "type": "buying_address",
            "receiver_id": first.buyer.id,
            "receiver_name": f"{first.buyer.first_name} {first.buyer.last_name}" if shown else None,
            # Only custom shipping shows the phone (shipments guide).
            "receiver_phone": first.buyer.phone if shown and shipment.mode == "custom" else None,
            "comments": None,
            "shipping_address": _address(first, shown),
        },
        "lead_time": {
            "option_id": shipment.id % 10**9,
            "shipping_method": {"id": 515282, "name": "Normal", "type": "standard", "deliver_to": "address"},
            "currency_id": site.currency_id,
            "cost": money(shipment.cost),
            "list_cost": money(shipment.cost),
            "cost_type": "free" if shipment.cost == 0 else "charged",
            "service_id": shipment.service_id,
            "delivery_type": "estimated",
            "estimated_delivery_time": {
                "type": "known_frame",
                "date": ml_date(shipment.estimated_delivery),
                "unit": "hour",
                "shipping": 48,
                "handling": 24,
            },
            "estimated_delivery_limit": {"date": ml_date(shipment.estimated_delivery + timedelta(days=3))},
            "buffering": {"date": None},
        },
        "tags": [],
    }


def shipment_legacy_json(shipment: Shipment, orders: Mapping[int, Order], *, seller_id: int) -> JSON:
    """GET /shipments/{id} without `x-format-new`: the older shape (also GET /orders/{id}/shipments)."""
    site = SITES[shipment.site_id]
    first = orders[shipment.order_ids[0]]
    shown = first.paid_at is not None
    address = _address(first, shown)
    address.update(
        receiver_name=f"{first.buyer.first_name} {first.buyer.last_name}" if shown else None,
        receiver_phone=first.buyer.phone if shown else None,
        id=address.pop("address_id"),
    )
    return {
        "id": shipment.id,
        "mode": shipment.mode,
        "logistic_type": shipment.type,
        "created_by": "receiver",
        "order_id": shipment.order_ids[0],
        "order_cost": money(sum((orders[i].items_total for i in shipment.order_ids), Decimal(0))),
        "base_cost": money(shipment.cost),
        "site_id": shipment.site_id,
        "status": shipment.status,
        "substatus": shipment.substatus,
        "date_created": ml_date(shipment.date_created),
        "last_updated": ml_date(shipment.last_updated),
        "tracking_number": shipment.tracking_number,
        "tracking_method": shipment.tracking_method,
        "service_id": shipment.service_id,
        "sender_id": seller_id,
        "receiver_id": first.buyer.id,
        "receiver_address": address,
        "shipping_option": {
            "id": shipment.id % 10**9,
            "shipping_method_id": 515282,
            "name": "Normal",
            "currency_id": site.currency_id,
            "list_cost": money(shipment.cost),
            "cost": money(shipment.cost),
            "estimated_delivery_time": {"date": ml_date(shipment.estimated_delivery)},
        },
    }


def shipment_items_json(shipment: Shipment, orders: Mapping[int, Order]) -> list[JSON]:
    return [
        {
            "item_id": line.item_id,
            "description": line.title,
            "quantity": line.quantity,
            "variation_id": line.variation_id,
            "order_id": order_id,
            "dimensions_source": None,
        }
        for order_id in shipment.order_ids
        for line in orders[order_id].lines
    ]


def claim_json(claim: Claim) -> JSON:
    due = ml_date(claim.date_created + timedelta(days=3))
    seller_actions = (
        [{"action": "send_message_to_complainant", "due_date": due, "mandatory": True}]
        if claim.status == "opened"
        else []
    )
    players: list[JSON] = [
        {"role": "complainant", "type": "buyer", "user_id": claim.buyer_id, "available_actions": []},
        {"role": "respondent", "type": "seller", "user_id": claim.seller_id, "available_actions": seller_actions},
    ]
    if claim.stage == "dispute":
        players.append({"role": "mediator", "type": "internal", "user_id": 1, "available_actions": []})
    return {
        "id": claim.id,
        "resource_id": claim.order_id,
        "status": claim.status,
        "type": claim.type,
        "stage": claim.stage,
        "parent_id": None,
        "resource": "order",
        "reason_id": claim.reason_id,
        "fulfilled": True,
        "quantity_type": "total",
        "claimed_quantity": 1,
        "players": players,
        "resolution": claim.resolution,
        "related_entities": list(claim.related_entities),
        "site_id": claim.site_id,
        "claim_version": 1,
        "date_created": ml_date(claim.date_created),
        "last_updated": ml_date(claim.last_updated),
    }


def billing_info_json(order: Order, *, version: str | None) -> JSON:
    """GET /orders/{id}/billing_info: the `x-version: 2` shape, or the older list without the header."""
    site = SITES[order.site_id]
    shown = order.paid_at is not None
    buyer = order.buyer
    if version == "2":
        billing: JSON = {}
        if shown:
            billing = {
                "name": buyer.first_name,
                "last_name": buyer.last_name,
                "identification": {"type": buyer.doc_type, "number": buyer.doc_number},
                "taxes": {"taxpayer_type": {"id": "01", "description": "Consumidor Final"}},
                "address": {
                    "street_name": site.street_name,
                    "street_number": str(100 + buyer.id % 900),
                    "city_name": site.city_name,
                    "state": {"code": site.state_id, "name": site.state_name},
                    "zip_code": site.zip_code,
                    "country_id": site.country_id,
                },
                "attributes": {"is_normalized": True, "cust_type": "CO"},
            }
        return {
            "site_id": order.site_id,
            "buyer": {"cust_id": buyer.id, "billing_info": billing},
            "seller": {"cust_id": order.seller_id},
        }
    if not shown:
        return {"billing_info": {}}
    return {
        "billing_info": {
            "doc_type": buyer.doc_type,
            "doc_number": buyer.doc_number,
            "additional_info": [
                {"type": "FIRST_NAME", "value": buyer.first_name},
                {"type": "LAST_NAME", "value": buyer.last_name},
                {"type": "DOC_TYPE", "value": buyer.doc_type},
                {"type": "DOC_NUMBER", "value": buyer.doc_number},
                {"type": "SITE_ID", "value": order.site_id},
                {"type": "ZIP_CODE", "value": site.zip_code},
                {"type": "CITY_NAME", "value": site.city_name},
                {"type": "STATE_NAME", "value": site.state_name},
            ],
        }
    }


def invoice_xml_path(invoice: Invoice, *, user_id: int) -> str:
    return f"/users/{user_id}/invoices/documents/xml/{invoice.id}/authorized"


def brasilia_date(moment: datetime) -> str:
    """An invoice date as integrators read them from real answers [secondary]: Brasília time, milliseconds,
    no offset."""
    return moment.astimezone(BRASILIA).replace(tzinfo=None).isoformat(timespec="milliseconds")


def invoice_json(invoice: Invoice, *, user_id: int) -> JSON:
    xml = invoice_xml_path(invoice, user_id=user_id)
    return {
        "id": invoice.id,
        "status": "authorized",
        "transaction_status": "authorized",
        "invoice_number": invoice.number,
        "invoice_series": str(invoice.series),
        "amount": money(invoice.amount),
        "issued_date": brasilia_date(invoice.issued_at),
        "attributes": {
            "invoice_key": invoice.key,
            "authorization_date": brasilia_date(invoice.issued_at),
            "xml_location": xml,
            "danfe_location": f"/users/{user_id}/invoices/sites/MLB/documents/danfe/{invoice.id}",
        },
        "fiscal_data": {"transaction_type": "sale"},
        "orders": list(invoice.order_ids),
    }


def invoice_data_json(nfe: ImportedNfe, *, key_field: str) -> JSON:
    """GET /shipments/{id}/invoice_data: one of the two shapes integrators read (see the module's sources)."""
    amount = _amount(nfe.amount)
    if key_field == "fiscal_key":
        return {
            "id": nfe.id,
            "status": "approved",
            "fiscal_key": nfe.key,
            "invoice_number": nfe.number,
            "invoice_serie": nfe.series,
            "invoice_date": nfe.issued,
            "invoice_amount": amount,
        }
    return {
        "invoice_id": nfe.id,
        "status": "approved",
        "invoice_key": nfe.key,
        "invoice_number": nfe.number,
        "invoice_series": nfe.series,
        "invoice_date": nfe.issued,
        "invoice_amount": amount,
        "invoice_type": "sale",
    }


def _amount(text: str | None) -> int | float | None:
    """The XML's vNF as a JSON number (None when it has none, or not a number)."""
    try:
        amount = Decimal(text or "")
    except ArithmeticError:
        return None
    return money(amount) if amount.is_finite() and amount >= 0 else None
