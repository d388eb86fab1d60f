"""The store's schema migrations (Alembic), run by the connector itself: no alembic.ini, nothing to install.

`upgrade` takes a SQLAlchemy connection and brings its database to the newest revision under a lock that
serialises processes migrating at once (PostgreSQL: the advisory lock the schema was always created
under; SQLite: BEGIN IMMEDIATE, the database's write lock), all in one transaction (both databases have
transactional DDL): a migration that fails leaves the schema as it was. `check` raises StoreError unless
the schema is the newest, or the database empty (then it creates the schema: nothing to lose).

Revision 0001 is the schema the connector created before migrations existed, written as CREATE ... IF
NOT EXISTS: a database made by that code (tables there, no alembic_version) is adopted as it is, every
row kept, then stamped. New revisions go in versions/ (`new_revision` below writes one from
script.py.mako); a released revision is never edited, only followed by a new one.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from connector.store.base import StoreError

# Any constant, the same as before migrations existed: an older connector creating its schema and a newer
# one migrating never run at once.
POSTGRES_LOCK_KEY = 0x0C0FFEE


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    # Revision files are modules of the versions package: a name that starts with a letter.
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    return config


def new_revision(message: str, revision: str) -> None:
    """A new, empty revision file in versions/ after the newest (for developers):
    `.venv/bin/python -c 'from connector.store.migrations import new_revision; new_revision("add x", "0003")'`."""
    command.revision(_config(), message=message, rev_id=revision)


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def _known() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def _unknown(revision: str) -> StoreError:
    return StoreError(
        f"the store's schema is at revision {revision}, which this connector does not know (a newer connector "
        "migrated it): run the newer connector"
    )


def current(connection: Connection) -> str | None:
    """The database's revision; None before the first migration (an empty database, or one made by a
    connector from before migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> tuple[str | None, str]:
    """Migrate to the newest revision, committed; (revision before, revision after)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the driver runs in autocommit mode: this is the lock
    else:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
    try:
        before = current(connection)  # read under the lock: a process that waited sees the other's work
        if before is not None and before not in _known():
            raise _unknown(before)
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current(connection)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("COMMIT")
        connection.commit()
    except BaseException:
        if connection.dialect.name == "sqlite":
            with contextlib.suppress(Exception):  # nothing to roll back if the failure was the COMMIT's
                connection.exec_driver_sql("ROLLBACK")
        connection.rollback()
        raise
    assert after is not None
    return before, after


def check(connection: Connection) -> tuple[str | None, str]:
    """For a process that must not upgrade: StoreError, one sentence naming `connector migrate`, unless
    the schema is the newest revision. A new, empty database has nothing to lose: its schema is created
    (under the lock, as `upgrade`); (revision before, revision after) as `upgrade` says."""
    found, newest = current(connection), head()
    empty = found is None and not inspect(connection).has_table("order_logs")
    connection.rollback()  # the look is a read: leave no transaction open
    if found == newest:
        return newest, newest
    if empty:
        return upgrade(connection)
    if found is None:
        raise StoreError(
            "the store was made by a connector from before schema migrations: run `connector migrate` "
            "to upgrade it (every row is kept)"
        )
    if found not in _known():
        raise _unknown(found)
    raise StoreError(
        f"the store's schema is at revision {found}, older than this connector's {newest}: run `connector migrate`"
    )
