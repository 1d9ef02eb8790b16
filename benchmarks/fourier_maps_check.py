"""Check: how closely FourierHashNet's asymmetric Fourier maps follow the dominance (hinge) score
on real features, and how that score relates to the cosine, before and after the projection
scaling that ``fourier-lsh`` applies (`semret.indexes.fourier_lsh`, docs/indexes.md).

The features (``--features``: a ``.npy`` (n, d) array or a ``.npz`` with ``features``) are
L2-normalised and projected on ``--components`` principal axes (scikit-learn's PCA), then either
left as they are ("unscaled") or scaled by one factor so that the first axis's standard deviation
is ``--input-scale`` ("scaled", what the index does). For ``--rows`` points against all of them it
prints the Pearson correlation of: the maps' inner product <phi_q(q), phi_c(c)> with the negated
hinge score -sum_i max(0, q_i - c_i) of the projections; that hinge score with the cosine of the
features; the maps' inner product with the cosine; for each ``--samples`` m frequencies per dimension.

    uv run python benchmarks/fourier_maps_check.py --features features.npy
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from common import machine_line
from sklearn.decomposition import PCA

from semret.indexes.fourier_lsh import fourier_maps, sample_frequencies


def read(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return np.asarray(archive["features"], dtype=np.float64)
    return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, required=True, help="a .npy (n, d) array or a .npz with features")
    parser.add_argument("--components", type=int, default=64, help="principal axes kept (default 64)")
    parser.add_argument("--input-scale", type=float, default=3.0, help="the first axis's spread when scaled (3)")
    parser.add_argument("--samples", default="4,10,30", help="frequencies per dimension to try (default 4,10,30)")
    parser.add_argument("--rows", type=int, default=300, help="query points (default 300)")
    parser.add_argument("--limit", type=int, default=3000, help="points used in all (default 3000, seeded)")
    args = parser.parse_args()
    print(
        "command: uv run python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    )
    print(machine_line())
    features = read(args.features)
    rng = np.random.default_rng(0)
    if len(features) > args.limit:
        features = features[np.sort(rng.choice(len(features), args.limit, replace=False))]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit[: args.rows] @ unit.T
    projected = PCA(args.components, random_state=0).fit_transform(unit)
    print(f"{len(unit):,} points, {unit.shape[1]} dims -> {args.components} axes; spreads of the axes "
          f"{projected.std(axis=0).min():.3f} to {projected.std(axis=0).max():.3f}")  # fmt: skip
    print("| projection | m | corr(maps, hinge) | corr(hinge, cosine) | corr(maps, cosine) |")
    print("|---|---|---|---|---|")
    for name, x in (("unscaled", projected), ("scaled", projected / projected.std(axis=0).max() * args.input_scale)):
        hinge = -np.maximum(x[: args.rows, None, :] - x[None, :, :], 0).sum(axis=2)
        for m in (int(v) for v in args.samples.split(",")):
            omega, pdf = sample_frequencies(args.components * m, 3.0, 100.0, seed=0)
            inner = (
                fourier_maps(x[: args.rows], omega, pdf, 3.0, query=True)
                @ fourier_maps(x, omega, pdf, 3.0, query=False).T
            )
            corr = [
                np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in ((inner, hinge), (hinge, cosine), (inner, cosine))
            ]
            print(f"| {name} | {m} | {corr[0]:.3f} | {corr[1]:.3f} | {corr[2]:.3f} |")


if __name__ == "__main__":
    main()
