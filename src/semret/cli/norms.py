"""``semret norms``: download, load and inspect the USF free-association norms."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from semret.app.norms import load_norms_files, norms_files
from semret.cli._app import Commands, DbOption, JsonOption, StageProgress, console, engine_for, err, progress_bars
from semret.iwan.norms_download import USF_BASE_URL, download_norms
from semret.sql.norms_store import NormsLoadReport, norms_stats, word_associates

app = Commands(help="The USF free-association norms: download, load, inspect.")

MAX_SKIPPED_SHOWN = 20


def _print_load_report(report: NormsLoadReport) -> None:
    table = Table(title="Norms files")
    for column in ("file", "rows", "skipped", "status"):
        table.add_column(column, justify="right" if column in ("rows", "skipped") else "left")
    for source in report.sources:
        table.add_row(source.name, f"{source.rows:,}", f"{source.skipped:,}", source.status)
    console.print(table)
    console.print(
        f"words added {report.words_added:,}; pairs inserted {report.pairs_inserted:,}, "
        f"updated {report.pairs_updated:,}, deleted {report.pairs_deleted:,}"
        + ("" if report.changed else " (nothing changed)")
    )
    if report.skipped:
        reasons = Counter(error.reason for error in report.skipped)
        err.print(f"[yellow]skipped {len(report.skipped):,} invalid lines:[/]")
        for reason, count in reasons.most_common():
            err.print(f"  {count:,} x {escape(reason)}")
        for error in report.skipped[:MAX_SKIPPED_SHOWN]:
            err.print(f"  {escape(str(error))}")
        if len(report.skipped) > MAX_SKIPPED_SHOWN:
            err.print(f"  ... and {len(report.skipped) - MAX_SKIPPED_SHOWN:,} more")


@app.command("load")
def norms_load(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Cue_Target_Pairs.* files, or directories of them.", show_default=False),
    ] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Load the small sample shipped with semret.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Load the valid lines and report the invalid ones.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Reload files even when their checksum is unchanged.")] = False,
    db: DbOption = None,
) -> None:
    """Load the USF norms in one transaction. Loading the same files again changes nothing; a
    corrected file updates its rows. By default a bad line loads nothing and names the line."""
    engine = engine_for(ctx, db)
    files = norms_files(paths or [], sample)
    with progress_bars() as progress:
        report = load_norms_files(engine, files, skip_invalid, force, StageProgress(progress))
    _print_load_report(report)


@app.command("stats")
def norms_stats_command(ctx: typer.Context, as_json: JsonOption = False, db: DbOption = None) -> None:
    """Counts of the loaded words, cues, targets, pairs and normed pairs."""
    stats = norms_stats(engine_for(ctx, db))
    if as_json:
        print(json.dumps(asdict(stats)))
        return
    table = Table(title="USF norms")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in asdict(stats).items():
        table.add_row(name.replace("_", " "), f"{value:,}")
    console.print(table)


@app.command("show")
def norms_show(
    ctx: typer.Context,
    word: Annotated[str, typer.Argument(help="The word (any case).")],
    n: Annotated[int, typer.Option("-n", "--number", min=1, help="How many associates each way.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """A word's strongest forward associates (it cues them) and backward ones (they cue it)."""
    found = word_associates(engine_for(ctx, db), word, n)
    if as_json:
        print(json.dumps(asdict(found)))
        return
    for title, associates, direction in (
        ("forward associates", found.forward, f"{found.word} -> word"),
        ("backward associates", found.backward, f"word -> {found.word}"),
    ):
        table = Table(title=f"{found.spelling}: {title} ({direction})")
        for column in ("rank", "word", "FSG", "normed", "#P/#G"):
            table.add_column(column, justify="left" if column == "word" else "right")
        for rank, a in enumerate(associates, start=1):
            normed = "yes" if a.normed else "no"
            table.add_row(str(rank), a.word, f"{a.fsg:.3f}", normed, f"{a.producers}/{a.group_size}")
        if not associates:
            table.add_row("", "(none)", "", "", "")
        console.print(table)


@app.command("download")
def norms_download(
    destination: Annotated[Path, typer.Argument(help="Directory to put the eight Cue_Target_Pairs.* files in.")],
    base_url: Annotated[
        str, typer.Option("--base-url", metavar="URL", help="Where the files are served.")
    ] = USF_BASE_URL,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Fetch files that are already there again.")] = False,
) -> None:
    """Download the USF free-association norms (Appendix A) from the University of South Florida."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err) as progress:
        task = progress.add_task("downloading", total=8)
        paths = download_norms(destination, base_url, overwrite=overwrite, on_file=lambda _: progress.advance(task))
    console.print(f"{len(paths)} files in {destination}; load them with: semret norms load {destination}")
