"""Walking a marketplace's changed-orders listing page by page (the poller and `connector import`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connector.marketplaces.base import MarketplaceAdapter, MarketplaceError
from connector.models import ChangesPage, ListingPosition


async def walk_changes(
    adapter: MarketplaceAdapter, start: ListingPosition, *, page_size: int
) -> AsyncIterator[ChangesPage]:
    """The pages from `start` to the listing's end as of now. Each page carries the position after it,
    so a caller can checkpoint between pages and walk on from there after a crash."""
    position, previous = start, None
    while True:
        page = await adapter.changed_orders_page(position, limit=page_size)
        if page.changes and page.changes == previous:
            # A marketplace that ignores the position would be walked forever.
            raise MarketplaceError(
                "the marketplace's changed-orders listing does not advance", status=None, transient=False
            )
        yield page
        if page.last:
            return
        previous, position = page.changes, page.next
