"""Request checks for the Channel Order API (External Marketplace Orders spec): `EnqueueNewOrderRequest`
(operation EnqueueNewOrder, `POST /api/order-integration/orders`) and `UpdateOrderStatusRequest`
(operation UpdateOrderStatus, `PUT /api/order-integration/orders/status`).

Sources, per check:
- Required fields and types: the spec's `required` lists and property types, as written; nullable
  properties (`ClientProfileData.corporateDocument`...) must be present but may be null. The spec
  requires `allowFranchises`, `isFob`, `isMarketplaceFulfillment` and `SelectedAddress.addressId` while
  their descriptions call them optional; the sandbox follows the `required` lists.
- `marketplaceOrderStatus`: `new` or `approved` (EnqueueNewOrderRequest description, the
  UpdateOrderStatusRequest enum); the guides write NEW and APPROVED, so case is ignored.
- `connectorEndpoint`: UpdateOrderStatusRequest says it "does not accept query strings"; Enqueue's
  description is silent, so a query string there is kept.

A failed check is answered 400 with the Channel Order API's own contract (`Deliverybyfranchiseseller`,
the EnqueueNewOrder `default` answer; the guide says "All API responses and order notifications from
our service return the same data contract"): `success: false`, code EOI005 (validation error, the
guides' response-code table), and the field named in `message` and `errors[].description`. Which code
VTEX puts on a synchronous 400 is not documented; EOI005 is the sandbox's reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sandboxes.vtex_models import ACCOUNT_NAME, JSON, VtexApiError

VALIDATION_ERROR = "EOI005"
ORDER_INTEGRATION = "Order Integration"  # an `errors[].source` value (UpdateOrderStatus `Approveorder`)
MARKETPLACE_STATUSES = ("new", "approved")


@dataclass(frozen=True)
class Field:
    kind: str  # "string", "integer", "number", "boolean", "array" or "object"
    required: bool = True
    nullable: bool = False
    properties: dict[str, Field] = field(default_factory=dict)  # for objects
    items: Field | None = None  # for arrays


def _obj(required: bool = True, **properties: Field) -> Field:
    return Field("object", required, properties=properties)


def _arr(items: Field, required: bool = True) -> Field:
    return Field("array", required, items=items)


_S, _I, _B = Field("string"), Field("integer"), Field("boolean")
_OPT_S = Field("string", required=False)
_NULL_S = Field("string", nullable=True)

ENQUEUE_SCHEMA = _obj(
    marketplaceOrderId=_S,
    connectorName=_OPT_S,
    connectorEndpoint=_OPT_S,
    marketplaceOrderStatus=_S,
    marketplacePaymentValue=_I,
    marketplaceInterestValue=Field("integer", required=False),
    priceDivergenceAllowanceRate=Field("number", required=False),
    allowFranchises=_B,
    pickupAccountName=_OPT_S,
    items=_arr(_obj(id=_S, price=_I, quantity=_I)),
    clientProfileData=_obj(
        email=_S,
        firstName=_S,
        lastName=_S,
        phone=_S,
        document=_S,
        corporateDocument=_NULL_S,
        corporatePhone=_NULL_S,
        corporateName=_NULL_S,
        tradeName=_NULL_S,
        stateInscription=_NULL_S,
    ),
    shippingData=_obj(
        logisticsInfo=_arr(
            _obj(
                price=_I,
                selectedDeliveryChannel=_S,
                selectedSla=_S,
                lockTTL=_S,
                shippingEstimate=_S,
                deliveryIds=_arr(_obj(warehouseId=_S)),
            )
        ),
        selectedAddresses=_arr(
            _obj(
                addressType=_S,
                addressId=_S,
                receiverName=_S,
                postalCode=_S,
                country=_S,
                city=_OPT_S,
                state=_OPT_S,
                street=_OPT_S,
                number=_OPT_S,
                neighborhood=_OPT_S,
                complement=_OPT_S,
                geoCoordinates=_obj(False, latitude=Field("number"), longitude=Field("number")),
            )
        ),
        isFob=_B,
        isMarketplaceFulfillment=_B,
        trackingHints=_arr(
            _obj(trackingId=_S, courierName=_S, trackingUrl=_OPT_S, trackingLabel=_OPT_S), required=False
        ),
    ),
    invoiceData=_obj(userPaymentInfo=_obj(paymentMethods=_arr(_S))),
    customData=_obj(False, customApps=_arr(_obj(id=_S, major=_I, fields=_obj(marketplacePaymentMethod=_S)))),
    taxData=_arr(_obj(skuId=_S, value=_I), required=False),
    openTextField=_OPT_S,
)

UPDATE_SCHEMA = _obj(marketplaceOrderId=_S, marketplaceOrderStatus=_S, connectorName=_S, connectorEndpoint=_S)


def contract(
    *,
    flow: str,
    code: str,
    marketplace_order_id: str | None,
    operation_id: str | None,
    message: str,
    errors: list[JSON] | None = None,
    main_order_id: str | None = None,
    account_name: str | None = ACCOUNT_NAME,
) -> JSON:
    """The Channel Order API's one data contract for answers and notifications (spec `Deliverybyseller`,
    `Approveorder`; collect-orders guide "Response Body"). `success` follows the code's S/E prefix;
    `fields` only on success. The sandbox has no franchise accounts, so `franchiseOrderId` is left out:
    the guide's examples show it null, which the spec's schema (a string, not nullable) forbids."""
    success = code.startswith("S")
    return {
        "marketplaceOrderId": marketplace_order_id,
        "accountName": account_name,
        "code": code,
        "flow": flow,
        "success": success,
        "operationId": operation_id,
        "errors": errors if errors else None,
        "fields": {"mainOrderId": main_order_id} if main_order_id and success else None,
        "message": message,
    }


class ChannelOrderRejected(VtexApiError):
    """A 400 the Channel Order API answers with its contract instead of Checkout's error body."""

    def __init__(self, flow: str, marketplace_order_id: str | None, message: str) -> None:
        super().__init__(400, VALIDATION_ERROR, message)
        self.flow = flow
        self.marketplace_order_id = marketplace_order_id

    def body(self) -> JSON:
        return contract(
            flow=self.flow,
            code=VALIDATION_ERROR,
            marketplace_order_id=self.marketplace_order_id,
            operation_id=None,
            errors=[{"source": ORDER_INTEGRATION, "code": VALIDATION_ERROR, "description": self.message}],
            message=self.message,
        )


