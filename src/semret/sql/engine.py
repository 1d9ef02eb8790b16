"""Which database semret talks to, and how it connects.

Resolution order: an explicit URL (the CLI's ``--db``), then ``SEMRET_DATABASE_URL``, then the
embedded default, a SQLite file in the user's data directory (platformdirs) created on first use.
PostgreSQL goes through psycopg 3: ``postgresql://`` URLs are rewritten to ``postgresql+psycopg://``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from weakref import WeakKeyDictionary

import platformdirs
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from semret.errors import DatabaseUnavailableError, SemretError

DATABASE_URL_ENV = "SEMRET_DATABASE_URL"
DEFAULT_DATABASE_FILE = "semret.sqlite3"
CONNECT_TIMEOUT_SECONDS = 10
#: How long a SQLite connection waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 60
#: PostgreSQL's connection pool (SQLAlchemy's QueuePool): connections kept open, extra ones
#: opened under load and closed when returned, and how long a thread waits for one when all
#: are busy. 10 + 20 stays well under PostgreSQL's default max_connections (100).
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 20
POOL_TIMEOUT_SECONDS = 30
#: Pooled connections older than this are replaced (servers and proxies drop idle ones).
POOL_RECYCLE_SECONDS = 1800


class FairGate:
    """At most ``slots`` holders at once, the waiters served first come, first served: a released
    slot goes straight to the longest waiter. (SQLAlchemy's pool lets a thread that returns a
    connection and asks again at once take it back before a woken waiter runs, so under load a
    few threads waited seconds while most passed: see docs/benchmarks.md.)"""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = slots
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; whether one was taken."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            handed = threading.Event()
            self._waiters.append(handed)
        if handed.wait(timeout):
            return True
        with self._lock:
            if handed.is_set():  # handed over just as the wait ended
                return True
            self._waiters.remove(handed)
            return False

    def release(self) -> None:
        """Give the slot back: to the longest waiter if there is one."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1


#: The first-come-first-served gate in front of each PostgreSQL engine's pool (`connect`).
_GATES: WeakKeyDictionary[Engine, FairGate] = WeakKeyDictionary()


def default_database_path() -> Path:
    """The embedded default database file: ``<user data dir>/semret/semret.sqlite3``."""
    return Path(platformdirs.user_data_dir("semret", appauthor=False)) / DEFAULT_DATABASE_FILE


def default_database_url() -> str:
    """SQLAlchemy URL of the embedded default database."""
    return f"sqlite+pysqlite:///{default_database_path()}"


def normalise_database_url(url: str | URL) -> URL:
    """Parse ``url`` and pin PostgreSQL to the psycopg 3 driver and SQLite to pysqlite."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SemretError(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    raise SemretError(
        f"unsupported database {parsed.drivername!r} in {describe_url(parsed)}: "
        "semret works with PostgreSQL (postgresql://...) and SQLite (sqlite:///path)"
    )


def resolve_database_url(explicit: str | URL | None = None) -> URL:
    """The URL to use: ``explicit``, else ``$SEMRET_DATABASE_URL``, else the embedded default."""
    chosen = explicit or os.environ.get(DATABASE_URL_ENV) or default_database_url()
    return normalise_database_url(chosen)


def describe_url(url: URL | str) -> str:
    """The URL as it may be shown to a user: the password hidden."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_query_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def make_engine(
    url: str | URL | None = None,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = POOL_MAX_OVERFLOW,
    read_only: bool = False,
) -> Engine:
    """An engine for ``url`` (resolved as in `resolve_database_url`).

    A SQLite file's folder is created on first use; SQLite enforces foreign keys and waits up to
    60 s for another writer (unless the URL sets ``timeout``). PostgreSQL connections time out
    after 10 s so that a server that is down gives an error, not a hang, and plan every
    statement for its own parameters (``plan_cache_mode=force_custom_plan``, unless the URL sets
    ``options``): psycopg prepares a statement run five times, and PostgreSQL's generic plan for
    the IWAN ranking, blind to how many words a query reached, was ten times slower.

    PostgreSQL connections are pooled for concurrent queries (threads of one process): up to
    ``pool_size`` kept open and ``max_overflow`` more under load; a thread that finds them all
    busy waits up to 30 s, in the order the threads asked (a `FairGate` in front of the pool, for
    `connect`), and a connection is checked (``pool_pre_ping``) before it is reused.

    ``read_only`` opens the database for reading only (`semret serve`): SQLite connections refuse
    writes (``PRAGMA query_only``) and the file must exist; PostgreSQL transactions are read-only
    (``default_transaction_read_only``).
    """
    parsed = resolve_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if read_only:
            if not database or database == ":memory:" or database.startswith("file:"):
                raise SemretError(f"cannot open {describe_url(parsed)} read-only: give a SQLite file")
            if not Path(database).expanduser().is_file():
                found = Path(database).expanduser()
                raise SemretError(f"no database at {found}: run `semret demo` or `semret db upgrade` first")
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _sqlite_query_only)
            return engine
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        busy = {} if "timeout" in parsed.query else {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        engine = create_engine(parsed, connect_args=busy)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if "options" not in parsed.query:
        connect_args["options"] = "-c plan_cache_mode=force_custom_plan" + (
            " -c default_transaction_read_only=on" if read_only else ""
        )
    elif read_only:
        raise SemretError("a read-only PostgreSQL URL cannot set its own options: leave out options=")
    if pool_size < 1 or max_overflow < 0:
        raise SemretError(
            f"a connection pool needs pool_size >= 1 and max_overflow >= 0, got {pool_size}, {max_overflow}"
        )
    engine = create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_use_lifo=True,
        connect_args=connect_args,
    )
    _GATES[engine] = FairGate(pool_size + max_overflow)
    return engine


