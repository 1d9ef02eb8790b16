"""Contact sheets: a query image and the images retrieved for it, side by side in a row, with a
caption under each (rank, label, score), drawn with matplotlib to a PNG. A sheet holds one row per
query; a retrieved image whose label is the query's is framed green, another label red (the way a
person reads a result grid)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

#: Frame colours: the query, a result of the query's label, a result of another label.
QUERY_COLOUR, SAME_COLOUR, OTHER_COLOUR = "#1f4e9c", "#2e8b3d", "#c0392b"


@dataclass(frozen=True)
class Tile:
    """One image of a sheet: its pixels ((h, w) grey or (h, w, 3) RGB uint8) and caption lines."""

    pixels: npt.NDArray[np.uint8]
    caption: Sequence[str] = ()
    label: str | None = None


@dataclass(frozen=True)
class SheetRow:
    """A query and its results, in rank order, with a heading (the method, say) above the row."""

    query: Tile
    results: Sequence[Tile] = field(default_factory=list)
    heading: str = ""


def write_contact_sheet(path: str | Path, rows: Sequence[SheetRow], title: str = "") -> Path:
    """Draw ``rows`` (each: the query, then its results) to the PNG ``path``; the path written."""
    if not rows:
        raise SemretError("a contact sheet needs at least one query")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 + max(len(row.results) for row in rows)
    lines = max([len(tile.caption) for row in rows for tile in (row.query, *row.results)] + [1])
    tile_inches = 1.25
    row_inches = tile_inches + 0.16 * lines + (0.25 if any(row.heading for row in rows) else 0.0)
    figure, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(max(4.0, tile_inches * columns), row_inches * len(rows) + (0.4 if title else 0.1)),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        tiles = [row.query, *row.results]
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.axis("off")
                continue
            tile = tiles[c]
            grey = tile.pixels.ndim == 2
            ax.imshow(tile.pixels, cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="nearest")
            if c == 0:
                colour = QUERY_COLOUR
            else:
                colour = SAME_COLOUR if row.query.label is not None and tile.label == row.query.label else OTHER_COLOUR
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if c == 0 else 2)
            ax.set_xlabel("\n".join(tile.caption), fontsize=7)
        if row.heading:
            axes[r][0].set_title(row.heading, fontsize=8, loc="left", pad=4)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
