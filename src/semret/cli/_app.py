"""The root of the ``semret`` command: the Typer app, error reporting, readable help, the options
every command shares (``--db``, ``--json``) and progress bars.

Errors that users cause (`SemretError`) and database failures are printed as one clear message on
standard error with exit status 1, never as a traceback. Progress goes to standard error too, so
``--json`` output on standard output stays clean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from semret import __version__
from semret.errors import SemretError
from semret.sql.engine import make_engine

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# --- readable help -----------------------------------------------------------------------------
#
# Typer shows each parameter's Python type (<bool>, <str>, <path>...) in --help. Here flags show
# nothing, options show a metavar saying what they take, and arguments are named by their name alone.

#: Metavars by the type an option takes, where the option gives none of its own.
_METAVARS = {int: "N", float: "NUMBER", Path: "PATH"}


class _NamedArgument(TyperArgument):
    """An argument whose help shows its name and help text, not its Python type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _readable(param: Any) -> None:
    if isinstance(param, TyperArgument) and not isinstance(param, _NamedArgument):
        param.__class__ = _NamedArgument  # the same object, shown without its type
    elif isinstance(param, TyperOption) and param.metavar is None:
        if param.is_flag:
            param.metavar = ""
        else:
            annotation = param.type_descriptor.annotation
            long_name = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
            param.metavar = _METAVARS.get(annotation, long_name.lstrip("-").upper())


class ReadableCommand(TyperCommand):
    """A command whose --help says what each option takes."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            _readable(param)
        return params


class ReadableGroup(TyperGroup):
    """A command group whose --help says what each option takes."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            _readable(param)
        return params


class _ReportingGroup(ReadableGroup):
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


class Commands(typer.Typer):
    """A Typer app whose groups and commands have readable help (`ReadableGroup`, `ReadableCommand`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", ReadableGroup)
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[override]
        kwargs.setdefault("cls", ReadableCommand)
        return super().command(name, **kwargs)


app = Commands(
    cls=_ReportingGroup,
    help="semret: semantic image retrieval over one SQL store.",
    pretty_exceptions_enable=False,
)

# --- shared options ----------------------------------------------------------------------------

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Database URL (postgresql://... or sqlite:///path). Default: $SEMRET_DATABASE_URL, "
        "else the embedded SQLite file in your data directory.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CollectionOption = Annotated[str, typer.Option("--collection", metavar="NAME", help="The image collection.")]
BackboneOption = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        metavar="NAME",
        help="alexnet, resnet18, resnet34, resnet50, efficientnet-lite0 or small-cnn: the features of --collection "
        "(default efficientnet-lite0).",
        show_default=False,
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option("--weights", metavar="WEIGHTS", help="imagenet, none, or a .pth file.", show_default=False),
]
ImageSizeOption = Annotated[
    int | None,
    typer.Option("--image-size", min=1, help="Backbone input size in pixels (default: the backbone's own)."),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", metavar="DIR", help="Feature cache (default: $SEMRET_CACHE_DIR or the user cache).",
        show_default=False,
    ),
]  # fmt: skip


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


def database_url(ctx: typer.Context, db: str | None) -> str | None:
    """``--db`` given on the command, else on ``semret`` itself (else None: the default)."""
    root = ctx.find_root().obj or {}
    return db or root.get("db")


def engine_for(ctx: typer.Context, db: str | None) -> Engine:
    """The engine for ``--db`` given on the command, else on ``semret`` itself, else the default."""
    return make_engine(database_url(ctx, db))


# --- progress ----------------------------------------------------------------------------------


def progress_bars() -> Progress:
    """Progress bars on standard error."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


class StageProgress:
    """A progress bar per stage ("features", "training", "encoding") of long work."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done)


class RestartingProgress:
    """Progress bars for work whose stages start over (the features of the train split, then of
    the test split; the hasher's training, then the classifier's...): a new bar each time."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: dict[str, tuple[Any, int, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self.current.get(stage)
        if task is None or task[1] != total or done < task[2]:
            task = (self.progress.add_task(stage, total=total), total, done)
        self.current[stage] = (task[0], total, done)
        self.progress.update(task[0], completed=done)


def log(message: str) -> None:
    """A line of news on standard error."""
    err.print(escape(message))
