"""The order store's behaviour, each test on SQLite and on PostgreSQL.

PostgreSQL comes from CONNECTOR_TEST_POSTGRES_URL (scripts/ci-postgres.sh prints one). Without it the
PostgreSQL cases skip, except under CI=true, where they fail: CI must exercise both backends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from temporalio.testing import ActivityEnvironment

from connector.logbook import Logbook
from connector.models import ProblemKind, SkuProblem, ValidationReport
from connector.store.base import OrderStore, StoreError, open_store
from connector.store.models import HandoffRecord, IdMapping, LogMessage, LogStatus, StoredToken, TokenWrite
from connector.store.sql import SqlStore
from connector.store.sqlite import SqliteDriver

ACCOUNT = "seller"
DAY = date(2024, 5, 1)
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def message(id: str, **overrides: object) -> LogMessage:
    values: dict[str, object] = {
        "id": id,
        "code": "A",
        "operation": "Order integration",
        "direction": "Marketplace to VTEX",
        "content_source": '{"id": "1001"}',
        "business_message": "The order 1001 was created in VTEX successfully under the ID MKP-1001-01.",
        "status": LogStatus.SUCCESS,
        "account": ACCOUNT,
        "connection": "reference",
        "marketplace_order_id": "1001",
        "vtex_order_id": "MKP-1001-01",
        "created_at": NOON,
    }
    values.update(overrides)
    return LogMessage.model_validate(values)


def _postgres_base_url() -> str:
    url = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
    if url:
        return url
    hint = "set CONNECTOR_TEST_POSTGRES_URL (scripts/ci-postgres.sh starts PostgreSQL and prints one)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must test the PostgreSQL store: {hint}")
    pytest.skip(f"PostgreSQL store not tested: {hint}")


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards: tests never see each other's rows."""
    base = _postgres_base_url()
    schema = sql.Identifier(f"test_{uuid.uuid4().hex[:12]}")
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    parts = urlsplit(base)
    options = urlencode({"options": f"-csearch_path={schema.as_string()}"})
    yield urlunsplit(parts._replace(query=f"{parts.query}&{options}" if parts.query else options))
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as admin:
        await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'orders.db'}"
    value: str = request.getfixturevalue("postgres_url")
    return value


@pytest_asyncio.fixture
async def store(url: str) -> AsyncIterator[OrderStore]:
    opened = open_store(url)
    yield opened
    await opened.aclose()


async def test_a_written_message_reads_back_unchanged(store: OrderStore) -> None:
    written = message("op-1", content_translated='{"x": 1}', content_destination="é ✓")
    await store.write_log(written)
    assert await store.logs(account=ACCOUNT, day=DAY) == [written]


async def test_writing_an_id_twice_keeps_the_first_row(store: OrderStore) -> None:
    first = message("op-1")
    await store.write_log(first)
    await store.write_log(message("op-1", business_message="a retry", status=LogStatus.ERROR))
    assert await store.logs(account=ACCOUNT, day=DAY) == [first]


async def test_day_is_the_utc_date_of_created_at(store: OrderStore) -> None:
    before_midnight = message("late", created_at=datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC))
    after_midnight = message("early", created_at=datetime(2024, 5, 2, 0, 0, tzinfo=UTC))
    # 01:00 at UTC+3 is 22:00 UTC the day before; a naive time is taken as UTC.
    east = message("east", created_at=datetime(2024, 5, 2, 1, 0, tzinfo=timezone(timedelta(hours=3))))
    naive = message("naive", created_at=datetime(2024, 5, 1, 8, 0))
    for written in (before_midnight, after_midnight, east, naive):
        await store.write_log(written)
    assert [m.id for m in await store.logs(account=ACCOUNT, day=DAY)] == ["naive", "east", "late"]
    assert [m.id for m in await store.logs(account=ACCOUNT, day=date(2024, 5, 2))] == ["early"]
    assert all(m.created_at.tzinfo == UTC for m in await store.logs(account=ACCOUNT, day=DAY))


async def test_logs_are_ordered_by_created_at_then_id(store: OrderStore) -> None:
    later = NOON + timedelta(microseconds=1)
    for id, created_at in (("c", later), ("b", NOON), ("a", NOON), ("B", NOON), ("0", later)):
        await store.write_log(message(id, created_at=created_at))
    assert [m.id for m in await store.logs(account=ACCOUNT, day=DAY)] == ["B", "a", "b", "0", "c"]


