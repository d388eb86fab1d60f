"""Request bodies for VTEX, built from a normalized marketplace order.

Rule for absent values (README, "VTEX API decisions"): every field the spec documents is sent; a field
with no value is sent as `null` where the spec declares it nullable, and left out where it does not,
because VTEX validates types and `null` in a non-nullable field is a type error. The guides' "send
null" advice predates the specs and contradicts them there.
"""

from __future__ import annotations

from typing import Any

from connector.models import DeliveryChannel, Invoice, Logistics, MarketplaceOrder, ValidationReport
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


def channel_order_body(
    order: MarketplaceOrder,
    report: ValidationReport,
    *,
    connector_name: str,
    connector_endpoint: str,
    paid: bool,
    price_divergence_allowance_rate: float | None,
    lock_ttl: str,
) -> JSON:
    """The Channel Order API's EnqueueNewOrder body (spec `EnqueueNewOrderRequest`; collect-orders guide).

    Beyond the module's rule for absent values: a field the spec requires but does not make nullable is
    sent empty when the order has no value for it (`phone`, `document`, `addressId`, `shippingEstimate`:
    ""; `paymentMethods`, `deliveryIds`: []), as leaving it out breaks the `required` list. Optional
    fields we have nothing for are left out: `marketplaceInterestValue` (the payment value already is
    what the customer paid), `pickupAccountName` (franchises only), `customData` (it would require a
    marketplace payment method), `taxData`, `trackingHints`, `openTextField`, and
    `selectedAddresses[].geoCoordinates`. The address's `reference` has no place in `SelectedAddress`.

    `logisticsInfo[i]` belongs to `items[i]`: the spec's `LogisticsInfo` has no `itemIndex`.
    """
    body: JSON = {
        "marketplaceOrderId": order.marketplace_order_id,
        "connectorName": connector_name,
        "connectorEndpoint": connector_endpoint,
        # `approved` makes VTEX approve the order right after integrating it (a second notification).
        "marketplaceOrderStatus": "approved" if paid else "new",
        "marketplacePaymentValue": order.payment_value,
        "allowFranchises": False,
        "items": [{"id": item.sku_id, "price": item.unit_price, "quantity": item.quantity} for item in order.items],
        "clientProfileData": _channel_client_profile(order),
        "shippingData": {
            "logisticsInfo": _channel_logistics(order, report, lock_ttl),
            "selectedAddresses": [_channel_address(order)],
            # The marketplace delivers: its carrier (scenario 7), or from its own warehouse (scenario 8).
            "isFob": order.shipping.logistics is not Logistics.SELLER,
            "isMarketplaceFulfillment": order.shipping.logistics is Logistics.MARKETPLACE_FULFILLMENT,
        },
        # The marketplace took the payment; its method is not passed on.
        "invoiceData": {"userPaymentInfo": {"paymentMethods": []}},
    }
    if price_divergence_allowance_rate is not None:
        body["priceDivergenceAllowanceRate"] = price_divergence_allowance_rate
    return body


def channel_order_status_body(marketplace_order_id: str, *, connector_name: str, connector_endpoint: str) -> JSON:
    """UpdateOrderStatus body (spec `UpdateOrderStatusRequest`): approve an integrated order. All four
    fields are required; `connectorEndpoint` must carry no query string (spec), so a connection's routing
    token belongs in its path."""
    return {
        "marketplaceOrderId": marketplace_order_id,
        "marketplaceOrderStatus": "approved",
        "connectorName": connector_name,
        "connectorEndpoint": connector_endpoint,
    }


def _channel_client_profile(order: MarketplaceOrder) -> JSON:
    # All ten are required: phone and document are not nullable ("" when absent), the corporate ones are.
    customer = order.customer
    return {
        "email": customer.email,
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "phone": customer.phone or "",
        "document": customer.document or "",
        "corporateDocument": customer.corporate_document,
        "corporatePhone": customer.corporate_phone,
        "corporateName": customer.corporate_name,
        "tradeName": customer.trade_name,
        "stateInscription": customer.state_inscription,
    }


def _channel_address(order: MarketplaceOrder) -> JSON:
    """`SelectedAddress`: the pickup point's for pickup-in-point orders (guide scenario 9: type `pickup`,
    `addressId` the pickup point's id in VTEX's logistics), else the customer's."""
    shipping = order.shipping
    address = shipping.address
    pickup = shipping.delivery_channel is DeliveryChannel.PICKUP_IN_POINT
    body: JSON = {
        "addressType": "pickup" if pickup else address.address_type,
        "addressId": (shipping.pickup_point_id if pickup else address.address_id) or "",
        "receiverName": address.receiver_name,
        "postalCode": address.postal_code,
        "city": address.city,
        "state": address.state,
        "country": address.country,
        "street": address.street,
        "number": address.number,
    }
    optional = {"neighborhood": address.neighborhood, "complement": address.complement}
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _channel_logistics(order: MarketplaceOrder, report: ValidationReport, lock_ttl: str) -> list[JSON]:
    shipping = order.shipping
    channel = shipping.delivery_channel
    choices = [report.choice_for(index) for index in range(len(order.items))]
    prices = split_freight(shipping.price, [choice.price for choice in choices])
    # Pickup-in-point orders (scenario 9) and orders the marketplace delivers (scenarios 7 and 8) leave the
    # SLA empty: the address names the pickup point, the marketplace carries the order.
    no_sla = channel is DeliveryChannel.PICKUP_IN_POINT or shipping.logistics is not Logistics.SELLER
    # Only orders the marketplace fulfills from its own warehouse name one (scenario 8).
    warehouse = shipping.warehouse_id if shipping.logistics is Logistics.MARKETPLACE_FULFILLMENT else None
    return [
        {
            "price": price,
            "selectedDeliveryChannel": channel.value,
            "selectedSla": "" if no_sla else choice.sla_id,
            "lockTTL": lock_ttl,
            "shippingEstimate": choice.shipping_estimate or "",
            "deliveryIds": [{"warehouseId": warehouse}] if warehouse else [],
        }
        for choice, price in zip(choices, prices, strict=True)
    ]


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


def sale_invoice_body(invoice: Invoice) -> JSON:
    """Order invoice notification (Orders API) for an invoice the marketplace issued (Mercado Libre Full):
    type Output, the marketplace's number, key, XML and link; the value a string of cents as the spec types it."""
    return {
        "type": "Output",
        "issuanceDate": invoice.issuance_date or "",
        "invoiceNumber": invoice.invoice_number,
        "invoiceValue": str(invoice.invoice_value),
        "items": [{"id": item.sku_id, "quantity": item.quantity, "price": item.price} for item in invoice.items],
        "invoiceKey": invoice.invoice_key,
        "invoiceUrl": invoice.invoice_url,
        "embeddedInvoice": invoice.embedded_invoice,
        # The marketplace ships these orders: nothing of the seller's to track (courier is not nullable: left out).
        "trackingNumber": None,
        "trackingUrl": None,
        "dispatchedDate": None,
    }


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
