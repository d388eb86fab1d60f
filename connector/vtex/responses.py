"""The parts of VTEX responses the connector reads, with VTEX's own casing.

Checkout answers camelCase; the Catalog answers PascalCase (`IsActive`, `SalesChannels`), whatever the
guides write. Unknown fields are ignored so VTEX can add fields without breaking us.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_pascal


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SimulationSla(_Camel):
    id: str
    delivery_channel: str | None = None
    price: int = 0
    shipping_estimate: str | None = None
    lock_ttl: str | None = Field(default=None, alias="lockTTL")
    pickup_point_id: str | None = None


class SimulationLogistics(_Camel):
    item_index: int
    slas: list[SimulationSla] = Field(default_factory=list)


class SimulationItem(_Camel):
    id: str
    request_index: int | None = None
    quantity: int = 0
    seller: str | None = None
    price: int | None = None
    selling_price: int | None = None
    availability: str | None = None


class SimulationMessage(_Camel):
    code: str | None = None
    text: str | None = None


class SimulationResponse(_Camel):
    items: list[SimulationItem] = Field(default_factory=list)
    logistics_info: list[SimulationLogistics] = Field(default_factory=list)
    messages: list[SimulationMessage] = Field(default_factory=list)

    def item_for_request(self, request_index: int, sku_id: str) -> tuple[int, SimulationItem] | None:
        """The answer item for a request line, with its position in the answer's `items`.

        VTEX leaves unsellable SKUs out of `items`, so positions shift: `requestIndex` points back into
        the request, while `logisticsInfo[].itemIndex` points into the answer's own `items`.
        """
        for position, item in enumerate(self.items):
            if item.request_index == request_index or (item.request_index is None and item.id == sku_id):
                return position, item
        return None

    def slas_for(self, answer_position: int) -> list[SimulationSla]:
        for info in self.logistics_info:
            if info.item_index == answer_position:
                return info.slas
        return []


class SkuContext(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")

    id: int
    is_active: bool
    is_product_active: bool = True
    sales_channels: list[int] = Field(default_factory=list)
    name_complete: str | None = None


class PlaceOrderResponse(_Camel):
    order_id: str | None = None
    status: str | None = None
    message: str | None = None


class OmsItem(_Camel):
    id: str
    quantity: int
    price: int = 0
    selling_price: int | None = None


class OmsPackageItem(_Camel):
    item_index: int
    quantity: int = 0
    price: int = 0


class OmsPackage(_Camel):
    """One invoice of Get order's `packageAttachment.packages`: `type` Output (sale) or Input (return)."""

    invoice_number: str | None = None
    type: str | None = None
    invoice_value: int | None = None
    issuance_date: str | None = None
    invoice_url: str | None = None
    invoice_key: str | None = None
    embedded_invoice: str | None = None
    courier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    items: list[OmsPackageItem] = Field(default_factory=list)


class OmsPackageAttachment(_Camel):
    packages: list[OmsPackage] = Field(default_factory=list)


class OmsOrder(_Camel):
    order_id: str
    status: str
    marketplace_order_id: str | None = None
    value: int = 0
    items: list[OmsItem] = Field(default_factory=list)
    package_attachment: OmsPackageAttachment | None = None

    def return_invoice_numbers(self) -> list[str]:
        return [p.invoice_number for p in self.packages() if p.type == "Input" and p.invoice_number]

    def packages(self) -> list[OmsPackage]:
        return self.package_attachment.packages if self.package_attachment else []


class Receipt(_Camel):
    """VTEX's answer to cancel and invoice notifications."""

    order_id: str | None = None
    receipt: str | None = None
    date: str | None = None


class OmsOrderSummary(_Camel):
    """One order of OMS List orders (`List` in the Orders API spec)."""

    order_id: str
    status: str | None = None
    # Spelled `marketPlaceOrderId` in List orders, unlike Get order's `marketplaceOrderId`.
    marketplace_order_id: str | None = Field(default=None, alias="marketPlaceOrderId")
    affiliate_id: str | None = None


class OmsPaging(_Camel):
    total: int = 0
    pages: int = 0
    current_page: int = 1
    per_page: int = 15


class OmsOrderList(_Camel):
    """OMS List orders (`ListOrders`); only the list and its paging are read."""

    orders: list[OmsOrderSummary] = Field(default_factory=list, alias="list")
    paging: OmsPaging = Field(default_factory=OmsPaging)


class ChannelOrderError(_Camel):
    """One `errors[]` entry of the Channel Order API's contract: `code` comes from `source` (Fulfillment,
    Checkout or Order Integration), so it is free text (FMT005, ORD027, EOI005...) whatever the spec's
    FMT001-FMT005 enum says. All three are required by the spec; a missing or null one reads as ""."""

    source: str = ""
    code: str = ""
    description: str = ""

    @field_validator("source", "code", "description", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value


class ChannelOrderFields(_Camel):
    """`fields` of the contract, only on success. The guide's examples send `franchiseOrderId: null`."""

    main_order_id: str | None = None
    franchise_order_id: str | None = None


class ChannelOrderAnswer(_Camel):
    """The Channel Order API's one data contract (spec `Deliverybyseller`, `Deliverybyfranchiseseller`,
    `Approveorder`; collect-orders guide "Response Body"): the synchronous answer of EnqueueNewOrder and
    UpdateOrderStatus (SOI003, or a 400's body) and the processing-result notification VTEX POSTs to
    `{connectorEndpoint}/order-integration/notification/processing-result`.

    Tolerant, since it also parses what VTEX pushes: unknown keys are ignored; `marketplaceOrderId`,
    `accountName`, `operationId`, `message` and `fields` may be null or missing (the guide: "Some fields
    can return as null"); `errors: null` reads as []. Only `code` and `flow` (PlaceOrder, ApproveOrder or
    Unknown) are required. A missing or null `success` follows the code's prefix (SOI... succeeded).
    """

    code: str
    flow: str
    success: bool = False
    account_name: str | None = None
    operation_id: str | None = None
    marketplace_order_id: str | None = None
    message: str | None = None
    errors: list[ChannelOrderError] = Field(default_factory=list)
    fields: ChannelOrderFields | None = None

    @model_validator(mode="before")
    @classmethod
    def _success_from_code(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("success") is None:
            code = data.get("code")
            return {**data, "success": isinstance(code, str) and code.upper().startswith("S")}
        return data

    @field_validator("errors", mode="before")
    @classmethod
    def _null_is_no_errors(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def main_order_id(self) -> str | None:
        """The VTEX order id (`fields.mainOrderId`), given on success only."""
        return self.fields.main_order_id if self.fields else None

    def error_details(self) -> list[tuple[str, str, str]]:
        """`errors[]` as (source, code, description), the form the error table's messages take."""
        return [(error.source, error.code, error.description) for error in self.errors]
