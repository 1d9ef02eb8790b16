"""The USF norms in the store: load parsed files, count them, look up a word's associates.

A load is one transaction and idempotent. Each file is a source, known by its file name: its rows
are staged (COPY on PostgreSQL, executemany on SQLite) and merged into ``norm_pairs`` with plain
SQL: new pairs are inserted, changed ones updated, and pairs that a reloaded file no longer holds
are deleted. A file whose checksum matches what was loaded before is left alone. Concurrent loads
run one after the other (a lock taken when the transaction begins), so the second one sees what
the first wrote instead of inserting the same words again.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from semret.errors import NormsFormatError, SemretError, UnknownWordError
from semret.iwan.norms import VALUE_NAMES, NormsFile, normalise_word
from semret.sql.bulk import bulk_insert, stage_and_merge
from semret.sql.engine import connect
from semret.sql.migrations import require_current_schema
from semret.sql.models import NormPair, NormSource, Word

PAIRS: Table = NormPair.__table__  # type: ignore[assignment]
WORDS: Table = Word.__table__  # type: ignore[assignment]
SOURCES: Table = NormSource.__table__  # type: ignore[assignment]
PAIR_KEY = ("cue_id", "target_id")
PAIR_VALUES = ("source_id", *VALUE_NAMES)
#: The lock that serialises norms loads (`semret.sql.engine.connect`).
NORMS_LOCK = "norms-load"


@dataclass(frozen=True)
class SourceReport:
    """What a load did with one file."""

    name: str
    sha256: str
    rows: int
    skipped: int
    status: str  # "loaded" or "unchanged"


@dataclass
class NormsLoadReport:
    """What a load did: per file, and the words and pairs it inserted, updated and deleted."""

    sources: list[SourceReport] = field(default_factory=list)
    words_added: int = 0
    pairs_inserted: int = 0
    pairs_updated: int = 0
    pairs_deleted: int = 0
    skipped: list[NormsFormatError] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the load changed anything in the database."""
        return bool(self.words_added or self.pairs_inserted or self.pairs_updated or self.pairs_deleted)


def _check_unambiguous(files: Sequence[NormsFile]) -> None:
    """A source name and a pair may each come from one file only: two would be ambiguous."""
    paths_by_name: dict[str, str] = {}
    for norms_file in files:
        other = paths_by_name.setdefault(norms_file.name, str(norms_file.path))
        if other != str(norms_file.path):
            raise NormsFormatError(str(norms_file.path), None, None, None, f"has the same file name as {other}")
    first_seen: dict[tuple[str, str], tuple[str, int]] = {}
    for norms_file in files:
        for record in norms_file.records:
            where = first_seen.setdefault((record.cue, record.target), (str(norms_file.path), record.line))
            if where[0] != str(norms_file.path):
                raise NormsFormatError(
                    str(norms_file.path),
                    record.line,
                    None,
                    None,
                    f"pair {record.cue} -> {record.target} is also in {where[0]}:{where[1]}",
                )


def _ensure_words(conn: Connection, files: Sequence[NormsFile]) -> tuple[dict[str, int], int]:
    """Ids of every word of ``files``, inserting the new ones; returns (ids, number added)."""
    spellings: dict[str, str] = {}
    for norms_file in files:
        for record in norms_file.records:
            spellings.setdefault(record.cue, record.cue_spelling)
            spellings.setdefault(record.target, record.target_spelling)
    ids = dict(conn.execute(select(WORDS.c.word, WORDS.c.id)).all())
    missing = [(word, spelling) for word, spelling in spellings.items() if word not in ids]
    if missing:
        bulk_insert(conn, WORDS, ("word", "spelling"), missing)
        ids = dict(conn.execute(select(WORDS.c.word, WORDS.c.id)).all())
    return ids, len(missing)


def _record_source(conn: Connection, norms_file: NormsFile, now: datetime) -> int:
    """Insert or update the source row of a file that is being (re)loaded; return its id."""
    values = {
        "sha256": norms_file.sha256,
        "rows": len(norms_file.records),
        "skipped_rows": len(norms_file.invalid),
        "loaded_at": now,
    }
    source_id = conn.execute(select(SOURCES.c.id).where(SOURCES.c.name == norms_file.name)).scalar()
    if source_id is None:
        inserted = insert(SOURCES).values(name=norms_file.name, **values).returning(SOURCES.c.id)
        return int(conn.execute(inserted).scalar_one())
    conn.execute(update(SOURCES).where(SOURCES.c.id == source_id).values(**values))
    return int(source_id)


def _staged_rows(files: Sequence[tuple[NormsFile, int]], word_ids: dict[str, int]) -> Iterator[tuple[object, ...]]:
    for norms_file, source_id in files:
        for record in norms_file.records:
            yield (word_ids[record.cue], word_ids[record.target], source_id, *record.values)


