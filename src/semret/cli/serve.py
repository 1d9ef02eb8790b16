"""``semret serve``: the web pages and JSON API over a store (`semret.web.app`), read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semret.cli._app import Commands, DbOption, database_url, err, log
from semret.errors import SemretError

app = Commands()

#: Hosts that only this machine can reach; another host is served with a warning.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_index_option(text: str) -> tuple[str, Path]:
    """``COLLECTION=FILE`` -> (collection, path)."""
    collection, separator, file = text.partition("=")
    if not separator or not collection.strip() or not file.strip():
        raise SemretError(f"--index {text!r}: give COLLECTION=FILE (an index written by `semret index build`)")
    return collection.strip(), Path(file.strip())


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on (this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    report: Annotated[
        list[Path] | None,
        typer.Option(
            "--report",
            metavar="DIR",
            help="A report directory of `semret eval` or `semret demo` (repeatable): its page, and its models "
            "for uploaded images.",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index",
            metavar="COLLECTION=FILE",
            help="A vector index of a collection, from `semret index build` (repeatable).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Browse and query a store in a web browser: collections, image grids, queries by every stored
    method side by side with the reasons for each result, uploads, evaluation reports; JSON at the same
    routes. The database is opened read-only."""
    import uvicorn

    from semret.app.browse import StoreBrowser
    from semret.sql.engine import describe_url, make_engine
    from semret.sql.migrations import require_current_schema
    from semret.web.app import create_app

    engine = make_engine(database_url(ctx, db), read_only=True)
    require_current_schema(engine)
    browser = StoreBrowser(engine, report or [], [parse_index_option(text) for text in index or []])
    collections = browser.collections()  # read once now: a store problem shows before the server starts
    if host not in LOCAL_HOSTS:
        err.print(f"[yellow]warning:[/] serving on {host}: other machines can reach it (there is no login)")
    shown = f"[{host}]" if ":" in host else host
    log(
        f"semret serve: http://{shown}:{port}/ — {len(collections)} collections, {len(browser.reports)} reports, "
        f"store {describe_url(engine.url)} (read-only); Ctrl+C stops it"
    )
    uvicorn.run(create_app(browser), host=host, port=port, log_level="warning")