async def test_logs_come_a_page_at_a_time_in_order(store: OrderStore) -> None:
    later = NOON + timedelta(microseconds=1)
    for id, created_at in (("c", later), ("b", NOON), ("a", NOON), ("B", NOON), ("0", later)):
        await store.write_log(message(id, created_at=created_at))
    pages = [
        [m.id for m in await store.logs(account=ACCOUNT, day=DAY, limit=2, offset=offset)] for offset in (0, 2, 4, 6)
    ]
    assert pages == [["B", "a"], ["b", "0"], ["c"], []]


async def test_logs_filter_by_account_status_order_and_connection(store: OrderStore) -> None:
    await store.write_log(message("ok"))
    await store.write_log(message("failed", status=LogStatus.ERROR, marketplace_order_id="1002"))
    await store.write_log(message("held", status=LogStatus.ALERT, connection="other"))
    await store.write_log(message("elsewhere", account="another-seller"))

    async def ids(
        statuses: Collection[LogStatus] | None = None,
        marketplace_order_id: str | None = None,
        connection: str | None = None,
    ) -> list[str]:
        found = await store.logs(
            account=ACCOUNT,
            day=DAY,
            statuses=statuses,
            marketplace_order_id=marketplace_order_id,
            connection=connection,
        )
        return [m.id for m in found]

    assert await ids() == ["failed", "held", "ok"]
    assert await ids(statuses={LogStatus.SUCCESS, LogStatus.ERROR}) == ["failed", "ok"]
    assert await ids(statuses=[LogStatus.PENDING]) == []
    assert await ids(statuses=[]) == []
    assert await ids(marketplace_order_id="1002") == ["failed"]
    assert await ids(connection="other") == ["held"]
    assert await ids(connection="reference", statuses=[LogStatus.ALERT]) == []
    assert await ids(connection="reference", marketplace_order_id="1001") == ["ok"]


async def test_resolve_finds_a_mapping_by_either_id(store: OrderStore) -> None:
    mapping = IdMapping(connection="reference", marketplace_order_id="1001", vtex_order_id="MKP-1001-01")
    await store.map_order(mapping)
    assert await store.resolve("reference", "1001") == mapping
    assert await store.resolve("reference", "MKP-1001-01") == mapping
    assert await store.resolve("other", "1001") is None
    assert await store.resolve("reference", "1002") is None


async def test_map_order_is_an_idempotent_upsert(store: OrderStore) -> None:
    mapping = IdMapping(connection="reference", marketplace_order_id="1001", vtex_order_id="MKP-1001-01")
    await store.map_order(mapping)
    await store.map_order(mapping)
    assert await store.resolve("reference", "1001") == mapping
    moved = mapping.model_copy(update={"vtex_order_id": "MKP-1001-02"})
    await store.map_order(moved)
    assert await store.resolve("reference", "MKP-1001-02") == moved
    assert await store.resolve("reference", "MKP-1001-01") is None


async def test_a_marketplace_id_match_wins_over_a_vtex_id_match(store: OrderStore) -> None:
    by_vtex = IdMapping(connection="reference", marketplace_order_id="1", vtex_order_id="X")
    by_marketplace = IdMapping(connection="reference", marketplace_order_id="X", vtex_order_id="Y")
    await store.map_order(by_vtex)
    await store.map_order(by_marketplace)
    assert await store.resolve("reference", "X") == by_marketplace


async def test_a_delivery_id_is_remembered_once_per_connection(store: OrderStore) -> None:
    assert await store.delivery_seen("c1", "delivery-1") is False
    await asyncio.gather(
        store.remember_delivery("c1", "delivery-1"),
        store.remember_delivery("c1", "delivery-1"),  # two intakes racing on one delivery: no error
    )
    assert await store.delivery_seen("c1", "delivery-1") is True
    assert await store.delivery_seen("c2", "delivery-1") is False


