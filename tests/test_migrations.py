"""Alembic migrations on SQLite and PostgreSQL: up, down, up again; schema equals the models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from semret.errors import SchemaNotCurrentError
from semret.sql import migrations
from semret.sql.engine import make_engine
from semret.sql.models import Base
from semret.sql.pgvector_store import TABLE_NAME as PGVECTOR_TABLE

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
    "image_imagenet_words",
    "iwan_graph_nodes",
    "iwan_node_edges",
    "iwan_graph_links",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    """semret's tables, without pgvector's copy of the hashes (0007: only where the server has
    pgvector, made from image_hashes; tests/test_pgvector.py checks it)."""
    return set(inspect(engine).get_table_names()) - {"alembic_version", PGVECTOR_TABLE}


def schema_diff(conn: Connection) -> list[object]:
    """How the database's schema differs from the models (pgvector's table left out)."""
    include = {"include_object": lambda obj, name, kind, *_: not (kind == "table" and name == PGVECTOR_TABLE)}
    return list(
        compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True} | include), Base.metadata)
    )


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
        assert schema_diff(conn) == []


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


# --- every step keeps the rows ------------------------------------------------------------------

WHEN = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
#: Rows of every table at the newest revision, parents first; columns a revision lacks are left out.
ROWS: dict[str, list[dict[str, object]]] = {
    "words": [
        {"id": 1, "word": "APPLE", "spelling": "apple"},
        {"id": 2, "word": "RED", "spelling": "Red"},
        {"id": 3, "word": "HOT DOGS", "spelling": "HOT  DOGS"},
    ],
    "norm_sources": [
        {"id": 1, "name": "Cue_Target_Pairs.A-B", "sha256": "a" * 64, "rows": 2, "skipped_rows": 1, "loaded_at": WHEN}
    ],
    "norm_pairs": [
        {"id": 1, "cue_id": 1, "target_id": 2, "source_id": 1, "normed": True, "group_size": 149, "producers": 31}
        | {"fsg": 0.208, "bsg": 0.01, "cue_homograph": "H", "target_use_code": 3},
        {"id": 2, "cue_id": 3, "target_id": 1, "source_id": 1, "normed": False, "group_size": 10, "producers": 2}
        | {"fsg": 0.5, "bsg": None},
    ],
    "collections": [
        {"id": 1, "name": "fruit", "created_at": WHEN, "dataset": "cifar10"},
        {"id": 2, "name": "snacks", "created_at": WHEN, "dataset": None},
    ],
    "images": [
        {"id": 1, "collection_id": 1, "image_id": 10, "label": "apple", "split": "train", "source": "data_batch_1#3"},
        {"id": 2, "collection_id": 1, "image_id": 11, "label": None, "split": "test", "source": None},
        {"id": 3, "collection_id": 2, "image_id": 10, "label": "hot dog", "split": None, "source": "/x/hot.png"},
    ],
    "image_words": [
        # collection_id and image_id (0006) are the image's: an upgrade fills them from images
        {"image_key": 1, "rank": 1, "word_id": 1, "strength": 0.75, "collection_id": 1, "image_id": 10},
        {"image_key": 1, "rank": 2, "word_id": 2, "strength": 0.25, "collection_id": 1, "image_id": 10},
        {"image_key": 3, "rank": 1, "word_id": 3, "strength": 1.0, "collection_id": 2, "image_id": 10},
    ],
    "iwan_graphs": [
        {"id": 1, "collection_id": 1, "top_iwk": 4, "top_wwk": 4, "normed_only": False, "backward": True}
        | {"built_at": WHEN, "scheme": "iwan", "label_strength": None},
        {"id": 2, "collection_id": 2, "top_iwk": 1, "top_wwk": 2, "normed_only": True, "backward": False}
        | {"built_at": WHEN, "scheme": "published", "label_strength": 0.8},
    ],
    "iwan_word_edges": [
        {"graph_id": 1, "source_word_id": 1, "target_word_id": 2, "strength": 0.208},
        {"graph_id": 2, "source_word_id": 3, "target_word_id": 1, "strength": 0.5},
    ],
    "image_imagenet_words": [
        {"image_key": 1, "rank": 1, "name": "GRANNY SMITH", "probability": 0.625, "collection_id": 1, "image_id": 10},
        {"image_key": 1, "rank": 2, "name": "HOTDOG", "probability": 0.125, "collection_id": 1, "image_id": 10},
    ],
    "iwan_graph_nodes": [
        {"graph_id": 2, "node": 0, "name": "GRANNY SMITH", "lookup": "SMITH"},
        {"graph_id": 2, "node": 1, "name": "HOT DOG", "lookup": "DOG"},
    ],
    "iwan_node_edges": [
        {"graph_id": 2, "source_node": 0, "target_node": 1, "strength": 0.5},
        {"graph_id": 2, "source_node": 1, "target_node": 0, "strength": 0.5},
    ],
    "iwan_graph_links": [
        {"graph_id": 2, "image_key": 3, "node": 1, "strength": 0.8, "collection_id": 2, "image_id": 10}
    ],
    "hash_models": [
        {"id": 1, "name": "h48", "n_bits": 48, "embedding_dim": 3, "config": "{}", "checkpoint_sha256": "b" * 64}
        | {"created_at": WHEN}
    ],
    "image_hashes": [
        {"model_id": 1, "image_key": 1, "code": b"\x01\x02\x03\x04\x05\x06", "code_int": 42, "embedding": b"\0" * 12},
        {"model_id": 1, "image_key": 3, "code": b"\xff" * 6, "code_int": None, "embedding": b"\1" * 12},
    ],
}
assert set(ROWS) == SEMRET_TABLES

Snapshot = dict[str, list[dict[str, object]]]


def reflected(engine: Engine) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(engine, only=sorted(tables(engine)))
    return dict(metadata.tables)


def fill(engine: Engine) -> None:
    """Put ``ROWS`` in every table the database has now (the columns it has now)."""
    present = reflected(engine)
    with engine.begin() as conn:
        for name, rows in ROWS.items():
            if name in present:
                table = present[name]
                for row in rows:
                    conn.execute(insert(table).values({k: v for k, v in row.items() if k in table.c}))


def snapshot(engine: Engine) -> Snapshot:
    """Every row of every table, in primary key order."""
    with engine.connect() as conn:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
            for name, table in reflected(engine).items()
        }


def kept(before: Snapshot, after: Snapshot) -> Snapshot:
    """``before`` cut to the tables and columns that ``after`` has. Published IWAN graphs (0005)
    and their word edges are the only rows a downgrade removes: the schema below cannot hold them."""
    columns = {name: set(rows[0]) for name, rows in after.items() if rows}
    published = set()
    if "iwan_graphs" in after and "scheme" not in columns.get("iwan_graphs", {"scheme"}):
        published = {row["id"] for row in before.get("iwan_graphs", []) if row.get("scheme") == "published"}
    graph_column = {"iwan_graphs": "id", "iwan_word_edges": "graph_id"}
    return {
        name: [
            {k: v for k, v in row.items() if k in columns.get(name, row)}
            for row in before[name]
            if row.get(graph_column.get(name, ""), None) not in published
        ]
        for name in after
    }


def test_every_step_down_and_up_keeps_the_rows(engine: Engine) -> None:
    """Each revision, downgraded one step and upgraded again, keeps every row of the tables that
    exist below it (only the columns the revision added may go); then down from the newest to base."""
    revisions = migrations.revisions()
    assert revisions[-1] == migrations.head_revision()
    for below, revision in zip(["base", *revisions], revisions, strict=False):
        migrations.downgrade(engine, "base")
        migrations.upgrade(engine, revision)
        fill(engine)
        full = snapshot(engine)
        assert all(full.values()), f"{revision}: every table got rows"
        migrations.downgrade(engine, below)
        assert migrations.current_revision(engine) == (None if below == "base" else below)
        lower = snapshot(engine)
        assert lower == kept(full, lower), f"rows lost by the downgrade {revision} -> {below}"
        migrations.upgrade(engine, revision)
        again = snapshot(engine)
        assert set(again) == set(full)
        assert kept(again, lower) == lower, f"rows lost by the upgrade {below} -> {revision}"
    # the newest schema survives the round trips unchanged (constraints, cascades)
    with engine.connect() as conn:
        assert schema_diff(conn) == []
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM collections WHERE id = 2"))
        assert conn.execute(text("SELECT count(*) FROM image_words WHERE image_key = 3")).scalar_one() == 0
    for revision, below in zip(reversed(revisions), [*reversed(revisions[:-1]), "base"], strict=True):
        before = snapshot(engine)
        migrations.downgrade(engine, below)
        after = snapshot(engine)
        assert after == kept(before, after), f"rows lost by the downgrade {revision} -> {below}"
    assert tables(engine) == set()


def test_the_alembic_command_line_keeps_the_rows_too(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alembic downgrade`` (env.py opens its own connection) keeps the rows like `semret db`."""
    migrations.upgrade(engine)
    fill(engine)
    before = snapshot(engine)
    monkeypatch.setenv("SEMRET_DATABASE_URL", database_url)
    command.downgrade(migrations.alembic_config(), "-1")
    after = snapshot(engine)
    assert after == kept(before, after) and all(after.values())
    command.upgrade(migrations.alembic_config(), "head")
    assert migrations.schema_status(engine).is_current


def test_foreign_keys_are_enforced_again_after_a_migration(engine: Engine) -> None:
    migrations.upgrade(engine)
    migrations.downgrade(engine, "-1")
    migrations.upgrade(engine)
    for _ in range(3):  # every pooled connection
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO images (collection_id, image_id) VALUES (99, 1)"))
