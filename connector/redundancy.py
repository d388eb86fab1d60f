"""Whether a listed change still needs a hand-off: the poller's guard against signaling an order whose
workflow already knows, or is about to learn, what the listing shows.

The webhook usually hands an order off first; without this guard the next poll would signal it again and
the workflow would read the marketplace again, for nothing. The store's hand-off record answers it:

- COVERED: the workflow's latest read saw this version of the order or a newer one; nothing to do.
- OWED: the order was handed off and its workflow has not begun reading since; that read will see this
  change, so the poller checks again at its next poll instead of signaling twice. A workflow that does
  not read within OWED_GRACE (stuck, or terminated) is signaled again.
- NEW: a change the connector has never heard of, younger than the webhook grace: its webhook is usually
  on the way (the poller is the safety net, not the first path), so it waits for the next poll too.
- HAND_OFF: a change the connector has not seen (or a marketplace that gives no version): signal it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from connector.models import OrderChange
from connector.store.models import HandoffRecord

OWED_GRACE = timedelta(minutes=5)


class Verdict(StrEnum):
    HAND_OFF = "hand-off"
    COVERED = "covered"
    OWED = "owed"
    NEW = "new"


def verdict(change: OrderChange, record: HandoffRecord | None, now: datetime, *, webhook_grace: timedelta) -> Verdict:
    """`now` is the connector's clock and `change.updated_at` the marketplace's: a skewed marketplace clock
    only makes a new change wait a little longer or less (never forever: it ages on the next polls)."""
    if record is None:
        return Verdict.NEW if now - change.updated_at < webhook_grace else Verdict.HAND_OFF
    if record.version is not None and record.version >= change.updated_at:
        return Verdict.COVERED
    if unread_notification(record) and record.notified_at is not None and now - record.notified_at < OWED_GRACE:
        return Verdict.OWED
    return Verdict.HAND_OFF


def unread_notification(record: HandoffRecord | None) -> bool:
    """The order was handed off after its workflow's latest marketplace read began (or before any read)."""
    if record is None or record.notified_at is None:
        return False
    return record.read_at is None or record.notified_at > record.read_at
