"""The ``semret`` command line: a thin Typer layer over semret's Python API.

Errors that users cause (`SemretError`) and database failures are printed as one clear message on
standard error with exit status 1, never as a traceback. Progress goes to standard error too, so
``--json`` output on standard output stays clean.
"""

from __future__ import annotations

import inspect
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
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
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.retrieval import SemanticHashIndex
from semret.iwan.graph import IwanSettings
from semret.iwan.index import NO_IMAGE
from semret.iwan.links import link_predictions, read_predictions
from semret.iwan.norms import find_norms_files, read_norms_file, sample_norms_dir
from semret.iwan.norms_download import USF_BASE_URL, download_norms
from semret.iwan.vocabulary import dataset_aliases, load_aliases
from semret.sql import migrations
from semret.sql.engine import describe_url, make_engine
from semret.sql.hash_store import hamming_search_in_db, load_hashes, model_by_name, register_model, store_hashes
from semret.sql.iwan_store import (
    SqlImageRanker,
    build_iwan_graph,
    collection_with_graph,
    image_links,
    image_query,
    load_iwan,
)
from semret.sql.norms_store import NormsLoadReport, load_norms, norms_stats, word_associates
from semret.vision.arrays import read_labelled_arrays
from semret.vision.hierarchy import ClassHierarchy, available_hierarchies

# The hasher, the evaluation and the vector indexes import torch (or faiss), which takes seconds:
# the commands that need them import them, so that the others (and --help) start quickly.
if TYPE_CHECKING:
    from semret.evaluation.pipeline import EvalConfig

console = Console(soft_wrap=True)
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
iwan_app = typer.Typer(help="IWAN: link images to words and build the image-word graph.", no_args_is_help=True)
query_app = typer.Typer(help="Retrieve the images nearest to a query.", no_args_is_help=True)
hash_app = typer.Typer(help="Semantic hashing: train the hash network, encode images.", no_args_is_help=True)
index_app = typer.Typer(help="Vector indexes: exact kNN, LSH, k-means (IVF), neural LSH.", no_args_is_help=True)
collection_app = typer.Typer(help="Image collections: import datasets, list them.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(norms_app, name="norms")
app.add_typer(iwan_app, name="iwan")
app.add_typer(hash_app, name="hash")
app.add_typer(index_app, name="index")
app.add_typer(query_app, name="query")
app.add_typer(collection_app, name="collection")

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
        console.print(f"semret {__version__}")
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
    console.print(f"{describe_url(engine.url)}: revision {status.current or 'none'} ({state})")


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
    console.print(table)


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
        console.print(table)


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
    console.print(f"{len(paths)} files in {destination}; load them with: semret norms load {destination}")


# --- semret iwan -------------------------------------------------------------------------------

CollectionOption = Annotated[str, typer.Option("--collection", help="The image collection.")]


@iwan_app.command("link")
def iwan_link(
    ctx: typer.Context,
    predictions: Annotated[
        Path, typer.Argument(help=".npz with image_ids, probabilities (images x classes), class_names[, labels].")
    ],
    collection: CollectionOption,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Use the label aliases shipped for this dataset.")
    ] = None,
    aliases: Annotated[Path | None, typer.Option("--aliases", help="A label alias file of your own.")] = None,
    db: DbOption = None,
) -> None:
    """Store a collection's images and link each to the norm words of its predicted classes."""
    if dataset and aliases:
        raise SemretError("give --dataset or --aliases, not both")
    alias_table = dataset_aliases(dataset) if dataset else load_aliases(aliases) if aliases else None
    engine = _engine(ctx, db)
    migrations.require_current_schema(engine)
    report = link_predictions(engine, collection, read_predictions(predictions), alias_table)
    table = Table(title="Class labels -> norm words")
    for column in ("label", "words", "how"):
        table.add_column(column)
    for label_words in report.vocabulary.mapping.values():
        table.add_row(label_words.label, ", ".join(label_words.words), label_words.how)
    console.print(table)
    images, words = report.images, report.image_words
    console.print(
        f"collection {collection}: images inserted {images.inserted:,}, updated {images.updated:,}; "
        f"image words inserted {words.inserted:,}, updated {words.updated:,}, deleted {words.deleted:,}"
    )