def _is_kind(value: object, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


_ARTICLE = {"array": "an array", "object": "an object", "integer": "an integer"}


def schema_problem(value: object, spec: Field, where: str) -> str | None:
    """The first way `value` breaks `spec`, naming the field by its JSON path; None when it fits."""
    if value is None and spec.nullable:
        return None
    if not _is_kind(value, spec.kind):
        return f"{where or 'body'} must be {_ARTICLE.get(spec.kind, 'a ' + spec.kind)}"
    if spec.kind == "object":
        assert isinstance(value, dict)
        for name, child in spec.properties.items():
            path = f"{where}.{name}" if where else name
            if name not in value:
                if child.required:
                    return f"{path} is required"
                continue
            problem = schema_problem(value[name], child, path)
            if problem:
                return problem
    elif spec.kind == "array" and spec.items is not None:
        assert isinstance(value, list)
        for index, element in enumerate(value):
            problem = schema_problem(element, spec.items, f"{where}[{index}]")
            if problem:
                return problem
    return None


def _marketplace_status(body: JSON, flow: str, order_id: str | None) -> str:
    status = str(body["marketplaceOrderStatus"]).lower()
    if status not in MARKETPLACE_STATUSES:
        raise ChannelOrderRejected(flow, order_id, "marketplaceOrderStatus must be new or approved")
    return status


def _check_endpoint(body: JSON, flow: str, order_id: str | None, *, query_allowed: bool) -> None:
    endpoint = body.get("connectorEndpoint")
    if endpoint is None:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ChannelOrderRejected(flow, order_id, "connectorEndpoint must be a URL with protocol and host")
    if parts.query and not query_allowed:
        raise ChannelOrderRejected(flow, order_id, "connectorEndpoint does not accept query strings")


def validate_enqueue(body: Any, flow: str) -> JSON:
    """The EnqueueNewOrder body, `marketplaceOrderStatus` lower-cased; ChannelOrderRejected otherwise."""
    order_id = body.get("marketplaceOrderId") if isinstance(body, dict) else None
    known_id = order_id if isinstance(order_id, str) else None
    problem = schema_problem(body, ENQUEUE_SCHEMA, "")
    if problem:
        raise ChannelOrderRejected(flow, known_id, problem)
    assert isinstance(body, dict)
    if not body["marketplaceOrderId"]:
        raise ChannelOrderRejected(flow, None, "marketplaceOrderId must not be empty")
    _check_endpoint(body, flow, known_id, query_allowed=True)
    # A copy: the recorded request keeps what was sent.
    return {**body, "marketplaceOrderStatus": _marketplace_status(body, flow, known_id)}


def validate_update(body: Any, flow: str) -> JSON:
    """The UpdateOrderStatus body, `marketplaceOrderStatus` lower-cased; ChannelOrderRejected otherwise."""
    order_id = body.get("marketplaceOrderId") if isinstance(body, dict) else None
    known_id = order_id if isinstance(order_id, str) else None
    problem = schema_problem(body, UPDATE_SCHEMA, "")
    if problem:
        raise ChannelOrderRejected(flow, known_id, problem)
    assert isinstance(body, dict)
    _check_endpoint(body, flow, known_id, query_allowed=False)
    return {**body, "marketplaceOrderStatus": _marketplace_status(body, flow, known_id)}
