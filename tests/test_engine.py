"""Choosing the database: --db, then SEMRET_DATABASE_URL, then the embedded default; clear errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from semret.errors import DatabaseUnavailableError, SemretError
from semret.sql import engine as engine_module
from semret.sql.engine import (
    FairGate,
    connect,
    default_database_path,
    describe_url,
    make_engine,
    normalise_database_url,
    resolve_database_url,
)
from semret.sql.migrations import current_revision

# Nothing listens on port 9 (discard) here, so connecting is refused at once.
DOWN_URL = "postgresql://semret:s3cret@127.0.0.1:9/semret"


def test_the_default_database_lives_in_the_user_data_dir(tmp_path: Path) -> None:
    # conftest points XDG_DATA_HOME into tmp_path
    assert default_database_path() == tmp_path / "xdg" / "data" / "semret" / "semret.sqlite3"
    assert resolve_database_url().database == str(default_database_path())


def test_explicit_url_beats_the_environment_which_beats_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMRET_DATABASE_URL", "sqlite:////tmp/from-env.sqlite3")
    assert resolve_database_url().database == "/tmp/from-env.sqlite3"
    assert resolve_database_url("sqlite:////tmp/explicit.sqlite3").database == "/tmp/explicit.sqlite3"


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite+pysqlite"),
    ],
)
def test_urls_are_pinned_to_psycopg_3_and_pysqlite(given: str, driver: str) -> None:
    assert normalise_database_url(given).drivername == driver


def test_unsupported_or_malformed_urls_are_clear_errors() -> None:
    with pytest.raises(SemretError, match="unsupported database 'mysql'"):
        normalise_database_url("mysql://u@h/db")
    with pytest.raises(SemretError, match="not a database URL"):
        normalise_database_url("not a url")


def test_passwords_are_never_shown() -> None:
    assert "s3cret" not in describe_url(normalise_database_url(DOWN_URL))


def test_the_sqlite_folder_is_created_on_first_use(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'semret.sqlite3'}")
    assert current_revision(engine) is None
    assert (tmp_path / "new" / "dir" / "semret.sqlite3").exists()


def test_a_database_that_is_down_is_named_in_the_error() -> None:
    engine = make_engine(DOWN_URL)
    with pytest.raises(DatabaseUnavailableError) as error:
        current_revision(engine)
    message = str(error.value)
    assert message.startswith("cannot connect to the database postgresql+psycopg://semret:***@127.0.0.1:9/semret")
    assert "s3cret" not in message


def test_sqlite_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    for url, milliseconds in (
        (f"sqlite:///{tmp_path / 'a.sqlite3'}", 60_000),
        (f"sqlite:///{tmp_path / 'b.sqlite3'}?timeout=2", 2_000),
    ):
        engine = make_engine(url)
        with connect(engine) as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == milliseconds
        engine.dispose()


def test_transactions_taking_the_same_lock_run_one_after_the_other(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)
    events: list[str] = []
    waiting = threading.Event()

    def later() -> None:
        waiting.set()
        with connect(second, lock="test") as conn:
            events.append("second in")
            conn.execute(text("SELECT 1"))

    with connect(first, lock="test") as conn:
        conn.execute(text("SELECT 1"))
        events.append("first in")
        thread = threading.Thread(target=later)
        thread.start()
        waiting.wait()
        time.sleep(0.3)
        events.append("first out")
    thread.join(10)
    assert events == ["first in", "first out", "second in"]
    for engine in (first, second):
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_plans_every_statement_for_its_own_parameters(postgres_url: str) -> None:
    # psycopg prepares a statement run five times; PostgreSQL's generic plan for the IWAN ranking
    # (blind to how many words a query reached) was ten times slower than its custom plans.
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_custom_plan"
    engine.dispose()
    own = make_engine(postgres_url + ("&" if "?" in postgres_url else "?") + "options=-c%20plan_cache_mode%3Dauto")
    with own.connect() as conn:  # a URL's own options are left as they are
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "auto"
    own.dispose()


def test_the_gate_serves_waiters_first_come_first_served() -> None:
    gate = FairGate(1)
    assert gate.acquire(1)
    order: list[int] = []

    def wait_then_note(number: int) -> None:
        assert gate.acquire(10)
        order.append(number)
        gate.release()

    threads = []
    for number in range(5):
        thread = threading.Thread(target=wait_then_note, args=(number,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while len(gate._waiters) < number + 1 and time.monotonic() < deadline:  # queued in this order
            time.sleep(0.001)
    gate.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    # a slot released is not taken back by its releaser ahead of a waiter
    assert gate.acquire(1)
    assert not gate.acquire(0.05)  # timed out: its place in the queue is given up
    assert not gate._waiters
    gate.release()
    assert gate.acquire(0) and gate._free == 0


@pytest.mark.postgres
def test_a_pool_busy_too_long_is_a_clear_error(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "POOL_TIMEOUT_SECONDS", 0.2)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with (
            connect(engine),
            pytest.raises(SemretError, match=r"all 1 connections to .* stayed busy for 0.2 s"),
            connect(engine),
        ):
            pass
        with connect(engine) as conn:  # the slot came back
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