async def test_concurrent_writes_all_land_once(store: OrderStore) -> None:
    writes = [store.write_log(message(f"op-{n:03}")) for n in range(200)]
    duplicates = [store.write_log(message(f"op-{n:03}", business_message="dup")) for n in range(0, 200, 10)]
    maps = [
        store.map_order(IdMapping(connection="reference", marketplace_order_id=str(n), vtex_order_id=f"V{n}"))
        for n in range(50)
    ]
    await asyncio.gather(*writes, *duplicates, *maps)
    found = await store.logs(account=ACCOUNT, day=DAY)
    assert [m.id for m in found] == [f"op-{n:03}" for n in range(200)]
    assert all(m.business_message != "dup" for m in found)
    assert await store.resolve("reference", "V49") is not None


async def test_two_stores_on_one_database_see_each_others_rows(url: str) -> None:
    first, second = open_store(url), open_store(url)
    try:
        await asyncio.gather(
            *(first.write_log(message(f"first-{n:03}")) for n in range(100)),
            *(second.write_log(message(f"second-{n:03}")) for n in range(100)),
        )
        await first.map_order(IdMapping(connection="reference", marketplace_order_id="1", vtex_order_id="V1"))
        assert len(await second.logs(account=ACCOUNT, day=DAY)) == 200
        assert await second.resolve("reference", "V1") is not None
    finally:
        await first.aclose()
        await second.aclose()


WRITER = """
import asyncio, sys
from tests.test_store import message
from connector.store.base import open_store

async def main() -> None:
    store = open_store(sys.argv[1])
    await asyncio.gather(*(store.write_log(message(f"child-{n:03}")) for n in range(100)))
    await store.aclose()

asyncio.run(main())
"""


async def test_another_process_writes_the_same_database_meanwhile(url: str, store: OrderStore) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, url, cwd=Path(__file__).parent.parent, stderr=subprocess.PIPE
    )
    await asyncio.gather(*(store.write_log(message(f"parent-{n:03}")) for n in range(100)))
    _, errors = await child.communicate()
    assert child.returncode == 0, errors.decode()
    assert len(await store.logs(account=ACCOUNT, day=DAY)) == 200


def _sqlite_store(path: Path) -> tuple[SqlStore, SqliteDriver]:
    driver = SqliteDriver(str(path))
    return SqlStore(driver, migrate=True), driver


async def test_the_sqlite_store_writes_ahead_and_syncs_only_at_checkpoints(tmp_path: Path) -> None:
    store, driver = _sqlite_store(tmp_path / "store.db")
    await store.ready()
    # Both are settings of the store's own connection (synchronous is per connection): 1 is NORMAL.
    assert driver._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert driver._db.execute("PRAGMA synchronous").fetchone() == (1,)
    await store.aclose()


async def test_the_sqlite_store_commits_statements_queued_together_in_one_transaction(tmp_path: Path) -> None:
    store, driver = _sqlite_store(tmp_path / "store.db")
    await store.ready()
    commits: list[str] = []
    driver._db.set_trace_callback(lambda statement: commits.append(statement) if statement == "COMMIT" else None)
    await asyncio.gather(*(store.write_log(message(f"op-{n:03}")) for n in range(100)))
    assert len(await store.logs(account=ACCOUNT, day=DAY)) == 100
    # The first statement runs alone; the 99 queued meanwhile go in one batch, not 99 transactions.
    assert 1 <= len(commits) <= 3, commits
    await store.aclose()


async def test_a_failing_statement_fails_only_its_caller_and_the_batch_commits(tmp_path: Path) -> None:
    store, driver = _sqlite_store(tmp_path / "store.db")
    await store.ready()
    outcomes = await asyncio.gather(
        *(store.write_log(message(f"op-{n:03}")) for n in range(10)),
        driver.execute("INSERT INTO no_such_table VALUES (:value)", {"value": 1}),
        *(store.write_log(message(f"op-{n:03}")) for n in range(10, 20)),
        return_exceptions=True,
    )
    assert [type(outcome).__name__ for outcome in outcomes if outcome is not None] == ["OperationalError"]
    assert len(await store.logs(account=ACCOUNT, day=DAY)) == 20
    await store.aclose()


async def test_sqlite_in_memory_works() -> None:
    store = open_store("sqlite:///:memory:")
    await store.write_log(message("op-1"))
    assert len(await store.logs(account=ACCOUNT, day=DAY)) == 1
    await store.aclose()


def test_a_relative_sqlite_path_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(open_store("sqlite:///data/nested/orders.db").aclose())
    assert (tmp_path / "data" / "nested" / "orders.db").is_file()