@iwan_app.command("build")
def iwan_build(
    ctx: typer.Context,
    collection: CollectionOption,
    top_iwk: Annotated[int, typer.Option("--top-iwk", help="Words per image (1-10).")] = 4,
    top_wwk: Annotated[int, typer.Option("--top-wwk", help="Associates per word (1-10).")] = 4,
    normed_only: Annotated[bool, typer.Option("--normed-only", help="Only normed cue-target pairs.")] = False,
    backward: Annotated[bool, typer.Option("--backward", help="Add target -> cue edges weighted by BSG.")] = False,
    db: DbOption = None,
) -> None:
    """Build (or rebuild) the IWAN graph of a collection from the loaded norms."""
    settings = IwanSettings(top_iwk, top_wwk, normed_only, backward)
    report = build_iwan_graph(_engine(ctx, db), collection, settings)
    console.print(
        f"IWAN graph of {collection}: {report.words:,} words, {report.word_edges:,} word edges "
        f"(top-WWK {top_wwk}), {report.images:,} images with {report.image_links:,} links (top-IWK {top_iwk})"
    )


# --- semret query ------------------------------------------------------------------------------


def parse_weighted_words(text: str) -> dict[str, float]:
    """``"APPLE:0.8,PEAR:0.1"`` -> ``{"APPLE": 0.8, "PEAR": 0.1}``, with clear errors."""
    weighted: dict[str, float] = {}
    for item in text.split(","):
        word, separator, strength = item.rpartition(":")
        if not separator or not word.strip():
            raise SemretError(f"--words: {item.strip()!r} is not WORD:STRENGTH (e.g. APPLE:0.8)")
        try:
            weighted[word.strip()] = float(strength)
        except ValueError:
            raise SemretError(f"--words: strength {strength.strip()!r} of {word.strip()} is not a number") from None
    return weighted


