"""Alembic migrations on SQLite and PostgreSQL: up, down, up again; schema equals the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from semret.errors import SchemaNotCurrentError
from semret.sql import migrations
from semret.sql.engine import make_engine
from semret.sql.models import Base

SEMRET_TABLES = {
    "words",
    "norm_sources",
    "norm_pairs",
    "collections",
    "images",
    "image_words",
    "iwan_graphs",
    "iwan_word_edges",
    "hash_models",
    "image_hashes",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    assert migrations.current_revision(engine) is None
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
    assert tables(engine) == SEMRET_TABLES
    migrations.downgrade(engine, "base")
    assert migrations.current_revision(engine) is None
    assert tables(engine) == set()
    migrations.upgrade(engine)
    assert tables(engine) == SEMRET_TABLES
    assert migrations.schema_status(engine).is_current


def test_migrated_schema_equals_the_models(engine: Engine) -> None:
    migrations.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_missing_schema_tells_the_user_to_upgrade(engine: Engine) -> None:
    with pytest.raises(SchemaNotCurrentError, match="no semret schema yet: run `semret db upgrade`"):
        migrations.require_current_schema(engine)


def test_schema_from_a_newer_semret_is_reported(engine: Engine) -> None:
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    status = migrations.schema_status(engine)
    assert (status.current, status.known, status.is_current) == ("f00dfeed", False, False)
    with pytest.raises(SchemaNotCurrentError, match="newer semret"):
        migrations.require_current_schema(engine)


def test_migrations_ship_inside_the_package() -> None:
    import semret

    package = Path(semret.__file__).parent
    script_location = Path(migrations.alembic_config().get_main_option("script_location") or "")
    assert script_location == package / "alembic"
    assert any((script_location / "versions").glob("0001_*.py"))


def test_stepping_down_to_0001_keeps_the_norms(engine: Engine) -> None:
    from semret.iwan.norms import find_norms_files, read_norms_file
    from semret.sql.norms_store import load_norms, norms_stats

    migrations.upgrade(engine)
    load_norms(engine, [read_norms_file(p) for p in find_norms_files([Path(__file__).parent / "fixtures" / "norms"])])
    migrations.downgrade(engine, "0001")
    assert tables(engine) == {"words", "norm_sources", "norm_pairs"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM norm_pairs")).scalar_one() == 15
    migrations.upgrade(engine)
    assert norms_stats(engine).pairs == 15
