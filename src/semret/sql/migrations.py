"""Schema migrations, run programmatically from the Alembic scripts shipped inside the package.

The migrations are the only way semret's schema is made, so they are found wherever semret is
installed (``importlib.resources``), not only from a source checkout. The scripts are read once
per process, and `require_current_schema` asks each engine's database once: after that the
engine is known to be current until this module migrates it again.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from semret.errors import SchemaNotCurrentError, SemretError
from semret.sql.engine import connect, describe_url, migration_connection

#: Engines whose database `require_current_schema` found at the newest revision.
_current_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _package_dir() -> Path:
    return Path(str(resources.files("semret")))


def alembic_config() -> Config:
    """The Alembic configuration of the installed package (its ``alembic.ini`` and scripts)."""
    package = _package_dir()
    config = Config(str(package / "alembic.ini"))
    config.set_main_option("script_location", str(package / "alembic"))
    return config


@cache
def _scripts() -> ScriptDirectory:
    """The shipped scripts, parsed once: they do not change while semret runs."""
    return ScriptDirectory.from_config(alembic_config())


@cache
def head_revision() -> str:
    """The newest revision this semret knows."""
    head = _scripts().get_current_head()
    assert head is not None, "semret ships at least one migration"
    return head


@cache
def _revisions() -> tuple[str, ...]:
    return tuple(script.revision for script in reversed(list(_scripts().walk_revisions())))


def revisions() -> list[str]:
    """Every revision this semret knows, oldest first."""
    return list(_revisions())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database semret never migrated."""
    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    _current_engines.discard(engine)
    try:
        with migration_connection(engine) as conn:
            config.attributes["connection"] = conn
            try:
                getattr(command, action)(config, revision)
            except CommandError as exc:
                raise SemretError(f"cannot {action} {describe_url(engine.url)} to {revision!r}: {exc}") from exc
    finally:
        _current_engines.discard(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: the newest), in one transaction."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` removes semret's tables)."""
    _run(engine, "downgrade", revision)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against this semret."""

    current: str | None
    head: str
    known: bool

    @property
    def is_current(self) -> bool:
        """True when the database is at the newest revision."""
        return self.current == self.head


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's revision, the newest one, and whether this semret knows the database's."""
    current = current_revision(engine)
    known = current is None or _revision_exists(current)
    return SchemaStatus(current=current, head=head_revision(), known=known)


def _revision_exists(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def require_current_schema(engine: Engine) -> None:
    """Raise `SchemaNotCurrentError`, saying what to do, unless the schema is at the newest revision.

    The database is asked once per engine: an engine found current stays so until `upgrade` or
    `downgrade` runs on it (a schema changed by other means is seen by a new engine).
    """
    if engine in _current_engines:
        return
    status = schema_status(engine)
    if status.is_current:
        _current_engines.add(engine)
        return
    where = describe_url(engine.url)
    if status.current is None:
        raise SchemaNotCurrentError(f"the database {where} has no semret schema yet: run `semret db upgrade`")
    if not status.known:
        raise SchemaNotCurrentError(
            f"the database {where} is at revision {status.current}, which this semret does not know "
            "(it was migrated by a newer semret): upgrade semret"
        )
    raise SchemaNotCurrentError(
        f"the database {where} is at revision {status.current}, semret needs {status.head}: run `semret db upgrade`"
    )
