"""A Mercado Libre cart (its orders, their packs and shipments, the buyer's billing data) as the connector's
one MarketplaceOrder. Pure: everything here is read already.

Decisions, each with its source:
- Money: Mercado Libre's amounts are decimals in the site's currency (parsed as Decimal, never float);
  cents are the amount times 100, rounded half up (an amount with more than two decimals is not one
  Mercado Libre writes). A line or an order in another currency than the site's (MLA allows USD listings)
  is refused: the VTEX account sells in the site's currency. See sites.py for CLP and COP.
- Status, per order (https://developers.mercadolibre.com.ar/devsite/manage-sales-global-selling, "Order
  status"): `paid` and `partially_refunded` (paid, part given back) are paid; `cancelled` and `invalid`
  ("invalidated as it came from a malicious buyer") are cancelled; `confirmed`, `payment_required`,
  `payment_in_process`, `partially_paid` and `pending_cancel` are neither. The cart is CANCELED when every
  order is cancelled; PAID when every other order is paid AND every pack they are in is `released` ("all
  orders and shipments are paid", the packs guide: https://global-selling.mercadolibre.com/devsite/packs;
  `filling` and `filled` mean orders may still be coming); else TO_BE_PAID. A pack the orders name that
  Mercado Libre does not serve (404 while the order still names it) cannot say: it counts as complete
  rather than holding the cart back for good (its orders all get its id as their key anyway).
  A cancel_purchase claim does not cancel by itself: it is the buyer's request, and the order shows
  `cancelled` once Mercado Libre cancels it (the claims guide defines the type as the buyer's cancellation
  request, not its outcome).
- Items: every order's lines but those of cancelled orders; the SKU is the line's `seller_sku`, which the
  seller sets to the VTEX SKU id. A line without one cannot be placed: NotIntegrable names it. Unit price is
  `unit_price` (what the buyer pays for one unit, after the listing's discount; `full_unit_price` is the
  price before it).
- Freight: the shipments' `lead_time.cost` (what the buyer pays; 0 for free shipping). payment_value is
  items plus freight: what the buyer pays for the goods and their delivery. Installment interest, which
  Mercado Pago collects, is not part of it.
- Who delivers, from the shipment's `logistic {mode, type}`:
  - `me2`/`fulfillment` (Full: Mercado Libre's warehouse ships) -> MARKETPLACE_FULFILLMENT, with the
    connection's `fulfillment_warehouse_id` (https://developers.mercadolibre.com.mx/en_us/shipping-colectas-places);
  - `me2`/`cross_docking` (Colecta: Mercado Libre's carrier collects at the seller), `me2`/`xd_drop_off`
    (the seller drops at a Mercado Libre place) and `me2`/`drop_off` (the seller takes it to the carrier):
    Mercado Libre's carrier and label -> MARKETPLACE_CARRIER (same page; Mercado Envíos 2 guide,
    https://developers.mercadolibre.com.ni/es_ar/mercadoenvios-modo-2); `me2`/`xd_same_day` too ("Mercado
    Envios Coleta Rápida", one of the four logistics whose label waits for the seller's NF-e,
    https://developers.mercadolivre.com.br/importar-nota-fiscal);
  - `me2`/`self_service` (Flex: the seller delivers) -> SELLER ([secondary]: integrators' notes);
  - mode `me1` (Mercado Envíos 1: the seller ships with its carrier and reports tracking) and mode
    `custom` (the seller's own shipping) -> SELLER, whatever their type (ME1 guide,
    https://developers.mercadolibre.com.co/en_us/manage-project-apps/me1-order-states);
  - anything else -> NotIntegrable naming it (the connector must not guess who ships).
  Shipments of one cart (a pack split by Mercado Libre ships in several) must agree on who delivers.
- Address: the shipment's `destination.shipping_address`, "hidden until payment is confirmed"
  (https://developers.mercadolibre.com.gt/es_ar/envios): before payment its fields are empty strings (the
  order is then TO_BE_PAID, which the connector places only with ACCEPT_UNPAID_ORDERS and reads again once
  paid). The state is the UF for Brazil (`BR-SP` -> `SP`, what VTEX's Brazilian addresses hold), the
  state's name elsewhere. The country is the address's, else the site's.
- Customer: names and document from the billing data (`x-version: 2`), else the order's buyer; the email
  is the buyer's relay address, only once paid ("payment_required: Order payment should be confirmed to
  display user information", the sales guide); the phone only where the shipment shows it (custom
  shipping). A Brazilian CNPJ makes the customer corporate.
- An order without a shipment (a sale without Mercado Envíos, `shipping.id` null) cannot tell the
  connector where to deliver: NotIntegrable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from connector.marketplaces.mercadolibre.shapes import BillingInfo, Order, Pack, Shipment
from connector.marketplaces.mercadolibre.shapes import OrderItem as Line
from connector.marketplaces.mercadolibre.sites import ALPHA3, BRAZIL, Site
from connector.models import (
    Address,
    Customer,
    InvoiceItem,
    Logistics,
    MarketplaceOrder,
    MarketplaceOrderStatus,
    OrderItem,
    Shipping,
)

PAID_STATUSES = frozenset({"paid", "partially_refunded"})
CANCELLED_STATUSES = frozenset({"cancelled", "invalid"})
# Not a Mercado Libre status: a pack its orders name but `GET /packs/{id}` does not show (carts.Carts.pack_of).
UNSHOWN_PACK = "not-shown"
COMPLETE_PACK_STATUSES = frozenset({"released", UNSHOWN_PACK})
SELLER_MODES = frozenset({"me1", "custom"})
CARRIER_TYPES = frozenset({"cross_docking", "drop_off", "xd_drop_off", "xd_same_day"})
CORPORATE_DOCUMENTS = frozenset({"CNPJ"})


class NotIntegrable(ValueError):
    """The cart cannot become a VTEX order as it is; the message says why and what the seller can do."""


@dataclass
class Cart:
    """What was read of one connector order: its Mercado Libre orders (in the order they joined it), their
    current packs, their shipments and the buyer's billing data."""

    key: str
    orders: list[Order]
    packs: dict[str, Pack] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    billing: BillingInfo | None = None

    @property
    def active(self) -> list[Order]:
        """The orders that are not cancelled."""
        return [order for order in self.orders if order.status not in CANCELLED_STATUSES]

    @property
    def all_cancelled(self) -> bool:
        return not self.active

    @property
    def group_id(self) -> str | None:
        """The current pack of the cart's first order still on (a split cart has several)."""
        for order in self.active or self.orders:
            if order.pack_id is not None:
                return order.pack_id
        return None

    def shipment_ids(self) -> list[str]:
        """The shipments of the orders still on (of every order once all are cancelled), in order."""
        seen: list[str] = []
        for order in self.active or self.orders:
            if order.shipment_id is not None and order.shipment_id not in seen:
                seen.append(order.shipment_id)
        return seen

    def upload_targets(self) -> list[str]:
        """Where fiscal documents go: each current pack of the orders still on; an order without a pack
        uses its own id ("If the pack id contains a null value, must take the order id by default, keeping
        the resource /packs", https://developers.mercadolivre.com.br/en_us/upload-invoices)."""
        targets: list[str] = []
        for order in self.active:
            target = order.pack_id or order.id
            if target not in targets:
                targets.append(target)
        return targets


