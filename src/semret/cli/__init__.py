"""The ``semret`` command line: a thin Typer layer over `semret.app`.

One small module per command group (``db``, ``norms``, ``collection``, ``features``, ``iwan``,
``hash``, ``index``, ``query``, ``plot``, ``backbone``) and for the root commands (``eval`` and
``demo``, ``classify``, ``attack``, ``serve``):
each holds Typer signatures and rendering only. `semret.cli._app` holds the root app, the error
reporting, readable help, the shared options and progress bars. torch and faiss are imported only
inside the commands that need them, so that ``semret --help`` and the store commands start quickly.
"""

from __future__ import annotations

from semret.cli import (
    attack,
    backbone,
    classify,
    collection,
    db,
    features,
    hash,
    index,
    iwan,
    norms,
    plot,
    query,
    serve,
)
from semret.cli import eval as evaluation
from semret.cli._app import app

app.add_typer(evaluation.app)
app.add_typer(classify.app)
app.add_typer(attack.app)
app.add_typer(serve.app)
app.add_typer(db.app, name="db")
app.add_typer(norms.app, name="norms")
app.add_typer(collection.app, name="collection")
app.add_typer(features.app, name="features")
app.add_typer(iwan.app, name="iwan")
app.add_typer(hash.app, name="hash")
app.add_typer(index.app, name="index")
app.add_typer(query.app, name="query")
app.add_typer(plot.app, name="plot")
app.add_typer(backbone.app, name="backbone")

__all__ = ["app"]
