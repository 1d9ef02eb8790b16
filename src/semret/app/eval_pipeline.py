"""`run_evaluation`: semret's main job, end to end, as ``semret eval`` runs it.

1. Load the dataset's train and test images (`semret.vision.datasets`), its classes, hierarchy and
   label -> word vocabulary.
2. Features of every image through the backbone, cached on disk (`semret.vision.features`); a
   backbone without pretrained weights (small-cnn) is first trained from scratch on the train split.
3. Choose the database and the queries by the protocol: ``test`` (the published one: the test
   images are both the database and the queries, a query never counting among its own results)
   or ``train-test`` (the train images are the database, the test images the queries).
4. Import the database images into the store, then run each method (`semret.app.eval_methods`):
   indexes on the features, the semantic hash model (its codes stored and searched in the store),
   the IWAN graph (built in the store from the classifier's words and the loaded norms).
5. Score every method's rankings with mAP@k, mAHP@k, P@k, HP@k and balanced accuracy@k, in each
   metric convention asked for (`semret.evaluation.conventions`).

Everything random is seeded: ``seed`` draws the data, each of ``seeds`` (default: ``seed``) the
methods; the same configuration gives the same rankings. Several seeds give one run each, which the
report aggregates as mean and standard deviation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.app.eval_methods import EvalData, Progress, check_method_params, iter_runs
from semret.errors import SemretError
from semret.evaluation.conventions import CONVENTIONS
from semret.evaluation.runs import (
    IMAGENET_METHODS,
    PROTOCOLS,
    SEEDED_METHODS,
    EvalConfig,
    EvalResult,
    MethodRun,
    Scores,
    may_have_imagenet_head,
)
from semret.evaluation.scoring import Ground, score_rankings
from semret.sql.engine import describe_url, make_engine
from semret.sql.images_store import import_image_set
from semret.sql.migrations import require_current_schema
from semret.sql.norms_store import norms_stats
from semret.torch_files import save_atomically
from semret.vision.backbones import DEFAULT_WEIGHTS, INPUT_SIZES, Backbone, make_backbone
from semret.vision.datasets import DatasetInfo, ImageSet, dataset_info, load_dataset, split_per_class
from semret.vision.features import FeatureCache, FeatureKey, default_cache_dir, weights_id
from semret.vision.hierarchy import ClassHierarchy
from semret.vision.imagenet import imagenet_predictor
from semret.vision.training import train_backbone

#: The share of the images held out as test images when a dataset has no test split of its own.
HELD_OUT = 0.2

Log = Callable[[str], None]


def _sample(n: int, limit: int | None, seed: int) -> npt.NDArray[np.int64]:
    """Positions of ``limit`` of n items drawn at random (seeded), in order; all when no limit."""
    if limit is None or limit >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False)).astype(np.int64)


def _train_and_test(config: EvalConfig, log: Log) -> tuple[ImageSet, ImageSet]:
    """The train and test images; a dataset without both splits is split (seeded, per class)."""
    info = dataset_info(config.dataset, config.data_dir)
    if "train" in info.splits and "test" in info.splits:
        train = load_dataset(config.dataset, "train", config.data_dir, config.download)
        test = load_dataset(config.dataset, "test", config.data_dir, config.download)
        return train, test
    everything = load_dataset(config.dataset, "all", config.data_dir, config.download)
    train, test = split_per_class(everything, HELD_OUT, config.seed)
    log(f"{config.dataset} has no test split: {len(test):,} of {len(everything):,} images held out as test images")
    return train, test


def _backbone(config: EvalConfig, train: ImageSet, cache_root: Path, progress: Progress | None, log: Log) -> Backbone:
    """The backbone; one with no pretrained weights is trained from scratch on the train images
    (once: the weights are kept in the cache, named by the training data and settings)."""
    weights = config.weights or DEFAULT_WEIGHTS.get(config.backbone, "none")
    if weights != "none":
        return make_backbone(config.backbone, weights, config.image_size)
    size = config.image_size or INPUT_SIZES[config.backbone]
    if config.backbone_epochs == 0:
        return _random_backbone(config, size, cache_root)
    name = f"{train.dataset}_{train.fingerprint()}_{config.backbone}_{size}px_e{config.backbone_epochs}_s{config.seed}"
    path = cache_root / "weights" / f"{name}.pth"
    if path.is_file():
        log(f"{config.backbone}: reusing the weights trained on {train.dataset} ({path})")
        return make_backbone(config.backbone, str(path), config.image_size)
    log(f"{config.backbone}: training from scratch on {len(train):,} train images ({config.backbone_epochs} epochs)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return train_backbone(
        config.backbone,
        train.images,
        train.labels,
        len(train.class_names),
        epochs=config.backbone_epochs,
        seed=config.seed,
        image_size=config.image_size,
        out=path,
        progress=progress,
    )


def _random_backbone(config: EvalConfig, size: int, cache_root: Path) -> Backbone:
    """Untrained weights (a random-features baseline), drawn from ``seed`` and kept as a file, so
    that the feature cache tells one draw from another by the file's checksum."""
    path = cache_root / "weights" / f"{config.backbone}_random_{size}px_s{config.seed}.pth"
    if not path.is_file():
        drawn = make_backbone(config.backbone, "none", config.image_size, seed=config.seed)
        save_atomically(path, drawn.module.state_dict())
    return make_backbone(config.backbone, str(path), config.image_size)


