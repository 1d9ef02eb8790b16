"""Loading the norms into the store on SQLite and PostgreSQL: content, idempotence, corrections,
all-or-nothing failures, and the word look-ups."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from semret.errors import NormsFormatError, SchemaNotCurrentError, SemretError, UnknownWordError
from semret.iwan.norms import VALUE_NAMES, NormsFile, find_norms_files, read_norms_file, sample_norms_dir
from semret.sql import bulk, migrations, norms_store
from semret.sql.engine import make_engine
from semret.sql.norms_store import PAIRS, SOURCES, WORDS, NormsStats, load_norms, norms_stats, word_associates

FIXTURES = Path(__file__).parent / "fixtures" / "norms"
FIXTURE_STATS = NormsStats(words=23, cues=11, targets=14, pairs=15, normed_pairs=8, sources=2)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


def fixture_files() -> list[NormsFile]:
    return [read_norms_file(p) for p in find_norms_files([FIXTURES])]


def snapshot(engine: Engine) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every row of the norms tables, ids included, in a stable order."""
    with engine.connect() as conn:
        return (
            conn.execute(select(WORDS).order_by(WORDS.c.id)).all(),
            conn.execute(select(PAIRS).order_by(PAIRS.c.id)).all(),
            conn.execute(select(SOURCES).order_by(SOURCES.c.id)).all(),
        )


def pair_row(engine: Engine, cue: str, target: str) -> dict[str, object] | None:
    cue_word, target_word = WORDS.alias("cue"), WORDS.alias("target")
    with engine.connect() as conn:
        row = conn.execute(
            select(PAIRS, SOURCES.c.name.label("source"))
            .join(cue_word, cue_word.c.id == PAIRS.c.cue_id)
            .join(target_word, target_word.c.id == PAIRS.c.target_id)
            .join(SOURCES, SOURCES.c.id == PAIRS.c.source_id)
            .where(cue_word.c.word == cue, target_word.c.word == target)
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def test_load_stores_every_pair_with_all_its_fields(engine: Engine) -> None:
    files = fixture_files()
    report = load_norms(engine, files)
    assert (report.words_added, report.pairs_inserted, report.pairs_updated, report.pairs_deleted) == (23, 15, 0, 0)
    assert [s.status for s in report.sources] == ["loaded", "loaded"]
    assert norms_stats(engine) == FIXTURE_STATS
    for record in (r for f in files for r in f.records):
        row = pair_row(engine, record.cue, record.target)
        assert row is not None
        assert tuple(row[name] for name in VALUE_NAMES) == record.values
    with engine.connect() as conn:
        spelling = conn.execute(select(WORDS.c.spelling).where(WORDS.c.word == "HOT DOGS")).scalar_one()
        sources = conn.execute(select(SOURCES.c.name, SOURCES.c.rows, SOURCES.c.sha256)).all()
    assert spelling == "HOT  DOGS"  # first seen, in Cue_Target_Pairs.A-B
    assert sorted((name, rows) for name, rows, _ in sources) == [
        ("Cue_Target_Pairs.A-B", 7),
        ("Cue_Target_Pairs.C", 8),
    ]
    assert all(len(sha) == 64 for _, _, sha in sources)


def test_loading_again_changes_nothing(engine: Engine) -> None:
    load_norms(engine, fixture_files())
    before = snapshot(engine)
    again = load_norms(engine, fixture_files())
    assert not again.changed and [s.status for s in again.sources] == ["unchanged", "unchanged"]
    forced = load_norms(engine, fixture_files(), force=True)
    assert not forced.changed and [s.status for s in forced.sources] == ["loaded", "loaded"]
    words, pairs, _ = snapshot(engine)
    assert (words, pairs) == before[:2]
    assert norms_stats(engine) == FIXTURE_STATS


def test_a_corrected_file_updates_inserts_and_deletes_its_rows(engine: Engine, tmp_path: Path) -> None:
    load_norms(engine, fixture_files())
    corrected = tmp_path / "Cue_Target_Pairs.A-B"
    text = (FIXTURES / "Cue_Target_Pairs.A-B").read_text()
    fruit_line = next(line for line in text.splitlines() if line.startswith("APPLE, FRUIT, "))
    text = text.replace("APPLE, RED, YES, 149, 31, .208,", "APPLE, RED, YES, 149, 31, .210,")
    text = text.replace(fruit_line, fruit_line.replace("APPLE, FRUIT, ", "APPLE, PIE, "))
    corrected.write_text(text)
    report = load_norms(engine, [read_norms_file(corrected)])
    assert (report.words_added, report.pairs_inserted, report.pairs_updated, report.pairs_deleted) == (1, 1, 1, 1)
    assert pair_row(engine, "APPLE", "RED")["fsg"] == 0.210  # type: ignore[index]
    assert pair_row(engine, "APPLE", "FRUIT") is None
    assert pair_row(engine, "APPLE", "PIE") is not None
    assert pair_row(engine, "PEAR", "FRUIT") is not None  # the other file's rows are untouched
    assert norms_stats(engine).pairs == 15


def test_a_failure_inside_the_load_writes_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_merge(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "merge_from_staging", broken_merge)
    with pytest.raises(RuntimeError, match="disk full"):
        load_norms(engine, fixture_files())
    assert snapshot(engine) == ([], [], [])


def test_the_same_pair_in_two_files_is_refused_before_writing(engine: Engine, tmp_path: Path) -> None:
    copy = tmp_path / "Cue_Target_Pairs.copy"
    shutil.copy(FIXTURES / "Cue_Target_Pairs.C", copy)
    with pytest.raises(NormsFormatError, match=r"pair CUE -> POOL is also in .*Cue_Target_Pairs\.C:5"):
        load_norms(engine, [*fixture_files(), read_norms_file(copy)])
    assert snapshot(engine) == ([], [], [])


def test_two_files_of_the_same_name_are_refused(engine: Engine, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "Cue_Target_Pairs.C", tmp_path / "Cue_Target_Pairs.C")
    files = [read_norms_file(FIXTURES / "Cue_Target_Pairs.C"), read_norms_file(tmp_path / "Cue_Target_Pairs.C")]
    with pytest.raises(NormsFormatError, match="same file name"):
        load_norms(engine, files)


def test_skipped_lines_are_recorded_with_the_source(engine: Engine, tmp_path: Path) -> None:
    broken = tmp_path / "Cue_Target_Pairs.C"
    broken.write_text((FIXTURES / "Cue_Target_Pairs.C").read_text().replace("CUE, STICK, YES", "CUE, STICK, MAYBE"))
    report = load_norms(engine, [read_norms_file(broken, skip_invalid=True)])
    assert [(e.line, e.field) for e in report.skipped] == [(6, "NORMED?")]
    assert norms_stats(engine).pairs == 7
    with engine.connect() as conn:
        assert conn.execute(select(SOURCES.c.rows, SOURCES.c.skipped_rows)).one() == (7, 1)


def test_loading_needs_the_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaNotCurrentError, match="semret db upgrade"):
        load_norms(engine, fixture_files())
    engine.dispose()


