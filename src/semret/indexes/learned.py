"""What the learned indexes (`neural_lsh`, `neural_lsh_knn`, `fourier_lsh`) share: their progress
callback, running torch on one thread while they train or hash, and the official early stopping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

__all__ = ["EarlyStopping", "Progress", "nearest_others", "one_thread"]

#: progress(stage, done, total): e.g. "neighbours" (done = points), "training" (done = steps or
#: epochs) or "hashing" (done = vectors put in buckets).
Progress = Callable[[str, int, int], None]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread meanwhile (restored after). Its ops here are small (a batch of 125),
    and torch's OpenMP threads then cost more than they save, most of all on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EarlyStopping:
    """``EarlyStoppingModule(av, patience, delta).check([-totalEpochLoss], ...)``: the first epoch
    sets the best score; an epoch that betters it by at least ``delta`` resets the count of bad
    epochs; training stops once that count exceeds ``patience`` (None: never), and stays stopped."""

    def __init__(self, patience: int | None, delta: float) -> None:
        self.patience, self.delta = patience, delta
        self.best: float | None = None
        self.bad_epochs = 0
        self.stopped = False

    def stop(self, epoch_loss: float) -> bool:
        score = -epoch_loss
        if self.best is None or score - self.best >= self.delta:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
            self.stopped = self.stopped or (self.patience is not None and self.bad_epochs > self.patience)
        return self.stopped


#: Points whose exact neighbours are searched at once.
NEIGHBOUR_CHUNK = 4096


def nearest_others(sample: npt.NDArray[np.float32], k: int, progress: Progress | None = None) -> npt.NDArray[np.int64]:
    """(n, k): each point's k nearest other points by exact cosine (ties by position); a point is
    never its own neighbour, even among duplicates. progress("neighbours", done, n)."""
    from semret.core.cosine import CosineIndex

    n = len(sample)
    exact = CosineIndex(sample.shape[1])
    exact.add(np.arange(n), sample)
    result = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, NEIGHBOUR_CHUNK):
        stop = min(start + NEIGHBOUR_CHUNK, n)
        _, found = exact.search(sample[start:stop], k + 1)
        others = found != np.arange(start, stop)[:, None]
        others[others.sum(axis=1) > k, -1] = False  # the point is not among them (duplicates): keep k
        result[start:stop] = found[others].reshape(-1, k)
        if progress:
            progress("neighbours", stop, n)
    return result
