"""`semret attack`: FGSM and PGD on a stored collection's query images, against a trained model,
and what the attack does to retrieval (seed 003's adversarial experiment, on semret's pipeline).

The model is a semantic hash checkpoint (`semret hash train`; the collection's codes stored under
it by `semret hash encode`) or IWAN's feature classifier (`semret classify --save-classifier`;
the collection's IWAN graph built by `semret iwan build`). Each query image, as pixels in [0, 1]
at the collection's resolution, is perturbed within an L-inf budget eps through the whole
differentiable pipeline (resize, normalisation, backbone, model: `semret.attacks.targets`); the
attacked queries are then searched as the clean ones are, with the query left out:

- hash model: its stored codes, Hamming ranking (mode "hamming", as eval's ``hash``) or the
  Hamming shortlist re-ranked by the stored embeddings' cosine (mode "rerank", the published
  default and ``semret query hash``'s);
- classifier: the query's top-IWK words from its (attacked) class probabilities, Dijkstra on the
  collection's IWAN graph (as eval's ``iwan``).

Per attack and eps the report gives the classifier prediction flips, the accuracy left, the code
bits flipped (hash), and mAP@k / mAHP@k (semret's convention, `semret.evaluation.scoring`) of the
attacked queries next to the clean ones; `semret.attacks.figures` draws the curves and examples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.app.collections import load_collection
from semret.app.features import DEFAULT_BACKBONE
from semret.app.hashing import load_hierarchy
from semret.app.iwan import collection_aliases
from semret.core.validation import check_choice, check_count, check_seed
from semret.errors import SemretError
from semret.iwan.index import NO_IMAGE
from semret.sql.images_store import collection_images
from semret.vision.datasets import FOLDER_DATASETS
from semret.vision.hierarchy import ClassHierarchy, available_hierarchies

if TYPE_CHECKING:
    from semret.attacks.run import AttackPoint

Progress = Callable[[str, int, int], None]

#: How attacked hash queries are searched: Hamming ranking, or the Hamming shortlist re-ranked.
HASH_MODES = ("hamming", "rerank")
DEFAULT_EPS = (0.001, 0.01, 0.03)
DEFAULT_KS = (10, 100)
#: The most query images one run attacks.
MAX_QUERIES = 100_000
#: A hash model's clean codes through the given backbone must agree with the stored ones on at
#: least this share of the bits, or the backbone is not the one the codes were made with.
MIN_CODE_AGREEMENT = 0.9


@dataclass
class AttackReport:
    """A whole attack run: the model, the queries, the clean point and every attacked one."""

    collection: str
    model: str
    kind: str
    backbone: str
    image_size: int
    queries: int
    database: int
    searched: str
    ks: list[int]
    steps: int
    seed: int
    clean: AttackPoint
    points: list[AttackPoint]
    #: Share of code bits that the clean queries share with their stored codes (hash models).
    clean_code_agreement: float | None = None
    files: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [str(path) for path in self.files]
        return data


@dataclass
class _Examples:
    """What the example figure needs: the first queries' pixels, clean and attacked, and their
    top results before and after."""

    query_ids: npt.NDArray[np.int64]
    labels: list[str]
    clean: npt.NDArray[np.float32]
    attacked: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    before: npt.NDArray[np.int64] | None = None
    after: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)


def attack_collection(
    engine: Engine,
    collection: str,
    model: str | Path,
    *,
    name: str | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    attacks: Sequence[str] = ("fgsm", "pgd"),
    eps: Sequence[float] = DEFAULT_EPS,
    steps: int = 10,
    queries: int = 200,
    split: str | None = "test",
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    mode: str = "rerank",
    hierarchy: str | None = None,
    examples: int = 6,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> AttackReport:
    """Attack ``queries`` images of ``collection`` (drawn from ``split``, seeded) with every attack
    at every eps against ``model`` (a hash checkpoint or a classifier file) and score the retrieval
    of the attacked queries; with ``out``, write attack.json, attack.csv, the curves and the examples
    there. ``name`` is the stored hash model (default: the checkpoint's stem)."""
    from semret.attacks.gradient import ATTACKS, check_eps

    attacks = [check_choice("attack", a, ATTACKS) for a in attacks]
    if not attacks:
        raise SemretError("give at least one attack (fgsm, pgd)")
    budgets = sorted({check_eps(e) for e in eps})
    if not budgets:
        raise SemretError("give at least one eps")
    steps = check_count("PGD steps", steps, 1, 1000)
    queries = check_count("queries", queries, 1, MAX_QUERIES)
    seed = check_seed(seed)
    ks = sorted({check_count("k", k, 1) for k in ks})
    if not ks:
        raise SemretError("give at least one k")
    mode = check_choice("mode", mode, HASH_MODES)
    examples = check_count("examples", examples, 0, 50)
    loaded = _load_model(Path(model))
    stored = collection_images(engine, collection)  # an unknown collection fails before any network is built
    if stored.dataset is None:
        raise SemretError(f"collection {collection!r} was not imported from a dataset: its pixels are unknown")
    network = _backbone(loaded, Path(model), backbone, weights, image_size)
    target = _target(loaded, network, stored)
    searcher = _searcher(engine, collection, loaded, Path(model), name, mode, target.class_names)
    images = load_collection(engine, collection, image_size=network.input_size if network else 224)
    return _run(
        engine, collection, Path(model), loaded, target, searcher, images, split, queries, seed, attacks, budgets,
        steps, ks, hierarchy, examples, out, progress,
    )  # fmt: skip


# --- the model, its backbone and its searcher ---------------------------------------------------


def _load_model(path: Path) -> Any:
    """The hash model or classifier in ``path``, told apart by the file's format."""
    from semret.hashing.cimon import CHECKPOINT_FORMAT as CIMON_FORMAT
    from semret.hashing.hasher import SemanticHasher
    from semret.hashing.network import CHECKPOINT_FORMAT as HASH_FORMAT
    from semret.torch_files import load_torch_file
    from semret.vision.classifier import CHECKPOINT_FORMAT as CLASSIFIER_FORMAT
    from semret.vision.classifier import FeatureClassifier

    payload = load_torch_file(path, "model file")
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == HASH_FORMAT:
        return SemanticHasher.load(path)
    if kind == CLASSIFIER_FORMAT:
        return FeatureClassifier.load(path)
    if kind == CIMON_FORMAT:
        raise SemretError(
            f"{path}: a CIMON model learns without labels, so it has no class to attack: attack a semantic hash "
            "model (semret hash train) or a classifier (semret classify --save-classifier)"
        )
    raise SemretError(
        f"{path}: not a semantic hash checkpoint (semret hash train) or a feature classifier "
        "(semret classify --save-classifier)"
    )


def _backbone(loaded: Any, model: Path, backbone: str | None, weights: str | None, image_size: int | None) -> Any:
    """The backbone the model's features come through: a fine-tuned hash model's own, else the one
    given, else the one the classifier file names, else semret's default."""
    from semret.hashing.hasher import SemanticHasher
    from semret.vision.backbones import make_backbone
    from semret.vision.features import weights_id

    if isinstance(loaded, SemanticHasher) and loaded.finetune:
        if backbone or weights or image_size:
            raise SemretError(f"{model}: the hash model was fine-tuned with its own backbone: leave out --backbone")
        return loaded._backbone()
    source = (getattr(loaded, "feature_source_", None) or {}) if not isinstance(loaded, SemanticHasher) else {}
    named = source.get("weights")
    if weights is None and named is not None and named not in ("imagenet", "none"):
        weights = source.get("weights_file")
        if weights is None or not Path(weights).is_file():
            raise SemretError(
                f"{model}: the classifier's backbone had weights from a file ({named}) that is not at "
                f"{weights or 'a recorded place'}: give it with --weights"
            )
    network = make_backbone(
        backbone or source.get("backbone") or DEFAULT_BACKBONE,
        weights or (named if named in ("imagenet", "none") else None),
        image_size or source.get("image_size"),
        seed=0,  # random weights ('none') as the feature cache draws them
    )
    wanted = {"backbone": network.name, "weights": weights_id(network), "image_size": network.input_size}
    differing = [f"{key} {source[key]!r} there, {value!r} here" for key, value in wanted.items()
                 if key in source and source[key] != value]  # fmt: skip
    if differing:
        raise SemretError(f"{model}: the classifier was trained on other features ({'; '.join(differing)})")
    return network


def _target(loaded: Any, network: Any, stored: Any) -> Any:
    from semret.app.collections import class_names_of
    from semret.attacks.targets import ClassifierTarget, HashTarget
    from semret.hashing.hasher import SemanticHasher

    if isinstance(loaded, SemanticHasher):
        return HashTarget(loaded, network)
    return ClassifierTarget(loaded, network, class_names_of(stored))


@dataclass
class _Searcher:
    """Searches (query outputs, row) -> k ids, and what it searches."""

    search: Callable[[Any, int, int, int], npt.NDArray[np.int64]]
    database_ids: npt.NDArray[np.int64]
    database_labels: list[str | None]
    description: str
    name: str
    stored_codes: dict[int, npt.NDArray[np.uint8]] = field(default_factory=dict)


def _searcher(
    engine: Engine, collection: str, loaded: Any, model: Path, name: str | None, mode: str, class_names: list[str]
) -> _Searcher:
    from semret.hashing.hasher import SemanticHasher

    if isinstance(loaded, SemanticHasher):
        return _hash_searcher(engine, collection, model, name or model.stem, mode)
    return _iwan_searcher(engine, collection, loaded, class_names, model)


def _hash_searcher(engine: Engine, collection: str, model: Path, name: str, mode: str) -> _Searcher:
    import hashlib

    from semret.hashing.retrieval import HashQueries, SemanticHashIndex
    from semret.sql.hash_store import hamming_searcher, load_hashes, model_by_name

    stored_model = model_by_name(engine, name)
    if hashlib.sha256(model.read_bytes()).hexdigest() != stored_model.checkpoint_sha256:
        raise SemretError(
            f"the codes stored under model {name!r} were made by another checkpoint than {model}: "
            "encode the collection with it (semret hash encode) or name the model it was stored as (--name)"
        )
    stored = load_hashes(engine, stored_model, collection)
    if mode == "hamming":
        searcher: Any = hamming_searcher(engine, stored_model, collection)
        description = "Hamming ranking of the stored codes"

        def search(outputs: Any, row: int, query_id: int, k: int) -> npt.NDArray[np.int64]:
            return searcher.search(outputs.codes[row : row + 1], k, exclude_ids=[query_id])[1][0]

    else:
        searcher = SemanticHashIndex(stored_model.n_bits, stored_model.embedding_dim, "rerank")
        searcher.add(stored.image_ids, stored.embeddings, stored.codes)
        description = "Hamming shortlist of the stored codes, re-ranked by cosine"

        def search(outputs: Any, row: int, query_id: int, k: int) -> npt.NDArray[np.int64]:
            query = HashQueries(outputs.embeddings[row : row + 1], outputs.codes[row : row + 1])
            return searcher.search(query, k, exclude_ids=[query_id])[1][0]

    codes = {int(i): stored.codes[row] for row, i in enumerate(stored.image_ids)}
    return _Searcher(search, stored.image_ids, stored.labels, description, name, codes)


def _iwan_searcher(engine: Engine, collection: str, classifier: Any, class_names: list[str], model: Path) -> _Searcher:
    from semret.iwan.links import ranked_words_from_probabilities
    from semret.iwan.vocabulary import Vocabulary
    from semret.sql.iwan_store import iwan_searcher
    from semret.sql.norms_store import known_words

    stored = iwan_searcher(engine, collection)
    if stored.published:
        raise SemretError(
            f"collection {collection!r} has the published IWAN graph (ImageNet words), not one built from a "
            "classifier's words: build it with `semret iwan build` after `semret classify`"
        )
    index = stored.index
    vocabulary = Vocabulary.build(class_names, known_words(engine), collection_aliases(engine, collection))
    vocabulary.require_complete()
    class_words = vocabulary.class_words(class_names)
    top = index.settings.top_iwk

    def search(outputs: Any, row: int, query_id: int, k: int) -> npt.NDArray[np.int64]:
        words = ranked_words_from_probabilities([query_id], outputs.probabilities[row : row + 1], class_words, top)
        query = index.query_from_words(list(zip(words.words[0], words.strengths[0], strict=True)))
        return index.search([query], k, exclude_ids=[query_id])[1][0]

    ids = np.array(sorted(index.labels), dtype=np.int64)
    description = f"IWAN graph (top-IWK {top}, top-WWK {index.settings.top_wwk})"
    return _Searcher(search, ids, [index.labels[int(i)] for i in ids], description, model.stem)


# --- the run ------------------------------------------------------------------------------------


def _similarity(hierarchy: str | None, dataset: str, class_names: list[str]) -> npt.NDArray[np.float64]:
    """The class similarity matrix mAHP needs: the hierarchy given, the dataset's packaged one, or flat."""
    if hierarchy is not None:
        classes = load_hierarchy(hierarchy)
    elif dataset not in FOLDER_DATASETS and dataset in available_hierarchies():
        classes = ClassHierarchy.packaged(dataset)
    else:
        classes = ClassHierarchy.from_mapping({f"{dataset} classes": list(class_names)})
    classes.require_classes(class_names)
    return np.asarray(classes.similarity_matrix(class_names), dtype=np.float64)


def _run(
    engine: Engine,
    collection: str,
    model: Path,
    loaded: Any,
    target: Any,
    searcher: _Searcher,
    images: Any,
    split: str | None,
    n_queries: int,
    seed: int,
    attacks: list[str],
    budgets: list[float],
    steps: int,
    ks: list[int],
    hierarchy: str | None,
    n_examples: int,
    out: str | Path | None,
    progress: Progress | None,
) -> AttackReport:

    from semret.attacks.run import AttackPoint, attack_images, output_change
    from semret.evaluation.scoring import Ground, score_rankings
    from semret.vision.backbones import to_unit_pixels

    class_names = target.class_names
    position = {label: i for i, label in enumerate(class_names)}
    unknown = sorted({label for label in images.label_names() if label not in position})
    if unknown:
        raise SemretError(f"collection {collection!r} has classes the model does not know: {', '.join(unknown[:5])}")
    labels = np.array([position[label] for label in images.label_names()], dtype=np.int64)
    in_database = np.isin(images.image_ids, searcher.database_ids)
    chosen_split = (
        np.array([s == split for s in images.image_splits]) if split is not None else np.ones(len(labels), bool)
    )
    if split is not None and not chosen_split.any():
        present = ", ".join(sorted({s for s in images.image_splits if s})) or "none"
        raise SemretError(f"collection {collection!r} has no {split} images (its splits: {present}): give --split")
    candidates = np.flatnonzero(chosen_split & in_database)
    if not len(candidates):
        raise SemretError(
            f"no {split or ''} image of collection {collection!r} is in what is searched ({searcher.description})"
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(candidates, size=min(n_queries, len(candidates)), replace=False))
    query_ids, query_labels = images.image_ids[rows], labels[rows]
    pixels = to_unit_pixels(images.images[rows])
    database_labels = np.array(
        [position.get(label, -1) if label is not None else -1 for label in searcher.database_labels], dtype=np.int64
    )
    if (database_labels < 0).any():
        raise SemretError(f"images of collection {collection!r} have no label or a class the model does not know")
    ground = Ground(
        searcher.database_ids, database_labels, query_labels,
        _similarity(hierarchy, images.dataset, class_names), True, query_ids=query_ids,
    )  # fmt: skip
    k_max = min(max(ks), len(searcher.database_ids) - 1)
    if k_max < 1:
        raise SemretError(f"collection {collection!r} has one image: nothing to retrieve")
    ks = [k for k in ks if k <= k_max] or [k_max]

    def rankings(outputs: Any, stage: str) -> npt.NDArray[np.int64]:
        found = np.full((len(rows), max(ks)), NO_IMAGE, dtype=np.int64)
        for row, query_id in enumerate(query_ids):
            ids = searcher.search(outputs, row, int(query_id), max(ks))
            found[row, : len(ids)] = ids
            if progress:
                progress(stage, row + 1, len(rows))
        return found

    def scored(found: npt.NDArray[np.int64]) -> dict[str, dict[int, float]]:
        return score_rankings(ground, found, ks)

    start = time.perf_counter()
    clean_outputs = target.outputs(pixels)
    clean_seconds = time.perf_counter() - start
    agreement = None
    if clean_outputs.codes is not None:
        stored_codes = np.stack([searcher.stored_codes[int(i)] for i in query_ids])
        differing = np.unpackbits(stored_codes ^ clean_outputs.codes, axis=1).sum()
        agreement = 1.0 - float(differing) / (len(query_ids) * loaded.n_bits)
        if agreement < MIN_CODE_AGREEMENT:
            raise SemretError(
                f"through backbone {target.backbone.name} at {target.backbone.input_size} px the clean queries' codes "
                f"share only {agreement:.0%} of their bits with the codes stored under {searcher.name!r}: give the "
                "--backbone, --weights and --image-size the collection was encoded with"
            )
    clean_found = rankings(clean_outputs, "searching clean queries")
    no_change = output_change(clean_outputs, clean_outputs, query_labels, pixels, pixels)
    clean = AttackPoint("none", 0.0, 0.0, no_change.accuracy, no_change.bits_flipped, 0.0, clean_seconds,
                        scored(clean_found))  # fmt: skip
    shown = slice(0, min(n_examples, len(rows)))
    examples = _Examples(query_ids[shown], [class_names[c] for c in query_labels[shown]],
                         pixels[shown].numpy(), before=clean_found[shown])  # fmt: skip
    points = []
    for attack in attacks:
        for eps in budgets:
            attacked = attack_images(
                target, pixels, query_labels, attack, eps, steps=steps, seed=seed, progress=progress
            )
            outputs = target.outputs(attacked.pixels)
            change = output_change(clean_outputs, outputs, query_labels, pixels, attacked.pixels)
            found = rankings(outputs, f"searching {attack} eps={eps:g}")
            points.append(AttackPoint(attack, eps, change.prediction_flips, change.accuracy, change.bits_flipped,
                                      change.max_perturbation, attacked.seconds, scored(found)))  # fmt: skip
            if eps == budgets[-1] and len(examples.query_ids):
                examples.attacked[attack] = attacked.pixels[shown].numpy()
                examples.after[attack] = found[shown]
    report = AttackReport(
        collection, searcher.name, target.kind, target.backbone.name, target.backbone.input_size, len(rows),
        len(searcher.database_ids), searcher.description, ks, steps, seed, clean, points, agreement,
    )  # fmt: skip
    if out is not None:
        report.files = _write(Path(out), report, examples, images, budgets[-1])
    return report


def _write(folder: Path, report: AttackReport, examples: _Examples, images: Any, eps: float) -> list[Path]:
    """attack.json, attack.csv, curves.png and one examples PNG per attack, in ``folder``."""
    from semret.attacks.figures import plot_curves, plot_examples
    from semret.vision.backbones import to_unit_pixels

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "attack.json", folder / "attack.csv", folder / "curves.png"]
    written[0].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    written[1].write_text(_csv(report), encoding="utf-8")
    plot_curves(report, written[2])
    row_of = {int(i): row for row, i in enumerate(images.image_ids)}
    label_names = images.label_names()

    def database_image(image_id: int) -> tuple[npt.NDArray[np.float32], str]:
        row = row_of[image_id]
        return to_unit_pixels(images.images[row : row + 1])[0].numpy(), str(label_names[row])

    for attack, attacked in examples.attacked.items():
        file = folder / f"examples-{attack}.png"
        plot_examples(
            file, f"{attack.upper()} eps={eps:g} against {report.model}", examples.query_ids, examples.labels,
            examples.clean, attacked, examples.before, examples.after[attack], database_image,
        )  # fmt: skip
        written.append(file)
    return [path.resolve() for path in written]


def _csv(report: AttackReport) -> str:
    """One row per attack, eps, metric and k (the clean queries as attack "none", eps 0)."""
    lines = ["attack,eps,prediction_flips,accuracy,bits_flipped,metric,k,value"]
    for point in [report.clean, *report.points]:
        bits = "" if point.bits_flipped is None else f"{point.bits_flipped:.6g}"
        for metric, values in point.scores.items():
            for k, value in values.items():
                lines.append(
                    f"{point.attack},{point.eps:g},{point.prediction_flips:.6g},{point.accuracy:.6g},{bits},"
                    f"{metric},{k},{value:.6g}"
                )
    return "\n".join(lines) + "\n"
