"""OMS Get order (`GET /api/oms/pvt/orders/{orderId}`, Orders API `GetOrder`) for sandbox orders."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sandboxes.catalog import SandboxSku, SandboxSla
from sandboxes.vtex_cancel import allows_cancellation, cancellation_data
from sandboxes.vtex_catalog import detail_url, ean, image_url, product_id
from sandboxes.vtex_invoices import package_json
from sandboxes.vtex_models import ACCOUNT_NAME, JSON, SELLER_ID, SandboxOrder, VtexApiError, iso

# What the VTEX Admin shows for each status (pt-BR, as OMS answers for a Brazilian store).
STATUS_DESCRIPTIONS = {
    "payment-pending": "Pagamento Pendente",
    "waiting-ffmt-authorization": "Aguardando autorização para despachar",
    "waiting-for-manual-authorization": "Aguardando autorização manual",
    "ready-for-handling": "Pronto para o manuseio",
    "start-handling": "Iniciar manuseio",
    "handling": "Preparando Entrega",
    "invoiced": "Faturado",
    "cancellation-requested": "Cancelamento solicitado",
    "canceled": "Cancelado",
}


def find_order(orders: Mapping[str, SandboxOrder], order_id: str) -> SandboxOrder:
    # The spec accepts the order id or `seq{sequence}`.
    order = orders.get(order_id)
    if order is None and order_id.startswith("seq"):
        order = next((o for o in orders.values() if o.sequence == order_id[3:]), None)
    if order is None:
        raise VtexApiError(404, None, f"Order {order_id} not found")
    return order


def order_value(order: SandboxOrder, catalog: Mapping[str, SandboxSku]) -> int:
    """Get order's `value` in cents: items plus shipping."""
    return sum(_totals(order, catalog))


def order_json(order: SandboxOrder, catalog: Mapping[str, SandboxSku]) -> JSON:
    body = order.body
    lines: list[JSON] = body["items"]
    logistics = _logistics(order)
    items = [_item(order, line, catalog.get(line["id"])) for line in lines]
    items_total, shipping_total = _totals(order, catalog)
    endpoint: str = body["marketplaceServicesEndpoint"]
    text = body.get("openTextField")
    return {
        "orderId": order.order_id,
        "sequence": order.sequence,
        "marketplaceOrderId": order.marketplace_order_id,
        "marketplaceServicesEndpoint": endpoint,
        "sellerOrderId": f"00-{order.order_id}",
        "origin": "Fulfillment",
        "affiliateId": order.affiliate_id,
        "salesChannel": str(order.sales_channel),
        "merchantName": None,
        "status": order.status,
        "workflowIsInError": False,
        "statusDescription": STATUS_DESCRIPTIONS.get(order.status, order.status),
        "value": items_total + shipping_total,
        "creationDate": iso(order.creation_date),
        "lastChange": iso(order.last_change),
        "orderGroup": f"{order.affiliate_id}-{order.marketplace_order_id}",
        "followUpEmail": "",
        "lastMessage": None,
        "hostname": ACCOUNT_NAME,
        "isCompleted": True,
        "roundingError": 0,
        "orderFormId": uuid.uuid5(uuid.NAMESPACE_URL, order.order_id).hex,
        "allowCancellation": allows_cancellation(order),
        "allowEdition": False,
        "isCheckedIn": False,
        "authorizedDate": iso(order.authorized_date) if order.authorized_date else None,
        "invoicedDate": iso(order.invoiced_date) if order.invoiced_date else None,
        "cancelReason": order.cancellation.reason if order.cancellation else None,
        "checkedInPickupPointId": None,
        "totals": [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Discounts", "name": "Total dos Descontos", "value": 0},
            {"id": "Shipping", "name": "Total do Frete", "value": shipping_total},
            {"id": "Tax", "name": "Total da Taxa", "value": 0},
        ],
        "sellers": [
            {
                "id": SELLER_ID,
                "name": "VTEX Sandbox",
                "logo": None,
                "fulfillmentEndpoint": f"http://fulfillment.vtexcommerce.com.br/api/fulfillment?an={ACCOUNT_NAME}",
            }
        ],
        "clientPreferencesData": {"locale": "pt-BR", "optinNewsLetter": False},
        "cancellationData": cancellation_data(order),
        "taxData": None,
        "subscriptionData": None,
        "itemMetadata": {"Items": [_item_metadata(item) for item in items]},
        "marketplace": {"baseURL": endpoint, "isCertified": None, "name": order.affiliate_id},
        "storePreferencesData": _store_preferences(),
        "customData": None,
        "commercialConditionData": None,
        # The request's openTextField is a string; OMS answers an object holding it.
        "openTextField": {"value": text} if isinstance(text, str) else None,
        "invoiceData": None,
        "changesAttachment": None,
        "callCenterOperatorData": None,
        "packageAttachment": {"packages": [package_json(order, invoice) for invoice in order.invoices]},
        "paymentData": {"giftCards": [], "transactions": []},
        "shippingData": _shipping(order, logistics, catalog),
        "ratesAndBenefitsData": {"id": "ratesAndBenefitsData", "rateAndBenefitsIdentifiers": []},
        "marketingData": _marketing(body.get("marketingData")),
        "giftRegistryData": None,
        "clientProfileData": _profile(order, body["clientProfileData"]),
        "items": items,
        "marketplaceItems": [],
    }