def to_cents(amount: Decimal | int) -> int:
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cart_status(cart: Cart) -> MarketplaceOrderStatus:
    active = cart.active
    if not active:
        return MarketplaceOrderStatus.CANCELED
    paid = all(order.status in PAID_STATUSES for order in active)
    complete = all(_pack_complete(order, cart.packs) for order in active)
    return MarketplaceOrderStatus.PAID if paid and complete else MarketplaceOrderStatus.TO_BE_PAID


def _pack_complete(order: Order, packs: Mapping[str, Pack]) -> bool:
    if order.pack_id is None:
        return True  # a cart of one
    pack = packs.get(order.pack_id)
    return pack is not None and pack.status in COMPLETE_PACK_STATUSES


def logistics_of(shipment: Shipment) -> Logistics:
    mode = (shipment.logistic.mode or "").lower()
    kind = (shipment.logistic.type or "").lower()
    if mode in SELLER_MODES:
        return Logistics.SELLER
    if mode == "me2":
        if kind == "fulfillment":
            return Logistics.MARKETPLACE_FULFILLMENT
        if kind in CARRIER_TYPES:
            return Logistics.MARKETPLACE_CARRIER
        if kind == "self_service":
            return Logistics.SELLER
    raise NotIntegrable(
        f"shipment {shipment.id} has logistic mode {mode or 'none'!r} and type {kind or 'none'!r}, which the "
        "connector does not know: it cannot tell who delivers the order"
    )


