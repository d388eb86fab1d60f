"""The changed-orders listing (what the poller and `connector import` walk) from Mercado Libre's order search.

Mercado Libre documents `GET /orders/search?seller={id}` with the filters `order.date_last_updated.from`
and `.to` and the sorts `date_asc` / `date_desc`, 50 results a page by default, walked with `offset` and
`limit` (https://developers.mercadolivre.com.br/gerenciamento-de-vendas, "Search orders", "Filter orders",
"Sort orders"). It documents no sort by last change: `date_asc` sorts by the order's date. The connector's
listing contract is keyset on the last change (connector/marketplaces/listing.py: the changes at or after
`since`, oldest change first, minus the first `skip` of those at exactly `since`), so an order that changes
during a walk is met again later in it instead of shifting an unread entry into a page already read.

So a page is computed from a window of the search that is small enough to read whole:
- the search from `since` (`order.date_last_updated.from`, inclusive) says how many orders changed since;
  when they fit in `window` (200) entries, they are read whole (4 requests at most) and sorted by their
  `last_updated` (then id) here;
- when more changed (a backlog), `order.date_last_updated.to` bounds the window: its end is searched for
  (the totals of a few narrower searches) until the window holds a page's worth of unread changes (at least
  one; at most half a window is asked for, so such an end exists) and at most `window` entries; past the
  window's end lie only later changes, so its oldest changes are the listing's oldest.
A page holds at most `limit` of the window's changes; `last` says whether any change is left after it.
Offsets stay below `window` (plus the changes of one instant), whatever the backlog: Mercado Libre's
search has an offset ceiling on other resources, and none documented here, so the walk never relies on
deep offsets. Results whose `last_updated` lies before `since` mean the filter was ignored: the walk stops
with an error rather than loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.marketplaces.base import MarketplaceError
from connector.marketplaces.mercadolibre.client import MercadoLibreClient
from connector.marketplaces.mercadolibre.shapes import ListedOrder, SearchPage, read
from connector.models import ChangesPage, ListingPosition, OrderChange

PAGE = 50  # the documented default page size, asked for explicitly
DEFAULT_WINDOW = 200
# A window is never read past this many entries (changes at one instant beyond it cannot be walked).
HARD_CAP = 1000
MAX_PROBES = 40
_MS = timedelta(milliseconds=1)


@dataclass
class _Window:
    until: datetime | None
    first: SearchPage


class OrderSearch:
    def __init__(self, client: MercadoLibreClient, *, seller_id: str, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be positive")
        self._client = client
        self._seller_id = seller_id
        self._window = window

    async def page(self, position: ListingPosition, *, limit: int) -> ChangesPage:
        since = position.since
        first = await self._search(since, None, 0)
        total = first.paging.total
        if total == 0 or not first.results:
            return ChangesPage(changes=[], next=position, last=True)
        window = _Window(None, first)
        if total > self._window:
            # At least one unread change; better, a page's worth (half a window at most, so one exists).
            need = max(position.skip + 1, min(position.skip + limit, self._window // 2))
            window = await self._narrow(since, first, need=need)
        entries = await self._rest(since, window)
        ordered = _ordered(entries)
        if since is not None and ordered and ordered[0].updated_at < since:
            raise MarketplaceError(
                "Mercado Libre's order search did not honour order.date_last_updated.from: the listing cannot "
                "be walked",
                status=None,
                transient=False,
            )
        at_since = [change for change in ordered if change.updated_at == since]
        later = [change for change in ordered if since is None or change.updated_at > since]
        if since is None:
            remaining = ordered[position.skip :]
        else:
            remaining = at_since[position.skip :] + later
        changes = remaining[:limit]
        if not changes:
            return ChangesPage(changes=[], next=position, last=True)
        newest = changes[-1].updated_at
        skip = position.skip + len(changes) if newest == since else sum(c.updated_at == newest for c in changes)
        return ChangesPage(
            changes=changes,
            next=ListingPosition(since=newest, skip=skip),
            last=position.skip + len(changes) >= total,
        )

    async def _narrow(self, since: datetime | None, first: SearchPage, *, need: int) -> _Window:
        """A window [since, until] holding at least `need` entries and at most `window` (or every entry of
        one instant, up to HARD_CAP). The count of entries up to an instant only grows with it, so the end
        is found by bracketing: `low` holds fewer than `need`, `high` more than `window`."""
        if since is not None:
            low, low_count = since - _MS, 0
        else:
            # Nothing changed before the oldest order was created: the first page holds the oldest orders.
            low, low_count = min(entry.date_created for entry in first.results) - _MS, 0
        base = low
        high: datetime | None = None
        high_page: SearchPage | None = None
        high_count = first.paging.total
        stamps = sorted(entry.last_updated for entry in first.results)
        # The need-th change among the oldest orders: at least `need` entries lie at or before it.
        probe = stamps[min(need, len(stamps)) - 1]
        for attempt in range(MAX_PROBES):
            probe = max(probe, low + _MS)
            if high is not None:
                probe = min(probe, high - _MS)
            page = await self._search(since, probe, 0)
            count = page.paging.total
            if need <= count <= self._window:
                return _Window(probe, page)
            if count < need:
                low, low_count = probe, count
            else:
                high, high_page, high_count = probe, page, count
            if high is None:
                probe = low + max(2 * (low - base), timedelta(seconds=1))
                continue
            if high - low <= _MS:
                # More than `window` entries changed at the instant `high`: read them all, within reason.
                if high_count <= HARD_CAP and high_page is not None:
                    return _Window(high, high_page)
                raise MarketplaceError(
                    f"{high_count} Mercado Libre orders changed at the same instant ({high.isoformat()}): the "
                    f"listing cannot be walked past {HARD_CAP}",
                    status=None,
                    transient=False,
                )
            if attempt % 2:
                probe = low + (high - low) / 2
            else:
                target = (need + self._window) / 2
                share = (target - low_count) / max(high_count - low_count, 1)
                probe = low + (high - low) * min(max(share, 0.0), 1.0)
            probe = _whole_ms(probe)
        raise MarketplaceError(
            "Mercado Libre's order search did not narrow to a readable window of changes",
            status=None,
            transient=True,
        )

    async def _rest(self, since: datetime | None, window: _Window) -> list[ListedOrder]:
        entries = list(window.first.results)
        total = min(window.first.paging.total, HARD_CAP)
        offset = len(entries)
        while offset < total:
            page = await self._search(since, window.until, offset)
            if not page.results:
                break
            entries.extend(page.results)
            offset += len(page.results)
        return entries

    async def _search(self, since: datetime | None, until: datetime | None, offset: int) -> SearchPage:
        params: dict[str, str | int] = {"seller": self._seller_id, "sort": "date_asc", "offset": offset, "limit": PAGE}
        if since is not None:
            params["order.date_last_updated.from"] = _stamp(since)
        if until is not None:
            params["order.date_last_updated.to"] = _stamp(until)
        data = await self._client.get_json("/orders/search", what="the order search", params=params)
        try:
            return read(SearchPage, data)
        except ValueError as exc:
            raise MarketplaceError(
                f"Mercado Libre's order search cannot be read: {exc}", status=None, transient=False
            ) from None


def _stamp(moment: datetime) -> str:
    """An instant as Mercado Libre writes dates: milliseconds and an offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


def _whole_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _ordered(entries: list[ListedOrder]) -> list[OrderChange]:
    """One change per order (its latest, should pages overlap), oldest first, then by id."""
    latest: dict[str, ListedOrder] = {}
    for entry in entries:
        seen = latest.get(entry.id)
        if seen is None or entry.last_updated > seen.last_updated:
            latest[entry.id] = entry
    ordered = sorted(latest.values(), key=lambda e: (e.last_updated, int(e.id)))
    return [OrderChange(marketplace_order_id=e.id, updated_at=e.last_updated) for e in ordered]