def _logistics(order: SandboxOrder) -> dict[int, JSON]:
    return {info["itemIndex"]: info for info in order.body["shippingData"].get("logisticsInfo") or []}


def order_totals(order: SandboxOrder, catalog: Mapping[str, SandboxSku]) -> tuple[int, int]:
    """(items, shipping) of an order, in cents, as OMS prices them."""
    return _totals(order, catalog)


def _totals(order: SandboxOrder, catalog: Mapping[str, SandboxSku]) -> tuple[int, int]:
    lines: list[JSON] = order.body["items"]
    logistics = _logistics(order)
    items = sum(_unit_price(line, catalog.get(line["id"])) * line["quantity"] for line in lines)
    slas = [_selected_sla(catalog.get(line["id"]), logistics.get(i)) for i, line in enumerate(lines)]
    return items, sum(sla.price for sla in slas if sla)


def _unit_price(line: JSON, sku: SandboxSku | None) -> int:
    # Stored orders passed the catalog checks, so the SKU exists unless the catalog was swapped.
    return sku.price if sku else int(line.get("price", 0))


def _selected_sla(sku: SandboxSku | None, info: JSON | None) -> SandboxSla | None:
    if sku is None or info is None:
        return None
    return next((sla for sla in sku.slas if sla.id == info["selectedSla"]), None)


def _item(order: SandboxOrder, line: JSON, sku: SandboxSku | None) -> JSON:
    price = _unit_price(line, sku)
    name = sku.name if sku else line["id"]
    quantity: int = line["quantity"]
    return {
        "uniqueId": uuid.uuid5(uuid.NAMESPACE_URL, f"{order.order_id}/{line['id']}").hex.upper(),
        "id": line["id"],
        "productId": str(product_id(sku)) if sku else line["id"],
        "ean": ean(sku) if sku else None,
        "lockId": f"00-{order.order_id}",
        "itemAttachment": {"content": {}, "name": None},
        "attachments": [],
        "quantity": quantity,
        "seller": line["seller"],
        "name": name,
        "refId": f"REF-{line['id']}",
        "price": price,
        "listPrice": price,
        "manualPrice": None,
        "priceTags": [],
        "imageUrl": image_url(sku) if sku else "",
        "detailUrl": detail_url(sku) if sku else "",
        "components": [],
        "bundleItems": [],
        "params": [],
        "offerings": [],
        "attachmentOfferings": [],
        "sellerSku": line["id"],
        "priceValidUntil": None,
        "commission": int(line.get("commission", 0)),
        "tax": 0,
        "preSaleDate": None,
        "additionalInfo": {
            "brandName": "Sandbox",
            "brandId": "2000000",
            "categoriesIds": "/1/",
            "categories": [{"id": 1, "name": "Sandbox"}],
            "productClusterId": "",
            "commercialConditionId": "1",
            # Integers here (Orders schema), numbers in the Catalog's Dimension.
            "dimension": {"cubicweight": 1.0, "height": 10, "length": 10, "weight": 500, "width": 10},
            "offeringInfo": None,
            "offeringType": None,
            "offeringTypeId": None,
        },
        "measurementUnit": "un",
        "unitMultiplier": 1,
        "sellingPrice": price,
        "isGift": bool(line.get("isGift", False)),
        "shippingPrice": None,
        "rewardValue": 0,
        "freightCommission": int(line.get("freightCommission", 0)),
        # The schema says `priceDefinitions`; the spec's example and VTEX answer `priceDefinition`.
        "priceDefinition": {
            "sellingPrices": [{"value": price, "quantity": quantity}],
            "calculatedSellingPrice": price,
            "total": price * quantity,
            "reason": None,
        },
        "taxCode": None,
        "parentItemIndex": None,
        "parentAssemblyBinding": None,
        "callCenterOperator": None,
        "serialNumbers": None,
        "assemblies": [],
    }


