"""What store calls cost, on SQLite and PostgreSQL: merges do not count or analyse the whole
target table, the schema check asks each engine once, and the SQL image ranker is one statement
on one connection, without temporary tables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, event, text

from semret.errors import SchemaNotCurrentError
from semret.iwan.graph import IwanSettings
from semret.iwan.norms import find_norms_files, read_norms_file
from semret.iwan.published import PublishedIwanSettings
from semret.sql import bulk, migrations
from semret.sql.bulk import MergeCounts
from semret.sql.engine import make_engine
from semret.sql.images_store import IMAGES, RankedWords, store_image_words, store_imagenet_words, store_images
from semret.sql.iwan_store import (
    SqlImageRanker,
    build_iwan_graph,
    build_published_iwan_graph,
    image_query,
    load_iwan,
)
from semret.sql.norms_store import load_norms

FIXTURES = Path(__file__).parent / "fixtures" / "norms"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


class Recorded:
    """The SQL statements an engine ran, and how many connections it handed out."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.checkouts = 0

    def about(self, table: str) -> list[str]:
        """The statements that count the rows of ``table`` or analyse it."""
        counting = re.compile(rf"count\(\*\)\s+AS\s+\w+\s+FROM\s+\"?{table}\"?(\s|$)", re.IGNORECASE)
        analysing = re.compile(rf"^\s*ANALYZE\s+\"?{table}\"?\s*$", re.IGNORECASE)
        return [s for s in self.statements if counting.search(s) or analysing.search(s)]


@contextmanager
def recording(engine: Engine) -> Iterator[Recorded]:
    recorded = Recorded()

    def statement(_conn, _cursor, sql, _params, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
        recorded.statements.append(sql)

    def checkout(*_args: object) -> None:
        recorded.checkouts += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine.pool, "checkout", checkout)
    try:
        yield recorded
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine.pool, "checkout", checkout)


def test_a_small_merge_into_a_large_table_neither_counts_nor_analyses_it(engine: Engine) -> None:
    assert store_images(engine, "big", np.arange(3_000), ["x"] * 3_000) == MergeCounts(3_000, 0, 0)
    with recording(engine) as recorded:
        assert store_images(engine, "small", np.arange(10), ["y"] * 10) == MergeCounts(10, 0, 0)
        assert store_images(engine, "big", [1, 2, 5_000], ["z"] * 3) == MergeCounts(1, 2, 0)
    assert any("INSERT INTO images" in s for s in recorded.statements)
    assert recorded.about("images") == []


def test_a_merge_that_makes_most_of_a_table_refreshes_its_statistics(engine: Engine) -> None:
    """The reason merges analysed their target: a table bulk-loaded from empty keeps no statistics."""
    store_images(engine, "big", np.arange(3_000), ["x"] * 3_000)
    with engine.connect() as conn:
        assert bulk.planner_rows(conn, IMAGES) == 3_000


def test_the_schema_is_checked_once_per_engine(engine: Engine) -> None:
    migrations.require_current_schema(engine)
    with recording(engine) as recorded:
        migrations.require_current_schema(engine)
        load_norms(engine, [read_norms_file(p) for p in find_norms_files([FIXTURES])])
    assert recorded.statements and not any("alembic_version" in s for s in recorded.statements)
    assert recorded.checkouts == 1  # the load's own connection
    migrations.downgrade(engine, "-1")  # a migration through this module forgets the check
    with pytest.raises(SchemaNotCurrentError, match="semret db upgrade"):
        migrations.require_current_schema(engine)
    migrations.upgrade(engine)
    migrations.require_current_schema(engine)


