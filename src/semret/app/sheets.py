"""Contact sheets of retrieval results (`semret.vision.contact_sheet`), with the pixels read from
the store's recorded sources (`semret.app.pixels`): ``semret query ... --show results.png``, and
in every evaluation report (``semret eval``, ``semret demo``) a sheet per method of its best and
worst queries by AP@k, so that a report shows what its numbers mean."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.app.pixels import CollectionPixels
from semret.errors import SemretError
from semret.evaluation.metrics import average_precision_at_k
from semret.vision.contact_sheet import SheetRow, Tile, write_contact_sheet

if TYPE_CHECKING:
    from semret.evaluation.runs import EvalResult

#: Results shown per query, queries per end (best, worst) of a report's sheet, and its AP's k.
SHEET_RESULTS, SHEET_QUERIES, SHEET_K = 8, 3, 10
SHEETS_DIR = "sheets"


def _score_text(row: dict[str, Any]) -> str:
    if "distance" in row:
        return f"d {row['distance']:.3f}"
    if "hamming_distance" in row:
        return f"Hamming {row['hamming_distance']}"
    return f"cos {row['score']:.3f}"


def _blank(like: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.uint8]:
    shape = like.shape if like is not None else (28, 28)
    return np.full(shape, 200, dtype=np.uint8)


def write_query_sheet(
    engine: Engine,
    collection: str,
    results: Sequence[dict[str, Any]],
    out: str | Path,
    *,
    query_image_id: int | None = None,
    query_text: str = "",
    title: str = "",
) -> Path:
    """The sheet of one query's results (rows of `semret query ... --json`): the query (a stored
    image, or ``query_text`` on a blank tile), then each result with its rank, label and score."""
    pixels = CollectionPixels(engine)
    ids = [int(row["image_id"]) for row in results]
    read = pixels.read(collection, ([query_image_id] if query_image_id is not None else []) + ids)
    if query_image_id is not None:
        label = pixels.label(collection, query_image_id)
        query = Tile(read[0], ["query", f"#{query_image_id} {label or ''}"], label)
        found = read[1:]
    else:
        query = Tile(_blank(read[0] if read else None), ["query", query_text[:24]])
        found = read
    tiles = [
        Tile(
            image,
            [f"{row['rank']}. {row.get('label') or ''}", f"#{row['image_id']} {_score_text(row)}"],
            row.get("label"),
        )
        for image, row in zip(found, results, strict=True)
    ]
    return write_contact_sheet(out, [SheetRow(query, tiles)], title)


def write_report_sheets(result: EvalResult, out: Path, engine: Engine) -> dict[str, Path]:
    """For each method of a finished run, ``sheets/<method>.png``: its `SHEET_QUERIES` best and
    worst queries by AP@`SHEET_K` (ties: the earlier query), each with its top `SHEET_RESULTS`.
    Queries that are not images of the store's collection (protocol train-test) are left out;
    with none left, no sheet is written."""
    pixels = CollectionPixels(engine)
    stored = pixels.collection(result.collection)
    label_of = {int(i): label for i, label in zip(stored.image_ids, stored.labels, strict=True)}
    queries = np.array([q for q in result.query_ids if int(q) in label_of], dtype=np.int64)
    if not len(queries):
        return {}
    names = sorted({label for label in label_of.values() if label is not None})
    code = {name: i for i, name in enumerate(names)}
    database = [int(i) for i in result.database_ids]
    labelled = [label for i in database if (label := label_of.get(i)) is not None]
    counts = np.bincount([code[label] for label in labelled], minlength=len(names))
    in_database = set(database)
    rows_of = {int(q): r for r, q in enumerate(result.query_ids)}
    written: dict[str, Path] = {}
    for method, run in result.runs.items():
        ranked = run.ids[[rows_of[int(q)] for q in queries]]
        k = min(SHEET_K, ranked.shape[1])
        if k < 1:
            continue
        query_codes = np.array([code.get(label_of[int(q)] or "", -1) for q in queries])
        result_codes = np.array(
            [[code.get(label_of.get(int(i)) or "", -2) if i >= 0 else -2 for i in row[:k]] for row in ranked]
        )
        relevant = np.array(
            [
                counts[c] - (1 if int(q) in in_database else 0) if c >= 0 else 0
                for q, c in zip(queries, query_codes, strict=True)
            ]
        )
        ap = average_precision_at_k(query_codes, result_codes, relevant, [k])[k]
        order = np.argsort(-ap, kind="stable")
        chosen = [("best", int(r)) for r in order[:SHEET_QUERIES]]
        chosen += [("worst", int(r)) for r in order[::-1][:SHEET_QUERIES] if int(r) not in {c for _, c in chosen}]
        rows = []
        for end, r in chosen:
            query_id = int(queries[r])
            found = [int(i) for i in ranked[r][:SHEET_RESULTS] if i >= 0]
            images = pixels.read(result.collection, [query_id, *found])
            label = label_of[query_id]
            tiles = [
                Tile(image, [f"{rank}. {label_of.get(i) or ''}", f"#{i}"], label_of.get(i))
                for rank, (image, i) in enumerate(zip(images[1:], found, strict=True), start=1)
            ]
            heading = f"{end}: AP@{k} = {ap[r]:.2f}"
            rows.append(SheetRow(Tile(images[0], ["query", f"#{query_id} {label or ''}"], label), tiles, heading))
        if not rows:
            continue
        title = f"{method}: best and worst queries by AP@{k} ({len(queries):,} queries)"
        written[f"sheet:{method}"] = write_contact_sheet(out / SHEETS_DIR / f"{method}.png", rows, title)
    return written


def check_show_path(path: str | Path) -> Path:
    """A ``--show`` file: a PNG whose folder exists."""
    file = Path(path)
    if file.suffix.lower() != ".png":
        raise SemretError(f"--show {file}: the contact sheet is a PNG, give a file ending in .png")
    if not file.parent.exists():
        raise SemretError(f"--show {file}: no folder {file.parent}")
    return file