@pytest.mark.parametrize(
    "bad", ["mysql://u:secret@h/db", "sqlite://", "sqlite:///", "orders.db", "postgresql://u:secret@[bad/db"]
)
def test_unusable_urls_are_store_errors_without_the_password(bad: str) -> None:
    with pytest.raises(StoreError) as raised:
        open_store(bad)
    assert "secret" not in str(raised.value)


def test_an_unopenable_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        open_store(f"sqlite:///{tmp_path}")  # a directory


async def test_an_unreachable_postgres_is_a_store_error_on_first_use() -> None:
    store = open_store("postgresql://connector:secret@127.0.0.1:1/nowhere?connect_timeout=2")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/nowhere") as raised:
        await store.resolve("reference", "1001")
    assert "secret" not in str(raised.value)
    await store.aclose()


async def _record_in_activity(logbook: Logbook, *, run_id: str, attempt: int = 1, code: str = "A") -> None:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        ActivityEnvironment.default_info(),
        workflow_id="order:reference:1001",
        workflow_run_id=run_id,
        activity_id="1",
        attempt=attempt,
    )

    async def write() -> None:
        await logbook.record(
            code=code,
            operation="Place order",
            direction="Connector to VTEX",
            status=LogStatus.SUCCESS,
            business_message=f"written by {run_id}, attempt {attempt}",
            connection="reference",
            marketplace_order_id="1001",
        )

    await environment.run(write)


async def test_line_ids_are_unique_across_runs_and_repeatable_within_an_attempt(store: OrderStore) -> None:
    logbook = Logbook(store, account=ACCOUNT)
    # Same workflow id, activity id, attempt and code: a run after continue-as-new or a reset.
    await _record_in_activity(logbook, run_id="run-1")
    await _record_in_activity(logbook, run_id="run-2")
    # The same attempt of the same run again (a re-run): nothing is written twice.
    await _record_in_activity(logbook, run_id="run-1")
    # Another attempt or another code of the same activity is a line of its own.
    await _record_in_activity(logbook, run_id="run-1", attempt=2)
    await _record_in_activity(logbook, run_id="run-1", attempt=2, code="X4")
    found = await store.logs(account=ACCOUNT, day=datetime.now(UTC).date())
    assert sorted(m.id for m in found) == [
        "order:reference:1001/run-1/1/1/A",
        "order:reference:1001/run-1/1/2/A",
        "order:reference:1001/run-1/1/2/X4",
        "order:reference:1001/run-2/1/1/A",
    ]
    first = next(m for m in found if m.id == "order:reference:1001/run-1/1/1/A")
    assert first.business_message == "written by run-1, attempt 1"


async def test_line_ids_outside_an_activity_are_unique(store: OrderStore) -> None:
    logbook = Logbook(store, account=ACCOUNT)
    for _ in range(3):
        await logbook.record(
            code="X1",
            operation="Read order",
            direction="Marketplace to connector",
            status=LogStatus.SUCCESS,
            business_message="read",
            connection="reference",
            marketplace_order_id="1001",
        )
    found = await store.logs(account=ACCOUNT, day=datetime.now(UTC).date())
    assert len({m.id for m in found}) == 3
    assert all(m.id.startswith("order:reference:1001/") and m.connection == "reference" for m in found)


def _report(*kinds: ProblemKind) -> ValidationReport:
    return ValidationReport(
        problems=[SkuProblem(sku_id=str(n), kind=kind, action="fix it") for n, kind in enumerate(kinds)]
    )


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ((), ("X2", LogStatus.SUCCESS)),
        ((ProblemKind.SKU_INACTIVE,), ("F", LogStatus.ALERT)),
        ((ProblemKind.SKU_INACTIVE, ProblemKind.SKU_INACTIVE), ("F", LogStatus.ALERT)),
        ((ProblemKind.NOT_IN_SIMULATION,), ("D", LogStatus.ALERT)),
        ((ProblemKind.SKU_NOT_FOUND, ProblemKind.NOT_IN_SALES_CHANNEL), ("D", LogStatus.ALERT)),
        ((ProblemKind.SKU_INACTIVE, ProblemKind.NOT_IN_SIMULATION), ("I", LogStatus.ERROR)),
        ((ProblemKind.NOT_IN_SIMULATION, ProblemKind.UNAVAILABLE), ("I", LogStatus.ERROR)),
        ((ProblemKind.PRODUCT_INACTIVE,), ("I", LogStatus.ERROR)),
        ((ProblemKind.NO_SLA,), ("I", LogStatus.ERROR)),
        ((ProblemKind.PRICE_DIVERGENCE,), ("I", LogStatus.ERROR)),
    ],
)
def test_validation_line_writes_the_guides_most_specific_code(
    kinds: tuple[ProblemKind, ...], expected: tuple[str, LogStatus]
) -> None:
    assert Logbook.validation_line(_report(*kinds)) == expected


