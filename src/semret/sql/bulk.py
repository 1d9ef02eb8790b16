"""Fast bulk writes: COPY on PostgreSQL (psycopg 3), executemany in large batches elsewhere.

Rows are written on the caller's connection, inside its transaction, so a failed load leaves
nothing behind. Staging tables (`create_staging_table`) let a load be merged with plain SQL that
runs the same on PostgreSQL and SQLite. What a merge costs depends on the rows it is given, not on
the size of the table it merges into: no count of the table, and its planner statistics are
refreshed only when the merge changed a large part of it (`refresh_statistics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any
from uuid import uuid4

from psycopg import sql
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    and_,
    delete,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)

BATCH_ROWS = 10_000
#: A merge refreshes its target's planner statistics only when it inserted or deleted at least
#: this many rows...
ANALYZE_MIN_ROWS = 1_000
#: ...and more than this fraction of the rows the statistics last counted. A small merge into a
#: large table then costs no ANALYZE (PostgreSQL's autovacuum keeps such tables current), while a
#: table bulk-loaded from empty does not leave the planner guessing from "empty"; and an ANALYZE
#: (which reads the whole table on SQLite) costs at most a few times what the merge wrote.
ANALYZE_FRACTION = 0.2


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


def temporary_table(name: str, columns: Sequence[Column[Any]], key: Sequence[str]) -> Table:
    """The definition of a temporary table (create it with ``table.create(conn)``)."""
    return Table(name, MetaData(), *columns, PrimaryKeyConstraint(*key), prefixes=["TEMPORARY"])


def create_temporary_table(conn: Connection, prefix: str, columns: Sequence[Column[Any]], key: Sequence[str]) -> Table:
    """A temporary table of ``columns`` with primary key ``key``, under a unique name.

    It lives until `drop_staging_table` or the end of the database session.
    """
    table = temporary_table(f"semret_{prefix}_{uuid4().hex[:8]}", columns, key)
    table.create(conn)
    return table


def create_staging_table(conn: Connection, like: Table, columns: Sequence[str], key: Sequence[str]) -> Table:
    """A temporary table with ``columns`` of ``like`` (same types) and primary key ``key``."""
    copies = [Column(name, like.c[name].type, nullable=name not in key) for name in columns]
    return create_temporary_table(conn, f"stage_{like.name}", copies, key)


def drop_staging_table(conn: Connection, staging: Table) -> None:
    """Drop a table made by `create_staging_table` or `create_temporary_table`."""
    staging.drop(conn)


def analyse(conn: Connection, table: Table) -> None:
    """Refresh the planner's statistics of ``table`` after a bulk write (PostgreSQL and SQLite)."""
    quoted = conn.dialect.identifier_preparer.quote(table.name)
    conn.exec_driver_sql(f"ANALYZE {quoted}")


def planner_rows(conn: Connection, table: Table) -> int | None:
    """How many rows the planner's statistics say ``table`` has; None if it was never analysed.

    Read from the catalog (PostgreSQL ``pg_class.reltuples``, SQLite ``sqlite_stat1``), so it
    costs the same whatever the size of the table.
    """
    if conn.dialect.name == "postgresql":
        quoted = conn.dialect.identifier_preparer.quote(table.name)
        found = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": quoted}
        ).scalar()
        return None if found is None or found < 0 else round(found)
    if conn.dialect.name == "sqlite":
        has_statistics = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        ).scalar()
        if not has_statistics:
            return None
        stat = conn.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl = :name LIMIT 1"), {"name": table.name})
        found = stat.scalar()
        return None if found is None else int(str(found).split()[0])
    return None


def refresh_statistics(conn: Connection, table: Table, changed_rows: int) -> bool:
    """ANALYZE ``table`` after a write that inserted or deleted ``changed_rows`` rows, when that is
    a large part of what its statistics know (`ANALYZE_MIN_ROWS`, `ANALYZE_FRACTION`); return
    whether it did."""
    if changed_rows < ANALYZE_MIN_ROWS:
        return False
    if changed_rows <= ANALYZE_FRACTION * (planner_rows(conn, table) or 0):
        return False
    analyse(conn, table)
    return True


@dataclass(frozen=True)
class MergeCounts:
    """What a merge did to the target table."""

    inserted: int
    updated: int
    deleted: int


def merge_from_staging(
    conn: Connection,
    target: Table,
    staging: Table,
    key: Sequence[str],
    values: Sequence[str],
    owned: ColumnElement[bool] | None = None,
) -> MergeCounts:
    """Make ``target`` agree with ``staging`` on the rows it holds, with three set-based statements.

    Target rows selected by ``owned`` (the rows this load is the source of) that are not staged are
    deleted, rows whose ``values`` differ are updated (``IS DISTINCT FROM``, so an identical reload
    writes nothing), and missing rows are inserted. Runs the same on PostgreSQL and SQLite.
    """
    existing = target.alias("existing")
    staged = and_(*(target.c[k] == staging.c[k] for k in key))
    differs = or_(*(target.c[name].is_distinct_from(staging.c[name]) for name in values))
    # Deleting first frees unique values (another constraint than the key) for the rows inserted.
    deleted = 0
    if owned is not None:
        deleted = conn.execute(delete(target).where(owned, ~exists().where(staged))).rowcount
    updated = conn.execute(update(target).values({n: staging.c[n] for n in values}).where(staged, differs)).rowcount
    columns = (*key, *values)
    new_rows = select(*(staging.c[name] for name in columns)).where(
        ~exists().where(*(existing.c[k] == staging.c[k] for k in key))
    )
    # Both drivers semret supports (psycopg 3 and sqlite3) report the rows an INSERT ... SELECT
    # wrote; SQLAlchemy passes the number on for INSERTs when asked to (preserve_rowcount).
    written = insert(target).from_select(columns, new_rows)
    inserted = conn.execute(written, execution_options={"preserve_rowcount": True}).rowcount
    assert inserted >= 0, f"the {conn.dialect.driver} driver does not count inserted rows"
    return MergeCounts(inserted, updated, deleted)


def stage_and_merge(
    conn: Connection,
    target: Table,
    key: Sequence[str],
    values: Sequence[str],
    rows: Iterable[Sequence[Any]],
    owned: Callable[[Table], ColumnElement[bool]] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> MergeCounts:
    """Bulk-write ``rows`` (``key`` + ``values`` columns) into a staging table and merge them into
    ``target`` (`merge_from_staging`); ``owned(staging)`` selects the target rows to reconcile.

    The staging table is analysed on PostgreSQL (the merge's plan depends on how many rows it
    holds); the target only when the merge changed a large part of it (`refresh_statistics`).
    """
    staging = create_staging_table(conn, target, (*key, *values), key)
    try:
        bulk_insert(conn, staging, staging.c.keys(), rows, on_batch=on_batch)
        if conn.dialect.name == "postgresql":
            analyse(conn, staging)
        counts = merge_from_staging(conn, target, staging, key, values, owned(staging) if owned else None)
    finally:
        drop_staging_table(conn, staging)
    refresh_statistics(conn, target, counts.inserted + counts.deleted)
    return counts
