"""Attack a set of query images in batches and compare what the model makes of them before and after."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from semret.attacks.gradient import ATTACKS, fgsm, pgd
from semret.attacks.targets import AttackTarget, TargetOutputs
from semret.core.validation import check_choice, check_seed

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]
#: Images attacked per batch: bounded memory for the gradients of a full backbone.
ATTACK_BATCH = 32


@dataclass(frozen=True)
class AttackedImages:
    """The adversarial pixels of one attack at one budget, and the CPU time it took."""

    attack: str
    eps: float
    pixels: torch.Tensor
    seconds: float


def attack_images(
    target: AttackTarget,
    pixels: torch.Tensor,
    labels: npt.NDArray[np.int64],
    attack: str,
    eps: float,
    *,
    steps: int = 10,
    seed: int = 0,
    progress: Progress | None = None,
) -> AttackedImages:
    """``attack`` (fgsm or pgd) on every image at budget ``eps``, in batches; PGD's random start is
    drawn from ``seed`` (one generator for the whole set, so batching does not change it)."""
    check_choice("attack", attack, ATTACKS)
    generator = torch.Generator().manual_seed(check_seed(seed))
    label_tensor = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    start = time.perf_counter()
    out = torch.empty_like(pixels)
    stage = f"{attack} eps={eps:g}"
    for first in range(0, len(pixels), ATTACK_BATCH):
        batch = pixels[first : first + ATTACK_BATCH]
        batch_labels = label_tensor[first : first + ATTACK_BATCH]
        if attack == "fgsm":
            out[first : first + len(batch)] = fgsm(target.loss, batch, batch_labels, eps)
        else:
            out[first : first + len(batch)] = pgd(
                target.loss, batch, batch_labels, eps, steps=steps, generator=generator
            )
        if progress:
            progress(stage, min(first + ATTACK_BATCH, len(pixels)), len(pixels))
    return AttackedImages(attack, eps, out, time.perf_counter() - start)


@dataclass(frozen=True)
class OutputChange:
    """How a model's outputs moved from the clean images to the attacked ones."""

    #: Share of the images whose predicted class changed.
    prediction_flips: float
    #: Share of the attacked images still predicted as their true class.
    accuracy: float
    #: Mean number of code bits that changed (hash models; None for a classifier).
    bits_flipped: float | None
    #: The largest |adversarial - clean| pixel difference (at most eps).
    max_perturbation: float


def output_change(
    clean: TargetOutputs,
    attacked: TargetOutputs,
    labels: npt.NDArray[np.int64],
    clean_pixels: torch.Tensor,
    attacked_pixels: torch.Tensor,
) -> OutputChange:
    """Prediction flips, accuracy, bits flipped and the perturbation's size."""
    bits = None
    if clean.codes is not None and attacked.codes is not None:
        bits = float(np.mean(np.unpackbits(clean.codes ^ attacked.codes, axis=1).sum(axis=1)))
    return OutputChange(
        float(np.mean(clean.predictions != attacked.predictions)),
        float(np.mean(attacked.predictions == labels)),
        bits,
        float((attacked_pixels - clean_pixels).abs().max()) if len(clean_pixels) else 0.0,
    )


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one budget (eps 0: the clean queries)."""

    attack: str
    eps: float
    prediction_flips: float
    accuracy: float
    bits_flipped: float | None
    max_perturbation: float
    seconds: float
    #: metric -> k -> mean over the attacked queries (semret's convention: mAP, mAHP, P, HP...).
    scores: dict[str, dict[int, float]]
