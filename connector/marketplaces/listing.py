"""Walking a marketplace's changed-orders listing page by page (the poller and `connector import`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import ChangesPage, ListingPosition, OrderChange


async def read_page(
    adapter: MarketplaceAdapter, position: ListingPosition, *, page_size: int, previous_last: OrderChange | None
) -> ChangesPage:
    """The page at `position`, the one after a page that ended with `previous_last`. A page that ends with
    the same entry did not advance (that entry was skipped by the position): a marketplace that ignores
    the position would otherwise be walked forever."""
    page = await adapter.changed_orders_page(position, limit=page_size)
    if page.changes and page.changes[-1] == previous_last:
        raise MarketplaceError(
            "the marketplace's changed-orders listing does not advance", status=None, transient=False
        )
    return page


async def walk_changes(
    adapter: MarketplaceAdapter, start: ListingPosition, *, page_size: int
) -> AsyncIterator[ChangesPage]:
    """The pages from `start` to the listing's end as of now. Each page carries the position after it,
    so a caller can checkpoint between pages and walk on from there after a crash."""
    position, previous_last = start, None
    while True:
        page = await read_page(adapter, position, page_size=page_size, previous_last=previous_last)
        yield page
        if page.last:
            return
        position, previous_last = page.next, page.changes[-1]
