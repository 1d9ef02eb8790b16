"""Fast bulk writes: COPY on PostgreSQL (psycopg 3), executemany in large batches elsewhere.

Rows are written on the caller's connection, inside its transaction, so a failed load leaves
nothing behind. Staging tables (`create_staging_table`) let a load be merged with plain SQL that
runs the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any
from uuid import uuid4

from psycopg import sql
from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, Table

BATCH_ROWS = 10_000


def bulk_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Insert ``rows`` (tuples of ``columns`` values) into ``table``; return how many were written.

    ``on_batch(n)`` is called after every batch of n rows, for progress bars.
    """
    if conn.dialect.name == "postgresql":
        return _copy_rows(conn, table, columns, rows, on_batch)
    statement = table.insert()
    written = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, BATCH_ROWS)):
        conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in batch])
        written += len(batch)
        if on_batch:
            on_batch(len(batch))
    return written


def _copy_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_batch: Callable[[int], None] | None,
) -> int:
    """COPY ... FROM STDIN through the psycopg connection under SQLAlchemy's transaction."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    driver_connection = conn.connection.driver_connection
    assert driver_connection is not None
    written = 0
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for written, row in enumerate(rows, start=1):
            copy.write_row(row)
            if on_batch and written % BATCH_ROWS == 0:
                on_batch(BATCH_ROWS)
    if on_batch and written % BATCH_ROWS:
        on_batch(written % BATCH_ROWS)
    return written


def create_staging_table(conn: Connection, like: Table, columns: Sequence[str], key: Sequence[str]) -> Table:
    """A temporary table with ``columns`` of ``like`` (same types) and primary key ``key``.

    It lives until `drop_staging_table` or the end of the database session.
    """
    staging = Table(
        f"semret_stage_{like.name}_{uuid4().hex[:8]}",
        MetaData(),
        *(Column(name, like.c[name].type, nullable=name not in key) for name in columns),
        PrimaryKeyConstraint(*key),
        prefixes=["TEMPORARY"],
    )
    staging.create(conn)
    return staging


def drop_staging_table(conn: Connection, staging: Table) -> None:
    """Drop a table made by `create_staging_table`."""
    staging.drop(conn)


def analyse(conn: Connection, table: Table) -> None:
    """Refresh the planner's statistics of ``table`` (after a bulk write into a fresh table)."""
    quoted = conn.dialect.identifier_preparer.quote(table.name)
    conn.exec_driver_sql(f"ANALYZE {quoted}")