def _features(
    cache: FeatureCache, images: ImageSet, backbone: Backbone, batch_size: int, progress: Progress | None
) -> npt.NDArray[np.float32]:
    key = FeatureKey(
        images.dataset, images.split, images.fingerprint(), backbone.name, weights_id(backbone), backbone.input_size
    )
    return np.asarray(cache.features(key, images.images, backbone, batch_size, progress), dtype=np.float32)


@dataclass
class PreparedRun:
    """One seed's run, ready for the methods: what they share (`EvalData`), what scoring needs
    (`Ground`), and the facts of the run for the report."""

    data: EvalData
    ground: Ground
    summary: dict[str, Any]
    collection: str
    database_ids: npt.NDArray[np.int64]
    query_ids: npt.NDArray[np.int64]
    pretrained: bool


def prepare_run(
    config: EvalConfig,
    seed: int,
    work_dir: Path,
    progress: Progress | None = None,
    log: Log | None = None,
) -> PreparedRun:
    """Steps 1-4 of the module docstring for one seed: images, features, database and queries,
    the database imported into the store. ``config.seed`` draws the data (the same for every
    seed); ``seed`` seeds the methods and a backbone trained from scratch."""
    say = log or (lambda _message: None)
    info = dataset_info(config.dataset, config.data_dir)
    hierarchy = info.class_hierarchy()
    hierarchy.require_classes(info.class_names)
    engine = make_engine(config.database_url)
    started = time.perf_counter()
    train, test = _train_and_test(config, say)
    train = train.subset(_sample(len(train), config.train_limit, config.seed))
    cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    backbone = _backbone(replace(config, seed=seed), train, cache_root, progress, say)
    say(f"features: {backbone.name} ({backbone.weights} weights, {backbone.input_size} px), cache {cache_root}")
    cache = FeatureCache(cache_root)
    train_features = _features(cache, train, backbone, config.batch_size, progress)
    test_features = _features(cache, test, backbone, config.batch_size, progress)
    prepared = time.perf_counter() - started

    if config.protocol == "test":
        database, database_features = test, test_features
    else:
        database = (
            load_dataset(config.dataset, "train", config.data_dir, config.download) if config.train_limit else train
        )
        database_features = (
            train_features if database is train else _features(cache, database, backbone, config.batch_size, progress)
        )
    order = np.argsort(database.image_ids, kind="stable")
    database, database_features = database.subset(order), database_features[order]
    chosen = _sample(len(test), config.queries, config.seed + 1)
    queries, query_features = test.subset(chosen), test_features[chosen]
    if max(config.ks) > len(database) - (1 if config.protocol == "test" else 0):
        raise SemretError(f"k = {max(config.ks)} is more than the {len(database):,} database images can give")

    collection = f"eval-{database.dataset}-{database.split}-{database.fingerprint()[:12]}"
    imported = import_image_set(engine, collection, database)
    say(f"store: collection {collection!r} ({len(database):,} images; {imported.inserted:,} new)")
    pretrained = (config.weights or DEFAULT_WEIGHTS.get(config.backbone, "none")) != "none"  # not seeded
    first = seed == config.run_seeds[0]
    tag = f"{backbone.name}-{weights_id(backbone).replace(':', '-')}-{backbone.input_size}px"
    data = EvalData(
        engine=engine,
        collection=collection,
        class_names=info.class_names,
        hierarchy=hierarchy,
        aliases=info.aliases(),
        train_features=train_features,
        train_labels=train.labels,
        database_ids=database.image_ids,
        database_features=database_features,
        database_labels=database.labels,
        query_ids=queries.image_ids,
        query_features=query_features,
        query_labels=queries.labels,
        queries_in_database=config.protocol == "test",
        work_dir=work_dir if first else work_dir / f"seed-{seed}",
        feature_tag=tag if first else f"{tag}-seed{seed}",
        seed=seed,
        params=config.params,
        imagenet_probabilities=imagenet_predictor(backbone),
        keep_query=any(CONVENTIONS[name].query_counts for name in config.conventions),
        train_views=_view_maker(train, backbone, cache_root, config.batch_size),
        feature_source={"backbone": backbone.name, "weights": weights_id(backbone), "image_size": backbone.input_size},
    )
    data.work_dir.mkdir(parents=True, exist_ok=True)
    ground = Ground(
        database.image_ids,
        database.labels,
        queries.labels,
        hierarchy.similarity_matrix(info.class_names),
        config.protocol == "test",
        parents=class_parents(info, hierarchy),
        query_ids=queries.image_ids,
    )
    summary = {
        "dataset": config.dataset,
        "classes": len(info.class_names),
        "hierarchy": info.hierarchy or "flat",
        "protocol": PROTOCOLS[config.protocol],
        "train_images": len(train),
        "database_images": len(database),
        "queries": len(queries),
        "backbone": {"name": backbone.name, "weights": backbone.weights, "input_size": backbone.input_size},
        "feature_dim": int(train_features.shape[1]),
        "database_backend": engine.dialect.name,
        "database_url": describe_url(engine.url),
        "preparation_seconds": prepared,
    }
    return PreparedRun(data, ground, summary, collection, database.image_ids, queries.image_ids, pretrained)


