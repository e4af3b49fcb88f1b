"""Alembic environment of the tracker.

The tracker passes an open connection in ``config.attributes["connection"]``. Run by hand,
the database URL comes from ``UNMOGROWP_TRACKER_DATABASE``.
"""

from __future__ import annotations

import os

from alembic import context

from customer_tracker.db import create_database_engine
from customer_tracker.models import Base

# Several tracker replicas may share one PostgreSQL database and start together. The
# transaction-scoped advisory lock makes them apply the migrations one after the other.
MIGRATION_LOCK_KEY = 0x756E6D6F67726F77  # "unmogrow" in ASCII


def run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = os.environ.get("UNMOGROWP_TRACKER_DATABASE")
    if not url:
        raise SystemExit("UNMOGROWP_TRACKER_DATABASE is not set: set it to the tracker's database URL")
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")
main()
