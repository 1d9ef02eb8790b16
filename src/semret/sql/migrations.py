"""Schema migrations, run programmatically from the Alembic scripts shipped inside the package.

The migrations are the only way semret's schema is made, so they are found wherever semret is
installed (``importlib.resources``), not only from a source checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from semret.errors import SchemaNotCurrentError, SemretError
from semret.sql.engine import connect, describe_url


def _package_dir() -> Path:
    return Path(str(resources.files("semret")))


def alembic_config() -> Config:
    """The Alembic configuration of the installed package (its ``alembic.ini`` and scripts)."""
    package = _package_dir()
    config = Config(str(package / "alembic.ini"))
    config.set_main_option("script_location", str(package / "alembic"))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this semret knows."""
    head = _scripts().get_current_head()
    assert head is not None, "semret ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database semret never migrated."""
    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    with connect(engine) as conn:
        config.attributes["connection"] = conn
        try:
            getattr(command, action)(config, revision)
        except CommandError as exc:
            raise SemretError(f"cannot {action} {describe_url(engine.url)} to {revision!r}: {exc}") from exc


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
    """Raise `SchemaNotCurrentError`, saying what to do, unless the schema is at the newest revision."""
    status = schema_status(engine)
    if status.is_current:
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
