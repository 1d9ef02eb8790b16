"""What an evaluation run is, as plain data: its configuration (`EvalConfig`, written into
results.json), each method's output (`MethodRun`) and the finished run (`EvalResult`). The
orchestration that produces them is `semret.app.eval_pipeline`; `semret.evaluation.report` renders
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

#: Every method, in the order tables show them.
METHODS = ("exact", "hash", "hash-rerank", "lsh", "kmeans", "neural-lsh", "iwan")

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
    methods: tuple[str, ...] = METHODS
    ks: tuple[int, ...] = DEFAULT_KS
    protocol: str = "test"
    queries: int | None = None
    train_limit: int | None = None
    seed: int = 0
    database_url: str | None = None
    cache_dir: str | None = None
    batch_size: int = 64
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        for name, value in (("queries", self.queries), ("train_limit", self.train_limit)):
            if value is not None and value < 1:
                raise SemretError(f"{name} must be at least 1, got {value}")


@dataclass
class EvalResult:
    """A finished run: per method its rankings, timings and scores (metric -> k -> mean)."""

    config: EvalConfig
    collection: str
    summary: dict[str, Any]
    database_ids: npt.NDArray[np.int64]
    query_ids: npt.NDArray[np.int64]
    runs: dict[str, MethodRun]
    scores: dict[str, dict[str, dict[int, float]]]


@dataclass
class MethodRun:
    """One method's output: ranked database ids per query (-1 padded), the time to build it, each
    query's time, and facts worth reporting (the parameters used, a classifier's accuracy...)."""

    ids: npt.NDArray[np.int64]
    build_seconds: float
    query_seconds: npt.NDArray[np.float64]
    details: dict[str, Any] = field(default_factory=dict)
