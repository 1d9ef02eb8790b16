"""``semret attack``: FGSM and PGD on a collection's queries against a hash model or IWAN's classifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semret.app.attack import DEFAULT_EPS, DEFAULT_KS, HASH_MODES, AttackReport, attack_collection
from semret.cli._app import (
    BackboneOption,
    CollectionOption,
    Commands,
    DbOption,
    ImageSizeOption,
    JsonOption,
    RestartingProgress,
    WeightsOption,
    console,
    engine_for,
    progress_bars,
)
from semret.cli.eval import parse_ks
from semret.errors import SemretError

app = Commands()


def parse_eps(text: str) -> tuple[float, ...]:
    """``"0.001,0.01"`` -> (0.001, 0.01)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SemretError(f"--eps must be numbers separated by commas, got {text!r}") from None
    if not values:
        raise SemretError("--eps needs at least one budget")
    return values


@app.command("attack")
def attack(
    ctx: typer.Context,
    collection: CollectionOption,
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            metavar="FILE",
            help="A semantic hash checkpoint (semret hash train; the collection encoded with it) or IWAN's "
            "classifier (semret classify --save-classifier; the collection's IWAN graph built).",
        ),
    ],
    eps: Annotated[
        str, typer.Option("--eps", metavar="E,...", help="L-inf budgets on pixels in [0, 1], comma-separated.")
    ] = ",".join(f"{e:g}" for e in DEFAULT_EPS),
    attacks: Annotated[
        str, typer.Option("--attacks", metavar="fgsm,pgd", help="The attacks, comma-separated.")
    ] = "fgsm,pgd",
    steps: Annotated[int, typer.Option("--steps", min=1, help="PGD: steps (of eps/4 each).")] = 10,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Query images attacked (a seeded sample).")] = 200,
    split: Annotated[
        str, typer.Option("--split", metavar="SPLIT", help="Draw the queries from this split ('all': any image).")
    ] = "test",
    ks: Annotated[str, typer.Option("--ks", metavar="K,...", help="The k of mAP@k and mAHP@k.")] = ",".join(
        str(k) for k in DEFAULT_KS
    ),
    mode: Annotated[
        str, typer.Option("--mode", metavar="|".join(HASH_MODES), help="Hash models: how the queries are searched.")
    ] = "rerank",
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="MODEL", help="The stored hash model (default: the file's stem).", show_default=False
        ),
    ] = None,
    hierarchy: Annotated[
        str | None,
        typer.Option(
            "--hierarchy",
            metavar="NAME|FILE",
            show_default=False,
            help="The class hierarchy of mAHP (default: the dataset's, else flat).",
        ),
    ] = None,
    examples: Annotated[int, typer.Option("--examples", min=0, max=50, help="Example queries drawn.")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sample of queries and PGD's start.")] = 0,
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="attack.json, attack.csv, curves.png, examples-*.png.")
    ] = Path("semret-attack"),
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Attack a collection's query images with FGSM and PGD and measure what retrieval loses.

    Each query is perturbed within an L-inf budget eps through the whole pipeline (resize,
    backbone, model): against a hash model through its training loss, against IWAN's classifier
    through its cross entropy. Per attack and eps: prediction flips, accuracy, code bits flipped
    (hash), and mAP@k / mAHP@k of the attacked queries next to the clean ones. A hash model's
    features come through --backbone / --image-size as at `semret hash encode`; a classifier file
    names its own."""
    engine = engine_for(ctx, db)
    chosen = [a.strip() for a in attacks.split(",") if a.strip()]
    with progress_bars() as progress:
        report = attack_collection(
            engine, collection, model, name=name, backbone=backbone, weights=weights, image_size=image_size,
            attacks=chosen, eps=parse_eps(eps), steps=steps, queries=queries,
            split=None if split == "all" else split, seed=seed, ks=parse_ks(ks), mode=mode,
            hierarchy=hierarchy, examples=examples, out=out, progress=RestartingProgress(progress),
        )  # fmt: skip
    if as_json:
        console.print_json(json.dumps(report.to_json()))
        return
    print_report(report)


def print_report(report: AttackReport) -> None:
    """The table: one row per attack and eps, the clean queries first."""
    k = max(report.ks)
    agreement = (
        f"; clean codes share {report.clean_code_agreement:.1%} of their bits with the stored ones"
        if report.clean_code_agreement is not None
        else ""
    )
    console.print(
        f"{report.queries:,} queries of {report.collection} attacked against the {report.kind} model {report.model} "
        f"({report.backbone}, {report.image_size} px), searched in {report.database:,} images: {report.searched}"
        f"{agreement}"
    )
    table = Table(title=f"attacked queries (PGD: {report.steps} steps of eps/4)")
    for column in ("attack", "eps", "prediction flips", "accuracy", "bits flipped", f"mAP@{k}", f"mAHP@{k}", "CPU s"):
        table.add_column(column, justify="left" if column == "attack" else "right")
    for point in [report.clean, *report.points]:
        table.add_row(
            point.attack, f"{point.eps:g}", f"{point.prediction_flips:.3f}", f"{point.accuracy:.3f}",
            "-" if point.bits_flipped is None else f"{point.bits_flipped:.2f}",
            f"{point.scores['mAP'][k]:.4f}", f"{point.scores['mAHP'][k]:.4f}", f"{point.seconds:.1f}",
        )  # fmt: skip
    console.print(table)
    for path in report.files:
        console.print(f"written: {path}")
