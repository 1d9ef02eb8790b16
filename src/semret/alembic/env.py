"""Alembic environment of semret.

semret runs migrations programmatically (`semret.sql.migrations`), handing over an open connection
in ``config.attributes["connection"]``; the ``alembic`` command line gets its database from
``SEMRET_DATABASE_URL`` or the embedded default. SQLite migrations use batch mode, since SQLite
cannot alter most of a table in place; they run on a `migration_connection`, without foreign key
enforcement, or rebuilding a table would cascade-delete the rows that reference it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from semret.sql.engine import make_engine, migration_connection, resolve_database_url
from semret.sql.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the SQL to standard output instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=resolve_database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the connection semret handed over (a `migration_connection`), or a new one
    to the resolved database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine()
    try:
        with migration_connection(engine) as new_connection:
            _run(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
