"""The ``semret`` command line: a thin Typer layer over semret's Python API.

Errors that users cause (`SemretError`) and database failures are printed as one clear message on
standard error with exit status 1, never as a traceback. Progress goes to standard error too, so
``--json`` output on standard output stays clean.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup

from semret import __version__
from semret.errors import SemretError
from semret.iwan.norms import find_norms_files, read_norms_file
from semret.iwan.norms_download import USF_BASE_URL, download_norms
from semret.sql import migrations
from semret.sql.engine import describe_url, make_engine
from semret.sql.norms_store import NormsLoadReport, load_norms, norms_stats, word_associates

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

MAX_SKIPPED_SHOWN = 20


class _ReportingGroup(TyperGroup):
    """Turns `SemretError` and database errors into a message and exit status 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SemretError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except DBAPIError as exc:
            first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            err.print(f"[bold red]database error:[/] {escape(first_line)}")
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_ReportingGroup,
    help="semret: semantic image retrieval over one SQL store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Create, migrate and inspect the database schema.", no_args_is_help=True)
norms_app = typer.Typer(help="The USF free-association norms: download, load, inspect.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(norms_app, name="norms")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (postgresql://... or sqlite:///path). Default: $SEMRET_DATABASE_URL, "
        "else the embedded SQLite file in your data directory.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"semret {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: DbOption = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """semret: semantic image retrieval over one SQL store."""
    ctx.obj = {"db": db}


def _engine(ctx: typer.Context, db: str | None) -> Engine:
    """The engine for ``--db`` given on the command, else on ``semret`` itself, else the default."""
    root = ctx.find_root().obj or {}
    return make_engine(db or root.get("db"))


# --- semret db ---------------------------------------------------------------------------------


def _print_revision(engine: Engine) -> None:
    status = migrations.schema_status(engine)
    if status.current is None:
        state = "no semret schema"
    elif status.is_current:
        state = "up to date"
    elif status.known:
        state = f"behind: the newest is {status.head}"
    else:
        state = "unknown to this semret (made by a newer version)"
    out.print(f"{describe_url(engine.url)}: revision {status.current or 'none'} ({state})")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to migrate to.")] = "head",
    db: DbOption = None,
) -> None:
    """Create the schema, or migrate it to REVISION (default: the newest)."""
    engine = _engine(ctx, db)
    migrations.upgrade(engine, revision)
    _print_revision(engine)


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to migrate down to; 'base' drops semret's tables.")],
    db: DbOption = None,
) -> None:
    """Migrate the schema down to REVISION."""
    engine = _engine(ctx, db)
    migrations.downgrade(engine, revision)
    _print_revision(engine)


@db_app.command("current")
def db_current(ctx: typer.Context, db: DbOption = None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    _print_revision(_engine(ctx, db))


# --- semret norms ------------------------------------------------------------------------------


def sample_norms_dir() -> Path:
    """The small sample of the USF norms shipped inside the package."""
    return Path(str(resources.files("semret") / "data" / "usf_norms_sample"))


def _print_load_report(report: NormsLoadReport) -> None:
    table = Table(title="Norms files")
    for column in ("file", "rows", "skipped", "status"):
        table.add_column(column, justify="right" if column in ("rows", "skipped") else "left")
    for source in report.sources:
        table.add_row(source.name, f"{source.rows:,}", f"{source.skipped:,}", source.status)
    out.print(table)
    out.print(
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


@norms_app.command("load")
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
    chosen = list(paths or []) + ([sample_norms_dir()] if sample else [])
    if not chosen:
        raise SemretError("give the norms files or directories to load, or --sample")
    engine = _engine(ctx, db)
    migrations.require_current_schema(engine)
    files = find_norms_files(chosen)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        reading = progress.add_task("reading files", total=len(files))
        parsed = []
        for path in files:
            parsed.append(read_norms_file(path, skip_invalid=skip_invalid))
            progress.advance(reading)
        rows = progress.add_task("loading rows", total=sum(len(f.records) for f in parsed))
        report = load_norms(engine, parsed, force=force, on_rows=lambda n: progress.advance(rows, n))
        progress.update(rows, completed=progress.tasks[rows].total)
    _print_load_report(report)


@norms_app.command("stats")
def norms_stats_command(ctx: typer.Context, as_json: JsonOption = False, db: DbOption = None) -> None:
    """Counts of the loaded words, cues, targets, pairs and normed pairs."""
    stats = norms_stats(_engine(ctx, db))
    if as_json:
        print(json.dumps(asdict(stats)))
        return
    table = Table(title="USF norms")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in asdict(stats).items():
        table.add_row(name.replace("_", " "), f"{value:,}")
    out.print(table)


@norms_app.command("show")
def norms_show(
    ctx: typer.Context,
    word: Annotated[str, typer.Argument(help="The word (any case).")],
    n: Annotated[int, typer.Option("-n", "--number", min=1, help="How many associates each way.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """A word's strongest forward associates (it cues them) and backward ones (they cue it)."""
    found = word_associates(_engine(ctx, db), word, n)
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
        out.print(table)


@norms_app.command("download")
def norms_download(
    destination: Annotated[Path, typer.Argument(help="Directory to put the eight Cue_Target_Pairs.* files in.")],
    base_url: Annotated[str, typer.Option("--base-url", help="Where the files are served.")] = USF_BASE_URL,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Fetch files that are already there again.")] = False,
) -> None:
    """Download the USF free-association norms (Appendix A) from the University of South Florida."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err) as progress:
        task = progress.add_task("downloading", total=8)
        paths = download_norms(destination, base_url, overwrite=overwrite, on_file=lambda _: progress.advance(task))
    out.print(f"{len(paths)} files in {destination}; load them with: semret norms load {destination}")
