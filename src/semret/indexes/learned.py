"""What the learned indexes (`neural_lsh`, `neural_lsh_knn`) share: their progress callback and
running torch on one thread while they train or hash."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Progress", "one_thread"]

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