@query_app.command("iwan")
def query_iwan(
    ctx: typer.Context,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Default: the one collection with an IWAN graph.")
    ] = None,
    image_id: Annotated[int | None, typer.Option("--image-id", help="Query with a stored image.")] = None,
    words: Annotated[str | None, typer.Option("--words", help='Query with words: "APPLE:0.8,PEAR:0.1".')] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    in_sql: Annotated[bool, typer.Option("--in-sql", help="Rank the images inside the database.")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The k images nearest to a query image or a weighted word list, with the path to each."""
    if (image_id is None) == (words is None):
        raise SemretError("give exactly one of --image-id and --words")
    engine = _engine(ctx, db)
    name = collection_with_graph(engine, collection)
    stored = load_iwan(engine, name, with_images=not in_sql)
    index = stored.index
    query = (
        image_query(engine, stored, image_id)
        if image_id is not None
        else index.query_from_words(parse_weighted_words(words or ""))
    )
    ranker = SqlImageRanker(engine, stored) if in_sql else None
    distances, ids = index.search([query], k, exclude=[image_id], ranker=ranker)
    found = [(int(i), float(d)) for i, d in zip(ids[0], distances[0], strict=True) if i != NO_IMAGE]
    paths = index.explain_links(query, image_links(engine, stored, [i for i, _ in found]))
    results = [
        {
            "rank": rank,
            "image_id": image,
            "label": index.labels.get(image),
            "distance": distance,
            "path": [step.name for step in paths[image]],
        }
        for rank, (image, distance) in enumerate(found, start=1)
    ]
    if as_json:
        query_json = {"image_id": image_id} if image_id is not None else {"words": parse_weighted_words(words or "")}
        print(json.dumps({"collection": name, "query": query_json, "k": k, "results": results}))
        return
    title = f"image {image_id}" if image_id is not None else words
    table = Table(title=f"IWAN: the {k} images nearest to {title} in {name}")
    for column in ("rank", "image id", "label", "distance", "path"):
        table.add_column(column, justify="right" if column in ("rank", "image id", "distance") else "left")
    for rank, (image, distance) in enumerate(found, start=1):
        path = " -> ".join(step.name for step in paths[image][1:-1])
        table.add_row(str(rank), str(image), index.labels.get(image) or "", f"{distance:.4f}", path)
    console.print(table)
    if not results:
        err.print("no image can be reached from this query")


# --- semret hash -------------------------------------------------------------------------------


def load_hierarchy(name_or_path: str) -> ClassHierarchy:
    """A hierarchy shipped with semret (by name) or read from a file."""
    if name_or_path in available_hierarchies():
        return ClassHierarchy.packaged(name_or_path)
    if not Path(name_or_path).exists():
        raise SemretError(f"no hierarchy {name_or_path!r}: give a file or one of {', '.join(available_hierarchies())}")
    return ClassHierarchy.from_file(name_or_path)


class _StageProgress:
    """A rich progress bar per stage ("features", "training", "encoding") of long work."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@hash_app.command("train")
def hash_train(
    data: Annotated[Path, typer.Argument(help=".npz with image_ids, labels, class_names and images or features.")],
    hierarchy: Annotated[str, typer.Option("--hierarchy", help="cifar100, fashion-mnist, or a hierarchy file.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the model checkpoint.")],
    bits: Annotated[int, typer.Option("--bits", help="Hash layer units = code length.")] = 48,
    epochs: Annotated[int, typer.Option("--epochs")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    learning_rate: Annotated[float, typer.Option("--lr", help="SGD learning rate.")] = 1e-3,
    momentum: Annotated[float, typer.Option("--momentum")] = 0.9,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0,
    classification_weight: Annotated[
        float, typer.Option("--classification-weight", help="Weight of an added cross-entropy term.")
    ] = 0.0,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="alexnet, efficientnet-lite0 or small-cnn (for images).")
    ] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="imagenet, none, or a .pth file.")] = None,
    finetune: Annotated[bool, typer.Option("--finetune", help="Train the backbone too (end to end).")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the semantic hash network on labelled images or features; write a checkpoint."""
    from semret.hashing.hasher import SemanticHasher

    arrays = read_labelled_arrays(data)
    if arrays.kind == "images" and backbone is None:
        raise SemretError(f"{data} holds images: choose a --backbone to encode them")
    if arrays.kind == "features" and backbone is not None:
        raise SemretError(f"{data} holds features already: leave out --backbone")
    classes = load_hierarchy(hierarchy)
    classes.require_classes(arrays.class_names)
    targets = class_embeddings(classes, arrays.class_names)
    hasher = SemanticHasher(
        bits, epochs, batch_size, learning_rate, momentum, weight_decay, classification_weight,
        backbone, weights, finetune, seed,
    )  # fmt: skip
    with _progress() as progress:
        hasher.fit(arrays.data, arrays.labels, targets, arrays.class_names, progress=_StageProgress(progress))
    hasher.save(out)
    accuracy = float(np.mean(hasher.predict_classes(arrays.data) == arrays.labels))
    console.print(
        f"trained on {len(arrays.labels):,} {arrays.kind}: final loss {hasher.loss_history_[-1]:.4f}, "
        f"training accuracy (nearest class embedding) {accuracy:.3f}; model written to {out}"
    )


@hash_app.command("encode")
def hash_encode(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A checkpoint written by `semret hash train`.")],
    data: Annotated[Path, typer.Argument(help=".npz with image_ids, labels, class_names and images or features.")],
    collection: CollectionOption,
    name: Annotated[
        str | None, typer.Option("--name", help="The model's name in the store (default: file stem).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Encode a collection's images to embeddings and binary codes, and store them."""
    from semret.hashing.hasher import SemanticHasher

    hasher = SemanticHasher.load(model)
    arrays = read_labelled_arrays(data)
    engine = _engine(ctx, db)
    migrations.require_current_schema(engine)
    with _progress() as progress:
        encoded = hasher.encode(arrays.data, progress=_StageProgress(progress))
    stored_model = register_model(engine, name or model.stem, hasher, model)
    counts = store_hashes(engine, stored_model, collection, arrays.image_ids, encoded, arrays.label_names())
    console.print(
        f"model {stored_model.name} ({stored_model.n_bits} bits): {len(arrays.image_ids):,} images of "
        f"{collection} encoded; stored {counts.inserted:,} new, {counts.updated:,} changed"
    )


@query_app.command("hash")
def query_hash(
    ctx: typer.Context,
    collection: CollectionOption,
    model: Annotated[str, typer.Option("--model", help="The hash model's name in the store.")],
    image_id: Annotated[int, typer.Option("--image-id", help="Query with a stored image.")],
    mode: Annotated[str, typer.Option("--mode", help="exact (cosine), hamming, or rerank.")] = "rerank",
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    shortlist: Annotated[int | None, typer.Option("--shortlist", help="Hamming shortlist m (default 2k).")] = None,
    in_db: Annotated[bool, typer.Option("--in-db", help="Hamming top-k inside PostgreSQL (mode hamming).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The k images nearest to a stored image by semantic hashing: exact cosine, Hamming, or
    Hamming shortlist then cosine re-rank (the published default)."""
    engine = _engine(ctx, db)
    stored_model = model_by_name(engine, model)
    if in_db and mode != "hamming":
        raise SemretError("--in-db ranks by Hamming distance: use it with --mode hamming")
    stored = load_hashes(engine, stored_model, collection)
    position = int(np.searchsorted(stored.image_ids, image_id))
    if position >= len(stored.image_ids) or stored.image_ids[position] != image_id:
        raise SemretError(f"image {image_id} has no code of model {model!r} in collection {collection!r}")
    if in_db:
        distances, ids = hamming_search_in_db(engine, stored_model, collection, stored.codes[position], k, image_id)
        scores = -distances.astype(np.float64)
    else:
        # the query image is among its own candidates: one more slot keeps m others (default m = 2k)
        m = (shortlist if shortlist is not None else 2 * k) + 1
        index = SemanticHashIndex(stored_model.n_bits, stored_model.embedding_dim, mode, m)  # type: ignore[arg-type]
        index.add(stored.image_ids, stored.embeddings, stored.codes)
        found_scores, found_ids = index.search(
            stored.embeddings[position : position + 1], stored.codes[position : position + 1], k + 1
        )
        keep = found_ids[0] != image_id  # leave the query image out
        scores, ids = found_scores[0][keep][:k].astype(np.float64), found_ids[0][keep][:k]
    labels = dict(zip(stored.image_ids.tolist(), stored.labels, strict=True))
    results = [
        {"rank": rank, "image_id": int(i), "label": labels.get(int(i)), "score": float(s)}
        for rank, (i, s) in enumerate(zip(ids, scores, strict=True), start=1)
        if i != NO_IMAGE
    ]
    if as_json:
        print(
            json.dumps(
                {"collection": collection, "model": model, "mode": mode, "image_id": image_id, "results": results}
            )
        )
        return
    score_name = "-Hamming distance" if mode == "hamming" else "cosine"
    table = Table(title=f"{mode}: the {k} images nearest to image {image_id} in {collection} (model {model})")
    for column in ("rank", "image id", "label", score_name):
        table.add_column(column, justify="left" if column == "label" else "right")
    for row in results:
        table.add_row(str(row["rank"]), str(row["image_id"]), str(row["label"] or ""), f"{row['score']:.4f}")
    console.print(table)


# --- semret collection -------------------------------------------------------------------------


@collection_app.command("import")
def collection_import(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="cifar10, cifar100, fashion-mnist or folder.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the dataset's files are (needed for folder).", show_default=False),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="train, test or all (train then test). Default: test, else all.", show_default=False
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The collection (default: DATASET-SPLIT).", show_default=False)
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Fetch Fashion-MNIST or CIFAR with torchvision if missing.")
    ] = False,
    image_size: Annotated[
        int, typer.Option("--image-size", min=1, help="folder: side of the square images are cropped to.")
    ] = 224,
    db: DbOption = None,
) -> None:
    """Import a dataset split's images (ids, labels, splits, sources) into a collection. Importing
    again changes nothing; importing another split into the same collection adds it."""
    from semret.sql.images_store import import_image_set
    from semret.vision.datasets import dataset_info, load_dataset

    if split is None:
        split = "test" if "test" in dataset_info(dataset, data_dir).splits else "all"
    engine = _engine(ctx, db)
    migrations.require_current_schema(engine)
    images = load_dataset(dataset, split, data_dir, download=download, image_size=image_size)
    collection = name or f"{dataset}-{split}"
    counts = import_image_set(engine, collection, images)
    unchanged = len(images) - counts.inserted - counts.updated
    console.print(
        f"collection {collection}: {len(images):,} images of {dataset} ({split}), "
        f"{len(images.class_names)} classes; added {counts.inserted:,}, updated {counts.updated:,}, "
        f"unchanged {unchanged:,}"
    )


@collection_app.command("list")
def collection_list(ctx: typer.Context, as_json: JsonOption = False, db: DbOption = None) -> None:
    """The collections with their dataset, images (per split) and images with IWAN words."""
    from semret.sql.images_store import list_collections

    summaries = list_collections(_engine(ctx, db))
    if as_json:
        print(json.dumps([asdict(summary) for summary in summaries]))
        return
    table = Table(title="Collections")
    for column in ("name", "dataset", "images", "splits", "with words"):
        right = column in ("images", "with words")
        table.add_column(column, justify="right" if right else "left", no_wrap=column == "name")  # names are typed
    for summary in summaries:
        splits = ", ".join(f"{split} {count:,}" for split, count in summary.splits.items())
        table.add_row(
            summary.name, summary.dataset or "", f"{summary.images:,}", splits, f"{summary.images_with_words:,}"
        )
    if not summaries:
        table.add_row("(none)", "", "", "", "")
    console.print(table)


# --- semret index ------------------------------------------------------------------------------


def _index_vectors(
    ctx: typer.Context, features: Path | None, collection: str | None, model: str | None, db: str | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], list[str | None]]:
    """Vectors to index: a features file, or a collection's stored embeddings under a hash model."""
    if (features is None) == (collection is None):
        raise SemretError("give exactly one source: --features FILE.npz, or --collection with --model")
    if features is not None:
        arrays = read_labelled_arrays(features)
        if arrays.kind != "features":
            raise SemretError(f"{features} holds images: index features or stored embeddings")
        return arrays.image_ids, arrays.data.astype(np.float32), arrays.label_names()
    if model is None:
        raise SemretError("--collection needs --model: the hash model whose embeddings to index")
    engine = _engine(ctx, db)
    stored = load_hashes(engine, model_by_name(engine, model), collection or "")
    return stored.image_ids, stored.embeddings, stored.labels


@index_app.command("build")
def index_build(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="exact, lsh, kmeans or neural-lsh.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the index (.npz).")],
    features: Annotated[Path | None, typer.Option("--features", help="A features .npz to index.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="Index stored embeddings.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The hash model of the embeddings.")] = None,
    bits: Annotated[int | None, typer.Option("--bits", help="lsh, neural-lsh: hash bits per table.")] = None,
    tables: Annotated[int | None, typer.Option("--tables", help="lsh, neural-lsh: hash tables.")] = None,
    probes: Annotated[int | None, typer.Option("--probes", help="lsh: extra buckets probed per table.")] = None,
    clusters: Annotated[
        int | None, typer.Option("--clusters", help="kmeans: K (default: classes, else sqrt N).")
    ] = None,
    n_probe: Annotated[int | None, typer.Option("--n-probe", help="kmeans: clusters searched.")] = None,
    pca: Annotated[int | None, typer.Option("--pca", help="kmeans: PCA components first.")] = None,
    neighbours: Annotated[int | None, typer.Option("--neighbours", help="neural-lsh: positives per point.")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    db: DbOption = None,
) -> None:
    """Build a vector index over features or stored embeddings and save it to a file."""
    from semret.indexes import make_index
    from semret.indexes.base import index_class

    ids, vectors, labels = _index_vectors(ctx, features, collection, model, db)
    options = {
        "--bits": ("n_bits", bits), "--tables": ("n_tables", tables), "--probes": ("n_probes", probes),
        "--clusters": ("n_clusters", clusters), "--n-probe": ("n_probe", n_probe), "--pca": ("pca_components", pca),
        "--neighbours": ("neighbours", neighbours), "--seed": ("seed", seed),
    }  # fmt: skip
    accepted = set(inspect.signature(index_class(kind)).parameters)
    wrong = [flag for flag, (name, value) in options.items() if value is not None and name not in accepted]
    if wrong:
        takes = [flag for flag, (name, _) in options.items() if name in accepted]
        raise SemretError(
            f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to the {kind} index "
            f"(its options: {', '.join(takes) or 'none'})"
        )
    given = {name: value for name, value in options.values() if value is not None}
    index = make_index(kind, vectors.shape[1], **given)
    label_names = [label or "" for label in labels]
    class_of = {name: i for i, name in enumerate(sorted(set(label_names)))}
    start = time.perf_counter()
    if index.needs_fit:
        index.fit(vectors, np.array([class_of[name] for name in label_names]) if any(label_names) else None)
    index.add(ids, vectors)
    built = time.perf_counter() - start
    index.save(out, extra={"labels": np.array(label_names)})
    console.print(
        f"{kind} index of {index.ntotal:,} vectors ({vectors.shape[1]} dims) built in {built:.2f} s "
        f"with {index.params()}; written to {out}"
    )


@query_app.command("vector")
def query_vector(
    index_file: Annotated[Path, typer.Option("--index", help="An index written by `semret index build`.")],
    image_id: Annotated[int, typer.Option("--image-id", help="Query with an indexed image's vector.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """The k images nearest by cosine to an indexed image, as the index finds them."""
    from semret.indexes import load_index
    from semret.indexes.base import read_index_extra

    index = load_index(index_file)
    labels = read_index_extra(index_file).get("labels")
    ids = index.store.ids
    position = int(np.searchsorted(ids, image_id))
    if position >= len(ids) or ids[position] != image_id:
        raise SemretError(f"image {image_id} is not in the index {index_file}")
    scores, found = index.search(index.store.vectors()[position : position + 1], k + 1)
    keep = found[0] != image_id  # leave the query image out
    pairs = [(int(i), float(s)) for i, s in zip(found[0][keep][:k], scores[0][keep][:k], strict=True) if i >= 0]
    label_of = (lambda i: str(labels[int(np.searchsorted(ids, i))]) or None) if labels is not None else (lambda i: None)
    results = [
        {"rank": rank, "image_id": i, "label": label_of(i), "score": score}
        for rank, (i, score) in enumerate(pairs, start=1)
    ]
    candidates = int(index.last_candidates[0])
    if as_json:
        print(
            json.dumps(
                {
                    "index": str(index_file),
                    "kind": index.kind,
                    "image_id": image_id,
                    "candidates": candidates,
                    "results": results,
                }
            )
        )
        return
    table = Table(title=f"{index.kind}: the {k} images nearest to image {image_id} ({candidates:,} candidates scored)")
    for column in ("rank", "image id", "label", "cosine"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for row in results:
        table.add_row(str(row["rank"]), str(row["image_id"]), str(row["label"] or ""), f"{row['score']:.4f}")
    console.print(table)


# --- semret eval / semret demo -----------------------------------------------------------------


class _EvalProgress:
    """Progress bars for an evaluation: a new bar whenever a stage starts over (features of the
    train split, then of the test split; the hasher's training, then the classifier's...)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: dict[str, tuple[Any, int, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self.current.get(stage)
        if task is None or task[1] != total or done < task[2]:
            task = (self.progress.add_task(stage, total=total), total, done)
        self.current[stage] = (task[0], total, done)
        self.progress.update(task[0], completed=done)


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> (1, 5, 10)."""
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SemretError(f"--ks must be integers separated by commas, got {text!r}") from None
    if not ks:
        raise SemretError("--ks needs at least one k")
    return ks


def parse_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["lsh.n_bits=12", "iwan.ranker=memory"]`` -> {"lsh": {"n_bits": 12}, "iwan": {"ranker": "memory"}};
    values are read as JSON where they parse (numbers, true/false, null), else kept as text."""
    from semret.evaluation.methods import METHODS

    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, value = item.partition("=")
        method, _, parameter = name.partition(".")
        if not value or not method or not parameter:
            raise SemretError(f"--set takes METHOD.PARAMETER=VALUE (e.g. lsh.n_bits=12), got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        settings.setdefault(method.strip(), {})[parameter.strip()] = parsed
    known = {*METHODS, "classifier"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise SemretError(f"--set: unknown method {', '.join(unknown)} (choose from {', '.join(sorted(known))})")
    return settings


def _run_and_report(config: EvalConfig, out: Path) -> None:
    """Run an evaluation with progress bars, print its tables, write its files."""
    from semret.evaluation.pipeline import run_evaluation
    from semret.evaluation.report import tables as report_tables
    from semret.evaluation.report import write_results

    with _progress() as progress:
        result = run_evaluation(config, out, _EvalProgress(progress), lambda message: err.print(escape(message)))
    for table in report_tables(result):
        console.print(table)
    written = write_results(result, out)
    console.print(f"report written to {out}: " + ", ".join(path.name for path in written.values()))


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="fashion-mnist, cifar10, cifar100 or folder.")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the dataset's files are (default: look in known places).")
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Download the dataset if missing (internet).")] = False,
    backbone: Annotated[
        str, typer.Option("--backbone", help="alexnet, resnet50, efficientnet-lite0 or small-cnn.")
    ] = "efficientnet-lite0",
    weights: Annotated[
        str | None, typer.Option("--weights", help="imagenet, none (train from scratch) or a .pth file.")
    ] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", help="Backbone input size in pixels.")] = None,
    backbone_epochs: Annotated[
        int, typer.Option("--backbone-epochs", min=0, help="Epochs to train a backbone that has no weights.")
    ] = 10,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods, or all.")] = "all",
    ks: Annotated[str, typer.Option("--ks", help="The k of every metric, comma-separated.")] = "1,5,10,15,20,100,250",
    protocol: Annotated[
        str, typer.Option("--protocol", help="test (test images are database and queries) or train-test.")
    ] = "test",
    queries: Annotated[
        int | None, typer.Option("--queries", min=1, help="Use N random test images as queries.")
    ] = None,
    train_limit: Annotated[
        int | None, typer.Option("--train-limit", min=1, help="Train on N random train images.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds every random choice.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Report directory (default semret-eval/DATASET-BACKBONE).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Feature cache (default: $SEMRET_CACHE_DIR or the user cache).")
    ] = None,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="A method parameter, METHOD.PARAMETER=VALUE (repeatable).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Run every retrieval method on a labelled image collection and score it (mAP@k, mAHP@k...)."""
    from semret.evaluation.methods import parse_methods
    from semret.evaluation.pipeline import EvalConfig

    root = ctx.find_root().obj or {}
    config = EvalConfig(
        dataset=dataset,
        data_dir=str(data_dir) if data_dir else None,
        download=download,
        backbone=backbone,
        weights=weights,
        image_size=image_size,
        backbone_epochs=backbone_epochs,
        methods=tuple(parse_methods(methods)),
        ks=parse_ks(ks),
        protocol=protocol,
        queries=queries,
        train_limit=train_limit,
        seed=seed,
        database_url=db or root.get("db"),
        cache_dir=str(cache_dir) if cache_dir else None,
        params=parse_settings(settings or []),
    )
    _run_and_report(config, out or Path("semret-eval") / f"{dataset}-{backbone}")


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Where the report goes.")] = Path("semret-demo"),
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Feature cache directory.")] = None,
    db: DbOption = None,
) -> None:
    """The whole pipeline, offline, on the sample shipped with semret (1,000 Fashion-MNIST test images
    and the norms sample): every method, scored with mAP@k and mAHP@k."""
    from semret.evaluation.demo import demo_config, prepare_database

    root = ctx.find_root().obj or {}
    url = db or root.get("db")
    engine = make_engine(url)
    err.print(f"database: {describe_url(engine.url)}")
    loaded = prepare_database(url)
    if loaded is not None:
        err.print(f"loaded the norms sample: {loaded.pairs_inserted:,} pairs")
    _run_and_report(demo_config(url, str(cache_dir) if cache_dir else None), out)
