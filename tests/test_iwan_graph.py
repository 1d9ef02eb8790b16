"""Which word -> word edges an IWAN graph keeps (top-WWK, ties, normed-only, backward)."""

from __future__ import annotations

import numpy as np
import pytest

from semret.errors import SemretError
from semret.iwan.graph import IwanSettings, WordEdges, select_word_edges, word_matrix

WORDS = ["APPLE", "BANANA", "CHERRY", "DATE", "ELDER"]
A, B, C, D, E = range(5)
NAN = float("nan")


def edges_of(edges: WordEdges) -> list[tuple[str, str, float]]:
    return [(WORDS[s], WORDS[t], float(w)) for s, t, w in zip(edges.source, edges.target, edges.strength, strict=True)]


def select(pairs: list[tuple[int, int, float, float, bool]], **settings: object) -> list[tuple[str, str, float]]:
    cue, target, fsg, bsg, normed = zip(*pairs, strict=True)
    return edges_of(select_word_edges(WORDS, cue, target, fsg, bsg, normed, IwanSettings(**settings)))  # type: ignore[arg-type]


def test_each_word_keeps_its_strongest_associates_ties_by_word() -> None:
    pairs = [(A, D, 0.2, NAN, True), (A, C, 0.5, NAN, True), (A, B, 0.5, NAN, True), (A, E, 0.7, NAN, True)]
    assert select(pairs, top_wwk=2) == [("APPLE", "ELDER", 0.7), ("APPLE", "BANANA", 0.5)]
    assert select(pairs, top_wwk=3)[-1] == ("APPLE", "CHERRY", 0.5)


def test_top_wwk_is_per_word() -> None:
    pairs = [(A, B, 0.3, NAN, True), (A, C, 0.2, NAN, True), (B, C, 0.1, NAN, True), (B, D, 0.4, NAN, True)]
    assert select(pairs, top_wwk=1) == [("APPLE", "BANANA", 0.3), ("BANANA", "DATE", 0.4)]


def test_zero_strength_and_self_loops_make_no_edge() -> None:
    pairs = [(A, B, 0.0, NAN, True), (A, A, 0.5, NAN, True), (A, C, 0.1, NAN, True)]
    assert select(pairs) == [("APPLE", "CHERRY", 0.1)]


def test_normed_only_drops_unnormed_pairs() -> None:
    pairs = [(A, B, 0.5, NAN, False), (A, C, 0.1, 0.2, True)]
    assert select(pairs) == [("APPLE", "BANANA", 0.5), ("APPLE", "CHERRY", 0.1)]
    assert select(pairs, normed_only=True) == [("APPLE", "CHERRY", 0.1)]


def test_backward_adds_target_to_cue_edges_weighted_by_bsg() -> None:
    pairs = [(A, B, 0.5, 0.3, True), (C, B, 0.2, NAN, True), (B, A, 0.1, 0.6, True)]
    assert select(pairs) == [("APPLE", "BANANA", 0.5), ("BANANA", "APPLE", 0.1), ("CHERRY", "BANANA", 0.2)]
    # BANANA -> APPLE comes forward with 0.1 and backward (from A -> B's BSG) with 0.3: the stronger stays.
    assert select(pairs, backward=True) == [
        ("APPLE", "BANANA", 0.6),
        ("BANANA", "APPLE", 0.3),
        ("CHERRY", "BANANA", 0.2),
    ]


@pytest.mark.parametrize("bad", [{"top_iwk": 0}, {"top_wwk": 11}])
def test_settings_are_validated(bad: dict[str, int]) -> None:
    with pytest.raises(SemretError, match="must be between 1 and 10"):
        IwanSettings(**bad)


def test_the_matrix_holds_inverse_strengths() -> None:
    edges = WordEdges(np.array([A, B]), np.array([B, C]), np.array([0.5, 0.25]))
    matrix = word_matrix(edges, len(WORDS)).toarray()
    assert matrix[A, B] == 2.0 and matrix[B, C] == 4.0 and matrix.sum() == 6.0
