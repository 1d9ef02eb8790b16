"""``semret db``: create, migrate and inspect the database schema."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Engine

from semret.cli._app import Commands, DbOption, console, engine_for
from semret.sql import migrations
from semret.sql.engine import describe_url

app = Commands(help="Create, migrate and inspect the database schema.")


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
