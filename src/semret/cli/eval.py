"""``semret eval`` and ``semret demo``: run every retrieval method and score it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from semret.app.evaluation import Evaluation, demo, evaluate, prepare_demo
from semret.cli._app import (
    CacheDirOption,
    Commands,
    DbOption,
    RestartingProgress,
    console,
    database_url,
    err,
    log,
    progress_bars,
)
from semret.errors import SemretError
from semret.sql.engine import describe_url, make_engine

if TYPE_CHECKING:
    from semret.evaluation.runs import EvalConfig

app = Commands()


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> (1, 5, 10)."""
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SemretError(f"--ks must be integers separated by commas, got {text!r}") from None
    if not ks:
        raise SemretError("--ks needs at least one k")
    return ks


def with_semret_first(conventions: list[str]) -> tuple[str, ...]:
    """The conventions asked for, semret's first unless it is among them (then the order given)."""
    return tuple(conventions) if "semret" in conventions else ("semret", *conventions)


def parse_seeds(text: str, ctx: typer.Context) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); --seed and --seeds together are refused."""
    source = ctx.get_parameter_source("seed")
    if source is not None and source.name == "COMMANDLINE":
        raise SemretError("give --seed or --seeds, not both")
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SemretError(f"--seeds must be integers separated by commas, got {text!r}") from None
    if not values:
        raise SemretError("--seeds needs at least one seed")
    return values


def parse_sweep(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"top_iwk=1,2,3"`` -> ("top_iwk", (1, 2, 3)); values read as JSON where they parse."""
    from semret.core.spec import parse_value

    parameter, _, values = text.partition("=")
    items = tuple(parse_value(v.strip()) for v in values.split(",") if v.strip())
    if not parameter.strip() or not items:
        raise SemretError(f"--sweep takes PARAMETER=V1,V2,... (e.g. top_iwk=1,2,3), got {text!r}")
    return parameter.strip(), items


def _report(evaluation: Evaluation) -> None:
    """Print an evaluation's tables and every file it wrote (absolute paths)."""
    from semret.evaluation.report import tables as report_tables
    from semret.evaluation.sweep import SweepResult, sweep_tables

    result = evaluation.result
    for table in sweep_tables(result) if isinstance(result, SweepResult) else report_tables(result):
        console.print(table)
    console.print(f"report written to {evaluation.out}:")
    for path in evaluation.files:
        console.print(f"  {path}")


def _run(config: EvalConfig, out: Path) -> None:
    with progress_bars() as progress:
        evaluation = evaluate(config, out, RestartingProgress(progress), log)
    _report(evaluation)


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", metavar="NAME", help="fashion-mnist, cifar10, cifar100, stl10, caltech101 or folder."
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where the dataset's files are (default: look in known places).",
            show_default=False,
        ),
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Download the dataset if missing (internet).")] = False,
    backbone: Annotated[
        str,
        typer.Option(
            "--backbone", metavar="NAME", help="alexnet, resnet18, resnet34, resnet50, efficientnet-lite0 or small-cnn."
        ),
    ] = "efficientnet-lite0",
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            metavar="WEIGHTS",
            help="imagenet, none (train from scratch) or a .pth file.",
            show_default=False,
        ),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Backbone input size in pixels.", show_default=False)
    ] = None,
    backbone_epochs: Annotated[
        int, typer.Option("--backbone-epochs", min=0, help="Epochs to train a backbone that has no weights.")
    ] = 10,
    methods: Annotated[
        str, typer.Option("--methods", metavar="NAME,...", help="Comma-separated methods, or all.")
    ] = "all",
    ks: Annotated[
        str, typer.Option("--ks", metavar="K,...", help="The k of every metric, comma-separated.")
    ] = "1,5,10,15,20,100,250",
    protocol: Annotated[
        str,
        typer.Option("--protocol", metavar="NAME", help="test (test images are database and queries) or train-test."),
    ] = "test",
    queries: Annotated[
        int | None, typer.Option("--queries", min=1, help="Use N random test images as queries.", show_default=False)
    ] = None,
    train_limit: Annotated[
        int | None, typer.Option("--train-limit", min=1, help="Train on N random train images.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds every random choice.")] = 0,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            metavar="S,...",
            help="Run the methods once per seed (e.g. 0,1,2) and report mean ± std; the data is drawn by the first.",
            show_default=False,
        ),
    ] = None,
    conventions: Annotated[
        list[str] | None,
        typer.Option(
            "--convention",
            metavar="NAME",
            help="Also score in this convention (repeatable): seed-002, seed-002-iwan, hashnet, deephash-pytorch.",
            show_default=False,
        ),
    ] = None,
    missing: Annotated[
        str,
        typer.Option(
            "--missing", metavar="RULE", help="Places a method left empty: zero (score 0) or pad (Barz & Denzler)."
        ),
    ] = "zero",
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            metavar="PARAMETER=V1,V2,...",
            help="Run the one method once per value of its parameter (e.g. top_iwk=1,2,3): sweep.json, .csv, plots.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Report directory (default semret-eval/DATASET-BACKBONE).", show_default=False
        ),
    ] = None,
    cache_dir: CacheDirOption = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="METHOD.PARAMETER=VALUE",
            help="A method parameter (repeatable), or a spec METHOD:P=V,Q=W (docs/search.md).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Run every retrieval method on a labelled image collection and score it (mAP@k, mAHP@k...)."""
    from semret.app.eval_methods import parse_method_settings, parse_methods
    from semret.evaluation.runs import EvalConfig

    parsed_seeds = parse_seeds(seeds, ctx) if seeds is not None else ()
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
        seed=parsed_seeds[0] if parsed_seeds else seed,
        seeds=parsed_seeds,
        conventions=with_semret_first(conventions or []),
        missing=missing,
        sweep=parse_sweep(sweep) if sweep is not None else None,
        database_url=database_url(ctx, db),
        cache_dir=str(cache_dir) if cache_dir else None,
        params=parse_method_settings(settings or []),
    )
    _run(config, out or Path("semret-eval") / f"{dataset}-{backbone}")


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Where the report goes.")] = Path("semret-demo"),
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """The whole pipeline, offline, on the sample shipped with semret.

    1,000 Fashion-MNIST test images and the norms sample: every method, scored with mAP@k and
    mAHP@k; the report directory and every file written there are printed."""
    url = database_url(ctx, db)
    err.print(f"database: {describe_url(make_engine(url).url)}")
    loaded = prepare_demo(url)
    if loaded is not None:
        err.print(f"loaded the norms sample: {loaded.pairs_inserted:,} pairs")
    with progress_bars() as progress:
        evaluation = demo(out, url, cache_dir, RestartingProgress(progress), log)
    _report(evaluation)
