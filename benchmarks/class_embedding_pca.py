"""Experiment: retrieval on the PCA of a semantic hash model's class-embedding outputs, against the
number of components, next to the model's binary codes (seed 002's "further thoughts": "instead of
binary hashes, we use PCA on the 100-d embeddings to enforce dimensionality reduction").

Input: a collection encoded by a semantic hash model (`semret hash encode`): its stored embeddings
(the network's class-embedding outputs, L2-normalised) and codes. Protocol: the collection is the
database and every image a query, the query left out (the published protocol). For each number of
components c, scikit-learn's PCA is fitted on the collection's embeddings (no labels used), the
projections are L2-normalised and searched by exact cosine (`make_index("exact", c)`); mAP@k and
mAHP@k are semret's convention (`docs/metrics.md`), the hierarchy the dataset's. The binary codes
are ranked by exact Hamming distance (`HammingIndex`, ties by id) for comparison, and c = full
dimension is the exact cosine search of the embeddings themselves (PCA keeps every direction).

    uv run python benchmarks/class_embedding_pca.py --collection fashion-mnist-test --model hash \
        --hierarchy fashion-mnist --db sqlite:///seed003-runs/semret.sqlite3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import PCA

from semret.core.cosine import normalise
from semret.core.hamming import HammingIndex
from semret.evaluation.scoring import Ground, score_rankings
from semret.indexes import make_index
from semret.sql.engine import make_engine
from semret.sql.hash_store import load_hashes, model_by_name
from semret.vision.hierarchy import ClassHierarchy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--model", required=True, help="the stored semantic hash model")
    parser.add_argument("--hierarchy", required=True, help="a packaged hierarchy (fashion-mnist, cifar100)")
    parser.add_argument("--db", default=os.environ.get("SEMRET_DATABASE_URL"), help="database URL")
    parser.add_argument("--ks", default="10,100")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]

    engine = make_engine(args.db)
    model = model_by_name(engine, args.model)
    stored = load_hashes(engine, model, args.collection)
    classes = sorted({label for label in stored.labels if label is not None})
    position = {name: i for i, name in enumerate(classes)}
    labels = np.array([position[label] for label in stored.labels], dtype=np.int64)
    similarity = ClassHierarchy.packaged(args.hierarchy).similarity_matrix(classes)
    ids = stored.image_ids
    ground = Ground(ids, labels, labels, np.asarray(similarity, dtype=np.float64), True, query_ids=ids)
    exclude = ids[:, None]
    k = max(ks)
    dim = stored.embeddings.shape[1]
    print(
        f"{args.collection}: {len(ids):,} images, {len(classes)} classes; model {args.model}: "
        f"{dim}-d embeddings, {model.n_bits}-bit codes; load average {os.getloadavg()[0]:.1f}\n"
    )
    header = " | ".join(f"mAP@{k_}" for k_ in ks) + " | " + " | ".join(f"mAHP@{k_}" for k_ in ks)
    print(f"| search | dims | explained variance | {header} | search s |")
    print("|---|---:|---:|" + "---:|" * (2 * len(ks) + 1))

    def row(name: str, dims: int | str, variance: str, found: npt.NDArray[np.int64], seconds: float) -> None:
        scores = score_rankings(ground, found, ks)
        cells = [f"{scores['mAP'][k_]:.3f}" for k_ in ks] + [f"{scores['mAHP'][k_]:.3f}" for k_ in ks]
        print(f"| {name} | {dims} | {variance} | " + " | ".join(cells) + f" | {seconds:.2f} |")

    full = PCA(n_components=dim, random_state=0).fit(stored.embeddings)
    cumulative = np.cumsum(full.explained_variance_ratio_)
    for components in range(1, dim + 1):
        start = time.perf_counter()
        reduced = normalise(PCA(n_components=components, random_state=0).fit_transform(stored.embeddings), components)
        index = make_index("exact", components)
        index.add(ids, reduced)
        _, found = index.search(reduced, k, exclude_ids=exclude)
        row("PCA + cosine", components, f"{cumulative[components - 1]:.3f}", found, time.perf_counter() - start)
    start = time.perf_counter()
    hamming = HammingIndex(model.n_bits)
    hamming.add(ids, stored.codes)
    _, found = hamming.search(stored.codes, k, exclude_ids=exclude)
    row(f"{model.n_bits}-bit codes, Hamming", f"{model.n_bits} bits", "-", found, time.perf_counter() - start)


if __name__ == "__main__":
    main()