async def test_hand_offs_and_reads_are_recorded_per_order(store: OrderStore) -> None:
    t = datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert await store.handoffs("alpha", ["1", "2"]) == {}
    await store.note_handoff("alpha", "1", t)
    await store.note_read("alpha", "1", t + timedelta(seconds=1), t - timedelta(hours=1))
    await store.note_read("alpha", "2", t, None)  # a read with no hand-off before (a CLI status, say)
    await store.note_handoff("beta", "1", t + timedelta(seconds=5))
    assert await store.handoffs("alpha", ["1", "2", "3"]) == {
        "1": HandoffRecord(notified_at=t, read_at=t + timedelta(seconds=1), version=t - timedelta(hours=1)),
        "2": HandoffRecord(read_at=t),
    }
    # A later hand-off moves only notified_at; an older read finishing late replaces nothing.
    await store.note_handoff("alpha", "1", t + timedelta(seconds=9))
    await store.note_read("alpha", "1", t, t - timedelta(hours=2))
    assert (await store.handoffs("alpha", ["1"]))["1"] == HandoffRecord(
        notified_at=t + timedelta(seconds=9), read_at=t + timedelta(seconds=1), version=t - timedelta(hours=1)
    )
    assert list(await store.handoffs("beta", ["1"])) == ["1"]


async def test_an_order_of_a_cart_answers_with_its_carts_record(store: OrderStore) -> None:
    # The poller lists Mercado Libre orders; the hand-off and the read are the cart's (its pack).
    t = datetime(2025, 3, 1, 12, tzinfo=UTC)
    await store.join_cart("alpha", "pack-9", ["91", "92"])
    await store.join_cart("alpha", "93", ["93"])
    await store.note_handoff("alpha", "pack-9", t)
    await store.note_read("alpha", "pack-9", t + timedelta(seconds=1), t)
    await store.note_handoff("alpha", "92", t + timedelta(seconds=5))  # one of its own comes first
    await store.note_handoff("beta", "pack-9", t)
    cart = HandoffRecord(notified_at=t, read_at=t + timedelta(seconds=1), version=t)
    assert await store.handoffs("alpha", ["91", "92", "93", "pack-9"]) == {
        "91": cart,
        "92": HandoffRecord(notified_at=t + timedelta(seconds=5)),
        "pack-9": cart,
    }
    assert await store.handoffs("beta", ["91"]) == {}  # carts are per connection


async def test_hand_off_lookups_take_more_ids_than_one_statement(store: OrderStore) -> None:
    t = datetime(2025, 3, 1, 12, tzinfo=UTC)
    ids = [str(n) for n in range(1200)]
    for order_id in ids[::7]:
        await store.note_handoff("alpha", order_id, t)
    assert sorted(await store.handoffs("alpha", ids), key=int) == ids[::7]


async def test_rate_slots_are_handed_out_one_interval_apart_and_never_twice(url: str) -> None:
    first, second = open_store(url), open_store(url)  # two workers on one store
    try:
        waits = await asyncio.gather(*(store.reserve_rate_slot("vtex-a", 0.1, 10.0) for store in [first, second] * 10))
        assert all(wait is not None for wait in waits)
        slots = sorted(wait for wait in waits if wait is not None)
        assert slots[0] < 0.05
        # Twenty slots, each 0.1 s after the one before (give or take the time the statements took).
        assert all(0.05 < later - earlier < 0.15 for earlier, later in itertools.pairwise(slots))
        # A slot further away than asked for is not taken, and takes nothing away.
        assert await first.reserve_rate_slot("vtex-a", 0.1, 0.5) is None
        assert await first.reserve_rate_slot("vtex-b", 0.1, 0.5) == pytest.approx(0.0, abs=0.05)
    finally:
        await first.aclose()
        await second.aclose()