def _view_maker(
    train: ImageSet, backbone: Backbone, cache_root: Path, batch_size: int
) -> Callable[[npt.NDArray[np.int64], int, int, Progress | None], npt.NDArray[np.float32]]:
    """For cimon: the features of augmented views of training images, kept in the feature cache."""
    from semret.app.cimon import ViewSource, view_features

    source = ViewSource(train.dataset, train.split, train.fingerprint())

    def make(
        rows: npt.NDArray[np.int64], n_views: int, seed: int, progress: Progress | None
    ) -> npt.NDArray[np.float32]:
        return view_features(
            backbone, train.images, rows, n_views, seed, source=source, cache_dir=cache_root,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip

    return make


def class_parents(info: DatasetInfo, hierarchy: ClassHierarchy) -> npt.NDArray[np.int64]:
    """Each class's parent, for the seed-002-iwan convention's "same parent class": the data set's
    own coarse class where it has them (CIFAR-100's 20, as the published code graded), else the
    class's parent in the hierarchy (-1 for a class at the root)."""
    if info.coarse_classes is not None:
        group = {name: g for g, members in enumerate(info.coarse_classes.values()) for name in members}
        return np.asarray([group[name] for name in info.class_names], dtype=np.int64)
    parents = []
    for node in hierarchy.require_classes(info.class_names):
        parent = hierarchy.parent(node)
        parents.append(-1 if parent is None else parent)
    return np.asarray(parents, dtype=np.int64)


def score_run(config: EvalConfig, ground: Ground, run: MethodRun) -> dict[str, dict[str, dict[int, float]]]:
    """A method's run scored in every convention of the configuration: convention -> metric -> k -> mean."""
    ks = sorted(config.ks)
    return {
        name: score_rankings(
            ground, run.ids, ks, convention=name, ids_with_query=run.ids_with_query, missing=config.missing
        )
        for name in config.conventions
    }


def run_summary(scores: dict[str, dict[int, float]], ks: tuple[int, ...], run: MethodRun) -> str:
    """A method's line in the log: mAP and mAHP at the largest k, and the mean query time."""
    k = max(ks)
    shown = [f"{metric}@{k} {scores[metric][k]:.4f}" for metric in ("mAP", "mAHP") if metric in scores]
    return ", ".join([*shown, f"{1000 * run.query_seconds.mean():.2f} ms a query"])


def check_run(config: EvalConfig) -> None:
    """Everything about a configuration that can be checked before any work: its values, every
    method's parameters, the data set and its hierarchy, the store's schema, and the norms IWAN needs."""
    config.check()
    check_method_params(config.methods, config.params)
    info = dataset_info(config.dataset, config.data_dir)
    info.class_hierarchy().require_classes(info.class_names)
    engine = make_engine(config.database_url)
    require_current_schema(engine)
    needing_head = sorted(IMAGENET_METHODS & set(config.methods))
    if needing_head and not may_have_imagenet_head(config.backbone, config.weights):
        raise SemretError(
            f"{', '.join(needing_head)} needs a backbone with its ImageNet classifier (efficientnet-lite0, "
            "resnet18/34/50 or alexnet with --weights imagenet): "
            f"{config.backbone} with weights {config.weights or 'default'} has none"
        )
    needs_norms = sorted({"iwan", "iwan-published"} & set(config.methods))
    if needs_norms and norms_stats(engine).pairs == 0:
        raise SemretError(
            f"no norms are loaded, which {' and '.join(needs_norms)} need: "
            "run `semret norms load PATH` (or --sample) first"
        )


def run_evaluation(
    config: EvalConfig, work_dir: Path, progress: Progress | None = None, log: Log | None = None
) -> EvalResult:
    """Run the whole evaluation (see the module docstring) once per seed; ``work_dir`` receives
    the hash model. With a pretrained backbone, a method that draws nothing (exact search,
    iwan-published) gives the same rankings for every seed, so it runs once and its scores count
    for every seed."""
    say = log or (lambda _message: None)
    check_run(config)
    seed_runs: dict[int, dict[str, MethodRun]] = {}
    seed_scores: dict[int, Scores] = {}
    first: PreparedRun | None = None
    for seed in config.run_seeds:
        if len(config.run_seeds) > 1:
            say(f"seed {seed} ({config.run_seeds.index(seed) + 1} of {len(config.run_seeds)})")
        prepared = prepare_run(config, seed, work_dir, progress, say)
        first = first or prepared
        runs: dict[str, MethodRun] = {}
        scores: Scores = {name: {} for name in config.conventions}
        reusable = prepared.pretrained and seed != config.run_seeds[0]
        fresh = [m for m in config.methods if not (reusable and m not in SEEDED_METHODS)]
        ran = dict(iter_runs(prepared.data, fresh, max(config.ks), progress))
        for method in config.methods:
            if method in ran:
                runs[method] = ran[method]
                method_scores = score_run(config, prepared.ground, ran[method])
            else:
                runs[method] = seed_runs[config.run_seeds[0]][method]
                method_scores = {name: seed_scores[config.run_seeds[0]][name][method] for name in config.conventions}
            for name, values in method_scores.items():
                scores[name][method] = values
            say(f"{method}: " + run_summary(method_scores[config.conventions[0]], config.ks, runs[method]))
        seed_runs[seed], seed_scores[seed] = runs, scores
    assert first is not None
    summary = {**first.summary, "seeds": list(config.run_seeds)}
    return EvalResult(config, first.collection, summary, first.database_ids, first.query_ids, seed_runs, seed_scores)