def load_norms(
    engine: Engine,
    files: Sequence[NormsFile],
    *,
    force: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> NormsLoadReport:
    """Load parsed norms files in one transaction (nothing is written if anything fails).

    Files whose name and checksum match an earlier load are skipped unless ``force``. ``on_rows(n)``
    reports progress as rows are staged. A load that another one is running beside waits for it
    to end (PostgreSQL: an advisory lock; SQLite: the write lock), then loads what is still new.
    """
    require_current_schema(engine)
    _check_unambiguous(files)
    report = NormsLoadReport(skipped=[error for f in files for error in f.invalid])
    now = datetime.now(UTC)
    with connect(engine, lock=NORMS_LOCK) as conn:
        known = dict(conn.execute(select(SOURCES.c.name, SOURCES.c.sha256)).all())
        to_load: list[NormsFile] = []
        for norms_file in files:
            unchanged = not force and known.get(norms_file.name) == norms_file.sha256
            if not unchanged:
                to_load.append(norms_file)
            report.sources.append(
                SourceReport(
                    norms_file.name,
                    norms_file.sha256,
                    len(norms_file.records),
                    len(norms_file.invalid),
                    "unchanged" if unchanged else "loaded",
                )
            )
        if not to_load:
            return report
        word_ids, report.words_added = _ensure_words(conn, to_load)
        with_ids = [(f, _record_source(conn, f, now)) for f in to_load]
        source_ids = [source_id for _, source_id in with_ids]
        counts = stage_and_merge(
            conn,
            PAIRS,
            PAIR_KEY,
            PAIR_VALUES,
            _staged_rows(with_ids, word_ids),
            owned=lambda _staging: PAIRS.c.source_id.in_(source_ids),
            on_batch=on_rows,
        )
        report.pairs_inserted, report.pairs_updated, report.pairs_deleted = (
            counts.inserted,
            counts.updated,
            counts.deleted,
        )
    return report


@dataclass(frozen=True)
class NormsStats:
    """Counts of what is loaded."""

    words: int
    cues: int
    targets: int
    pairs: int
    normed_pairs: int
    sources: int


def norms_stats(engine: Engine) -> NormsStats:
    """Counts of words, cues, targets, pairs, normed pairs and source files."""
    require_current_schema(engine)
    with connect(engine) as conn:
        pairs, normed, cues, targets = conn.execute(
            select(
                func.count(),
                func.count().filter(PAIRS.c.normed.is_(True)),
                func.count(PAIRS.c.cue_id.distinct()),
                func.count(PAIRS.c.target_id.distinct()),
            )
        ).one()
        words = conn.execute(select(func.count()).select_from(WORDS)).scalar_one()
        sources = conn.execute(select(func.count()).select_from(SOURCES)).scalar_one()
    return NormsStats(words, cues, targets, pairs, normed, sources)


@dataclass(frozen=True)
class Associate:
    """One associate of a word: the other word and the cue -> target strength between them."""

    word: str
    fsg: float
    bsg: float | None
    normed: bool
    producers: int
    group_size: int


@dataclass(frozen=True)
class WordAssociates:
    """A word's strongest forward associates (it is the cue) and backward ones (it is the target),
    both ranked by the forward strength FSG of their cue -> target pair."""

    word: str
    spelling: str
    forward: list[Associate]
    backward: list[Associate]


def _associates(conn: Connection, word_id: int, *, forward: bool, limit: int) -> list[Associate]:
    own, other = (PAIRS.c.cue_id, PAIRS.c.target_id) if forward else (PAIRS.c.target_id, PAIRS.c.cue_id)
    rows = conn.execute(
        select(WORDS.c.word, PAIRS.c.fsg, PAIRS.c.bsg, PAIRS.c.normed, PAIRS.c.producers, PAIRS.c.group_size)
        .join(WORDS, WORDS.c.id == other)
        .where(own == word_id)
        .order_by(PAIRS.c.fsg.desc(), WORDS.c.word)
        .limit(limit)
    )
    return [Associate(*row) for row in rows]


def word_associates(engine: Engine, word: str, limit: int = 10) -> WordAssociates:
    """The ``limit`` strongest forward and backward associates of ``word``.

    An unknown word raises `UnknownWordError` with the closest known words as suggestions.
    """
    if limit < 1:
        raise SemretError(f"the number of associates must be at least 1, got {limit}")
    require_current_schema(engine)
    key = normalise_word(word)
    with connect(engine) as conn:
        found = conn.execute(select(WORDS.c.id, WORDS.c.spelling).where(WORDS.c.word == key)).one_or_none()
        if found is None:
            vocabulary = conn.execute(select(WORDS.c.word)).scalars().all()
            if not vocabulary:
                raise SemretError("no norms are loaded: run `semret norms load PATH` first")
            raise UnknownWordError(word, difflib.get_close_matches(key, vocabulary, n=5, cutoff=0.75))
        word_id, spelling = found
        return WordAssociates(
            word=key,
            spelling=spelling,
            forward=_associates(conn, word_id, forward=True, limit=limit),
            backward=_associates(conn, word_id, forward=False, limit=limit),
        )


def known_words(engine: Engine) -> set[str]:
    """Every normalised word in the loaded norms (to map dataset labels onto)."""
    require_current_schema(engine)
    with connect(engine) as conn:
        return set(conn.execute(select(WORDS.c.word)).scalars())
