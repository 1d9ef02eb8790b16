"""Class hierarchies and the semantic similarity of classes.

semret's semantic hashing follows Barz & Denzler ("Hierarchy-based Image Embeddings for Semantic
Image Retrieval", WACV 2019): two classes are as similar as their lowest common subsumer (lcs) is
specific,

    s(a, b) = 1 - height(lcs(a, b)) / max_height,

where height(n) is the length of the longest path from n down to a leaf and max_height the height
of the root. Two leaves in the same finest group are close to 1, two leaves that only share the
root have similarity 0. The same similarity scores hierarchical precision (mAHP, Deng et al.,
"What does classifying more than 10,000 image categories tell us?", ECCV 2010 / CVPR 2011).

A `ClassHierarchy` is a tree of integer node ids with names. It is read from

- a parent-child file (``parent child`` per line, integer ids, as in cvjena/semantic-embeddings)
  plus an optional names file (``id name`` per line), see `ClassHierarchy.from_parent_child`;
- a nested mapping of names (JSON), see `ClassHierarchy.from_mapping`;
- the hierarchies shipped in ``semret/data/hierarchies`` (`ClassHierarchy.packaged`).

Every problem a user can cause (two roots, a cycle, a node with two parents, a malformed line, a
dataset class that is not in the hierarchy) raises `SemretError` naming the node or file:line.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from semret.errors import SemretError

#: A reference to a node: its integer id, or its name (case-insensitive, ``_`` read as a space).
NodeRef = int | str

PARENT_CHILD_SUFFIX = ".parent-child.txt"
NAMES_SUFFIX = ".names.txt"
JSON_SUFFIX = ".json"


def name_key(name: str) -> str:
    """The form names are compared in: case-folded, ``_`` read as a space, runs of spaces as one
    (so ``Aquarium Fish`` finds ``aquarium_fish``)."""
    return " ".join(name.replace("_", " ").split()).casefold()


class ClassHierarchy:
    """A rooted tree of classes with the Barz & Denzler similarity and related queries.

    Nodes are integer ids; each has a name (its id as text where none was given). Every query takes
    a node as an id or a name (`NodeRef`). Depths, heights and each node's path from the root are
    computed once, so `similarity_matrix` is a few vectorised passes (one per tree level).
    """

    def __init__(self, parents: Mapping[int, int | None], names: Mapping[int, str] | None = None):
        """Build from ``parents``: every node id mapped to its parent's id (``None`` for the root).

        Parents that are not keys are added as parentless nodes. Nodes, and each node's children,
        are kept in order of first appearance (a parent just before its first child). Raises
        `SemretError` for a cycle, for more or fewer than one root, for a name given to an unknown
        node and for two nodes with the same name.
        """
        # Nodes in order of first appearance, a parent before its first child.
        given = {int(child): None if parent is None else int(parent) for child, parent in parents.items()}
        self._parent: dict[int, int | None] = {}
        for child, parent in given.items():
            if parent is not None and parent not in self._parent:
                self._parent[parent] = given.get(parent)
            self._parent[child] = parent
        if not self._parent:
            raise SemretError("the hierarchy has no nodes")

        self._names: dict[int, str] = {node: str(node) for node in self._parent}
        for node, name in (names or {}).items():
            if node not in self._parent:
                raise SemretError(f"a name ({name!r}) is given to node {node}, which is not in the hierarchy")
            self._names[node] = name

        self._children: dict[int, list[int]] = {node: [] for node in self._parent}
        for child, parent in self._parent.items():
            if parent is not None:
                self._children[parent].append(child)

        self._check_acyclic()
        roots = [node for node, parent in self._parent.items() if parent is None]
        if len(roots) != 1:
            listed = ", ".join(self._label(root) for root in roots)
            raise SemretError(f"a hierarchy needs exactly one root, found {len(roots)}: {listed}")
        self._root = roots[0]

        self._by_name: dict[str, int] = {}
        for node, name in self._names.items():
            key = name_key(name)
            if not key:
                raise SemretError(f"node {node} has an empty name")
            other = self._by_name.setdefault(key, node)
            if other != node:
                raise SemretError(
                    f"nodes {other} ({self._names[other]!r}) and {node} ({name!r}) have the same name; "
                    "names must be unique (compared case-insensitively)"
                )

        # Breadth-first order from the root: depths top-down, heights bottom-up.
        order = [self._root]
        for node in order:
            order.extend(self._children[node])
        self._depth: dict[int, int] = {self._root: 0}
        for node in order[1:]:
            parent = self._parent[node]
            assert parent is not None
            self._depth[node] = self._depth[parent] + 1
        self._height: dict[int, int] = {}
        for node in reversed(order):
            self._height[node] = max((self._height[child] + 1 for child in self._children[node]), default=0)

        # Vectorised form: row p of `_paths` holds the positions of node p's ancestors at depth
        # 0, 1, ... (itself last), padded with -1.
        self._ids = list(self._parent)
        self._position = {node: position for position, node in enumerate(self._ids)}
        self._height_array = np.array([self._height[node] for node in self._ids], dtype=np.float64)
        max_depth = max(self._depth.values())
        self._paths = np.full((len(self._ids), max_depth + 1), -1, dtype=np.int64)
        for node in order:
            position = self._position[node]
            parent = self._parent[node]
            if parent is not None:
                self._paths[position] = self._paths[self._position[parent]]
            self._paths[position, self._depth[node]] = position

    # --- constructors ---------------------------------------------------------------------------

    @classmethod
    def from_parent_child(
        cls, path: str | os.PathLike[str], names_path: str | os.PathLike[str] | None = None
    ) -> ClassHierarchy:
        """Read a parent-child file (lines ``parent child``, integer ids; blank lines and ``#``
        comments ignored) and optionally a names file (lines ``id name``; the name is everything
        after the first run of whitespace, so it may contain spaces; lines starting with ``#``
        are comments). This is the format of cvjena/semantic-embeddings (Barz & Denzler)."""
        parents = parse_parent_child(_read_text(path), str(path))
        names = parse_names(_read_text(names_path), str(names_path)) if names_path is not None else None
        return cls(parents, names)

    @classmethod
    def from_mapping(cls, nested: Mapping[str, Any]) -> ClassHierarchy:
        """Build from a nested mapping of names with the root as its only key, e.g.
        ``{"clothing": {"tops": ["T-shirt/top", "Shirt"], "Dress": []}}``.

        A value is a mapping (name -> subtree), a list whose items are names (leaves) or such
        mappings, or empty (``None``, ``{}``, ``[]``: a leaf). Ids are given in pre-order (the root
        is 0), so leaves are numbered in the order they are written.
        """
        parents, names = parse_mapping(nested)
        return cls(parents, names)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], names_path: str | os.PathLike[str] | None = None
    ) -> ClassHierarchy:
        """Read ``path``: a ``.json`` file holds a nested mapping (`from_mapping`); any other file
        is read as parent-child lines with the optional ``names_path`` (`from_parent_child`)."""
        if Path(path).suffix.lower() == JSON_SUFFIX:
            if names_path is not None:
                raise SemretError(f"{path}: a JSON hierarchy holds its own names; do not pass a names file")
            return cls.from_mapping(_parse_json(_read_text(path), str(path)))
        return cls.from_parent_child(path, names_path)

    @classmethod
    def packaged(cls, name: str) -> ClassHierarchy:
        """A hierarchy shipped with semret (``cifar100``, ``fashion-mnist``; see
        `available_hierarchies`), read through importlib.resources so it works when installed."""
        available = available_hierarchies()
        if name not in available:
            raise SemretError(f"no packaged hierarchy {name!r}; available: {', '.join(available) or 'none'}")
        folder = _packaged_dir()
        source = f"semret/data/hierarchies/{name}"
        json_file = folder / f"{name}{JSON_SUFFIX}"
        if json_file.is_file():
            return cls.from_mapping(_parse_json(json_file.read_text(encoding="utf-8"), source + JSON_SUFFIX))
        parents = parse_parent_child(
            (folder / f"{name}{PARENT_CHILD_SUFFIX}").read_text(encoding="utf-8"), source + PARENT_CHILD_SUFFIX
        )
        names_file = folder / f"{name}{NAMES_SUFFIX}"
        names = (
            parse_names(names_file.read_text(encoding="utf-8"), source + NAMES_SUFFIX) if names_file.is_file() else None
        )
        return cls(parents, names)

    # --- lookup ---------------------------------------------------------------------------------

    def node(self, ref: NodeRef) -> int:
        """The id of a node given by id or by name (case-insensitive, ``_`` read as a space); a
        string of digits that is no name is read as an id. Unknown -> `SemretError`."""
        if isinstance(ref, bool):
            raise SemretError(f"not a node: {ref!r}")
        if isinstance(ref, int | np.integer):
            if int(ref) in self._parent:
                return int(ref)
            raise SemretError(f"no node with id {int(ref)} in the hierarchy")
        if isinstance(ref, str):
            found = self._by_name.get(name_key(ref))
            if found is not None:
                return found
            stripped = ref.strip()
            if stripped.lstrip("-").isdigit() and int(stripped) in self._parent:
                return int(stripped)
            close = difflib.get_close_matches(name_key(ref), list(self._by_name), n=3)
            hint = f"; did you mean {', '.join(self._names[self._by_name[key]] for key in close)}?" if close else ""
            raise SemretError(f"no node named {ref!r} in the hierarchy{hint}")
        raise SemretError(f"not a node id or name: {ref!r}")

    def require_classes(self, labels: Iterable[str]) -> list[int]:
        """The node ids of a dataset's class labels (matched by name, case-insensitive), in order;
        raises `SemretError` naming every label that is not a node of the hierarchy."""
        labels = list(labels)
        found = [self._by_name.get(name_key(label)) for label in labels]
        missing = [label for label, node in zip(labels, found, strict=True) if node is None]
        if missing:
            raise SemretError(
                f"{len(missing)} of {len(labels)} classes are not in the hierarchy: {', '.join(map(repr, missing))}"
            )
        return [node for node in found if node is not None]

    def name(self, node: NodeRef) -> str:
        """The node's name (its id as text where the hierarchy gave none)."""
        return self._names[self.node(node)]

    # --- structure ------------------------------------------------------------------------------

    @property
    def root(self) -> int:
        """The id of the root."""
        return self._root

    @property
    def nodes(self) -> tuple[int, ...]:
        """All node ids, in the order they were given."""
        return tuple(self._ids)

    @property
    def leaves(self) -> tuple[int, ...]:
        """The ids of the nodes without children, in increasing id order."""
        return tuple(sorted(node for node, children in self._children.items() if not children))

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (
            f"ClassHierarchy(root={self._names[self._root]!r}, nodes={len(self)}, "
            f"leaves={len(self.leaves)}, max_height={self.max_height})"
        )

    def parent(self, node: NodeRef) -> int | None:
        """The parent's id (``None`` for the root)."""
        return self._parent[self.node(node)]

    def children(self, node: NodeRef) -> tuple[int, ...]:
        """The children's ids, in the order they were given."""
        return tuple(self._children[self.node(node)])

    def depth(self, node: NodeRef) -> int:
        """Number of edges from the root (the root has depth 0)."""
        return self._depth[self.node(node)]

    def height(self, node: NodeRef) -> int:
        """Length of the longest path from the node down to a leaf (a leaf has height 0)."""
        return self._height[self.node(node)]

    @property
    def max_height(self) -> int:
        """The height of the root."""
        return self._height[self._root]

    # --- similarity -----------------------------------------------------------------------------

    def lcs(self, a: NodeRef, b: NodeRef) -> int:
        """The lowest common subsumer (deepest common ancestor, a node counting as its own
        ancestor) of two nodes."""
        path_a = self._paths[self._position[self.node(a)]]
        path_b = self._paths[self._position[self.node(b)]]
        # Paths from the root agree down to the lcs and differ below it (the root always agrees).
        deepest = int(np.flatnonzero((path_a == path_b) & (path_a >= 0))[-1])
        return self._ids[int(path_a[deepest])]

    def similarity(self, a: NodeRef, b: NodeRef) -> float:
        """Barz & Denzler's class similarity ``1 - height(lcs(a, b)) / max_height`` (1 for two
        equal leaves, 0 when the lcs is the root; an inner node's similarity to itself is
        ``1 - height(n) / max_height``). A one-node hierarchy gives 1."""
        if self.max_height == 0:
            return 1.0
        return 1.0 - self._height[self.lcs(a, b)] / self.max_height

    def wu_palmer(self, a: NodeRef, b: NodeRef) -> float:
        """Wu & Palmer's similarity ``2 * depth(lcs) / (depth(a) + depth(b))`` with depths counted
        as WordNet (NLTK's ``wup_similarity``) counts them in a tree: the root has depth 1, i.e.
        this is ``2 * (d(lcs) + 1) / (d(a) + d(b) + 2)`` in terms of `depth` (root 0). It is 1 for
        equal nodes and never divides by zero."""
        x, y = self.node(a), self.node(b)
        common = self._depth[self.lcs(x, y)] + 1
        return 2.0 * common / (self._depth[x] + self._depth[y] + 2)

    def similarity_matrix(self, classes: Sequence[NodeRef]) -> np.ndarray:
        """The (n, n) float64 matrix of `similarity` between the given classes, in their order.

        Vectorised over class pairs: at each depth d, two classes whose ancestors at depth d are
        the same node have that node as a common ancestor; in a tree the deepest such node is the
        lcs. One pass per level, so 1,000 classes take a few tens of milliseconds.
        """
        positions = np.array([self._position[self.node(c)] for c in classes], dtype=np.int64)
        paths = self._paths[positions]
        lcs = np.full((len(positions), len(positions)), self._position[self._root], dtype=np.int64)
        for level in range(1, paths.shape[1]):
            ancestor = paths[:, level]
            same = (ancestor[:, None] == ancestor[None, :]) & (ancestor >= 0)[:, None]
            if not same.any():
                break
            lcs = np.where(same, ancestor[:, None], lcs)
        if self.max_height == 0:
            return np.ones(lcs.shape, dtype=np.float64)
        return 1.0 - self._height_array[lcs] / self.max_height

    # --- helpers --------------------------------------------------------------------------------

    def _label(self, node: int) -> str:
        name = self._names.get(node, str(node))
        return str(node) if name == str(node) else f"{node} ({name})"

    def _check_acyclic(self) -> None:
        """Raise naming a cycle of parent pointers, if there is one (each node has at most one
        parent here, so following parents from any node either reaches a root or loops)."""
        done: set[int] = set()
        for start in self._parent:
            trail: list[int] = []
            on_trail: set[int] = set()
            node: int | None = start
            while node is not None and node not in done:
                if node in on_trail:
                    loop = [*trail[trail.index(node) :], node]
                    # Written top-down (parent -> child), as the edges are.
                    shown = " -> ".join(self._label(n) for n in reversed(loop))
                    raise SemretError(f"the hierarchy has a cycle: {shown}")
                trail.append(node)
                on_trail.add(node)
                node = self._parent[node]
            done.update(trail)