def _item_metadata(item: JSON) -> JSON:
    return {
        "Id": item["id"],
        "Seller": item["seller"],
        "Name": item["name"],
        "SkuName": item["name"],
        "ProductId": item["productId"],
        "RefId": item["refId"],
        "Ean": item["ean"] or "",
        "ImageUrl": item["imageUrl"],
        "DetailUrl": item["detailUrl"],
        "AssemblyOptions": [],
    }


def _shipping(order: SandboxOrder, logistics: Mapping[int, JSON], catalog: Mapping[str, SandboxSku]) -> JSON:
    body = order.body
    shipping: JSON = body["shippingData"]
    address = _address(shipping.get("address"))
    infos = []
    for index, line in enumerate(body["items"]):
        info = logistics.get(index)
        sla = _selected_sla(catalog.get(line["id"]), info)
        channel = sla.delivery_channel if sla else "delivery"
        price = sla.price if sla else 0
        infos.append(
            {
                "itemIndex": index,
                "selectedSla": info["selectedSla"] if info else None,
                "lockTTL": (info or {}).get("lockTTL", "10d"),
                "price": price,
                "listPrice": price,
                "sellingPrice": price,
                "deliveryWindow": None,
                "deliveryCompany": "Sandbox Transportadora",
                "shippingEstimate": sla.shipping_estimate if sla else (info or {}).get("shippingEstimate"),
                "shippingEstimateDate": _estimate_date(order.creation_date, sla.shipping_estimate if sla else None),
                "slas": [],
                "shipsTo": ["BRA"],
                "deliveryIds": [
                    {
                        "courierId": "1",
                        "courierName": "Sandbox Transportadora",
                        "dockId": "1",
                        "quantity": line["quantity"],
                        "warehouseId": "1_1",
                    }
                ],
                "deliveryChannels": [{"id": channel}],
                "selectedDeliveryChannel": channel,
                "addressId": address["addressId"] if address else None,
                "versionId": None,
                "entityId": None,
                "polygonName": None,
                "pickupPointId": sla.pickup_point_id if sla else None,
                "transitTime": sla.shipping_estimate if sla else None,
            }
        )
    return {
        "id": "shippingData",
        "address": address,
        "logisticsInfo": infos,
        "trackingHints": None,
        "selectedAddresses": [address] if address else [],
        "contactInformation": [],
    }


def _estimate_date(start: datetime, estimate: str | None) -> str:
    # "5bd" is five business days; calendar days are close enough for a sandbox.
    digits = "".join(ch for ch in estimate or "" if ch.isdigit())
    return iso(start + timedelta(days=int(digits or 0)))


def _address(address: Any) -> JSON | None:
    if not isinstance(address, dict):
        return None
    return {
        "addressType": address["addressType"],
        "receiverName": address["receiverName"],
        "addressId": address.get("addressId") or "1",
        "versionId": None,
        "entityId": None,
        "postalCode": address["postalCode"],
        "city": address["city"],
        "state": address["state"],
        "country": address["country"],
        "street": address["street"],
        "number": address["number"],
        "neighborhood": address.get("neighborhood") or "",
        "complement": address.get("complement") or "",
        "reference": address.get("reference"),
        "geoCoordinates": address.get("geoCoordinates") or [],
    }


def _profile(order: SandboxOrder, profile: JSON) -> JSON:
    return {
        "id": "clientProfileData",
        "email": profile["email"],
        "firstName": profile["firstName"],
        "lastName": profile["lastName"],
        "documentType": profile["documentType"],
        "document": profile["document"],
        "phone": profile.get("phone") or "",
        "corporateName": profile.get("corporateName"),
        "tradeName": profile.get("tradeName"),
        "corporateDocument": profile.get("corporateDocument"),
        "stateInscription": profile.get("stateInscription"),
        "corporatePhone": profile.get("corporatePhone"),
        "isCorporate": bool(profile.get("isCorporate")),
        "userProfileId": str(uuid.uuid5(uuid.NAMESPACE_URL, profile["email"])),
        "userProfileVersion": None,
        "customerClass": None,
        "customerCode": None,
    }


def _marketing(data: Any) -> JSON | None:
    if not isinstance(data, dict):
        return None
    return {"id": "marketingData", **data}


def _store_preferences() -> JSON:
    return {
        "countryCode": "BRA",
        "currencyCode": "BRL",
        "currencyFormatInfo": {
            "CurrencyDecimalDigits": 2,
            "CurrencyDecimalSeparator": ",",
            "CurrencyGroupSeparator": ".",
            "CurrencyGroupSize": 3,
            "StartsWithCurrencySymbol": True,
        },
        "currencyLocale": 1046,
        "currencySymbol": "R$",
        "timeZone": "E. South America Standard Time",
    }
