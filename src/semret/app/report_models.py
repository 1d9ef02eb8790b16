"""What a `semret eval` (or `semret demo`) report directory holds for later use: its results
(``results.json``: the collection, the backbone, each method's details), its pictures, and the
trained models it left beside them (the hash model's checkpoint, IWAN's word classifier), which
let `semret serve` answer an uploaded image through the same backbone and models as the
collection's images went through.

A checkpoint is used for a stored hash model only when its SHA-256 is the one the store recorded
for that model's codes (`semret.sql.hash_store.register_model`): other weights would make codes
that do not compare with the stored ones.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.evaluation.report import CIMON_MODEL_FILE, HASH_MODEL_FILE, IWAN_CLASSIFIER_FILE, RESULTS_FILE
from semret.hashing.retrieval import HashQueries
from semret.iwan.index import WeightedWords
from semret.sql.hash_store import StoredModel
from semret.sql.iwan_store import StoredIwan

RESULTS_JSON = RESULTS_FILE
#: The checkpoint files of the methods that store codes (hash and hash-rerank share one model).
CHECKPOINTS = {"hash": HASH_MODEL_FILE, "hash-rerank": HASH_MODEL_FILE, "cimon": CIMON_MODEL_FILE}
#: Pictures shown with a report: its plots, and its contact sheets (`semret.app.report_sheets`).
PICTURE_SUFFIX = ".png"


@dataclass(frozen=True)
class EvalReport:
    """A report directory read once: its name (the folder's), results and pictures (file name -> path)."""

    name: str
    folder: Path
    document: dict[str, Any]
    pictures: dict[str, Path] = field(default_factory=dict)

    @property
    def collection(self) -> str | None:
        return self.document.get("summary", {}).get("collection")

    @property
    def methods(self) -> dict[str, Any]:
        return dict(self.document.get("methods", {}))

    def model_checkpoints(self) -> dict[str, Path]:
        """Stored model name -> the checkpoint file in the folder that made its codes."""
        found = {}
        for method, details in self.methods.items():
            model = details.get("details", {}).get("model")
            file = self.folder / CHECKPOINTS.get(method, "")
            if model and method in CHECKPOINTS and file.is_file():
                found[model] = file
        return found

    def class_words(self) -> list[list[str]] | None:
        """IWAN's words of each class, in the classifier's class order (None without an iwan run)."""
        words = self.methods.get("iwan", {}).get("details", {}).get("words")
        return [list(w) for w in words.values()] if isinstance(words, dict) else None


def read_report(folder: str | Path) -> EvalReport:
    """A report directory; one without a readable ``results.json`` is an error naming it."""
    path = Path(folder)
    results = path / RESULTS_JSON
    if not path.is_dir():
        raise SemretError(f"{path}: no such report directory")
    try:
        document = json.loads(results.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SemretError(f"{path}: no {RESULTS_JSON} (not a `semret eval` report directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SemretError(f"{results}: cannot read it ({exc})") from None
    if not isinstance(document, dict) or document.get("semret_results") != 1:
        raise SemretError(f"{results}: not a semret results file")
    root = path.resolve()
    pictures = {  # only files inside the folder: a link out of it is not a picture of the report
        p.relative_to(path).as_posix(): p
        for p in sorted(path.rglob(f"*{PICTURE_SUFFIX}"))
        if p.is_file() and p.resolve().is_relative_to(root)
    }
    return EvalReport(path.resolve().name, path.resolve(), document, pictures)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class UploadEncoder:
    """Turns an uploaded image into each method's query, through a report's backbone and models.
    The backbone and models load on first use (torch is slow to import) and are kept."""

    def __init__(self, report: EvalReport) -> None:
        self.report = report
        self._lock = threading.Lock()
        self._backbone: Any = None
        self._models: dict[str, Any] = {}
        self._classifier: Any = None

    def backbone_spec(self) -> dict[str, Any]:
        """The run's backbone: name, weights (as given to the run) and input size."""
        summary = self.report.document.get("summary", {}).get("backbone", {})
        config = self.report.document.get("config", {})
        return {"name": summary.get("name"), "weights": config.get("weights"), "image_size": summary.get("input_size")}

    def why_not(self) -> str | None:
        """Why uploads cannot go through this report's backbone, or None when they can."""
        spec = self.backbone_spec()
        if not spec["name"]:
            return f"report {self.report.name} does not name its backbone"
        if spec["name"] == "small-cnn":
            return f"report {self.report.name}'s backbone (small-cnn) was trained in the run and not saved"
        if spec["weights"] and spec["weights"] not in ("imagenet", "none") and not Path(spec["weights"]).is_file():
            return f"report {self.report.name}'s backbone weights {spec['weights']} are not there any more"
        return None

    def _get_backbone(self) -> Any:
        reason = self.why_not()
        if reason:
            raise SemretError(reason)
        if self._backbone is None:
            from semret.vision.backbones import make_backbone

            spec = self.backbone_spec()
            self._backbone = make_backbone(spec["name"], spec["weights"], spec["image_size"], seed=0)
        return self._backbone

    def features(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The upload's features (1, d) through the backbone."""
        from semret.vision.features import extract_features

        with self._lock:
            backbone = self._get_backbone()
            return extract_features(backbone, pixels[None], engine="torch")

    def feature_origin(self) -> dict[str, Any] | None:
        """What made the upload's features (`semret.app.indexes.features_origin`: backbone,
        weights id, input size), to compare with an index's; None where it cannot be built."""
        if self.why_not():
            return None
        from semret.app.indexes import features_origin
        from semret.vision.features import weights_id

        with self._lock:
            backbone = self._get_backbone()
            return features_origin(backbone.name, weights_id(backbone), backbone.input_size)

    def has_model(self, model: StoredModel) -> bool:
        """Whether the report holds the checkpoint that made ``model``'s stored codes."""
        file = self.report.model_checkpoints().get(model.name)
        return file is not None and _sha256(file) == model.checkpoint_sha256

    def hash_query(self, model: StoredModel, features: npt.NDArray[np.float32]) -> HashQueries:
        """The upload's embedding and code under a stored hash model (its checkpoint from the report)."""
        from semret.app.hashing import load_hasher
        from semret.hashing.cimon import CimonHasher

        with self._lock:
            if model.name not in self._models:
                if not self.has_model(model):
                    raise SemretError(f"report {self.report.name} has no checkpoint of model {model.name!r}")
                self._models[model.name] = load_hasher(self.report.model_checkpoints()[model.name])
            hasher = self._models[model.name]
        encoded = hasher.encode_images(features) if isinstance(hasher, CimonHasher) else hasher.encode(features)
        return HashQueries(encoded.embeddings, encoded.codes)

    def iwan_query(self, stored: StoredIwan, features: npt.NDArray[np.float32]) -> WeightedWords:
        """The upload's IWAN query: for the published graph its ImageNet names (the backbone's own
        head), for semret's graph its top-IWK words from the report's word classifier."""
        if stored.published:
            from semret.iwan.published import PREDICTED_WORDS, predicted_words, published_query
            from semret.vision.imagenet import imagenet_class_names, imagenet_probabilities

            with self._lock:
                backbone = self._get_backbone()
            probabilities = imagenet_probabilities(backbone, features)
            words = predicted_words([0], probabilities, imagenet_class_names(), PREDICTED_WORDS)
            return published_query(stored.index, words.words[0], words.strengths[0])
        from semret.iwan.links import ranked_words_from_probabilities
        from semret.vision.classifier import FeatureClassifier

        class_words = self.report.class_words()
        file = self.report.folder / IWAN_CLASSIFIER_FILE
        if class_words is None or not file.is_file():
            raise SemretError(f"report {self.report.name} has no IWAN word classifier ({IWAN_CLASSIFIER_FILE})")
        with self._lock:
            if self._classifier is None:
                self._classifier = FeatureClassifier.load(file)
            classifier = self._classifier
        ranked = ranked_words_from_probabilities(
            [0], classifier.predict_proba(features), class_words, stored.index.settings.top_iwk
        )
        return stored.index.query_from_words(list(zip(ranked.words[0], ranked.strengths[0], strict=True)))

    def can_iwan(self, stored: StoredIwan) -> bool:
        """Whether an upload can be put to the collection's IWAN graph through this report."""
        if self.why_not():
            return False
        if stored.published:
            return True
        return self.report.class_words() is not None and (self.report.folder / IWAN_CLASSIFIER_FILE).is_file()