# --- parsing ------------------------------------------------------------------------------------


def parse_parent_child(text: str, source: str = "<text>") -> dict[int, int | None]:
    """Parse ``parent child`` lines (integer ids; ``#`` starts a comment; blank lines ignored)
    into child -> parent. Raises `SemretError` with ``source:line`` for a malformed line, a repeated
    edge or a child that already has another parent."""
    parents: dict[int, int | None] = {}
    seen_at: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            raise SemretError(f"{source}:{number}: expected 'parent child' (two integer ids), got {raw.strip()!r}")
        try:
            parent, child = int(fields[0]), int(fields[1])
        except ValueError:
            raise SemretError(
                f"{source}:{number}: expected 'parent child' (two integer ids), got {raw.strip()!r}"
            ) from None
        if child in seen_at:
            previous = parents[child]
            if previous == parent:
                raise SemretError(f"{source}:{number}: edge {parent} -> {child} repeats line {seen_at[child]}")
            raise SemretError(
                f"{source}:{number}: node {child} gets a second parent {parent} (it has parent {previous} "
                f"from line {seen_at[child]}); a class hierarchy must be a tree"
            )
        parents[child] = parent
        seen_at[child] = number
    if not parents:
        raise SemretError(f"{source}: no 'parent child' lines")
    return parents