def test_the_migration_scripts_are_read_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    migrations.head_revision()

    def parse_again(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the scripts were parsed again")

    monkeypatch.setattr(migrations.ScriptDirectory, "from_config", parse_again)
    other = make_engine(engine.url)
    try:
        migrations.require_current_schema(other)
        assert migrations.schema_status(other).is_current
    finally:
        other.dispose()


def test_a_sql_ranking_is_one_statement_on_one_connection(engine: Engine) -> None:
    load_norms(engine, [read_norms_file(p) for p in find_norms_files([FIXTURES])])
    store_images(engine, "fruit", [1, 2, 3, 4])
    ranked = RankedWords(
        np.array([1, 2, 3, 4]), [["RED"], ["FRUIT", "ORANGE"], ["BUN"], ["APPLE"]], [[0.9], [0.5, 0.25], [1.0], [0.8]]
    )
    store_image_words(engine, "fruit", ranked)
    build_iwan_graph(engine, "fruit", IwanSettings())
    stored = load_iwan(engine, "fruit")
    query = image_query(engine, stored, 4)
    ranker = SqlImageRanker(engine, load_iwan(engine, "fruit", with_images=False))
    word_distances = stored.index.word_distances([query])[0]
    with recording(engine) as recorded:
        for exclude in (None, 4):
            got = ranker(word_distances, 3, exclude)
            expected = stored.index(word_distances, 3, exclude)
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_array_equal(got[0], expected[0])
    assert recorded.checkouts == 2  # one connection per call
    assert len(recorded.statements) == 2  # one statement per call: no table made, filled, analysed, dropped
    assert all(s.lstrip().upper().startswith(("SELECT", "WITH")) for s in recorded.statements)


def _plan(engine: Engine, statement: str, parameters: dict[str, object]) -> list[str]:
    """The query plan's lines: SQLite's EXPLAIN QUERY PLAN details, PostgreSQL's EXPLAIN text."""
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.execute(text(explain + statement), parameters).all()
    return [str(row[-1]).strip() for row in rows]


@pytest.mark.parametrize("published", [False, True], ids=["iwan", "published"])
def test_a_sql_ranking_reads_each_reached_word_by_the_ranking_index(engine: Engine, published: bool) -> None:
    # Each reached word reads its first links of the collection by the ranking index (strength
    # descending, image id), LIMIT 2k: never a scan of the links, so the cost grows with the words
    # reached x k, not with the collection (issue 12: 122 ms a query at 1M images on PostgreSQL
    # when every link of every reached word was joined).
    load_norms(engine, [read_norms_file(p) for p in find_norms_files([FIXTURES])])
    words = [["RED"], ["FRUIT", "ORANGE"], ["BUN"], ["APPLE"]] * 100
    strengths = [[0.9], [0.5, 0.25], [1.0], [0.8]] * 100
    for name in ("fruit", "other"):  # another collection's links share the words
        store_images(engine, name, np.arange(1, 401), ["apple", "pear", "bun", "apple"] * 100)
        store_image_words(engine, name, RankedWords(np.arange(1, 401), words, strengths))
    if published:
        store_imagenet_words(engine, "fruit", RankedWords(np.arange(1, 401), [["GRANNY SMITH"]] * 400, [[0.5]] * 400))
        build_published_iwan_graph(engine, "fruit", PublishedIwanSettings())
    else:
        build_iwan_graph(engine, "fruit", IwanSettings())
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    stored = load_iwan(engine, "fruit", with_images=False)
    ranker = SqlImageRanker(engine, stored)
    distances = np.full(len(stored.word_ids), np.inf)
    distances[:3] = [1.0, 2.0, 3.0]
    table, index, word = (
        ("iwan_graph_links", "ix_iwan_graph_links_node_order", "graph_id=? AND node")
        if published
        else ("image_words", "ix_image_words_word_order", "word_id")
    )
    for exclude in (None, 4):
        statement = ranker.statement(exclude is not None)
        plan = _plan(engine, statement.text, ranker.parameters(distances, 3, exclude))
        if engine.dialect.name == "sqlite":
            # x: a word's k-th and 2k-th links; l: its first 2k, a range of the index up to the
            # 2k-th (two ranges: MULTI-INDEX OR), then the links that round alike (by rowid)
            assert not any(re.match(r"SCAN [lx]\b", line) for line in plan), plan
            searches = [line for line in plan if re.match(r"SEARCH [lx] ", line)]
            assert all(
                f"USING COVERING INDEX {index} ({word}=?" in line
                or line == "SEARCH l USING INTEGER PRIMARY KEY (rowid=?)"
                for line in searches
            ), plan
            assert len(searches) == 7 and "MULTI-INDEX OR" in plan, plan
        else:
            assert not any(re.search(rf"Seq Scan on {table}\b", line) for line in plan), plan
            assert any(re.search(rf"Index (Only )?Scan using {index} on {table}\b", line) for line in plan), plan
