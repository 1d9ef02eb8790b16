"""The shared search contract (semret.core.search), spec strings, validation and scikit-learn
habits (semret.core.params): what every searcher relies on."""

from __future__ import annotations

import numpy as np
import pytest

from semret.core.params import Configurable, check_is_fitted
from semret.core.search import MISSING_SCORE, NO_ID, Searcher, drop_excluded, exclusion_matrix
from semret.core.spec import Spec, format_spec, parse_spec
from semret.core.validation import MAX_K, check_int, check_k, check_number
from semret.errors import SemretError
from semret.indexes import make_index


def test_drop_excluded_removes_each_rows_ids_wherever_they_are() -> None:
    # (moved from the evaluation's own drop_query_ids: exclusion is implemented once)
    ids = np.array([[7, 3, 5], [3, 5, 7], [4, 9, -1]])
    scores = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.9, 0.8, MISSING_SCORE]], dtype=np.float32)
    kept_scores, kept = drop_excluded(scores, ids, exclusion_matrix([7, 5, 1], 3), 2)
    assert kept.tolist() == [[3, 5], [3, 7], [4, 9]]
    np.testing.assert_array_equal(kept_scores, np.float32([[0.8, 0.7], [0.9, 0.7], [0.9, 0.8]]))


def test_drop_excluded_pads_and_takes_several_ids_per_row() -> None:
    ids = np.array([[1, 2, 3]])
    scores = np.array([[3.0, 2.0, 1.0]], dtype=np.float32)
    kept_scores, kept = drop_excluded(scores, ids, exclusion_matrix([[1, 3]], 1), 3)
    assert kept.tolist() == [[2, NO_ID, NO_ID]]
    assert kept_scores.tolist() == [[2.0, MISSING_SCORE, MISSING_SCORE]]
    # -1 and None exclude nothing
    assert drop_excluded(scores, ids, exclusion_matrix([None], 1), 3)[1].tolist() == [[1, 2, 3]]
    assert drop_excluded(scores, ids, exclusion_matrix([NO_ID], 1), 3)[1].tolist() == [[1, 2, 3]]


def test_exclusion_matrix_checks_its_shape() -> None:
    assert exclusion_matrix(None, 4).shape == (4, 0)
    with pytest.raises(SemretError, match=r"one id .* per query: 2 queries"):
        exclusion_matrix([1, 2, 3], 2)
    with pytest.raises(SemretError, match="integers"):
        exclusion_matrix([1.5], 1)


def test_huge_k_is_bounded_by_the_collection_and_k_beyond_int64_is_an_error() -> None:
    rng = np.random.default_rng(0)
    index = make_index("exact", 4)
    index.add(np.arange(1_000), rng.normal(size=(1_000, 4)))
    assert isinstance(index, Searcher)
    _, ids = index.search(rng.normal(size=(2, 4)), 1_000_000_000, exclude_ids=[0, 1])
    assert ids.shape == (2, 1_000)
    assert (ids[:, :999] >= 0).all() and (ids[:, 999] == NO_ID).all()  # 999 results: the query left out
    assert check_k(MAX_K) == MAX_K
    with pytest.raises(SemretError, match="at most 9223372036854775807"):
        index.search(rng.normal(size=(1, 4)), MAX_K + 1)
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(SemretError, match="k must be"):
            check_k(bad)


def test_spec_strings_round_trip() -> None:
    spec = parse_spec("lsh:n_bits=8,n_tables=8,n_probes=1")
    assert spec == Spec("lsh", {"n_bits": 8, "n_tables": 8, "n_probes": 1})
    assert str(spec) == "lsh:n_bits=8,n_probes=1,n_tables=8"
    assert parse_spec(str(spec)) == spec
    assert parse_spec("exact") == Spec("exact", {})
    mixed = {"ranker": "sql", "normed_only": False, "rate": 0.5, "hidden": None, "word": "true"}
    assert parse_spec(format_spec("iwan", mixed)).params == mixed
    for bad, message in (("", "no kind"), (":n=1", "no kind"), ("lsh:n_bits", "not NAME=VALUE"),
                         ("lsh:n_bits=1,n_bits=2", "given twice"), ("lsh:=3", "not NAME=VALUE")):  # fmt: skip
        with pytest.raises(SemretError, match=message):
            parse_spec(bad)


def test_validation_messages_name_the_parameter() -> None:
    assert check_int("n_bits", np.int64(8), 1, 64) == 8
    with pytest.raises(SemretError, match="n_bits must be an integer between 1 and 64, got 65"):
        check_int("n_bits", 65, 1, 64)
    with pytest.raises(SemretError, match="n_bits must be an integer at least 1, got True"):
        check_int("n_bits", True, 1)
    assert check_number("lr", 1e-3, 0, low_open=True) == 1e-3
    with pytest.raises(SemretError, match=r"lr must be a finite number > 0, got 0"):
        check_number("lr", 0, 0, low_open=True)
    with pytest.raises(SemretError, match="finite"):
        check_number("lr", float("nan"))


class _Model(Configurable):
    _unsaved_params = frozenset({"callback"})

    def __init__(self, size: int = 3, rate: float = 0.1, callback: object = None) -> None:
        self.size = size
        self.rate = rate
        self.callback = callback
        self.weights_: list[float] | None = None


def test_get_params_reads_the_signature_and_check_is_fitted_the_learned_state() -> None:
    model = _Model(size=5)
    assert model.get_params() == {"size": 5, "rate": 0.1}
    assert repr(model) == "_Model(size=5, rate=0.1)"
    with pytest.raises(SemretError, match="not fitted yet"):
        check_is_fitted(model)
    model.weights_ = [1.0]
    check_is_fitted(model)
    for kind in ("exact", "lsh", "kmeans", "neural-lsh", "neural-lsh-knn"):
        index = make_index(kind, 4)
        params = index.get_params()
        assert params.pop("dim") == 4 and "progress" not in params
        assert type(index)(4, **params).get_params() == index.get_params()
