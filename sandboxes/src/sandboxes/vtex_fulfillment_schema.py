"""Request checks for Place fulfillment order, per `placeFulfillmentOrderRequest` (External Marketplace
Orders spec). Each failure uses the Checkout error table's code when one fits, else CHK00308 "Bad
Request" with a message naming the field.
"""

from __future__ import annotations

from typing import Any

from sandboxes.vtex_models import JSON, VtexApiError, bad_request

_PROFILE_REQUIRED = ("email", "firstName", "lastName", "documentType", "document")
_ADDRESS_REQUIRED = (
    "addressType",
    "receiverName",
    "postalCode",
    "city",
    "state",
    "country",
    "street",
    "number",
)


def unwrap_single(body: Any, what: str) -> Any:
    """The spec's body is an object; the guides' examples send a one-element array. Accept both."""
    if isinstance(body, list):
        if len(body) != 1:
            raise bad_request(f"{what} must be one object (or an array holding exactly one)")
        return body[0]
    return body


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_strings(data: JSON, names: tuple[str, ...], prefix: str) -> None:
    for name in names:
        if not isinstance(data.get(name), str):
            raise bad_request(f"{prefix}.{name} is required and must be a string")


def validate_place_order(body: Any) -> JSON:
    """Return the order object, or raise a 400 naming the first problem."""
    order = unwrap_single(body, "The order")
    if not isinstance(order, dict):
        raise bad_request("The request body must be a JSON object")
    if not isinstance(order.get("marketplaceOrderId"), str) or not order["marketplaceOrderId"]:
        raise bad_request("Marketplace id has not been provided", "FMT015")
    endpoint = order.get("marketplaceServicesEndpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise bad_request("The endpoint to marketplace's service has not been provided", "FMT0070")
    if not endpoint.startswith(("http://", "https://")):
        raise bad_request("marketplaceServicesEndpoint must be a URL with protocol and host")
    payment_value = order.get("marketplacePaymentValue")
    valid_value = isinstance(payment_value, int) and not isinstance(payment_value, bool) and payment_value >= 0
    # The marketplace took the payment, so paymentData must be null (spec).
    if not valid_value or order.get("paymentData") is not None:
        raise bad_request("Invalid marketplace payment value or payment data", "FMT0042")
    if order.get("isCreatedAsync") is not None and not isinstance(order["isCreatedAsync"], bool):
        raise bad_request("isCreatedAsync must be a boolean")
    _validate_items(order.get("items"))
    _validate_profile(order.get("clientProfileData"))
    _validate_shipping(order.get("shippingData"), len(order["items"]))
    return order


def _validate_items(items: object) -> None:
    if not isinstance(items, list) or not items:
        raise bad_request("items is required and must be a non-empty array")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise bad_request("Invalid id for item", "FMT0039")
        if not _is_int(item.get("quantity")) or item["quantity"] <= 0:
            raise bad_request("Invalid quantity for item", "FMT0038")
        if not isinstance(item.get("seller"), str) or not item["seller"]:
            raise bad_request("Invalid seller for item", "FMT0040")
        if "price" in item and (not _is_int(item["price"]) or item["price"] < 0):
            raise bad_request("Invalid price for item", "FMT0041")


def _validate_profile(profile: object) -> None:
    if not isinstance(profile, dict):
        raise bad_request("clientProfileData is required and must be an object")
    _require_strings(profile, _PROFILE_REQUIRED, "clientProfileData")
    if "@" not in profile["email"]:
        raise bad_request("Invalid email", "FMT0032")


def _validate_shipping(shipping: object, item_count: int) -> None:
    if not isinstance(shipping, dict):
        raise bad_request("Cannot reserve items without shipping data", "FMT001")
    if shipping.get("updateStatus") == "outdated":
        # Spec: "An order can not be placed if outdated".
        raise bad_request("Your cart's data was old and needed to be updated. Please, try again", "ORD022")
    address = shipping.get("address")
    if address is not None:
        if not isinstance(address, dict):
            raise bad_request("shippingData.address must be an object")
        _require_strings(address, _ADDRESS_REQUIRED, "shippingData.address")
        geo = address.get("geoCoordinates")
        if not address["postalCode"] and not (isinstance(geo, list) and len(geo) == 2):
            raise bad_request("Addresses must have postal code or geocoordinates", "FMT0074")
    logistics = shipping.get("logisticsInfo", [])
    if not isinstance(logistics, list):
        raise bad_request("shippingData.logisticsInfo must be an array")
    seen: set[int] = set()
    for position, info in enumerate(logistics):
        where = f"shippingData.logisticsInfo[{position}]"
        if not isinstance(info, dict):
            raise bad_request(f"{where} must be an object")
        if not _is_int(info.get("itemIndex")):
            raise bad_request(f"{where}.itemIndex is required and must be an integer")
        if not isinstance(info.get("selectedSla"), str):
            raise bad_request(f"{where}.selectedSla is required and must be a string")
        if not _is_int(info.get("price")):
            raise bad_request(f"{where}.price is required and must be an integer")
        index: int = info["itemIndex"]
        if not 0 <= index < item_count:
            raise bad_request("Invalid item index", "FMT0057")
        if index in seen:
            raise bad_request("Same item cannot have more than one SLA selected", "FMT0058")
        seen.add(index)


def validate_authorize(body: Any) -> str:
    """Authorize dispatch body: `{"marketplaceOrderId": "..."}` (spec) or the guides' array form."""
    data = unwrap_single(body, "The body")
    if not isinstance(data, dict) or not isinstance(data.get("marketplaceOrderId"), str):
        raise bad_request("Marketplace id has not been provided", "FMT015")
    marketplace_order_id: str = data["marketplaceOrderId"]
    if not marketplace_order_id:
        raise bad_request("Marketplace id has not been provided", "FMT015")
    return marketplace_order_id


def require_affiliate(value: str | None) -> str:
    # The spec marks `affiliateId` required on both fulfillment endpoints.
    if not value:
        raise VtexApiError(400, "FMT0021", "Invalid affiliate id")
    return value