def parse_names(text: str, source: str = "<text>") -> dict[int, str]:
    """Parse ``id name`` lines (the name is the rest of the line after the first whitespace;
    blank lines and lines starting with ``#`` are ignored). Raises `SemretError` with
    ``source:line`` for a malformed line or an id named twice."""
    names: dict[int, str] = {}
    lines_of: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise SemretError(f"{source}:{number}: expected 'id name', got {line!r}")
        try:
            node = int(fields[0])
        except ValueError:
            raise SemretError(f"{source}:{number}: expected an integer id before the name, got {line!r}") from None
        if node in names:
            raise SemretError(f"{source}:{number}: id {node} is already named {names[node]!r} on line {lines_of[node]}")
        names[node] = fields[1].strip()
        lines_of[node] = number
    return names


def parse_mapping(nested: Mapping[str, Any]) -> tuple[dict[int, int | None], dict[int, str]]:
    """Turn a nested mapping of names (see `ClassHierarchy.from_mapping`) into parent pointers and
    names, ids in pre-order. Raises `SemretError` for several roots, a name that appears twice
    (it would have two parents), an empty name or a value of the wrong type."""
    if not isinstance(nested, Mapping):
        raise SemretError(f"a hierarchy mapping must map the root's name to its subtree, got {type(nested).__name__}")
    if len(nested) != 1:
        roots = ", ".join(map(repr, nested)) or "none"
        raise SemretError(f"a hierarchy needs exactly one root, found {len(nested)}: {roots}")
    parents: dict[int, int | None] = {}
    names: dict[int, str] = {}
    where: dict[str, str] = {}

    def add(name: object, parent: int | None, subtree: object, path: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise SemretError(f"under {path or 'the top level'}: a node name must be a non-empty string, got {name!r}")
        name = name.strip()
        here = f"{path}/{name}" if path else name
        key = name_key(name)
        if key in where:
            raise SemretError(
                f"{name!r} appears twice in the hierarchy ({where[key]} and {here}); a node can have only one parent"
            )
        where[key] = here
        node = len(parents)
        parents[node] = parent
        names[node] = name
        if subtree is None:
            return
        if isinstance(subtree, Mapping):
            for child, grandchildren in subtree.items():
                add(child, node, grandchildren, here)
        elif isinstance(subtree, list | tuple):
            for item in subtree:
                if isinstance(item, Mapping):
                    for child, grandchildren in item.items():
                        add(child, node, grandchildren, here)
                else:
                    add(item, node, None, here)
        else:
            raise SemretError(
                f"under {here}: expected a mapping, a list or nothing (a leaf), "
                f"got {type(subtree).__name__} {subtree!r}"
            )

    ((root_name, subtree),) = nested.items()
    add(root_name, None, subtree, "")
    return parents, names


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SemretError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _read_text(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SemretError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SemretError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _packaged_dir() -> Traversable:
    return resources.files("semret") / "data" / "hierarchies"


def available_hierarchies() -> list[str]:
    """Names of the hierarchies shipped in ``semret/data/hierarchies`` (``cifar100``,
    ``fashion-mnist``...): the stems of its ``.json`` and ``.parent-child.txt`` files."""
    folder = _packaged_dir()
    if not folder.is_dir():
        return []
    found: set[str] = set()
    for entry in folder.iterdir():
        for suffix in (JSON_SUFFIX, PARENT_CHILD_SUFFIX):
            if entry.is_file() and entry.name.endswith(suffix):
                found.add(entry.name.removesuffix(suffix))
    return sorted(found)