async def test_queued_hand_offs_are_claimed_oldest_first_under_a_lease(store: OrderStore) -> None:
    for n in range(5):
        await store.queue_handoff("reference", f'{{"marketplace_order_id": "{n}"}}')
    first = await store.claim_handoffs(3, lease_seconds=60)
    assert [entry.notification for entry in first] == [f'{{"marketplace_order_id": "{n}"}}' for n in range(3)]
    assert {entry.attempts for entry in first} == {1}
    # Leased entries are not claimed again; the rest are.
    rest = await store.claim_handoffs(10, lease_seconds=60)
    assert [entry.notification for entry in rest] == [f'{{"marketplace_order_id": "{n}"}}' for n in (3, 4)]
    assert await store.claim_handoffs(10, lease_seconds=60) == []
    await store.handoff_done(first[0].id)
    await store.handoff_later(first[1].id, 0)
    again = await store.claim_handoffs(10, lease_seconds=60)
    assert [(entry.id, entry.attempts) for entry in again] == [(first[1].id, 2)]


async def test_concurrent_claims_never_take_the_same_hand_off(url: str) -> None:
    first, second = open_store(url), open_store(url)
    try:
        for n in range(200):
            await first.queue_handoff("reference", f'{{"marketplace_order_id": "{n}"}}')
        ids: list[int] = []

        async def drain(store: OrderStore) -> None:
            # A claim racing another may come back short (rows taken meanwhile are skipped): claim until empty.
            while claimed := await store.claim_handoffs(7, lease_seconds=60):
                ids.extend(entry.id for entry in claimed)

        await asyncio.gather(*(drain(store) for store in (first, second) for _ in range(5)))
        await drain(first)  # in case every racer came back short at once
        assert len(ids) == len(set(ids)) == 200
    finally:
        await first.aclose()
        await second.aclose()


# -- carts (CartStore) ----------------------------------------------------------------------------------------


async def test_an_order_joins_the_first_cart_it_is_put_in_and_stays_there(store: OrderStore) -> None:
    assert await store.cart_key("meli", "2001") is None
    assert await store.join_cart("meli", "cart-1", ["2001", "2002"]) == {"2001": "cart-1", "2002": "cart-1"}
    # A pack whose id changed: the known orders stay in their cart, the new one joins the asked cart.
    assert await store.join_cart("meli", "cart-2", ["2002", "2003"]) == {"2002": "cart-1", "2003": "cart-2"}
    assert await store.cart_key("meli", "2002") == "cart-1"
    assert await store.cart_key("meli", "2003") == "cart-2"
    # Connections never share carts.
    assert await store.cart_key("other", "2001") is None
    assert await store.join_cart("other", "cart-9", ["2001"]) == {"2001": "cart-9"}
    assert await store.cart_orders("meli", "cart-9") == []
    assert await store.join_cart("meli", "cart-1", []) == {}


async def test_a_carts_orders_come_in_the_order_they_joined_then_by_id(store: OrderStore) -> None:
    await store.join_cart("meli", "cart-1", ["30", "20"])
    await asyncio.sleep(0.002)
    await store.join_cart("meli", "cart-1", ["10"])
    await asyncio.sleep(0.002)
    await store.join_cart("meli", "cart-1", ["20", "40"])  # 20 is there already: it keeps its place
    assert await store.cart_orders("meli", "cart-1") == ["20", "30", "10", "40"]
    assert await store.cart_orders("meli", "no-such-cart") == []


async def test_concurrent_joins_agree_on_every_orders_cart(url: str) -> None:
    first, second = open_store(url), open_store(url)  # two workers on one store
    try:
        orders = [str(n) for n in range(1000, 1600)]  # more than one statement's worth
        answers = await asyncio.gather(
            *(
                store.join_cart("meli", f"cart-{n}", orders[n::2] + orders[::3])
                for n, store in enumerate([first, second] * 3)
            )
        )
        stored = {order: await first.cart_key("meli", order) for order in orders}
        assert None not in stored.values()
        for answer in answers:
            assert answer == {order: stored[order] for order in answer}
        in_carts = [order for n in range(6) for order in await second.cart_orders("meli", f"cart-{n}")]
        assert sorted(in_carts) == sorted(orders)
    finally:
        await first.aclose()
        await second.aclose()


