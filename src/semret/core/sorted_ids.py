"""Finding an id in a sorted array of ids (image ids are kept in id order throughout semret)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def position_of(sorted_ids: npt.NDArray[np.integer], wanted: int) -> int | None:
    """The position of ``wanted`` in ``sorted_ids`` (ascending), or None when it is not there."""
    position = int(np.searchsorted(sorted_ids, wanted))
    if position < len(sorted_ids) and int(sorted_ids[position]) == int(wanted):
        return position
    return None
