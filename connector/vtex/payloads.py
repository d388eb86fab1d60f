"""Request bodies for VTEX, built from a normalized marketplace order.

Rule for absent values (README, "VTEX API decisions"): every field the spec documents is sent; a field
with no value is sent as `null` where the spec declares it nullable, and left out where it does not,
because VTEX validates types and `null` in a non-nullable field is a type error. The guides' "send
null" advice predates the specs and contradicts them there.
"""

from __future__ import annotations

from typing import Any

from connector.models import DeliveryChannel, MarketplaceOrder, ValidationReport
from connector.vtex.responses import OmsOrder

JSON = dict[str, Any]

# How long VTEX reserves stock for a placed order awaiting dispatch authorization.
DEFAULT_LOCK_TTL = "1d"


def simulation_body(order: MarketplaceOrder, *, seller_id: str) -> JSON:
    return {
        "items": [{"id": item.sku_id, "quantity": item.quantity, "seller": seller_id} for item in order.items],
        "postalCode": order.shipping.address.postal_code,
        "country": order.shipping.address.country,
        "geoCoordinates": [],
        "isCheckedIn": False,
        "storeId": None,
    }


def fulfillment_order_body(
    order: MarketplaceOrder,
    report: ValidationReport,
    *,
    seller_id: str,
    services_endpoint: str,
    is_created_async: bool = False,
    lock_ttl: str = DEFAULT_LOCK_TTL,
) -> JSON:
    return {
        "marketplaceOrderId": order.marketplace_order_id,
        "marketplaceServicesEndpoint": services_endpoint,
        "marketplacePaymentValue": order.payment_value,
        "isCreatedAsync": is_created_async,
        "items": [
            {
                "id": item.sku_id,
                "quantity": item.quantity,
                "seller": seller_id,
                "price": item.unit_price,
                "bundleItems": [],
                "attachments": [],
                "priceTags": [],
                "isGift": False,
            }
            for item in order.items
        ],
        "clientProfileData": _client_profile(order),
        "shippingData": {
            "address": _address(order),
            "logisticsInfo": _logistics(order, report, lock_ttl),
        },
        # The marketplace already took the payment (spec: "paymentData" is null).
        "paymentData": None,
    }


def _client_profile(order: MarketplaceOrder) -> JSON:
    customer = order.customer
    profile: JSON = {
        "email": customer.email,
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "documentType": customer.document_type,
        "document": customer.document,
        "corporateName": customer.corporate_name,
        "tradeName": customer.trade_name,
        "corporateDocument": customer.corporate_document,
        "stateInscription": customer.state_inscription,
        "corporatePhone": customer.corporate_phone,
        "isCorporate": customer.is_corporate,
    }
    if customer.phone is not None:
        profile["phone"] = customer.phone
    return profile


def _address(order: MarketplaceOrder) -> JSON:
    shipping = order.shipping
    address = shipping.address
    pickup = shipping.delivery_channel is DeliveryChannel.PICKUP_IN_POINT
    body: JSON = {
        "addressType": "pickup" if pickup else address.address_type,
        "receiverName": address.receiver_name,
        "postalCode": address.postal_code,
        "city": address.city,
        "state": address.state,
        "country": address.country,
        "street": address.street,
        "number": address.number,
        "geoCoordinates": [],
    }
    address_id = shipping.pickup_point_id if pickup else address.address_id
    optional = {
        "addressId": address_id,
        "neighborhood": address.neighborhood,
        "complement": address.complement,
        "reference": address.reference,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _logistics(order: MarketplaceOrder, report: ValidationReport, lock_ttl: str) -> list[JSON]:
    choices = [report.choice_for(index) for index in range(len(order.items))]
    prices = split_freight(order.shipping.price, [choice.price for choice in choices])
    entries = []
    for choice, price in zip(choices, prices, strict=True):
        entry: JSON = {
            "itemIndex": choice.item_index,
            "selectedSla": choice.sla_id,
            "price": price,
            "lockTTL": lock_ttl,
        }
        if choice.shipping_estimate is not None:
            entry["shippingEstimate"] = choice.shipping_estimate
        entries.append(entry)
    return entries


def split_freight(total: int, weights: list[int]) -> list[int]:
    """Split the marketplace's freight (one total) across item lines, as VTEX wants it per line.

    Proportional to the store's own SLA price for each line; the last line takes the rounding rest so
    the parts always add up to what the customer paid.
    """
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1)
    parts = [total * weight // weight_sum for weight in weights[:-1]]
    return [*parts, total - sum(parts)]


def return_invoice_body(vtex_order: OmsOrder, *, invoice_number: str, issuance_date: str) -> JSON:
    """The return (Input) invoice VTEX requires before an invoiced order can be canceled: the whole order.

    The Orders API types `invoiceValue` as a string of cents; items are priced per unit in cents.
    """
    return {
        "type": "Input",
        "issuanceDate": issuance_date,
        "invoiceNumber": invoice_number,
        "invoiceValue": str(vtex_order.value),
        "items": [
            {
                "id": item.id,
                "quantity": item.quantity,
                "price": item.selling_price if item.selling_price is not None else item.price,
            }
            for item in vtex_order.items
        ],
        # Nullable in the spec and empty for a return: null (courier is not nullable: left out).
        "invoiceKey": None,
        "invoiceUrl": None,
        "embeddedInvoice": None,
        "trackingNumber": None,
        "trackingUrl": None,
        "dispatchedDate": None,
    }