# -- marketplace tokens ---------------------------------------------------------------------------------------


def token_write(refresh: str, **changes: object) -> TokenWrite:
    return TokenWrite.model_validate({"key_id": "k1", "sealed_refresh_token": refresh, **changes})


async def test_a_token_row_is_created_once_and_replaced_only_over_the_version_read(store: OrderStore) -> None:
    assert await store.marketplace_token("meli") is None
    assert await store.replace_marketplace_token("meli", 1, token_write("r0")) is None  # no row: nothing written
    expires = datetime(2026, 12, 8, 18, tzinfo=UTC)
    created = await store.create_marketplace_token(
        "meli", token_write("r1", sealed_access_token="a1", access_expires_at=expires)
    )
    assert created is not None
    assert (created.connection, created.version, created.sealed_refresh_token) == ("meli", 1, "r1")
    assert created.access_expires_at == expires and created.updated_at.tzinfo == UTC
    assert created.lease_owner is None and created.broken_reason is None
    assert await store.create_marketplace_token("meli", token_write("other")) is None  # the first stands
    assert await store.marketplace_token("meli") == created

    # Two writers read version 1: the first to write wins, the stale one changes nothing.
    newer = await store.replace_marketplace_token("meli", 1, token_write("r2", sealed_access_token="a2"))
    assert newer is not None and newer.version == 2 and newer.sealed_refresh_token == "r2"
    assert await store.replace_marketplace_token("meli", 1, token_write("stale")) is None
    assert await store.marketplace_token("meli") == newer

    broken_at = datetime(2026, 12, 8, 19, tzinfo=UTC)
    broken = await store.replace_marketplace_token(
        "meli", 2, newer.write(broken_reason="invalid_grant", broken_at=broken_at)
    )
    assert broken is not None and broken.version == 3
    assert (broken.sealed_refresh_token, broken.sealed_access_token) == ("r2", "a2")
    assert (broken.broken_reason, broken.broken_at) == ("invalid_grant", broken_at)
    assert await store.marketplace_token("other") is None


async def test_concurrent_compare_and_sets_let_exactly_one_writer_through(url: str) -> None:
    first, second = open_store(url), open_store(url)
    try:
        assert await first.create_marketplace_token("meli", token_write("r1")) is not None
        outcomes = await asyncio.gather(
            *(
                store.replace_marketplace_token("meli", 1, token_write(f"r-{n}"))
                for n, store in enumerate([first, second] * 5)
            )
        )
        winners = [outcome for outcome in outcomes if outcome is not None]
        assert len(winners) == 1 and winners[0].version == 2
        assert await second.marketplace_token("meli") == winners[0]
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_refresh_lease_is_held_by_one_owner_until_released_or_expired(url: str) -> None:
    first, second = open_store(url), open_store(url)
    try:
        assert await first.lease_marketplace_token("meli", "worker-a", 30) is None  # no row, no lease
        await first.create_marketplace_token("meli", token_write("r1"))
        leased = await first.lease_marketplace_token("meli", "worker-a", 30)
        assert isinstance(leased, StoredToken) and leased.lease_owner == "worker-a" and leased.version == 1
        assert leased.lease_until is not None and leased.lease_until > datetime.now(UTC) + timedelta(seconds=25)
        assert await second.lease_marketplace_token("meli", "worker-b", 30) is None
        assert await first.lease_marketplace_token("meli", "worker-a", 30) is not None  # its own again
        await second.release_marketplace_token("meli", "worker-b")  # not its lease: nothing happens
        assert await second.lease_marketplace_token("meli", "worker-b", 30) is None
        await first.release_marketplace_token("meli", "worker-a")
        taken = await second.lease_marketplace_token("meli", "worker-b", 0.05)
        assert taken is not None and taken.lease_owner == "worker-b"
        # The lease changes no token: a compare-and-set on the version read before still goes through.
        assert await first.replace_marketplace_token("meli", 1, token_write("r2")) is not None
        # An owner that died: its lease runs out and another takes it.
        assert await first.lease_marketplace_token("meli", "worker-a", 30) is None
        await asyncio.sleep(0.1)
        again = await first.lease_marketplace_token("meli", "worker-a", 30)
        assert again is not None and again.lease_owner == "worker-a" and again.sealed_refresh_token == "r2"
    finally:
        await first.aclose()
        await second.aclose()
