"""Pictures of an attack run: the curves against eps, and example queries with their results before
and after (seed 003 showed its FGSM examples as images)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.attacks.run import AttackPoint

#: Results shown per example, before and after the attack.
SHOWN_RESULTS = 4


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(report: Any, path: str | Path) -> Path:
    """Four panels against eps, one line per attack from the clean point (eps 0): prediction flips,
    bits flipped (hash) or accuracy (classifier), mAP@k and mAHP@k at the largest k."""
    plt = _pyplot()
    clean: AttackPoint = report.clean
    points: Sequence[AttackPoint] = report.points
    k = max(report.ks)
    second = ("bits_flipped", "code bits flipped") if clean.bits_flipped is not None else ("accuracy", "accuracy")
    panels = [
        ("prediction_flips", "prediction flips (share)"),
        second,
        ("mAP", f"mAP@{k}"),
        ("mAHP", f"mAHP@{k}"),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for axis, (key, title) in zip(axes.ravel(), panels, strict=True):
        for attack in dict.fromkeys(p.attack for p in points):
            line = [clean, *(p for p in points if p.attack == attack)]
            values = [_value(p, key, k) for p in line]
            axis.plot([p.eps for p in line], values, marker="o", label=attack.upper())
        axis.set_title(title)
        axis.set_xlabel("eps (L-inf, pixels in [0, 1])")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(
        f"{report.kind} model {report.model} on {report.collection}: {report.queries} queries "
        f"({report.backbone}, {report.image_size} px)"
    )
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _value(point: AttackPoint, key: str, k: int) -> float:
    if key in ("mAP", "mAHP"):
        return point.scores[key][k]
    value = getattr(point, key)
    return float("nan") if value is None else float(value)


def plot_examples(
    path: str | Path,
    title: str,
    query_ids: npt.NDArray[np.int64],
    labels: Sequence[str],
    clean: npt.NDArray[np.float32],
    attacked: npt.NDArray[np.float32],
    before: npt.NDArray[np.int64] | None,
    after: npt.NDArray[np.int64],
    database_image: Callable[[int], tuple[npt.NDArray[np.float32], str]],
) -> Path:
    """One row per query: the clean image, the perturbation (scaled to the full grey range), the
    adversarial image, then its top results before and after the attack, each titled with its
    label and framed green (the query's class) or red."""
    plt = _pyplot()
    columns = 3 + 2 * SHOWN_RESULTS
    figure, axes = plt.subplots(
        len(query_ids), columns, figsize=(1.3 * columns, 1.5 * len(query_ids) + 0.6), squeeze=False
    )
    for row, query_id in enumerate(query_ids):
        delta = attacked[row] - clean[row]
        scale = float(np.abs(delta).max()) or 1.0
        cells: list[tuple[npt.NDArray[np.float32], str, str | None]] = [
            (clean[row], f"query {int(query_id)}\n{labels[row]}", None),
            (delta / (2 * scale) + 0.5, f"perturbation\n±{scale:.3g}", None),
            (attacked[row], "adversarial", None),
        ]
        for name, ranked in (("before", before), ("after", after)):
            for place in range(SHOWN_RESULTS):
                image_id = int(ranked[row, place]) if ranked is not None and place < ranked.shape[1] else -1
                if image_id < 0:
                    cells.append((np.ones_like(clean[row]), f"{name} {place + 1}\n(none)", None))
                    continue
                pixels, label = database_image(image_id)
                colour = "green" if label == labels[row] else "red"
                cells.append((pixels, f"{name} {place + 1}\n{label}", colour))
        for axis, (pixels, caption, frame) in zip(axes[row], cells, strict=True):
            _show(axis, pixels)
            axis.set_title(caption, fontsize=7)
            if frame is not None:
                for spine in axis.spines.values():
                    spine.set_visible(True)
                    spine.set_edgecolor(frame)
                    spine.set_linewidth(3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _show(axis: Any, pixels: npt.NDArray[np.float32]) -> None:
    """Pixels (c, h, w) in [0, 1] as an image, without ticks (spines kept for the frame)."""
    image = np.clip(np.transpose(pixels, (1, 2, 0)), 0.0, 1.0)
    if image.shape[2] == 1:
        axis.imshow(image[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        axis.imshow(image)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)
