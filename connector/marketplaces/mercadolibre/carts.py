"""Which connector order (one workflow, one VTEX order) each Mercado Libre order belongs to, and reading a
cart: its orders, their packs, shipments and billing data.

Mercado Libre's cart is the pack: "It becomes a mandatory component in all purchases, as all orders will be
associated with a pack_id" (https://developers.mercadolibre.com.sv/en_us/manage-packages/packs-management);
the fiscal-documents guide still says "if the pack id contains a null value, take the order id", so an order
without a pack is a cart of one. Packs are not stable: a pack that Mercado Libre splits becomes child packs
that name the parent in `family_pack_id` (https://global-selling.mercadolibre.com/devsite/packs), and a
pack id "may change over time due to marketplace handling" ([secondary] Alephee's notes). So the cart's
key is decided once, the first time one of its orders is seen, and kept in the CartStore, which never
moves an order once it is in a cart:
- an order already in a cart: that cart;
- an order without a pack: a cart of its own, keyed by the order id;
- an order in a pack: the cart of any order of the pack already in one (a late order joins its cart);
  otherwise, at first sight, the pack's `family_pack_id` if it has one (the parent of a split seen only
  after the split: its children stay one cart) or else the pack id. Every order the pack lists joins that
  cart.
A pack an order names that `GET /packs/{id}` does not show is transient while the order's pack id is
changing (read again, it names another); if the order still names it, the pack counts as holding the orders
that name it (Carts.pack_of): the docs promise every pack, and a cart is not held back for good for one
Mercado Libre does not serve, while its orders still share one key.
The key is a function of what Mercado Libre shows, so two workers resolving two orders of one new pack at
once choose the same key. Pack and order ids come from one number space (the sandbox's reading of the
examples), so a pack id never names another cart's order.

Reading a cart for the order (fetch_order) gathers the cart's orders, then the current pack of each: an
order a pack lists that is not in a cart yet (a late second order) joins the cart there too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from connector.marketplaces.base import CartStore, MarketplaceError
from connector.marketplaces.mercadolibre.client import MercadoLibreClient
from connector.marketplaces.mercadolibre.mapping import UNSHOWN_PACK, Cart
from connector.marketplaces.mercadolibre.shapes import (
    Billing,
    BillingInfo,
    Claim,
    Identification,
    Order,
    Pack,
    Reference,
    Shape,
    Shipment,
    ShipmentItem,
    read,
)
from connector.marketplaces.mercadolibre.sites import Site

log = logging.getLogger(__name__)

# The billing data's second version covers these sites; the others keep the first
# (https://developers.mercadolivre.com.br/pt_br/tendencias/faturamento).
BILLING_V2_SITES = frozenset({"MLA", "MLB", "MLM", "MLC", "MCO", "MEC"})
# A cart's packs are followed this many rounds at most (each round reads the orders that joined in the last).
MAX_ROUNDS = 10
# Requests in flight at once for one cart.
CONCURRENCY = 8

S = TypeVar("S", bound=Shape)
T = TypeVar("T")


def digits(value: str, what: str) -> str:
    """A Mercado Libre id for a URL path: digits only, else a MarketplaceError naming it."""
    if not (value.isascii() and value.isdigit() and len(value) <= 30):
        raise MarketplaceError(f"{what} {value!r} is not a Mercado Libre id", status=None, transient=False)
    return value


class Carts:
    def __init__(self, *, client: MercadoLibreClient, store: CartStore, connection: str, site: Site) -> None:
        self._client = client
        self._store = store
        self._connection = connection
        self._site = site
        self._limit = asyncio.Semaphore(CONCURRENCY)

    # -- one resource at a time -------------------------------------------------------------------------

    async def order(self, order_id: str) -> Order:
        order_id = digits(order_id, "order")
        data = await self._client.get_json(
            f"/orders/{order_id}",
            what=f"the request for order {order_id}",
            not_found=f"order {order_id} not found in Mercado Libre",
        )
        return self._read(Order, data, f"Mercado Libre order {order_id}")

    async def pack(self, pack_id: str) -> Pack:
        pack_id = digits(pack_id, "pack")
        data = await self._client.get_json(
            f"/packs/{pack_id}",
            what=f"the request for pack {pack_id}",
            # An order just read named this pack: a 404 now is a pack id changing under us.
            not_found=f"pack {pack_id} not found in Mercado Libre (its id may have just changed)",
            missing_is_transient=True,
        )
        return self._read(Pack, data, f"Mercado Libre pack {pack_id}")

    async def pack_of(self, order: Order) -> Pack:
        """The order's current pack. A pack Mercado Libre does not show (404) while the order, read again,
        still names it is taken as holding just what the orders naming it say (`UNSHOWN_PACK`): every order
        of it still gets the same key (the pack id), so none is lost, and the cart is not held back for a
        resource the docs promise but Mercado Libre does not serve. A pack id that changed meanwhile is
        transient: the next attempt reads the new one."""
        assert order.pack_id is not None
        try:
            return await self.pack(order.pack_id)
        except MarketplaceError as exc:
            if exc.status != 404:
                raise
            again = await self.order(order.id)
            if again.pack_id != order.pack_id:
                raise
        log.warning("Mercado Libre shows no pack %s, which order %s names: taken as its own", order.pack_id, order.id)
        return Pack(id=order.pack_id, status=UNSHOWN_PACK, orders=[Reference(id=order.id)])

    async def shipment(self, shipment_id: str) -> Shipment:
        shipment_id = digits(shipment_id, "shipment")
        data = await self._client.get_json(
            f"/shipments/{shipment_id}",
            what=f"the request for shipment {shipment_id}",
            headers={"x-format-new": "true"},
            not_found=f"shipment {shipment_id} not found in Mercado Libre",
        )
        return self._read(Shipment, data, f"Mercado Libre shipment {shipment_id}")

    async def shipment_orders(self, shipment_id: str) -> list[str]:
        """The orders a shipment carries (`GET /shipments/{id}/items`)."""
        shipment_id = digits(shipment_id, "shipment")
        data = await self._client.get_json(
            f"/shipments/{shipment_id}/items",
            what=f"the items of shipment {shipment_id}",
            not_found=f"shipment {shipment_id} not found in Mercado Libre",
        )
        if not isinstance(data, list):
            raise MarketplaceError(
                f"the items of Mercado Libre shipment {shipment_id} cannot be read: not a list",
                status=None,
                transient=False,
            )
        found: list[str] = []
        for entry in data:
            item = self._read(ShipmentItem, entry, f"an item of Mercado Libre shipment {shipment_id}")
            if item.order_id is not None and item.order_id not in found:
                found.append(item.order_id)
        return found

    async def claim(self, claim_id: str) -> Claim:
        claim_id = digits(claim_id, "claim")
        data = await self._client.get_json(
            f"/post-purchase/v1/claims/{claim_id}",
            what=f"the request for claim {claim_id}",
            not_found=f"claim {claim_id} not found in Mercado Libre",
        )
        return self._read(Claim, data, f"Mercado Libre claim {claim_id}")

    async def billing(self, order_id: str) -> BillingInfo | None:
        """The buyer's billing data (None when Mercado Libre has none for the order)."""
        order_id = digits(order_id, "order")
        v2 = self._site.id in BILLING_V2_SITES
        try:
            data = await self._client.get_json(
                f"/orders/{order_id}/billing_info",
                what=f"the billing data of order {order_id}",
                headers={"x-version": "2"} if v2 else None,
                not_found=f"no billing data for order {order_id}",
            )
        except MarketplaceError as exc:
            if exc.status == 404:
                return None
            raise
        if v2:
            return self._read(Billing, data, f"the billing data of Mercado Libre order {order_id}").info
        return _billing_v1(data)

    # -- carts --------------------------------------------------------------------------------------------

    async def key_of(self, order_id: str) -> str:
        """The cart an order belongs to, deciding it (and joining the pack's orders) at first sight."""
        order_id = digits(order_id, "order")
        known = await self._store.cart_key(self._connection, order_id)
        if known is not None:
            return known
        order = await self.order(order_id)
        if order.pack_id is None:
            joined = await self._store.join_cart(self._connection, order_id, [order_id])
            return joined.get(order_id, order_id)
        pack = await self.pack_of(order)
        members = [order_id, *(member for member in pack.order_ids if member != order_id)]
        key = None
        for member in members[1:]:
            key = await self._store.cart_key(self._connection, member)
            if key is not None:
                break
        if key is None:
            key = pack.family_pack_id or pack.id
        joined = await self._store.join_cart(self._connection, key, members)
        return joined.get(order_id, key)

    async def read(self, key: str, *, shipments: bool = True, billing: bool = True) -> Cart:
        """The cart's orders (a late order of one of its packs joins it here), their current packs, and
        optionally the shipments and the buyer's billing data (read only once some order is paid: before,
        Mercado Libre hides it)."""
        key = digits(key, "connector order")
        order_ids = await self._store.cart_orders(self._connection, key)
        if not order_ids:
            # Not a cart yet: the key may be an order id given directly (an import, an operator).
            resolved = await self.key_of(key)
            if resolved != key:
                raise MarketplaceError(
                    f"Mercado Libre order {key} belongs to the connector order {resolved}",
                    status=None,
                    transient=False,
                )
            order_ids = await self._store.cart_orders(self._connection, key)
            if not order_ids:
                raise MarketplaceError(f"the cart store has no order in cart {key}", status=None, transient=True)
        orders: dict[str, Order] = {}
        packs: dict[str, Pack] = {}
        pending = list(order_ids)
        for _ in range(MAX_ROUNDS):
            if not pending:
                break
            for order in await self._all([self.order(order_id) for order_id in pending]):
                orders[order.id] = order
            naming = {o.pack_id: o for o in orders.values() if o.pack_id is not None and o.pack_id not in packs}
            new_packs = sorted(naming)
            for pack in await self._all([self.pack_of(naming[pack_id]) for pack_id in new_packs]):
                packs[pack.id] = pack
            listed = [m for pack_id in new_packs for m in packs[pack_id].order_ids if m not in orders]
            pending = []
            if listed:
                joined = await self._store.join_cart(self._connection, key, list(dict.fromkeys(listed)))
                pending = [m for m in dict.fromkeys(listed) if joined.get(m) == key]
                others = sorted({owner for m in listed if (owner := joined.get(m)) is not None and owner != key})
                for other in others:
                    log.info("cart %s: pack orders already in connector order %s stay there", key, other)
        ordered = [orders[i] for i in await self._store.cart_orders(self._connection, key) if i in orders]
        ordered += [o for o in orders.values() if o not in ordered]
        cart = Cart(key=key, orders=ordered, packs=packs)
        if shipments:
            ids = cart.shipment_ids()
            for shipment in await self._all([self.shipment(sid) for sid in ids]):
                cart.shipments[shipment.id] = shipment
        if billing:
            paid = [o for o in cart.active if o.status in ("paid", "partially_refunded")]
            if paid:
                cart.billing = await self.billing(paid[0].id)
        return cart

    async def claim_order(self, claim: Claim) -> str:
        """The order a claim is about: its resource is an order, or a shipment (whose first order it is)."""
        resource = (claim.resource or "").lower()
        if claim.resource_id is None:
            raise MarketplaceError(f"Mercado Libre claim {claim.id} names no resource_id", status=None, transient=False)
        if resource == "order":
            return claim.resource_id
        if resource == "shipment":
            orders = await self.shipment_orders(claim.resource_id)
            if orders:
                return orders[0]
        raise MarketplaceError(
            f"Mercado Libre claim {claim.id} is about {resource or 'an unnamed resource'} {claim.resource_id}, "
            "not an order the connector can find",
            status=None,
            transient=False,
        )

    # -- helpers ------------------------------------------------------------------------------------------

    async def _all(self, calls: Sequence[Awaitable[T]]) -> list[T]:
        async def limited(call: Awaitable[T]) -> T:
            async with self._limit:
                return await call

        return list(await asyncio.gather(*(limited(call) for call in calls)))

    @staticmethod
    def _read(shape: type[S], data: object, what: str) -> S:
        try:
            return read(shape, data)
        except ValueError as exc:
            raise MarketplaceError(f"{what} cannot be read: {exc}", status=None, transient=False) from None


def _billing_v1(data: object) -> BillingInfo | None:
    """The first version (`{"billing_info": {"doc_type", "doc_number", "additional_info": [{type, value}]}}`),
    still the only one for MLU, MPE and MLV."""
    info = data.get("billing_info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not info:
        return None
    extra = {
        entry.get("type"): entry.get("value")
        for entry in info.get("additional_info") or []
        if isinstance(entry, dict) and isinstance(entry.get("value"), str)
    }

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    return BillingInfo(
        name=text(extra.get("FIRST_NAME")),
        last_name=text(extra.get("LAST_NAME")),
        identification=Identification(
            type=text(info.get("doc_type")) or text(extra.get("DOC_TYPE")),
            number=text(info.get("doc_number")) or text(extra.get("DOC_NUMBER")),
        ),
    )
