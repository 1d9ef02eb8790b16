"""IWAN as it was published ("iwan-published"), after Palumbo & Allasia (2015) and the public code
of the CIFAR-100 report (seed report 002): the graph built from an ImageNet classifier's words.

What the published code does, followed here (pure: no SQL; the store is `semret.sql.iwan_store`):

- An image's words are the top-10 ImageNet classes of an off-the-shelf classifier, each formatted
  ``name.replace('_', ' ').upper()`` (`imagenet_word`), with strength = predicted probability.
- A word node is that full name; its associations in the USF norms are those of its LAST word
  (`lookup_word`: "GREAT WHITE SHARK" -> "SHARK"). Label nodes alike ("AQUARIUM FISH" -> "FISH").
- Nodes = base words (every database image's label and top-IWK predicted names) + associates (the
  top-WWK targets of each base word's lookup word, strongest FSG first, ties by the target).
- Word edges: for every pair of nodes (a, b), strength(a, b) = FSG(lookup(a), lookup(b)) where
  the norms have that pair; one undirected edge of weight 1 / max(strength(a, b), strength(b, a)).
- Database image -> its label node (``label_strength``, 1.0; a published variant used 0.8) and
  its top-IWK predicted nodes (the probability); images are sinks.
- The query links to ALL its top-10 predicted nodes that are in the graph (weight 1 / probability).

Where semret had to choose (documented in docs/iwan.md): class names that format to the same name
are one node with the stronger probability; an image linked twice to one node (its label is also
a predicted name) keeps the stronger link; a label whose lookup word is not in the norms (e.g.
Fashion-MNIST's "T-shirt/top") looks up semret's vocabulary word for that class instead; a
probability of 0 makes no link (its weight would be infinite).

The result is a plain `semret.iwan.index.IwanIndex` (word edges both ways), searched with its exact
fast Dijkstra; `semret.iwan.reference.ReferencePublishedIwan` builds the same graph in networkx.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.iwan.graph import MAX_TOP_K, MIN_TOP_K, IwanSettings, WordEdges
from semret.iwan.index import IwanIndex, WeightedWords
from semret.iwan.links import RankedWords, _image_ids

#: The published code keeps an image's top-10 ImageNet classes (the query links to all of them).
PREDICTED_WORDS = 10


@dataclass(frozen=True)
class PublishedIwanSettings:
    """How a published IWAN graph is built: top-IWK predicted words per database image (1-10),
    top-WWK associates per base word, and the strength of an image's link to its label (0, 1]."""

    top_iwk: int = 4
    top_wwk: int = 4
    label_strength: float = 1.0

    def __post_init__(self) -> None:
        for name in ("top_iwk", "top_wwk"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | np.integer)
                or not MIN_TOP_K <= value <= MAX_TOP_K
            ):
                raise SemretError(
                    f"{name.replace('_', '-')} must be between {MIN_TOP_K} and {MAX_TOP_K}, got {value!r}"
                )
        strength = self.label_strength
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 1:
            raise SemretError(f"label-strength must be in (0, 1], got {strength!r}")

    def index_settings(self) -> IwanSettings:
        """The settings an `IwanIndex` of this graph carries (top-IWK, top-WWK)."""
        return IwanSettings(top_iwk=int(self.top_iwk), top_wwk=int(self.top_wwk))


def imagenet_word(name: str) -> str:
    """A class name as the published code formats it: ``name.replace('_', ' ').upper()``."""
    return name.replace("_", " ").upper()


def lookup_word(node: str) -> str:
    """The word a node's associations are looked up by: its last word, ``node.split(' ')[-1]``."""
    return node.split(" ")[-1]


