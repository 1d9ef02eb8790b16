"""The USF free-association norms: find the files to load and load them into the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Engine

from semret.errors import SemretError
from semret.iwan.norms import find_norms_files, read_norms_file, sample_norms_dir
from semret.sql import migrations
from semret.sql.norms_store import NormsLoadReport, load_norms

Progress = Callable[[str, int, int], None]


def norms_files(paths: Sequence[str | Path] = (), sample: bool = False) -> list[Path]:
    """The Cue_Target_Pairs.* files of ``paths`` (files or directories), and of the sample shipped
    with semret if ``sample``."""
    chosen = [Path(p) for p in paths] + ([sample_norms_dir()] if sample else [])
    if not chosen:
        raise SemretError("give the norms files or directories to load, or --sample")
    return find_norms_files(chosen)


def load_norms_files(
    engine: Engine,
    files: Sequence[Path],
    skip_invalid: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> NormsLoadReport:
    """Parse every file (a bad line stops everything unless ``skip_invalid``), then load them in one
    transaction; files already loaded with the same checksum are skipped unless ``force``.
    progress("reading files", done, total), then progress("loading rows", done, total)."""
    migrations.require_current_schema(engine)
    report = progress or (lambda _stage, _done, _total: None)
    parsed = []
    for done, path in enumerate(files, start=1):
        parsed.append(read_norms_file(path, skip_invalid=skip_invalid))
        report("reading files", done, len(files))
    total = sum(len(f.records) for f in parsed)
    loaded = 0

    def on_rows(n: int) -> None:
        nonlocal loaded
        loaded += n
        report("loading rows", loaded, total)

    result = load_norms(engine, parsed, force=force, on_rows=on_rows)
    report("loading rows", total, total)
    return result
