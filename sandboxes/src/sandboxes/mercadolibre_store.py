"""The Mercado Libre sandbox's marketplace: orders, packs, shipments, claims and NF-e, and the changes the
buyer and Mercado Libre make to them (the Python API tests drive), each followed by its notification.

Where the docs leave room this takes it (see sandboxes.mercadolibre for the list): whether a one-order cart
has a pack, how long a change takes to reach order search, when the Faturador issues a Full NF-e.
What the docs do not say and this chooses [INFERRED]:
- Before payment a cart's pack is `filling`; once every order is paid it is `released` (the packs guide
  defines filling as "the sale is paid and the pack is created", so Mercado Libre may only show a pack
  after payment); once every order is cancelled, `cancelled`.
- A split pack is gone (404) and its shipment cancelled (`pack_splitted`); each child pack has its own
  shipment. A pack whose id changes answers 404 under the old id.
- A paid ME2 shipment is `ready_to_ship`/`printed`; ME1 and custom ones are `handling` until the seller
  reports tracking; a Brazilian Full one is `handling`/`invoice_pending` until its NF-e exists, then
  `ready_to_ship`/`in_warehouse` (the reference notes: "Full: wait for shipment handling/invoice_pending").
  A Brazilian drop_off, xd_drop_off, xd_same_day or cross_docking one is `ready_to_ship`/`invoice_pending`
  until an NF-e is imported (the import "destrava o substatus invoice_pending e permite a geração da
  etiqueta", https://developers.mercadolivre.com.br/importar-nota-fiscal; integrators check
  ready_to_ship + invoice_pending before importing [secondary]), then `ready_to_ship`/`ready_to_print`
  (the substatus integrators see once the label is released [secondary]). An NF-e the seller has the
  Faturador issue for such a shipment unlocks it too, and is then the NF-e its invoice_data shows.
- The cart's freight is paid with its first order (`shipping_cost` of that order's payment).
- `cancel_detail` on a cancelled order: `{group, code, description, requested_by, date, application_id}`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sandboxes.catalog import SELLABLE_SKU_IDS, sku_by_id
from sandboxes.mercadolibre_models import (
    CLAIM_STAGES,
    CLAIM_TYPES,
    JSON,
    LOGISTIC_TYPES,
    ORDER_STATUSES,
    SHIPMENT_STATUSES,
    SITES,
    UNPAID_STATUSES,
    Buyer,
    Claim,
    ImportedNfe,
    Invoice,
    ItemSpec,
    Order,
    OrderLine,
    Pack,
    Payment,
    Shipment,
    ml_date,
    quantize,
    to_decimal,
)
from sandboxes.mercadolibre_notifications import Notification, NotificationAttempt, NotificationDispatcher
from sandboxes.mercadolibre_seller import NfeDocument, nfe_key, nfe_refusal, nfe_xml, read_nfe
from sandboxes.mercadolibre_views import order_json

MAX_SEARCH_INDEX_DELAY = 0.5
MAX_INVOICE_DELAY = 0.5
# Where the sandbox's answers put what the docs leave open about NF-e import (mercadolibre_views,
# mercadolibre_seller): the access key's field in GET invoice_data, and a refusal's code.
INVOICE_DATA_KEY_FIELDS = ("fiscal_key", "invoice_key")
NFE_ERROR_CODE_PLACES = ("error", "cause")
# The IBGE code of São Paulo, for the NF-e keys of the sandbox's Brazilian seller.
_SP_STATE_CODE = "35"
_FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elena", "Fábio", "Gabriela", "Hugo")
_LAST_NAMES = ("Souza", "Pérez", "García", "Oliveira", "Martínez", "Silva", "López", "Costa")


class MercadoLibreStore:
    """The marketplace's state and the changes made to it; MercadoLibreSandbox serves it over HTTP."""

    def __init__(
        self,
        *,
        site_id: str,
        seller_id: int,
        application_id: int,
        dispatcher: NotificationDispatcher,
        claims_topic: str,
        pack_single_orders: bool,
        search_index_delay_seconds: float | None,
        invoice_delay_seconds: float | None,
        invoice_data_key_field: str,
        nfe_error_code_in: str,
        seed: int | None,
        id_base: int,
        clock: Callable[[], float],
    ) -> None:
        if site_id not in SITES:
            raise ValueError(f"site_id must be one of {', '.join(SITES)}")
        if claims_topic not in ("claims", "post_purchase"):
            raise ValueError("claims_topic must be 'claims' or 'post_purchase'")
        if invoice_data_key_field not in INVOICE_DATA_KEY_FIELDS:
            raise ValueError(f"invoice_data_key_field must be one of {', '.join(INVOICE_DATA_KEY_FIELDS)}")
        if nfe_error_code_in not in NFE_ERROR_CODE_PLACES:
            raise ValueError(f"nfe_error_code_in must be one of {', '.join(NFE_ERROR_CODE_PLACES)}")
        self.site_id = site_id
        self.seller_id = seller_id
        self.application_id = application_id
        self.claims_topic = claims_topic
        self.pack_single_orders = pack_single_orders
        self.invoice_data_key_field = invoice_data_key_field
        self.nfe_error_code_in = nfe_error_code_in
        self._dispatcher = dispatcher
        self._index_delay = search_index_delay_seconds
        self._invoice_delay = invoice_delay_seconds
        self._seed = seed
        self._rng = random.Random(seed)
        self._id_base = id_base
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.orders: dict[int, Order] = {}
        self.packs: dict[int, Pack] = {}
        self.shipments: dict[int, Shipment] = {}
        self.claims: dict[int, Claim] = {}
        self.invoices: dict[int, Invoice] = {}
        # The NF-e each Brazilian shipment holds (its invoice_data), by shipment id.
        self.imported_nfe: dict[int, ImportedNfe] = {}
        self._restart()

    def _restart(self) -> None:
        """Forget every order, pack, shipment, claim, NF-e and notification (abandoning deliveries under
        way); containers are cleared in place so references others hold stay live."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._dispatcher.reset()
        for store in (self.orders, self.packs, self.shipments, self.claims, self.invoices, self.imported_nfe):
            store.clear()
        self._rng.seed(self._seed)
        self._ids = itertools.count(self._id_base + 1)
        self._shipment_ids = itertools.count(40_000_000_000 + self._id_base % 10**9 + 1)
        self._payment_ids = itertools.count(60_000_000_000 + self._id_base % 10**9 + 1)
        self._claim_ids = itertools.count(5_000_000_000 + self._id_base % 10**8 + 1)
        self._invoice_ids = itertools.count(700_000_000 + self._id_base % 10**7 + 1)
        self._invoice_numbers = itertools.count(1001)
        self._imported_nfe_ids = itertools.count(429_348_053_945_000 + self._id_base % 10**6 + 1)

    # -- notifications ----------------------------------------------------------------------------------------

    @property
    def callback_url(self) -> str | None:
        return self._dispatcher.callback_url

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        self._dispatcher.callback_url = url

    @property
    def notifications(self) -> list[Notification]:
        """Every notification made, delivered or not, in order."""
        return self._dispatcher.notifications

    @property
    def notification_attempts(self) -> list[NotificationAttempt]:
        return self._dispatcher.attempts

    async def drain(self) -> None:
        """Wait until every notification so far was delivered or given up, and every scheduled NF-e issued."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._dispatcher.drain()

    # -- public API: orders and packs -------------------------------------------------------------------------

    def create_order(
        self,
        items: Sequence[ItemSpec] | None = None,
        *,
        site_id: str | None = None,
        status: str = "paid",
        logistic_type: str | None = "cross_docking",
        shipping_cost: Decimal | str | int = 0,
        notify: bool = True,
    ) -> Order:
        """One order (a cart of one). Without items, one drawn from the shared catalog (`seller_sku` is the
        catalog's SKU id). `logistic_type` None: no shipment (a not_specified sale). Notifies orders_v2."""
        _, orders = self._new_cart([items], site_id, status, logistic_type, shipping_cost, notify)
        return orders[0]

    def create_pack(
        self,
        carts: int | Sequence[Sequence[ItemSpec] | None] = 2,
        *,
        site_id: str | None = None,
        status: str = "paid",
        logistic_type: str | None = "cross_docking",
        shipping_cost: Decimal | str | int = 0,
        notify: bool = True,
    ) -> Pack:
        """A cart of several orders (one per listing bought) sharing one pack and one shipment: `carts` is
        the number of orders (items drawn) or each order's items."""
        if isinstance(carts, int):
            if carts < 1:
                raise ValueError("a pack needs at least one order")
            specs: list[Sequence[ItemSpec] | None] = [None] * carts
        else:
            specs = list(carts)
        pack, _ = self._new_cart(specs, site_id, status, logistic_type, shipping_cost, notify, force_pack=True)
        assert pack is not None
        return pack

    def order(self, order_id: int) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise KeyError(f"no order {order_id}")
        return found

    def pack(self, pack_id: int) -> Pack:
        found = self.packs.get(pack_id)
        if found is None:
            raise KeyError(f"no pack {pack_id}")
        return found

    def order_json(self, order_id: int, *, reveal: bool = False) -> JSON:
        order = self.order(order_id)
        return order_json(order, reveal=reveal, cart=self._in_cart(order))

    def pay(self, order_id: int, *, payments: int = 1, notify: bool = True) -> Order:
        """The buyer's payment is approved (split in `payments` payments): the order is paid, its buyer's
        data shows, its shipment moves to handling. Notifies orders_v2 (and shipments)."""
        order = self.order(order_id)
        if order.status not in UNPAID_STATUSES:
            raise ValueError(f"order {order_id} is {order.status}; only an unpaid order can be paid")
        if payments < 1:
            raise ValueError("payments must be at least 1")
        now = self._now()
        due = (
            order.items_total
            + order.shipping_cost
            - sum((p.total_paid_amount for p in order.payments if p.status == "approved"), Decimal(0))
        )
        order.payments = [p for p in order.payments if p.status == "approved"]
        site = SITES[order.site_id]
        share = quantize(due / payments, site)
        for index in range(payments):
            amount = share if index < payments - 1 else due - share * (payments - 1)
            order.payments.append(self._payment(order, amount, "approved", now))
        order.status = "paid"
        order.paid_at = order.paid_at or now
        order.date_closed = order.date_closed or now
        self._touch_order(order, now)
        shipment = self._shipment_of(order)
        if shipment is not None and shipment.status == "pending" and self._all_paid(shipment.order_ids):
            shipment.status, shipment.substatus = _paid_state(shipment)
            shipment.last_updated = now
            if _faturador_issues(shipment):
                self._schedule_invoice(order.id)
            if notify:
                self._notify("shipments", f"/shipments/{shipment.id}")
        self._refresh_pack(order, now)
        if notify:
            self._notify_order(order)
        return order

    def pay_pack(self, pack_id: int, *, notify: bool = True) -> Pack:
        pack = self.pack(pack_id)
        for order_id in pack.order_ids:
            if self.orders[order_id].status in UNPAID_STATUSES:
                self.pay(order_id, notify=notify)
        return pack

    def cancel(self, order_id: int, *, requested_by: str = "buyer", notify: bool = True) -> Order:
        """The order is cancelled (by the buyer, or by Mercado Libre): approved payments are refunded, the
        shipment is cancelled once all its orders are. Notifies orders_v2."""
        order = self.order(order_id)
        if order.status == "cancelled":
            raise ValueError(f"order {order_id} is already cancelled")
        now = self._now()
        order.status = "cancelled"
        order.cancel_detail = {
            "group": requested_by,
            "code": "buyer_cancel_express" if requested_by == "buyer" else "fraud",
            "description": "Cancelled by the buyer" if requested_by == "buyer" else "Cancelled by Mercado Libre",
            "requested_by": requested_by,
            "date": self._ml_now(now),
            "application_id": None,
        }
        for payment in order.payments:
            if payment.status == "approved":
                payment.status, payment.status_detail = "refunded", "refunded"
                payment.transaction_amount_refunded = payment.transaction_amount
                payment.date_last_modified = now
        self._touch_order(order, now)
        shipment = self._shipment_of(order)
        if shipment is not None and all(self.orders[i].status == "cancelled" for i in shipment.order_ids):
            shipment.status, shipment.substatus, shipment.last_updated = "cancelled", None, now
            if notify:
                self._notify("shipments", f"/shipments/{shipment.id}")
        self._refresh_pack(order, now)
        if notify:
            self._notify_order(order)
        return order

    def set_order_status(self, order_id: int, status: str, *, notify: bool = True) -> Order:
        """Any documented status, as is (e.g. pending_cancel, invalid): for the states the other calls do not
        reach. Notifies orders_v2."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
        order = self.order(order_id)
        order.status = status
        self._touch_order(order, self._now())
        if notify:
            self._notify_order(order)
        return order

    def refund(self, order_id: int, amount: Decimal | str | int, *, notify: bool = True) -> Order:
        """Part of a paid order is refunded: partially_refunded. Notifies orders_v2."""
        order = self.order(order_id)
        refund = to_decimal(amount, "amount")
        approved = [p for p in order.payments if p.status == "approved"]
        if order.status not in ("paid", "partially_refunded") or not approved:
            raise ValueError(f"order {order_id} is {order.status}; only a paid order can be refunded")
        payment = approved[0]
        if refund <= 0 or payment.transaction_amount_refunded + refund >= payment.transaction_amount:
            raise ValueError("a partial refund must be above 0 and below the payment's amount")
        now = self._now()
        payment.transaction_amount_refunded += refund
        payment.date_last_modified = now
        order.status = "partially_refunded"
        self._touch_order(order, now)
        if notify:
            self._notify_order(order)
        return order

    def notify_order(self, order_id: int, *, times: int = 1) -> list[str]:
        """Send (again) an orders_v2 notification for the order, `times` copies; returns their ids."""
        order = self.order(order_id)
        return self._notify("orders_v2", f"/orders/{order.id}", times=times)

    def split_pack(
        self, pack_id: int, groups: Sequence[Sequence[int]] | None = None, *, notify: bool = True
    ) -> list[Pack]:
        """Mercado Libre splits a cart: each group of orders (default: one per order) becomes a child pack,
        with the parent's id in `family_pack_id` and a shipment of its own. The parent pack is gone (404)
        and its shipment cancelled [INFERRED: the docs only describe the child's family_pack_id].
        Notifies orders_v2 for every order (its pack_id and shipping.id changed)."""
        parent = self.pack(pack_id)
        chosen = [list(group) for group in groups] if groups is not None else [[i] for i in parent.order_ids]
        flat = [order_id for group in chosen for order_id in group]
        if len(chosen) < 2 or any(not group for group in chosen) or sorted(flat) != sorted(parent.order_ids):
            raise ValueError("groups must be two or more non-empty groups holding each of the pack's orders once")
        now = self._now()
        old_shipment = self.shipments.get(parent.shipment_id) if parent.shipment_id is not None else None
        children = []
        for group in chosen:
            child = Pack(
                id=next(self._ids),
                status=parent.status,
                date_created=now,
                last_updated=now,
                buyer_id=parent.buyer_id,
                order_ids=list(group),
                shipment_id=None,
                family_pack_id=parent.id,
            )
            if old_shipment is not None:
                shipment = self._copy_shipment(old_shipment, group, now)
                child.shipment_id = shipment.id
            self.packs[child.id] = child
            for order_id in group:
                order = self.orders[order_id]
                order.pack_id, order.shipment_id = child.id, child.shipment_id
                self._touch_order(order, now)
            children.append(child)
        del self.packs[parent.id]
        if old_shipment is not None:
            old_shipment.status, old_shipment.substatus, old_shipment.last_updated = "cancelled", "pack_splitted", now
        if notify:
            for child in children:
                if child.shipment_id is not None:
                    self._notify("shipments", f"/shipments/{child.shipment_id}")
                for order_id in child.order_ids:
                    self._notify_order(self.orders[order_id])
        return children

    def change_pack_id(self, pack_id: int, *, notify: bool = True) -> Pack:
        """The pack gets a new id ("PackId may change over time"): the old id answers 404, every order points
        to the new one. Notifies orders_v2 for each order."""
        pack = self.packs.pop(pack_id, None)
        if pack is None:
            raise KeyError(f"no pack {pack_id}")
        now = self._now()
        pack.id = next(self._ids)
        pack.last_updated = now
        self.packs[pack.id] = pack
        for order_id in pack.order_ids:
            order = self.orders[order_id]
            order.pack_id = pack.id
            self._touch_order(order, now)
            if notify:
                self._notify_order(order)
        return pack

    def set_shipment_status(
        self,
        shipment_id: int,
        status: str,
        substatus: str | None = None,
        *,
        tracking_number: str | None = None,
        notify: bool = True,
    ) -> Shipment:
        """Move a shipment as Mercado Libre's logistics would (ready_to_ship, shipped, delivered...).
        Notifies shipments."""
        if status not in SHIPMENT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(SHIPMENT_STATUSES)}")
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise KeyError(f"no shipment {shipment_id}")
        shipment.status, shipment.substatus, shipment.last_updated = status, substatus, self._now()
        if tracking_number is not None:
            shipment.tracking_number = tracking_number
            shipment.tracking_method = "Correios" if shipment.site_id == "MLB" else "Mercado Envíos"
        if notify:
            self._notify("shipments", f"/shipments/{shipment.id}")
        return shipment

    # -- public API: claims and invoices ----------------------------------------------------------------------

    def open_claim(
        self,
        order_id: int,
        *,
        type: str = "mediations",
        stage: str = "claim",
        reason_id: str = "PDD9549",
        related_entities: Sequence[str] = (),
        notify: bool = True,
    ) -> Claim:
        """The buyer opens a claim on an order. Notifies the claims topic."""
        if type not in CLAIM_TYPES:
            raise ValueError(f"type must be one of {', '.join(CLAIM_TYPES)}")
        if stage not in CLAIM_STAGES:
            raise ValueError(f"stage must be one of {', '.join(CLAIM_STAGES)}")
        order = self.order(order_id)
        now = self._now()
        claim = Claim(
            id=next(self._claim_ids),
            order_id=order.id,
            site_id=order.site_id,
            type=type,
            stage=stage,
            status="opened",
            reason_id=reason_id,
            buyer_id=order.buyer.id,
            seller_id=order.seller_id,
            date_created=now,
            last_updated=now,
            related_entities=list(related_entities),
        )
        self.claims[claim.id] = claim
        if notify:
            self._notify_claim(claim)
        return claim

    def update_claim(
        self,
        claim_id: int,
        *,
        stage: str | None = None,
        close_reason: str | None = None,
        notify: bool = True,
    ) -> Claim:
        """Move a claim to another stage (e.g. dispute: Mercado Libre mediates) or close it with a
        resolution reason (e.g. payment_refunded). Notifies the claims topic."""
        claim = self.claims.get(claim_id)
        if claim is None:
            raise KeyError(f"no claim {claim_id}")
        if stage is not None:
            if stage not in CLAIM_STAGES:
                raise ValueError(f"stage must be one of {', '.join(CLAIM_STAGES)}")
            claim.stage = stage
        now = self._now()
        if close_reason is not None:
            claim.status = "closed"
            claim.resolution = {
                "reason": close_reason,
                "date_created": self._ml_now(now),
                "benefited": ["complainant"],
                "closed_by": "mediator" if claim.stage == "dispute" else "respondent",
                "applied_coverage": False,
            }
        claim.last_updated = now
        if notify:
            self._notify_claim(claim)
        return claim

    def issue_invoice(self, order_id: int, *, notify: bool = True) -> Invoice:
        """Mercado Libre's Faturador issues the NF-e of the order's cart (Brazil only): one invoice for all
        the orders of the pack. A Full shipment waiting for it (invoice_pending) becomes ready_to_ship."""
        order = self.order(order_id)
        if order.site_id != "MLB":
            raise ValueError("the Faturador issues NF-e for Mercado Livre Brasil only")
        if order.paid_at is None:
            raise ValueError(f"order {order_id} is not paid")
        existing = self._invoice_for(order.id)
        if existing is not None:
            return existing
        pack = self.packs.get(order.pack_id) if order.pack_id is not None else None
        order_ids = list(pack.order_ids) if pack is not None else [order.id]
        now = self._now()
        number, series = next(self._invoice_numbers), 1
        amount = sum((self.orders[i].items_total + self.orders[i].shipping_cost for i in order_ids), Decimal(0))
        key = nfe_key(_SP_STATE_CODE, now, self.seller_id, series, number)
        invoice = Invoice(
            id=next(self._invoice_ids),
            order_ids=order_ids,
            number=number,
            series=series,
            key=key,
            amount=amount,
            issued_at=now,
            xml=nfe_xml(key, number, series, f"{amount:.2f}", now),
        )
        self.invoices[invoice.id] = invoice
        shipment = self._shipment_of(order)
        if shipment is not None and shipment.substatus == "invoice_pending":
            if shipment.takes_nfe_import:
                self.imported_nfe[shipment.id] = self._held_nfe(shipment, invoice.xml.encode(), "application/xml", now)
            unlocked = "ready_to_print" if shipment.takes_nfe_import else "in_warehouse"
            shipment.status, shipment.substatus, shipment.last_updated = "ready_to_ship", unlocked, now
            if notify:
                self._notify("shipments", f"/shipments/{shipment.id}")
        if notify:
            self._notify("invoices", f"/users/{self.seller_id}/invoices/{invoice.id}")
        return invoice

    def import_nfe(
        self,
        shipment_id: int,
        xml: bytes,
        *,
        content_type: str = "application/xml",
        replace: bool = False,
        notify: bool = True,
    ) -> ImportedNfe:
        """The seller imports the sale's NF-e into a Brazilian shipment waiting for it (the API's `POST
        /shipments/{id}/invoice_data`, or Mercado Libre's panel): the label is released (ready_to_print).
        `replace` is the API's PUT: another NF-e for a shipment that holds one, no status change.
        MlApiError with Mercado Libre's refusal (mercadolibre_seller.NFE_REFUSALS). Notifies shipments."""
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise KeyError(f"no shipment {shipment_id}")
        in_cause = self.nfe_error_code_in == "cause"
        if shipment.site_id != "MLB":
            detail = f"shipment {shipment.id} is of site {shipment.site_id}"
            raise nfe_refusal("invalid_operation_for_site_id", in_cause=in_cause, detail=detail)
        document = read_nfe(xml, in_cause=in_cause)
        held = self.imported_nfe.get(shipment.id)
        if any(n.key == document.key for n in self.imported_nfe.values() if not (replace and n is held)):
            raise nfe_refusal("duplicated_fiscal_key", in_cause=in_cause)
        if replace and held is None:
            raise nfe_refusal("not_found_shipment_invoice", in_cause=in_cause)
        if not replace:
            self._check_waits_for_nfe(shipment, held, in_cause=in_cause)
        now = self._now()
        nfe = self._held_nfe(shipment, xml, content_type, now, document)
        self.imported_nfe[shipment.id] = nfe
        if not replace:
            shipment.status, shipment.substatus = "ready_to_ship", "ready_to_print"
        shipment.last_updated = now
        if notify:
            self._notify("shipments", f"/shipments/{shipment.id}")
        return nfe

    def _check_waits_for_nfe(self, shipment: Shipment, held: ImportedNfe | None, *, in_cause: bool) -> None:
        if held is not None:
            raise nfe_refusal("shipment_invoice_already_saved", in_cause=in_cause)
        if not shipment.takes_nfe_import:
            detail = f"shipment {shipment.id} is {shipment.type}, which takes no NF-e import"
            raise nfe_refusal("invalid_shipment", in_cause=in_cause, detail=detail)
        if shipment.substatus != "invoice_pending":
            detail = f"shipment {shipment.id} is {shipment.status}/{shipment.substatus}, not invoice_pending"
            raise nfe_refusal("invalid_shipment", in_cause=in_cause, detail=detail)

    def _held_nfe(
        self,
        shipment: Shipment,
        xml: bytes,
        content_type: str,
        now: datetime,
        document: NfeDocument | None = None,
    ) -> ImportedNfe:
        read = document or read_nfe(xml, in_cause=False)
        return ImportedNfe(
            id=next(self._imported_nfe_ids),
            shipment_id=shipment.id,
            key=read.key,
            xml=xml,
            content_type=content_type,
            imported_at=now,
            number=read.number,
            series=read.series,
            issued=read.issued,
            amount=read.amount,
        )

    # -- carts ------------------------------------------------------------------------------------------------

    def _new_cart(
        self,
        carts: Sequence[Sequence[ItemSpec] | None],
        site_id: str | None,
        status: str,
        logistic_type: str | None,
        shipping_cost: Decimal | str | int,
        notify: bool,
        *,
        force_pack: bool = False,
    ) -> tuple[Pack | None, list[Order]]:
        site = SITES.get(site_id or self.site_id)
        if site is None:
            raise ValueError(f"site_id must be one of {', '.join(SITES)}")
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
        if logistic_type is not None and logistic_type not in LOGISTIC_TYPES:
            raise ValueError(f"logistic_type must be one of {', '.join(LOGISTIC_TYPES)} or null")
        if not carts:
            raise ValueError("a cart needs at least one order")
        freight = quantize(to_decimal(shipping_cost, "shipping_cost"), site)
        now = self._now()
        buyer = self._buyer(site.id)
        orders = []
        for index, specs in enumerate(carts):
            lines = [self._line(spec, site.id) for spec in (specs if specs is not None else [self._drawn_item()])]
            if not lines:
                raise ValueError("an order needs at least one item")
            order = Order(
                id=next(self._ids),
                site_id=site.id,
                status=status,
                date_created=now,
                last_updated=now,
                lines=lines,
                buyer=buyer,
                seller_id=self.seller_id,
                # The buyer pays the cart's freight once: on its first order.
                shipping_cost=freight if index == 0 and logistic_type is not None else Decimal(0),
            )
            self._apply_initial_status(order, now)
            orders.append(order)
            self.orders[order.id] = order
        shipment = None
        if logistic_type is not None:
            shipment = Shipment(
                id=next(self._shipment_ids),
                site_id=site.id,
                logistic_type=logistic_type,
                status="pending",
                substatus=None,
                date_created=now,
                last_updated=now,
                order_ids=[o.id for o in orders],
                buyer_id=buyer.id,
                declared_value=sum((o.items_total for o in orders), Decimal(0)),
                cost=freight,
                estimated_delivery=now + timedelta(days=self._rng.randint(2, 8)),
            )
            self.shipments[shipment.id] = shipment
            for order in orders:
                order.shipment_id = shipment.id
        pack = None
        if force_pack or len(orders) > 1 or self.pack_single_orders:
            pack = Pack(
                id=next(self._ids),
                status="filling",
                date_created=now,
                last_updated=now,
                buyer_id=buyer.id,
                order_ids=[o.id for o in orders],
                shipment_id=shipment.id if shipment is not None else None,
            )
            self.packs[pack.id] = pack
            for order in orders:
                order.pack_id = pack.id
        for order in orders:
            self._index(order)
        paid = [o for o in orders if o.status == "paid"]
        if shipment is not None and paid and len(paid) == len(orders):
            shipment.status, shipment.substatus = _paid_state(shipment)
            if _faturador_issues(shipment):
                self._schedule_invoice(orders[0].id)
        if shipment is not None and status == "cancelled":
            shipment.status = "cancelled"
        if pack is not None:
            self._refresh_pack(orders[0], now)
        if notify:
            for order in orders:
                self._notify_order(order)
        return pack, orders

    def _apply_initial_status(self, order: Order, now: datetime) -> None:
        due = order.items_total + order.shipping_cost
        if order.status in ("paid", "partially_refunded", "pending_cancel"):
            order.payments.append(self._payment(order, due, "approved", now))
            order.paid_at = order.date_closed = now
        elif order.status == "payment_in_process":
            order.payments.append(self._payment(order, due, "in_process", now))
        elif order.status == "partially_paid":
            half = quantize(due / 2, SITES[order.site_id])
            order.payments.append(self._payment(order, half, "approved", now))
        elif order.status == "cancelled":
            order.cancel_detail = {
                "group": "buyer",
                "code": "buyer_cancel_express",
                "description": "Cancelled by the buyer",
                "requested_by": "buyer",
                "date": self._ml_now(now),
                "application_id": None,
            }

    def _payment(self, order: Order, amount: Decimal, status: str, now: datetime) -> Payment:
        # The shipping part of a payment, for the first one covering it.
        shipping = min(order.shipping_cost, amount) if not order.payments else Decimal(0)
        return Payment(
            id=next(self._payment_ids),
            status=status,
            status_detail="accredited" if status == "approved" else "pending_contingency",
            transaction_amount=amount - shipping,
            shipping_cost=shipping,
            total_paid_amount=amount,
            date_created=now,
            date_approved=now if status == "approved" else None,
            date_last_modified=now,
        )

    def _buyer(self, site_id: str) -> Buyer:
        buyer_id = self._rng.randint(100_000_000, 999_999_999)
        first, last = self._rng.choice(_FIRST_NAMES), self._rng.choice(_LAST_NAMES)
        doc_type = {"MLB": "CPF", "MLA": "DNI", "MLM": "RFC", "MLC": "RUT", "MCO": "CC"}.get(site_id, "CI")
        return Buyer(
            id=buyer_id,
            nickname=_ascii(f"{first}{last}{buyer_id % 1000}").upper(),
            first_name=first,
            last_name=last,
            email=f"{first.lower()[:3]}.{buyer_id:x}@mail.mercadolivre.com",
            doc_type=doc_type,
            doc_number=f"{self._rng.randint(10**10, 10**11 - 1)}",
            phone=f"11 9{self._rng.randint(1000, 9999)}-{self._rng.randint(1000, 9999)}",
        )

    def _drawn_item(self) -> ItemSpec:
        sku = sku_by_id()[self._rng.choice(SELLABLE_SKU_IDS)]
        return ItemSpec(sku.name, Decimal(sku.price) / 100, quantity=self._rng.randint(1, 3), seller_sku=sku.id)

    def _line(self, spec: ItemSpec, site_id: str) -> OrderLine:
        site = SITES[site_id]
        if spec.quantity < 1:
            raise ValueError("quantity must be at least 1")
        unit = quantize(to_decimal(spec.unit_price, "unit_price"), site)
        full = quantize(to_decimal(spec.full_unit_price, "full_unit_price"), site) if spec.full_unit_price else unit
        if full < unit:
            raise ValueError("full_unit_price must not be below unit_price")
        return OrderLine(
            item_id=spec.item_id or f"{site_id}{self._rng.randint(10**9, 10**10 - 1)}",
            title=spec.title,
            category_id=f"{site_id}{self._rng.randint(1000, 99999)}",
            seller_sku=spec.seller_sku,
            variation_id=spec.variation_id,
            quantity=spec.quantity,
            unit_price=unit,
            full_unit_price=full,
            sale_fee=quantize(unit * Decimal("0.12"), site),
        )

    def _copy_shipment(self, old: Shipment, order_ids: list[int], now: datetime) -> Shipment:
        shipment = Shipment(
            id=next(self._shipment_ids),
            site_id=old.site_id,
            logistic_type=old.logistic_type,
            status=old.status,
            substatus=old.substatus,
            date_created=now,
            last_updated=now,
            order_ids=list(order_ids),
            buyer_id=old.buyer_id,
            declared_value=sum((self.orders[i].items_total for i in order_ids), Decimal(0)),
            cost=old.cost if old.order_ids[0] in order_ids else Decimal(0),
            estimated_delivery=old.estimated_delivery,
        )
        self.shipments[shipment.id] = shipment
        return shipment

    def _refresh_pack(self, order: Order, now: datetime) -> None:
        pack = self.packs.get(order.pack_id) if order.pack_id is not None else None
        if pack is None:
            return
        statuses = [self.orders[i].status for i in pack.order_ids]
        if all(s == "cancelled" for s in statuses):
            pack.status, pack.status_detail = "cancelled", "cancelled_by_buyer"
        elif all(s not in UNPAID_STATUSES for s in statuses if s != "cancelled"):
            pack.status, pack.status_detail = "released", None
        else:
            pack.status = "filling"
        pack.last_updated = now

    def _all_paid(self, order_ids: list[int]) -> bool:
        return all(self.orders[i].paid_at is not None for i in order_ids if self.orders[i].status != "cancelled")

    def _shipment_of(self, order: Order) -> Shipment | None:
        return self.shipments.get(order.shipment_id) if order.shipment_id is not None else None

    def _in_cart(self, order: Order) -> bool:
        pack = self.packs.get(order.pack_id) if order.pack_id is not None else None
        return pack is not None and len(pack.order_ids) > 1

    def _invoice_for(self, order_id: int) -> Invoice | None:
        return next((i for i in self.invoices.values() if order_id in i.order_ids), None)

    def _schedule_invoice(self, order_id: int) -> None:
        """The Faturador issues a Full NF-e on its own, a moment after payment (random up to 0.5 s unless
        `invoice_delay_seconds` pins it)."""
        delay = self._rng.uniform(0, MAX_INVOICE_DELAY) if self._invoice_delay is None else self._invoice_delay

        async def issue() -> None:
            await asyncio.sleep(delay)
            order = self.orders.get(order_id)
            if order is not None and order.status != "cancelled":
                self.issue_invoice(order_id)

        try:
            task = asyncio.get_running_loop().create_task(issue())
        except RuntimeError:  # no event loop (a synchronous caller): issue it now
            self.issue_invoice(order_id)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- time, index, notifications ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        # Mercado Libre's dates have millisecond precision.
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _ml_now(self, now: datetime) -> str:
        return ml_date(now) or ""

    def _touch_order(self, order: Order, now: datetime) -> None:
        order.last_updated = now
        self._index(order)

    def _index(self, order: Order) -> None:
        delay = self._rng.uniform(0, MAX_SEARCH_INDEX_DELAY) if self._index_delay is None else self._index_delay
        order.index.append((self._clock() + delay, order.last_updated))

    def _notify(self, topic: str, resource: str, *, times: int = 1, actions: list[str] | None = None) -> list[str]:
        return self._dispatcher.notify(
            topic, resource, user_id=self.seller_id, application_id=self.application_id, actions=actions, times=times
        )

    def _notify_order(self, order: Order) -> None:
        self._notify("orders_v2", f"/orders/{order.id}")

    def _notify_claim(self, claim: Claim) -> None:
        resource = f"/post-purchase/v1/claims/{claim.id}"
        if self.claims_topic == "post_purchase":
            self._notify("post_purchase", resource, actions=["claims"])
        else:
            self._notify("claims", resource)


def _paid_state(shipment: Shipment) -> tuple[str, str | None]:
    """A shipment's (status, substatus) once its cart is paid (see the module's docstring)."""
    if shipment.site_id == "MLB" and shipment.logistic_type == "fulfillment":
        return "handling", "invoice_pending"
    if shipment.takes_nfe_import:
        return "ready_to_ship", "invoice_pending"
    if shipment.mode == "me2":
        return "ready_to_ship", "printed"
    return "handling", None


def _faturador_issues(shipment: Shipment) -> bool:
    """Mercado Libre's Faturador issues the NF-e on its own: Brazilian Full."""
    return shipment.site_id == "MLB" and shipment.logistic_type == "fulfillment"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