def cart_logistics(cart: Cart) -> Logistics | None:
    """Who delivers the cart, from its shipments (None: no shipment read)."""
    kinds = {logistics_of(cart.shipments[sid]) for sid in cart.shipment_ids() if sid in cart.shipments}
    if len(kinds) > 1:
        raise NotIntegrable(
            f"the cart's shipments are delivered in different ways ({', '.join(sorted(k.value for k in kinds))}): "
            "one VTEX order cannot say who delivers it"
        )
    return kinds.pop() if kinds else None


def cart_order(cart: Cart, site: Site, *, fulfillment_warehouse_id: str | None = None) -> MarketplaceOrder:
    """The cart as the connector's order; NotIntegrable when it cannot be one."""
    if not cart.orders:
        raise NotIntegrable(f"cart {cart.key} holds no Mercado Libre order")
    status = cart_status(cart)
    # A cancelled cart is only ever canceled: what cannot be placed does not stop it.
    canceled = status is MarketplaceOrderStatus.CANCELED
    if not canceled:
        for order in cart.orders:
            _check_currency(order, site)
    lines = cart.orders if canceled else cart.active
    items = [_item(order, line, lenient=canceled) for order in lines for line in order.order_items]
    if not items:
        raise NotIntegrable(f"the Mercado Libre orders of cart {cart.key} hold no items")
    try:
        shipping = _shipping(cart, site, fulfillment_warehouse_id)
    except NotIntegrable:
        if not canceled:
            raise
        shipping = Shipping(address=_nowhere(site), price=0)
    created = [order.date_created for order in cart.orders if order.date_created is not None]
    updated = [order.last_updated for order in cart.orders if order.last_updated is not None]
    return MarketplaceOrder(
        marketplace_order_id=cart.key,
        group_id=cart.group_id,
        status=status,
        items=items,
        shipping=shipping,
        customer=_customer(cart),
        payment_value=sum(item.unit_price * item.quantity for item in items) + shipping.price,
        created_at=min(created) if created else None,
        updated_at=max(updated) if updated else None,
    )


def _check_currency(order: Order, site: Site) -> None:
    currencies = {order.currency_id} | {line.currency_id for line in order.order_items}
    foreign = sorted(c for c in currencies if c is not None and c != site.currency_id)
    if foreign:
        raise NotIntegrable(
            f"Mercado Libre order {order.id} is in {', '.join(foreign)}, not in {site.currency_id}, the currency "
            f"of site {site.id}: the connector places orders in the site's currency only"
        )


def _item(order: Order, line: Line, *, lenient: bool) -> OrderItem:
    sku = (line.item.seller_sku or "").strip()
    if not sku:
        if not lenient:
            title = f" ({line.item.title})" if line.item.title else ""
            raise NotIntegrable(
                f"item {line.item.id or '?'}{title} of Mercado Libre order {order.id} has no seller_sku: set the "
                "listing's SKU (SELLER_SKU) in Mercado Libre to the VTEX SKU id, then reprocess"
            )
        # A cancelled cart is only ever canceled: the listing id stands in for the SKU.
        sku = line.item.id or "unknown"
    return OrderItem(sku_id=sku, quantity=line.quantity, unit_price=to_cents(line.unit_price))


def invoice_items(orders: Sequence[Order]) -> list[InvoiceItem]:
    """The lines of `orders` as an invoice's items: the same SKU, quantity and unit price in cents as the
    order placed in VTEX (NotIntegrable for a line without seller_sku, as there)."""
    return [
        InvoiceItem(sku_id=item.sku_id, quantity=item.quantity, price=item.unit_price)
        for item in (_item(order, line, lenient=False) for order in orders for line in order.order_items)
    ]


