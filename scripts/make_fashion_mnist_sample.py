"""Cut the small Fashion-MNIST sample that ships inside semret (for `semret demo`).

The first 100 test images of each class (1,000) and the first 200 train images of each class
(2,000), in their original order, written as IDX .gz files that the fashion-mnist loader reads, and
the original indices of the chosen images (``indices.txt``).

    uv run python scripts/make_fashion_mnist_sample.py ../shared/data/fashion-mnist src/semret/data/fashion_mnist_sample
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from semret.vision.idx import read_idx, write_idx

PER_CLASS = {"t10k": 100, "train": 200}


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Positions of the first ``per_class`` images of each class, in the original order."""
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    return np.sort(chosen)


def main(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for prefix, per_class in PER_CLASS.items():
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        chosen = first_per_class(labels, per_class)
        write_idx(target / f"{prefix}-labels-idx1-ubyte.gz", labels[chosen])
        write_idx(target / f"{prefix}-images-idx3-ubyte.gz", images[chosen])
        lines.append(f"{prefix}: " + " ".join(map(str, chosen)))
        print(f"{prefix}: {len(chosen)} images")
    (target / "indices.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
