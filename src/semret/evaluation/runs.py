"""What an evaluation run is, as plain data: its configuration (`EvalConfig`, written into
results.json), each method's output (`MethodRun`) and the finished run (`EvalResult`, one or more
seeds, one or more metric conventions). The
orchestration that produces them is `semret.app.eval_pipeline`; `semret.evaluation.report` renders
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_seed
from semret.errors import SemretError

#: Every method, in the order tables show them.
METHODS = (
    "exact",
    "hash",
    "hash-rerank",
    "cimon",
    "lsh",
    "kmeans",
    "neural-lsh",
    "neural-lsh-knn",
    "fourier-lsh",
    "iwan",
    "iwan-published",
)
#: The methods whose results depend on a seed (trained, or drawn at random): `--seeds` reruns them.
SEEDED_METHODS = frozenset(
    {"hash", "hash-rerank", "cimon", "lsh", "kmeans", "neural-lsh", "neural-lsh-knn", "fourier-lsh", "iwan"}
)
#: The methods that need the backbone's ImageNet classifier (its 1,000-class head).
IMAGENET_METHODS = frozenset({"iwan-published"})


def has_imagenet_head(backbone: str, weights: str | None) -> bool:
    """Whether a backbone with these weights keeps an ImageNet classifier: a pretrained ImageNet
    backbone does; one trained from scratch or read from a weights file does not."""
    from semret.vision.backbones import DEFAULT_WEIGHTS  # torch: only when asked

    return backbone != "small-cnn" and (weights or DEFAULT_WEIGHTS.get(backbone, "none")) == "imagenet"


def may_have_imagenet_head(backbone: str, weights: str | None) -> bool:
    """False where a backbone certainly has no ImageNet classifier (small-cnn; weights none); a
    weights file may hold one (a whole network's state dict), which only loading it tells."""
    from semret.vision.backbones import DEFAULT_WEIGHTS  # torch: only when asked

    return backbone != "small-cnn" and (weights or DEFAULT_WEIGHTS.get(backbone, "none")) != "none"


def available_methods(backbone: str, weights: str | None) -> tuple[str, ...]:
    """Every method a backbone with these weights can run (iwan-published needs an ImageNet head)."""
    imagenet = has_imagenet_head(backbone, weights)
    return tuple(m for m in METHODS if imagenet or m not in IMAGENET_METHODS)


#: How a method's missing places (fewer than k results) are scored.
MISSING_RULES = {
    "zero": "a missing place scores 0 (semret's default)",
    "pad": "missing places are filled with the rest of the database in id order (Barz & Denzler's code)",
}

#: The evaluation protocols and what they mean.
PROTOCOLS = {
    "test": "the test images are both the database and the queries (the published protocol)",
    "train-test": "the train images are the database, the test images the queries",
}
DEFAULT_KS = (1, 5, 10, 15, 20, 100, 250)


@dataclass(frozen=True)
class EvalConfig:
    """Everything that defines an evaluation run (written into results.json)."""

    dataset: str
    data_dir: str | None = None
    download: bool = False
    backbone: str = "efficientnet-lite0"
    weights: str | None = None
    image_size: int | None = None
    backbone_epochs: int = 10
    #: The methods to run; empty: every method the backbone can run (`available_methods`).
    methods: tuple[str, ...] = ()
    ks: tuple[int, ...] = DEFAULT_KS
    protocol: str = "test"
    queries: int | None = None
    train_limit: int | None = None
    seed: int = 0
    #: The seeds of the methods (and of a backbone trained from scratch), one run each, aggregated
    #: as mean and standard deviation; empty: ``seed`` alone. ``seed`` draws the data (queries,
    #: train limit, held-out split), the same for every run.
    seeds: tuple[int, ...] = ()
    #: The metric conventions to score with (`semret.evaluation.conventions`), the default first.
    conventions: tuple[str, ...] = ("semret",)
    missing: str = "zero"
    #: A parameter sweep of the one method: (parameter, values), e.g. ("top_iwk", (1, 2, ..., 10)).
    sweep: tuple[str, tuple[Any, ...]] | None = None
    database_url: str | None = None
    cache_dir: str | None = None
    batch_size: int = 64
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.methods:
            object.__setattr__(self, "methods", available_methods(self.backbone, self.weights))

    def check(self) -> None:
        """Reject a configuration that cannot run, before any work is done."""
        from semret.vision.backbones import BACKBONES  # torch: only when a run is checked

        if self.backbone not in BACKBONES:
            raise SemretError(f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        if self.protocol not in PROTOCOLS:
            raise SemretError(f"unknown protocol {self.protocol!r}: choose {' or '.join(PROTOCOLS)}")
        if not self.ks or min(self.ks) < 1 or len(set(self.ks)) != len(self.ks):
            raise SemretError(f"ks must be distinct positive integers, got {list(self.ks)}")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise SemretError(f"unknown method(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(METHODS)}")
        from semret.evaluation.conventions import CONVENTIONS

        unknown = sorted(set(self.conventions) - set(CONVENTIONS))
        if unknown or not self.conventions:
            raise SemretError(
                f"unknown convention(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(CONVENTIONS)}"
            )
        if len(set(self.conventions)) != len(self.conventions):
            raise SemretError(f"a convention is given twice: {', '.join(self.conventions)}")
        if self.missing not in MISSING_RULES:
            raise SemretError(f"unknown missing-results rule {self.missing!r}: choose {' or '.join(MISSING_RULES)}")
        if self.sweep is not None:
            parameter, values = self.sweep
            if len(self.methods) != 1:
                raise SemretError(f"a sweep varies one method's parameter: give one method, not {len(self.methods)}")
            if not values or len(set(map(repr, values))) != len(values):
                raise SemretError(f"a sweep of {parameter} needs distinct values, got {list(values)}")
            if len(self.run_seeds) > 1:
                raise SemretError("a sweep runs with one seed: give --seed, not --seeds")
        for seed in (self.seed, *self.seeds):
            check_seed(seed, "seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise SemretError(f"a seed is given twice: {', '.join(map(str, self.seeds))}")
        for name, value in (("queries", self.queries), ("train_limit", self.train_limit)):
            if value is not None and value < 1:
                raise SemretError(f"{name} must be at least 1, got {value}")

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds the methods run with: ``seeds``, else ``seed`` alone."""
        return self.seeds or (self.seed,)


#: Scores of one run: convention -> method -> metric -> k -> the mean over the queries.
Scores = dict[str, dict[str, dict[str, dict[int, float]]]]


@dataclass
class EvalResult:
    """A finished evaluation: per seed, each method's output (`MethodRun`) and its scores in every
    convention of the configuration.

    ``runs`` are the first seed's; ``scores`` are the first (default) convention's, the mean over
    the seeds (a single-seed run's own); `semret.evaluation.results_table` turns ``seed_scores``
    into the tidy table (mean and standard deviation over the seeds) that the reports render.
    """

    config: EvalConfig
    collection: str
    summary: dict[str, Any]
    database_ids: npt.NDArray[np.int64]
    query_ids: npt.NDArray[np.int64]
    seed_runs: dict[int, dict[str, MethodRun]]
    seed_scores: dict[int, Scores]

    @property
    def seeds(self) -> list[int]:
        return list(self.seed_runs)

    @property
    def runs(self) -> dict[str, MethodRun]:
        """The first seed's method runs."""
        return self.seed_runs[self.seeds[0]]

    @property
    def methods(self) -> list[str]:
        return list(self.runs)

    @property
    def scores(self) -> dict[str, dict[str, dict[int, float]]]:
        """method -> metric -> k -> value in the first convention, the mean over the seeds."""
        convention = self.config.conventions[0]
        first = self.seed_scores[self.seeds[0]][convention]
        return {
            method: {
                metric: {
                    k: float(np.mean([self.seed_scores[s][convention][method][metric][k] for s in self.seeds]))
                    for k in values
                }
                for metric, values in metrics.items()
            }
            for method, metrics in first.items()
        }


@dataclass
class MethodRun:
    """One method's output: ranked database ids per query (-1 padded), the time to build it, each
    query's time, and facts worth reporting (the parameters used, a classifier's accuracy...)."""

    ids: npt.NDArray[np.int64]
    build_seconds: float
    query_seconds: npt.NDArray[np.float64]
    details: dict[str, Any] = field(default_factory=dict)
    #: The rankings with the query allowed among its own results (queries in the database and a
    #: convention that counts the query, e.g. seed-002); None otherwise.
    ids_with_query: npt.NDArray[np.int64] | None = None
