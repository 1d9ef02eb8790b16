"""`position_of`: an id's position in sorted ids, or None; checked against a Python list's index."""

from __future__ import annotations

import numpy as np

from semret.core.sorted_ids import position_of


def test_position_of_matches_list_index_and_says_none_for_a_missing_id() -> None:
    ids = np.array([3, 7, 8, 20, 60_000], dtype=np.int64)
    for wanted in [*range(-2, 25), 59_999, 60_000, 60_001]:
        expected = ids.tolist().index(wanted) if wanted in ids else None
        assert position_of(ids, wanted) == expected, wanted
    assert position_of(np.array([], dtype=np.int64), 5) is None
    assert position_of(ids, 10**12) is None  # past the end
