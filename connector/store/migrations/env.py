"""Alembic's environment: the connection comes from connector/store/migrations/__init__.py, already in
the transaction that holds the migration lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from connector.store.tables import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run the store's migrations with `connector migrate`, not the alembic command")
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():  # the caller's transaction: Alembic neither begins nor commits
        context.run_migrations()


# `context.config` exists only while Alembic runs this file; imported as a module (a walk over the
# package), there is nothing to run.
if hasattr(context, "config"):
    run_migrations()