def test_associates_are_ranked_by_forward_strength(engine: Engine) -> None:
    load_norms(engine, fixture_files())
    apple = word_associates(engine, "apple")
    assert (apple.word, apple.spelling) == ("APPLE", "APPLE")
    assert [(a.word, a.fsg) for a in apple.forward] == [("RED", 0.208), ("ORANGE", 0.174), ("FRUIT", 0.154)]
    assert [(a.word, a.fsg, a.normed) for a in apple.backward] == [("PEAR", 0.252, True)]
    assert [a.word for a in word_associates(engine, "APPLE", limit=2).forward] == ["RED", "ORANGE"]
    hot_dogs = word_associates(engine, " hot   dogs ")
    assert [a.word for a in hot_dogs.forward] == ["BUN"] and [a.word for a in hot_dogs.backward] == ["BOLOGNA"]


def test_unknown_words_get_suggestions(engine: Engine) -> None:
    with pytest.raises(SemretError, match="no norms are loaded"):
        word_associates(engine, "APPLE")
    load_norms(engine, fixture_files())
    with pytest.raises(UnknownWordError) as error:
        word_associates(engine, "appel")
    assert error.value.suggestions[0] == "APPLE"
    assert "did you mean APPLE" in str(error.value)


def test_concurrent_loads_both_succeed_with_exact_data(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two loads of the same files at once (two engines, as two processes would have): the second
    waits for the first, then finds the files unchanged; the data is that of one load."""
    first = make_engine(database_url)
    migrations.upgrade(first)
    second = make_engine(database_url)
    files = [read_norms_file(p) for p in find_norms_files([sample_norms_dir()])]
    merge = norms_store.stage_and_merge

    def slow_merge(*args: Any, **kwargs: Any) -> bulk.MergeCounts:
        time.sleep(0.5)  # both loads are under way at once, whatever the thread scheduling
        return merge(*args, **kwargs)

    monkeypatch.setattr(norms_store, "stage_and_merge", slow_merge)
    start = threading.Barrier(2)

    def load(engine: Engine) -> norms_store.NormsLoadReport:
        start.wait()
        return load_norms(engine, files)

    with ThreadPoolExecutor(2) as pool:
        reports = [future.result() for future in [pool.submit(load, first), pool.submit(load, second)]]
    statuses = sorted(tuple(s.status for s in report.sources) for report in reports)
    assert statuses == [("loaded",) * len(files), ("unchanged",) * len(files)]
    pairs = sum(len(f.records) for f in files)
    assert sum(report.pairs_inserted for report in reports) == pairs
    words = {w for f in files for r in f.records for w in (r.cue, r.target)}
    stats = norms_stats(first)
    assert (stats.pairs, stats.words, stats.sources) == (pairs, len(words), len(files))
    for engine in (first, second):
        engine.dispose()