def predicted_words(
    image_ids: npt.ArrayLike, probabilities: npt.ArrayLike, class_names: Sequence[str], top: int = PREDICTED_WORDS
) -> RankedWords:
    """Each image's ``top`` classes by probability (ties by class index) as formatted names, best
    first. Names shared by several classes count once (the stronger); probabilities of 0 are left
    out. These are what the store keeps, so that graphs for any top-IWK reuse them."""
    ids = _image_ids(image_ids)
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(ids), len(class_names)):
        raise SemretError(
            f"probabilities must have shape (images, classes) = ({len(ids)}, {len(class_names)}), got {scores.shape}"
        )
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise SemretError("probabilities must be finite and in [0, 1]")
    names = [imagenet_word(str(name)) for name in class_names]
    order = np.argsort(-scores, axis=1, kind="stable")
    words: list[list[str]] = []
    strengths: list[list[float]] = []
    for row, columns in enumerate(order):
        chosen: dict[str, float] = {}
        for column in columns:
            probability = float(scores[row, column])
            if len(chosen) == top or probability <= 0:
                break
            chosen.setdefault(names[column], probability)
        words.append(list(chosen))
        strengths.append(list(chosen.values()))
    return RankedWords(ids, words, strengths)


@dataclass(frozen=True)
class ForwardNorms:
    """The norms' cue -> target forward strengths (FSG), as the published code reads them."""

    cue: list[str]
    target: list[str]
    fsg: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if not len(self.cue) == len(self.target) == len(self.fsg):
            raise SemretError("cues, targets and forward strengths must have the same length")


@dataclass(frozen=True)
class PublishedGraph:
    """A published IWAN graph: nodes (sorted names) with their lookup words, the undirected word
    edges (both directions) and the database image -> node links."""

    settings: PublishedIwanSettings
    nodes: list[str]
    lookups: list[str]
    edges: WordEdges
    link_images: npt.NDArray[np.int64]
    link_nodes: npt.NDArray[np.int64]
    link_strengths: npt.NDArray[np.float64]

    @property
    def undirected_edges(self) -> int:
        """The number of undirected word edges (half the directed ones)."""
        return len(self.edges) // 2

    def index(self, labels: Mapping[int, str | None] | None = None) -> IwanIndex:
        """The graph as an `IwanIndex` (images ranked in memory)."""
        return IwanIndex(
            self.nodes,
            self.edges,
            self.link_images,
            self.link_nodes,
            self.link_strengths,
            self.settings.index_settings(),
            labels,
        )