def _shipping(cart: Cart, site: Site, fulfillment_warehouse_id: str | None) -> Shipping:
    ids = cart.shipment_ids()
    if not ids:
        raise NotIntegrable(
            f"the Mercado Libre orders of cart {cart.key} have no shipment (a sale without Mercado Envíos): the "
            "connector cannot tell where to deliver it; handle it in Mercado Libre"
        )
    shipments = [cart.shipments[sid] for sid in ids if sid in cart.shipments]
    if not shipments:
        raise NotIntegrable(f"the shipments of cart {cart.key} were not read")
    freight = Decimal(0)
    for shipment in shipments:
        lead = shipment.lead_time
        if lead is not None and lead.cost is not None:
            if lead.currency_id is not None and lead.currency_id != site.currency_id:
                raise NotIntegrable(
                    f"shipment {shipment.id} costs {lead.currency_id}, not {site.currency_id}: the connector "
                    "places orders in the site's currency only"
                )
            freight += lead.cost
    logistics = cart_logistics(cart) or Logistics.SELLER
    return Shipping(
        address=_address(shipments[0], site),
        price=to_cents(freight),
        logistics=logistics,
        warehouse_id=fulfillment_warehouse_id if logistics is Logistics.MARKETPLACE_FULFILLMENT else None,
        # Mercado Envíos 2 (Full, Colecta, drop-off, Places, Flex): Mercado Libre's logistics tracks it.
        marketplace_tracks=all((s.logistic.mode or "").lower() == "me2" for s in shipments),
    )


def _nowhere(site: Site) -> Address:
    blank = {name: "" for name in ("receiver_name", "postal_code", "city", "state", "street", "number")}
    return Address(country=site.country_alpha3, **blank)


def _address(shipment: Shipment, site: Site) -> Address:
    destination = shipment.destination
    where = destination.shipping_address if destination is not None else None
    country = ""
    state = ""
    if where is not None:
        if where.country is not None and where.country.id:
            country = ALPHA3.get(where.country.id.upper(), "")
        if where.state is not None:
            code = (where.state.id or "").rpartition("-")[2]
            state = code if site.id == BRAZIL and code else (where.state.name or code)

    def text(value: str | None) -> str:
        return (value or "").strip()

    return Address(
        address_id=where.address_id if where is not None else None,
        receiver_name=text(destination.receiver_name if destination is not None else None),
        postal_code=text(where.zip_code if where is not None else None),
        city=text(where.city.name if where is not None and where.city is not None else None),
        state=state,
        country=country or site.country_alpha3,
        street=text(where.street_name if where is not None else None),
        number=text(where.street_number if where is not None else None),
        neighborhood=(where.neighborhood.name or None) if where is not None and where.neighborhood else None,
        complement=(where.comment or None) if where is not None else None,
    )


def _customer(cart: Cart) -> Customer:
    buyer = (cart.active or cart.orders)[0].buyer
    billing = cart.billing or BillingInfo()
    identification = billing.identification
    document_type = ((identification.type if identification else None) or "").strip()
    document = ((identification.number if identification else None) or "").strip()
    first_name = (billing.name or buyer.first_name or "").strip()
    last_name = (billing.last_name or buyer.last_name or "").strip()
    phone = None
    for sid in cart.shipment_ids():
        shipment = cart.shipments.get(sid)
        if shipment is not None and shipment.destination is not None and shipment.destination.receiver_phone:
            phone = shipment.destination.receiver_phone
            break
    corporate = document_type.upper() in CORPORATE_DOCUMENTS and bool(document)
    return Customer(
        email=(buyer.email or "").strip(),
        first_name=first_name,
        last_name=last_name,
        document_type=document_type,
        document=document,
        phone=phone,
        corporate_name=(" ".join(part for part in (first_name, last_name) if part) or None) if corporate else None,
        corporate_document=document if corporate else None,
    )


def sorted_orders(orders: Sequence[Order], order_ids: Sequence[str]) -> list[Order]:
    """`orders` in the order of `order_ids` (the cart's joining order)."""
    by_id = {order.id: order for order in orders}
    return [by_id[order_id] for order_id in order_ids if order_id in by_id]
