"""The store's schema migrations and its retention purge, each test on SQLite and on PostgreSQL.

A database made by the connector from before migrations is rebuilt from fixture files (its schema and
rows of every table, as that code wrote them, tests/fixtures/) since the code that made it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.pool import NullPool

from connector.retention import Retention, purge_once, purge_periodically
from connector.store import migrations
from connector.store.base import StoreError, migrate_store, open_store
from connector.store.models import HandoffRecord, IdMapping, LogStatus, TokenWrite
from connector.store.sql import SqlStore
from connector.store.tables import metadata
from tests import test_store
from tests.test_store import ACCOUNT, message

# Every test on both backends, with test_store's fixtures.
url = test_store.url
postgres_url = test_store.postgres_url

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TABLES = ("order_logs", "order_ids", "webhook_deliveries", "order_handoffs", "rate_slots", "handoff_queue")
T = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)


def _sqlite_path(url: str) -> str | None:
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:") else None


def run_script(url: str, script: str) -> None:
    """Plain SQL statements, as a database administrator (or the old connector) would run them."""
    path = _sqlite_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            db.executescript(script)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.encode())


def make_store_from_before_migrations(url: str) -> None:
    backend = "sqlite" if _sqlite_path(url) is not None else "postgres"
    run_script(url, (FIXTURES / f"store_schema_v0_{backend}.sql").read_text())
    run_script(url, (FIXTURES / "store_rows_v0.sql").read_text())


@contextmanager
def sync_connection(url: str) -> Iterator[Connection]:
    path = _sqlite_path(url)
    if path is not None:
        engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    else:
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    with sync_connection(url) as connection:
        return {
            table: sorted(tuple(row) for row in connection.exec_driver_sql(f"SELECT * FROM {table}"))
            for table in TABLES
        }


async def test_a_store_from_before_migrations_is_refused_then_upgraded_keeping_every_row(url: str) -> None:
    make_store_from_before_migrations(url)
    before = rows(url)
    assert all(before.values())
    refusing = open_store(url, migrate=False)
    with pytest.raises(StoreError, match=r"from before schema migrations: run `connector migrate`"):
        await refusing.logs(account="seller", day=T.date())
    await refusing.aclose()
    assert rows(url) == before  # refusing changed nothing

    assert await migrate_store(url) == (None, migrations.head())
    assert rows(url) == before

    store = open_store(url, migrate=False)
    try:
        found = await store.logs(account="seller", day=date(2026, 11, 20))
        assert [m.marketplace_order_id for m in found] == ["1001", "1002", "1003", "1004"]
        assert [m.status for m in found] == [LogStatus.SUCCESS, LogStatus.ERROR, LogStatus.ALERT, LogStatus.PENDING]
        assert [m.created_at for m in found] == [
            T,
            T + timedelta(microseconds=1),
            datetime(2026, 11, 20, 22, tzinfo=UTC),
            datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC),
        ]
        assert found[0].content_translated == '{"x": "é ✓"}' and found[1].vtex_order_id is None
        assert await store.logs(account="seller", day=T.date(), statuses=[LogStatus.ERROR]) == [found[1]]
        assert await store.resolve("reference", "MKP-1001-01") == IdMapping(
            connection="reference", marketplace_order_id="1001", vtex_order_id="MKP-1001-01"
        )
        assert await store.resolve("other", "Y") is not None
        assert await store.delivery_seen("reference", "delivery-1") is True
        assert await store.handoffs("reference", ["1001", "1002"]) == {
            "1001": HandoffRecord(notified_at=T, read_at=T + timedelta(seconds=1), version=T - timedelta(hours=1)),
            "1002": HandoffRecord(read_at=T),
        }
        assert await store.handoff_queue_depth() == 2
        claimed = await store.claim_handoffs(10, lease_seconds=60)
        assert [(entry.notification, entry.attempts) for entry in claimed] == [
            ('{"marketplace_order_id": "1003"}', 3),
            ('{"marketplace_order_id": "1004"}', 1),
        ]
        assert await store.reserve_rate_slot("vtex:seller", 0.1, 10.0) == pytest.approx(0.0, abs=0.05)
        # New rows go on from the old ones.
        await store.queue_handoff("reference", "{}")
        assert (await store.claim_handoffs(10, lease_seconds=60))[0].id > max(entry.id for entry in claimed)
        await store.write_log(message("after-upgrade", created_at=T))
        assert len(await store.logs(account=ACCOUNT, day=T.date())) == 5
    finally:
        await store.aclose()
    with sync_connection(url) as connection:
        assert "order_logs_by_status_age" in {index["name"] for index in inspect(connection).get_indexes("order_logs")}


async def test_a_new_store_migrates_to_the_newest_revision_and_matches_the_tables(url: str) -> None:
    assert await migrate_store(url) == (None, migrations.head())
    assert await migrate_store(url) == (migrations.head(), migrations.head())  # idempotent
    with sync_connection(url) as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    # The migrations make exactly connector/store/tables.py, but for how each dialect spells a type and
    # SQLite's own quirk: a TEXT PRIMARY KEY column of a rowid table takes NULL.
    ignored = {"modify_type", "modify_nullable"} if url.startswith("sqlite") else {"modify_type"}
    assert [d for d in differences if not (isinstance(d, list) and d[0][0] in ignored)] == []


async def test_an_empty_store_is_given_the_schema_even_without_migrate(url: str) -> None:
    store = open_store(url, migrate=False)  # a worker's first start on a new database: nothing to lose
    await store.write_log(message("op-1"))
    assert len(await store.logs(account=ACCOUNT, day=message("op-1").created_at.date())) == 1
    await store.aclose()
    assert await migrate_store(url) == (migrations.head(), migrations.head())


async def test_a_store_at_an_older_revision_is_refused_then_upgraded(url: str) -> None:
    await migrate_store(url)
    with sync_connection(url) as connection:
        config = migrations._config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
        connection.commit()
    store = open_store(url, migrate=False)
    with pytest.raises(StoreError, match=rf"revision 0001, older than this connector's {migrations.head()}: run"):
        await store.ready()
    await store.aclose()
    assert await migrate_store(url) == ("0001", migrations.head())


async def test_a_store_migrated_by_a_newer_connector_is_refused(url: str) -> None:
    await migrate_store(url)
    with sync_connection(url) as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        connection.commit()
    for migrate in (False, True):
        store = open_store(url, migrate=migrate)
        with pytest.raises(StoreError, match="revision 9999, which this connector does not know"):
            await store.ready()
        await store.aclose()


def migrate_to(url: str, revision: str) -> None:
    """The store at `revision` (as a connector of that revision left it), with Alembic itself."""
    with sync_connection(url) as connection:
        config = migrations._config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


async def test_a_store_at_revision_0002_is_refused_then_upgraded_keeping_every_row_and_gaining_carts_and_tokens(
    url: str,
) -> None:
    make_store_from_before_migrations(url)
    migrate_to(url, "0002")
    before = rows(url)
    assert all(before.values())
    store = open_store(url, migrate=False)
    with pytest.raises(StoreError, match=rf"revision 0002, older than this connector's {migrations.head()}: run"):
        await store.ready()
    await store.aclose()
    assert rows(url) == before

    assert await migrate_store(url) == ("0002", migrations.head())
    assert rows(url) == before
    with sync_connection(url) as connection:
        inspector = inspect(connection)
        assert {"marketplace_carts", "marketplace_tokens"} <= set(inspector.get_table_names())
        assert "marketplace_carts_by_cart" in {index["name"] for index in inspector.get_indexes("marketplace_carts")}
    store = open_store(url, migrate=False)
    try:
        assert await store.join_cart("meli", "cart-1", ["1", "2"]) == {"1": "cart-1", "2": "cart-1"}
        created = await store.create_marketplace_token("meli", TokenWrite(key_id="k1", sealed_refresh_token="x"))
        assert created is not None and created.version == 1
        assert await store.resolve("reference", "MKP-1001-01") is not None  # the old rows serve as before
    finally:
        await store.aclose()


async def test_retention_never_purges_carts_or_marketplace_tokens(url: str) -> None:
    store = open_store(url)
    try:
        await store.join_cart("meli", "cart-1", ["1", "2"])
        token = await store.create_marketplace_token(
            "meli",
            TokenWrite(key_id="k1", sealed_refresh_token="x", broken_reason="invalid_grant", broken_at=T),
        )
        retention = Retention(success_days=1, error_days=1, after_sale_days=1)
        await purge_once(store, retention, now=datetime.now(UTC) + timedelta(days=3650))
        assert await store.cart_orders("meli", "cart-1") == ["1", "2"]
        assert await store.marketplace_token("meli") == token
    finally:
        await store.aclose()


MIGRATE = """
import asyncio, sys
from connector.store.base import migrate_store
print(asyncio.run(migrate_store(sys.argv[1])))
"""


async def test_processes_migrating_at_once_take_turns(url: str) -> None:
    make_store_from_before_migrations(url)
    before = rows(url)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            url,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for _ in range(3)
    ]
    outcomes = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], [err.decode() for _, err in outcomes]
    reports = sorted(out.decode().strip() for out, _ in outcomes)
    head = migrations.head()
    # One of them migrated; the others waited for its lock and found nothing left to do.
    assert reports == sorted([repr((None, head)), repr((head, head)), repr((head, head))])
    assert rows(url) == before


async def test_retention_purges_successes_after_their_days_and_the_rest_after_theirs(url: str) -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    ages = {
        ("success-31d", LogStatus.SUCCESS): 31,
        ("success-29d", LogStatus.SUCCESS): 29,
        ("success-32d", LogStatus.SUCCESS): 32,
        ("error-181d", LogStatus.ERROR): 181,
        ("error-179d", LogStatus.ERROR): 179,
        ("alert-181d", LogStatus.ALERT): 181,
        ("alert-40d", LogStatus.ALERT): 40,
        ("pending-200d", LogStatus.PENDING): 200,
        ("pending-100d", LogStatus.PENDING): 100,
    }
    store = open_store(url)
    try:
        for (id, status), days in ages.items():
            await store.write_log(message(id, status=status, created_at=now - timedelta(days=days)))
        await store.note_handoff("reference", "old", now - timedelta(days=200))
        await store.note_read("reference", "old", now - timedelta(days=190), None)
        await store.note_handoff("reference", "recent-read", now - timedelta(days=200))
        await store.note_read("reference", "recent-read", now - timedelta(days=2), None)
        await store.note_read("reference", "read-170d", now - timedelta(days=170), None)
        retention = Retention(success_days=30, error_days=180, after_sale_days=120)
        assert await purge_once(store, retention, now=now) == {"successes": 2, "others": 3, "handoffs": 1}
        assert await purge_once(store, retention, now=now) == {"successes": 0, "others": 0, "handoffs": 0}
        kept = set()
        for days in set(ages.values()):
            kept |= {m.id for m in await store.logs(account=ACCOUNT, day=(now - timedelta(days=days)).date())}
        assert kept == {"success-29d", "error-179d", "alert-40d", "pending-100d"}
        assert set(await store.handoffs("reference", ["old", "recent-read", "read-170d"])) == {
            "recent-read",
            "read-170d",
        }
        # 0 keeps a kind forever.
        forever = Retention(success_days=0, error_days=0, after_sale_days=120)
        assert await purge_once(store, forever, now=now + timedelta(days=3650)) == {
            "successes": 0,
            "others": 0,
            "handoffs": 0,
        }
    finally:
        await store.aclose()


async def test_the_purge_deletes_in_bounded_batches_until_nothing_is_left(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqlStore)
    try:
        await asyncio.gather(*(store.write_log(message(f"op-{n:03}", created_at=T)) for n in range(25)))
        removed = await store.purge(successes_before=T + timedelta(seconds=1), others_before=None, batch=4)
        assert removed == {"successes": 25, "others": 0, "handoffs": 0}
        assert await store.logs(account=ACCOUNT, day=T.date()) == []
    finally:
        await store.aclose()


async def test_the_periodic_purge_logs_what_it_removed_and_survives_a_failing_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.write_log(message("old", created_at=datetime.now(UTC) - timedelta(days=31)))
    retention = Retention(success_days=30, error_days=180, after_sale_days=120)
    caplog.set_level(logging.INFO, logger="connector.retention")
    purging = asyncio.create_task(
        purge_periodically(store, retention, first_delay=timedelta(0), interval=timedelta(seconds=0.05))
    )

    async def logged(text: str) -> None:
        for _ in range(500):
            if text in caplog.text:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never logged: {text}")

    try:
        await logged("removed 1 success")
        await store.aclose()  # every purge from now on fails: logged, and the loop goes on
        await logged("the purge failed")
        assert not purging.done()
    finally:
        purging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purging
    assert "order-log retention: removed 1 success and 0 other log messages and 0 hand-off records" in caplog.text
