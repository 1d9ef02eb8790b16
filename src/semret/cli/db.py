"""``semret db``: create, migrate and inspect the database schema; start, check and stop the
embedded PostgreSQL (`semret.app.embedded_postgres`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from semret.app import embedded_postgres
from semret.cli._app import Commands, DbOption, console, engine_for
from semret.sql import migrations
from semret.sql.engine import DATABASE_URL_ENV, describe_url
from semret.sql.pgvector_store import hash_search_path

app = Commands(help="Create, migrate and inspect the database schema; run an embedded PostgreSQL.")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="The embedded server's data folder (default: postgres/ in semret's user data dir).",
        show_default=False,
    ),
]


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
    if status.is_current:
        console.print(f"semantic-hash search: {hash_search_path(engine)}")


@app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to migrate to.")] = "head",
    db: DbOption = None,
) -> None:
    """Create the schema, or migrate it to REVISION (default: the newest)."""
    engine = engine_for(ctx, db)
    migrations.upgrade(engine, revision)
    _print_revision(engine)


@app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to migrate down to; 'base' drops semret's tables.")],
    db: DbOption = None,
) -> None:
    """Migrate the schema down to REVISION."""
    engine = engine_for(ctx, db)
    migrations.downgrade(engine, revision)
    _print_revision(engine)


@app.command("current")
def db_current(ctx: typer.Context, db: DbOption = None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    _print_revision(engine_for(ctx, db))


def _print_server(state: embedded_postgres.ServerState) -> None:
    url = state.url()
    console.print(f"embedded PostgreSQL running (pid {state.pid}, data in {state.data_dir})")
    console.print(f"URL: {url}")
    console.print(f"use it with --db '{url}' or: export {DATABASE_URL_ENV}='{url}'")


@app.command("start")
def db_start(data_dir: DataDirOption = None) -> None:
    """Start the embedded PostgreSQL (with pgvector) and print its URL.

    Its database 'semret' is made with the newest schema; the server runs until `semret db stop`.
    """
    _print_server(embedded_postgres.start(data_dir))


@app.command("status")
def db_status(data_dir: DataDirOption = None) -> None:
    """Say whether the embedded PostgreSQL runs, and its URL."""
    state = embedded_postgres.status(data_dir)
    if state is None:
        folder = data_dir or embedded_postgres.default_data_dir()
        console.print(f"embedded PostgreSQL not running (data folder {folder}): start it with `semret db start`")
        raise typer.Exit(3)
    _print_server(state)


@app.command("stop")
def db_stop(data_dir: DataDirOption = None) -> None:
    """Stop the embedded PostgreSQL (its data stays for the next start)."""
    stopped = embedded_postgres.stop(data_dir)
    console.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
