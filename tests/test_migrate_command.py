"""`connector migrate`, and the worker and intake refusing a store whose schema is older, as a user runs
them: separate processes, real exit statuses, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from connector.store import migrations
from tests import test_store
from tests.test_cli import connector
from tests.test_store_migrations import make_store_from_before_migrations, rows

# Every test on both backends, with test_store's fixtures.
url = test_store.url
postgres_url = test_store.postgres_url

REFUSAL = (
    "connector: the store was made by a connector from before schema migrations: run `connector migrate` to "
    "upgrade it (every row is kept)\n"
)


async def test_the_worker_and_the_intake_refuse_a_store_from_before_migrations(url: str, tmp_path: Path) -> None:
    make_store_from_before_migrations(url)
    before = rows(url)
    # No Temporal server anywhere: the store is checked before anything else starts.
    env = {"STORE_URL": url, "DATA_DIR": str(tmp_path / "data"), "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    for command in ("worker", "intake"):
        code, out, err = await connector(command, env=env, cwd=tmp_path)
        assert (code, out) == (1, ""), err
        assert err.endswith(REFUSAL) and "Traceback" not in err, err
    assert rows(url) == before


async def test_migrate_upgrades_once_and_then_has_nothing_to_do(url: str, tmp_path: Path) -> None:
    make_store_from_before_migrations(url)
    before = rows(url)
    env = {"STORE_URL": url, "DATA_DIR": str(tmp_path / "data")}
    head = migrations.head()
    code, out, err = await connector("migrate", env=env, cwd=tmp_path)
    assert (code, out) == (
        0,
        f"the order store's schema is now at revision {head} (a new store, or one made before migrations)\n",
    ), err
    code, out, err = await connector("migrate", env=env, cwd=tmp_path)
    assert (code, out) == (0, f"the order store's schema is already at the newest revision, {head}\n"), err
    assert rows(url) == before


async def test_migrate_says_in_one_sentence_when_the_store_cannot_be_reached(tmp_path: Path) -> None:
    env = {"STORE_URL": "postgresql://connector:secret@127.0.0.1:1/nowhere?connect_timeout=2"}
    code, out, err = await connector("migrate", env=env, cwd=tmp_path)
    assert (code, out) == (1, "")
    assert (
        err.startswith("connector: cannot use the PostgreSQL store at 127.0.0.1:1/nowhere: ") and err.count("\n") == 1
    )
    assert "secret" not in err and "Traceback" not in err
