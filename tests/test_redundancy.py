"""The poller's hand-off verdict for a listed change, against the order's hand-off record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.models import OrderChange
from connector.redundancy import OWED_GRACE, Verdict, verdict
from connector.store.models import HandoffRecord

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
GRACE = timedelta(seconds=30)
CHANGED = NOW - timedelta(minutes=10)  # the listed change, on the marketplace's clock
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # Never heard of: hand it off (the listing is the only news of this order).
        (None, Verdict.HAND_OFF),
        # The workflow read this version, or a newer one.
        (HandoffRecord(notified_at=NOW - 60 * S, read_at=NOW - 59 * S, version=CHANGED), Verdict.COVERED),
        (HandoffRecord(read_at=NOW - 60 * S, version=CHANGED + S), Verdict.COVERED),
        # Read before this change: a real change the webhook missed.
        (HandoffRecord(notified_at=NOW - 60 * S, read_at=NOW - 59 * S, version=CHANGED - S), Verdict.HAND_OFF),
        # Handed off, read still to come (or under way): that read will see this change.
        (HandoffRecord(notified_at=NOW - 2 * S), Verdict.OWED),
        (HandoffRecord(notified_at=NOW - 2 * S, read_at=NOW - 9 * S, version=CHANGED - S), Verdict.OWED),
        # ...but a workflow that has not read for longer than the grace is signaled again.
        (HandoffRecord(notified_at=NOW - OWED_GRACE - S), Verdict.HAND_OFF),
        # A marketplace that gives no version: every listed change after a read is handed off.
        (HandoffRecord(notified_at=NOW - 60 * S, read_at=NOW - 59 * S), Verdict.HAND_OFF),
    ],
)
def test_a_listed_change_is_handed_off_only_when_no_read_covers_it(
    record: HandoffRecord | None, expected: Verdict
) -> None:
    change = OrderChange(marketplace_order_id="1001", updated_at=CHANGED)
    assert verdict(change, record, NOW, webhook_grace=GRACE) is expected


def test_a_new_change_waits_for_its_webhook_within_the_grace() -> None:
    fresh = OrderChange(marketplace_order_id="1001", updated_at=NOW - 5 * S)
    assert verdict(fresh, None, NOW, webhook_grace=GRACE) is Verdict.NEW
    assert verdict(fresh, None, NOW + GRACE, webhook_grace=GRACE) is Verdict.HAND_OFF
    assert verdict(fresh, None, NOW, webhook_grace=timedelta(0)) is Verdict.HAND_OFF