def label_lookups(
    labels: Sequence[str], known: frozenset[str], fallback: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """Lookup words of label nodes whose published lookup (last word) is not in the norms: the
    first of semret's vocabulary words for that label (``fallback``: label -> words), where it has
    one. A deviation from the published rule, for labels such as "T-shirt/top"."""
    found = {}
    for label in labels:
        node = imagenet_word(label)
        if lookup_word(node) not in known and fallback.get(label):
            found[node] = fallback[label][0]
    return found


def build_published_graph(
    image_ids: npt.ArrayLike,
    labels: Sequence[str | None],
    predicted: RankedWords,
    norms: ForwardNorms,
    settings: PublishedIwanSettings,
    lookups: Mapping[str, str] | None = None,
) -> PublishedGraph:
    """The published IWAN graph of the database images ``image_ids`` (with their raw ``labels``,
    None for none) from their predicted names (`predicted_words`) and the norms.

    ``lookups`` overrides the lookup word of some nodes (`label_lookups`)."""
    ids = _image_ids(image_ids)
    if len(labels) != len(ids):
        raise SemretError(f"{len(ids)} images but {len(labels)} labels")
    words_of = {
        int(i): (w, s) for i, w, s in zip(predicted.image_ids, predicted.words, predicted.strengths, strict=True)
    }
    missing = [int(i) for i in ids if int(i) not in words_of]
    if missing:
        raise SemretError(f"{len(missing)} images have no predicted words, e.g. {missing[:5]}")
    overrides = dict(lookups or {})

    def lookup(node: str) -> str:
        return overrides.get(node) or lookup_word(node)

    # links: the label node and the top-IWK predicted names of each database image
    links: dict[tuple[int, str], float] = {}
    for image, label in zip(ids.tolist(), labels, strict=True):
        candidates = [] if label is None else [(imagenet_word(label), float(settings.label_strength))]
        names, strengths = words_of[image]
        candidates += list(zip(names[: settings.top_iwk], strengths[: settings.top_iwk], strict=True))
        for node, strength in candidates:
            if strength > 0:  # the stronger of two links to one node
                links[image, node] = max(strength, links.get((image, node), 0.0))
    base = sorted({node for _, node in links})

    # associates: the top-WWK targets of each base word's lookup word, strongest first, ties by target
    by_cue: dict[str, list[tuple[float, str]]] = defaultdict(list)
    fsg = np.asarray(norms.fsg, dtype=np.float64)
    for cue, target, strength in zip(norms.cue, norms.target, fsg.tolist(), strict=True):
        if np.isfinite(strength) and strength > 0:
            by_cue[cue].append((strength, target))
    nodes_set = set(base)
    for cue in {lookup(node) for node in base}:
        ranked = sorted(by_cue.get(cue, []), key=lambda pair: (-pair[0], pair[1]))
        nodes_set.update(target for _, target in ranked[: settings.top_wwk])
    nodes = sorted(nodes_set)
    node_lookups = [lookup(node) for node in nodes]
    return PublishedGraph(
        settings,
        nodes,
        node_lookups,
        _pair_edges(node_lookups, by_cue),
        *_link_arrays(links, {node: i for i, node in enumerate(nodes)}),
    )


def _pair_edges(node_lookups: Sequence[str], by_cue: Mapping[str, list[tuple[float, str]]]) -> WordEdges:
    """Every pair of nodes whose lookup words the norms pair, both directions, with the stronger
    of the two forward strengths."""
    nodes_of: dict[str, list[int]] = defaultdict(list)
    for node, word in enumerate(node_lookups):
        nodes_of[word].append(node)
    strongest: dict[tuple[str, str], float] = {}
    for cue in nodes_of:
        for strength, target in by_cue.get(cue, []):
            if target in nodes_of:
                key = (min(cue, target), max(cue, target))
                strongest[key] = max(strength, strongest.get(key, 0.0))
    source: list[int] = []
    dest: list[int] = []
    strengths: list[float] = []
    for (first, second), strength in strongest.items():
        for a in nodes_of[first]:
            for b in nodes_of[second]:
                if a != b:
                    source += [a, b] if first != second else [a]
                    dest += [b, a] if first != second else [b]
                    strengths += [strength, strength] if first != second else [strength]
    order = np.lexsort((np.asarray(dest, dtype=np.int64), np.asarray(source, dtype=np.int64)))
    return WordEdges(
        np.asarray(source, dtype=np.int64)[order],
        np.asarray(dest, dtype=np.int64)[order],
        np.asarray(strengths, dtype=np.float64)[order],
    )


def _link_arrays(
    links: Mapping[tuple[int, str], float], index: Mapping[str, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    items = sorted((image, index[node], strength) for (image, node), strength in links.items())
    return (
        np.array([i for i, _, _ in items], dtype=np.int64),
        np.array([n for _, n, _ in items], dtype=np.int64),
        np.array([s for _, _, s in items], dtype=np.float64),
    )


def published_query(index: IwanIndex, names: Sequence[str], strengths: Sequence[float]) -> WeightedWords:
    """A query image's links: ALL its predicted names (up to 10) that are nodes of the graph,
    weight 1 / probability (names not in the graph and probabilities of 0 are left out). It may be
    empty: such a query reaches no image."""
    chosen: dict[int, float] = {}
    for name, strength in zip(names, strengths, strict=True):
        node = index.word_index.get(name)
        if node is not None and strength > 0:
            chosen[node] = max(float(strength), chosen.get(node, 0.0))
    return WeightedWords(np.array(list(chosen), dtype=np.int64), np.array(list(chosen.values()), dtype=np.float64))
