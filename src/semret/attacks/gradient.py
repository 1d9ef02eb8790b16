"""White-box L-inf attacks on pixels in [0, 1]: FGSM and PGD.

- FGSM (Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR
  2015): one step, ``x + eps * sign(grad_x L(x, y))``, clipped to [0, 1].
- PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018):
  a random start in the eps-ball, then ``steps`` signed-gradient steps of ``step_size``, each
  projected back onto the eps-ball around ``x`` and onto [0, 1].

The tests check both, step for step, against the Adversarial Robustness Toolbox's
``FastGradientMethod`` and ``ProjectedGradientDescent`` on a classifier, and FGSM against a
gradient computed by hand. They are written here rather than taken from ART or torchattacks
because they must take any loss: ``loss(pixels, labels)`` gives one value per image, which the
attack raises (the sum's gradient is each image's own, so a batch attacks every image
independently). semret attacks a hash model through its training loss and a classifier through
its cross entropy (`semret.attacks.targets`); those libraries attack a classifier's logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from semret.core.validation import check_count, check_non_negative
from semret.errors import SemretError

#: (pixels (n, c, h, w) in [0, 1], labels (n,)) -> the loss of each image (n,), to be raised.
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: The attacks semret runs.
ATTACKS = ("fgsm", "pgd")
#: The largest L-inf budget taken: 1 is the whole pixel range.
MAX_EPS = 1.0


def check_eps(eps: float) -> float:
    """An L-inf budget on [0, 1] pixels: from 0 to 1."""
    value = check_non_negative("eps", eps)
    if value > MAX_EPS:
        raise SemretError(f"eps is a budget on pixels in [0, 1]: at most {MAX_EPS}, got {eps}")
    return float(value)


def loss_gradient(loss: Loss, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The gradient of each image's loss with respect to its own pixels (the sum's gradient)."""
    attacked = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        values = loss(attacked, labels)
        if values.shape != (len(pixels),):
            raise SemretError(
                f"an attack's loss must give one value per image ({len(pixels)},), got {tuple(values.shape)}"
            )
        (gradient,) = torch.autograd.grad(values.sum(), attacked)
    return gradient


def fgsm(loss: Loss, pixels: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """The FGSM images: one signed-gradient step of ``eps``, clipped to [0, 1]."""
    eps = check_eps(eps)
    _check_pixels(pixels)
    step = eps * loss_gradient(loss, pixels, labels).sign()
    return (pixels.detach() + step).clamp_(0.0, 1.0)


def pgd(
    loss: Loss,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The PGD images after ``steps`` projected signed-gradient steps of ``step_size`` (default
    eps / 4, torchattacks' 2/255 for 8/255), from a uniform random start in the eps-ball
    (``generator`` draws it) or from the images themselves."""
    eps = check_eps(eps)
    steps = check_count("PGD steps", steps)
    alpha = eps / 4 if step_size is None else check_non_negative("PGD step size", step_size)
    _check_pixels(pixels)
    clean = pixels.detach()
    adversarial = clean.clone()
    if random_start:
        noise = torch.rand(clean.shape, generator=generator, dtype=clean.dtype) * (2 * eps) - eps
        adversarial = (adversarial + noise).clamp_(0.0, 1.0)
    for _ in range(steps):
        moved = adversarial + alpha * loss_gradient(loss, adversarial, labels).sign()
        delta = (moved - clean).clamp_(-eps, eps)
        adversarial = (clean + delta).clamp_(0.0, 1.0)
    return adversarial


def _check_pixels(pixels: torch.Tensor) -> None:
    if pixels.ndim != 4 or not pixels.is_floating_point():
        raise SemretError(f"an attack takes float pixels (n, c, h, w), got {tuple(pixels.shape)} {pixels.dtype}")
    if len(pixels) and (float(pixels.min()) < 0.0 or float(pixels.max()) > 1.0):
        raise SemretError("an attack takes pixels in [0, 1]")
