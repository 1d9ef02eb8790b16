"""``semret query``: the images nearest to a query, through IWAN, semantic hashing or a vector index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from semret.app.query import query_hash as find_by_hash
from semret.app.query import query_iwan as find_by_iwan
from semret.app.query import query_vector as find_by_vector
from semret.app.sheets import check_show_path, write_query_sheet
from semret.app.typed_words import parse_words
from semret.cli._app import CollectionOption, Commands, DbOption, JsonOption, console, engine_for, err, log
from semret.errors import SemretError

app = Commands(help="Retrieve the images nearest to a query.")

ShowOption = Annotated[
    Path | None,
    typer.Option(
        "--show",
        metavar="FILE.png",
        help="Also draw the query and its results as a contact sheet (rank, label, score under each image).",
        show_default=False,
    ),
]


def show_sheet(engine: Engine, collection: str, results: list[dict[str, Any]], show: Path, **query: Any) -> None:
    """Write the contact sheet of ``--show`` and say where it went (standard error: JSON stays clean)."""
    written = write_query_sheet(engine, collection, results, show, **query)
    log(f"contact sheet: {written.resolve()}")


@app.command("iwan")
def query_iwan(
    ctx: typer.Context,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection", metavar="NAME", help="Default: the one collection with an IWAN graph.", show_default=False
        ),
    ] = None,
    image_id: Annotated[
        int | None, typer.Option("--image-id", metavar="ID", help="Query with a stored image.", show_default=False)
    ] = None,
    words: Annotated[
        str | None,
        typer.Option(
            "--words",
            metavar="WORD[:STRENGTH],...",
            help='Query with words: "winter, cold" (strength 1 each) or "APPLE:0.8,PEAR:0.1".',
            show_default=False,
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    in_sql: Annotated[bool, typer.Option("--in-sql", help="Rank the images inside the database.")] = False,
    show: ShowOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The k images nearest to a query image or a weighted word list, with the path to each."""
    weighted = parse_words(words, "--words") if words is not None else None
    show = check_show_path(show) if show is not None else None
    engine = engine_for(ctx, db)
    answer = find_by_iwan(engine, collection, image_id, weighted, k, in_sql)
    name, results = answer.collection, answer.results
    if show is not None:
        shown = {"query_image_id": image_id} if image_id is not None else {"query_text": words or ""}
        show_sheet(engine, name, results, show, title=f"IWAN: {name}", **shown)
    if as_json:
        query_json = {"image_id": image_id} if image_id is not None else {"words": weighted}
        print(json.dumps({"collection": name, "query": query_json, "k": k, "results": results}))
        return
    title = f"image {image_id}" if image_id is not None else words
    table = Table(title=f"IWAN: the {k} images nearest to {title} in {name}")
    for column in ("rank", "image id", "label", "distance", "path"):
        table.add_column(column, justify="right" if column in ("rank", "image id", "distance") else "left")
    for row in results:
        path = " -> ".join(row["path"][1:-1])
        table.add_row(str(row["rank"]), str(row["image_id"]), row["label"] or "", f"{row['distance']:.4f}", path)
    console.print(table)
    if not results:
        err.print("no image can be reached from this query")


@app.command("hash")
def query_hash(
    ctx: typer.Context,
    collection: CollectionOption,
    model: Annotated[str, typer.Option("--model", metavar="NAME", help="The hash model's name in the store.")],
    image_id: Annotated[int, typer.Option("--image-id", metavar="ID", help="Query with a stored image.")],
    mode: Annotated[str, typer.Option("--mode", metavar="MODE", help="exact (cosine), hamming, or rerank.")] = "rerank",
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    shortlist: Annotated[
        int | None, typer.Option("--shortlist", metavar="M", help="Hamming shortlist m (default 2k).")
    ] = None,
    in_db: Annotated[
        bool,
        typer.Option(
            "--in-db", help="Search inside the database: mode hamming (pgvector or bit_count), rerank (pgvector)."
        ),
    ] = False,
    scan: Annotated[
        str | None,
        typer.Option(
            "--scan",
            metavar="SCAN",
            help="With --in-db on pgvector: exact (no index, the in-memory results) or approximate (HNSW). "
            "Default: exact for hamming, approximate for rerank.",
            show_default=False,
        ),
    ] = None,
    hamming: Annotated[
        str,
        typer.Option(
            "--hamming",
            metavar="SPEC",
            help="The in-memory Hamming index: flat (exact), or approximate ivf:nlist=..,nprobe=.. or "
            "multihash:nhash=..,b=..,nflip=.. (an approximate shortlist may hold fewer than m codes).",
        ),
    ] = "flat",
    show: ShowOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The k images nearest to a stored image by semantic hashing: exact cosine, Hamming, or
    Hamming shortlist then cosine re-rank (the published default)."""
    show = check_show_path(show) if show is not None else None
    engine = engine_for(ctx, db)
    answer = find_by_hash(engine, collection, model, image_id, mode, k, shortlist, in_db, scan, hamming)
    results = answer.results
    if show is not None:
        show_sheet(engine, collection, results, show, query_image_id=image_id, title=f"{mode}: {collection}")
    if as_json:
        print(
            json.dumps(
                {
                    "collection": collection,
                    "model": model,
                    "mode": mode,
                    "image_id": image_id,
                    "search": answer.search,
                    "results": results,
                }
            )
        )
        return
    by_distance = mode == "hamming"
    table = Table(
        title=f"{mode}: the {k} images nearest to image {image_id} in {collection} (model {model})",
        caption=f"searched in {answer.search}",
    )
    for column in ("rank", "image id", "label", "Hamming distance" if by_distance else "cosine"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for row in results:
        shown = str(row["hamming_distance"]) if by_distance else f"{row['score']:.4f}"
        table.add_row(str(row["rank"]), str(row["image_id"]), str(row["label"] or ""), shown)
    console.print(table)


@app.command("vector")
def query_vector(
    ctx: typer.Context,
    index_file: Annotated[
        Path, typer.Option("--index", metavar="FILE", help="An index written by `semret index build`.")
    ],
    image_id: Annotated[int, typer.Option("--image-id", metavar="ID", help="Query with an indexed image's vector.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many images.")] = 10,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection", metavar="NAME", help="The indexed images' collection (for --show).", show_default=False
        ),
    ] = None,
    show: ShowOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The k images nearest by cosine to an indexed image, as the index finds them."""
    if show is not None and collection is None:
        raise SemretError("--show draws the images from the store: give the indexed images' --collection")
    show = check_show_path(show) if show is not None else None
    answer = find_by_vector(index_file, image_id, k)
    results, candidates = answer.results, answer.candidates
    if show is not None and collection is not None:
        engine = engine_for(ctx, db)
        show_sheet(engine, collection, results, show, query_image_id=image_id, title=f"{answer.kind}: {index_file}")
    if as_json:
        print(
            json.dumps(
                {
                    "index": str(index_file),
                    "kind": answer.kind,
                    "image_id": image_id,
                    "candidates": candidates,
                    "results": results,
                }
            )
        )
        return
    table = Table(title=f"{answer.kind}: the {k} images nearest to image {image_id} ({candidates:,} candidates scored)")
    for column in ("rank", "image id", "label", "cosine"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for row in results:
        table.add_row(str(row["rank"]), str(row["image_id"]), str(row["label"] or ""), f"{row['score']:.4f}")
    console.print(table)