def _open(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise database_unavailable(engine, exc) from exc


@contextmanager
def connect(engine: Engine, *, lock: str | None = None) -> Iterator[Connection]:
    """A connection inside one transaction (committed on success, rolled back on error).

    With ``lock``, the transaction first waits for every other transaction that took the same
    lock to end, so that such writers run one after the other: on PostgreSQL a transaction-level
    advisory lock named by ``lock``; on SQLite the database's write lock (``BEGIN IMMEDIATE``,
    waiting up to the busy timeout), which serialises every writer.

    A database that cannot be reached is reported as `DatabaseUnavailableError` naming it. On a
    pooled PostgreSQL engine of `make_engine`, threads get their connections first come, first
    served (`FairGate`).
    """
    gate = _GATES.get(engine)
    if gate is not None and not gate.acquire(POOL_TIMEOUT_SECONDS):
        raise SemretError(
            f"all {gate.slots} connections to {describe_url(engine.url)} stayed busy for {POOL_TIMEOUT_SECONDS} s: "
            "too many concurrent queries for the pool (make_engine's pool_size and max_overflow)"
        )
    try:
        conn = _open(engine)
        with conn, conn.begin():
            if lock is not None:
                _take_lock(conn, lock)
            yield conn
    finally:
        if gate is not None:
            gate.release()


def advisory_lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit integer) of semret's lock ``name``."""
    digest = hashlib.blake2b(f"semret:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _take_lock(conn: Connection, name: str) -> None:
    if conn.dialect.name == "sqlite":
        # pysqlite would begin the transaction only at the first write, after the reads a writer
        # bases its writes on; taking the write lock now makes a second writer wait here instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_lock_key(name)})


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction for running migrations (`connect` elsewhere).

    On SQLite the whole migration is one real transaction (pysqlite alone would run DDL outside
    one), and foreign keys are not enforced while it runs: batch mode rebuilds a table by copying
    it, dropping the original and renaming the copy, and with enforcement on, dropping the
    original would fire ``ON DELETE CASCADE`` and delete every row that references it. The
    foreign keys are checked before the commit instead, and enforced again afterwards.
    ``PRAGMA foreign_keys`` does nothing inside a transaction, so it is set before it begins.
    """
    if engine.dialect.name != "sqlite":
        with connect(engine) as conn:
            yield conn
        return
    conn = _open(engine)
    with conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            if driver.execute("PRAGMA foreign_keys").fetchone()[0]:
                raise SemretError(f"cannot turn off foreign keys of {describe_url(engine.url)} to migrate it")
            with conn.begin():
                conn.exec_driver_sql("BEGIN")
                yield conn
                violations = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if violations:
                    where = ", ".join(sorted({f"{row[0]} -> {row[2]}" for row in violations}))
                    raise SemretError(f"the migration would break foreign keys ({where}); nothing was changed")
        finally:
            try:
                driver.execute("PRAGMA foreign_keys=ON")
            except Exception:  # a broken connection is discarded, not pooled without them
                conn.invalidate()


def database_unavailable(engine: Engine, exc: BaseException) -> DatabaseUnavailableError:
    """The error for a database that cannot be reached, with the driver's reason on one line."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()
    detail = reason[0] if reason else type(exc).__name__
    return DatabaseUnavailableError(f"cannot connect to the database {describe_url(engine.url)}: {detail}")
