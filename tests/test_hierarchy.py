"""Tests of `semret.vision.hierarchy.ClassHierarchy`: the three input formats, every validation
error, the queries on a small hand-drawn tree with hand-computed values, and the packaged
hierarchies. The last test checks the packaged CIFAR-100 names against the CIFAR-100 meta file
in ``../shared/data`` and skips where that is absent.
"""

from __future__ import annotations

import itertools
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from semret.errors import SemretError
from semret.vision.hierarchy import ClassHierarchy, NodeRef, available_hierarchies

from helpers import FASHION_MNIST_LABELS

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"

# The hand-drawn tree (ids in brackets; depth with the root at 0, height = longest way down):
#
#   root [0]                      depth 0, height 3
#   ├── animal [1]                depth 1, height 2
#   │   ├── mammal [2]            depth 2, height 1
#   │   │   ├── cat [3]           depth 3, leaf
#   │   │   └── dog [4]           depth 3, leaf
#   │   └── bird [5]              depth 2, leaf
#   ├── plant [6]                 depth 1, height 1
#   │   └── tree [7]              depth 2, leaf
#   └── rock [8]                  depth 1, leaf
EDGES = """\
# parent child
0 1
0 6
0 8   # rock hangs directly under the root
1 2
1 5

2 3
2 4
6 7
"""
NAMES = """\
0 root
1 animal
2 mammal
3 cat
4 dog
5 bird
6 plant
7 tree
8 rock
"""
NESTED = {"root": {"animal": {"mammal": ["cat", "dog"], "bird": None}, "plant": ["tree"], "rock": []}}

# torchvision's CIFAR100.classes / the meta file's fine_label_names, in label order.
CIFAR100_FINE_LABELS = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> ClassHierarchy:
    return ClassHierarchy.from_parent_child(
        write(tmp_path, "t.parent-child.txt", EDGES), write(tmp_path, "n.txt", NAMES)
    )


# --- formats ------------------------------------------------------------------------------------


def test_parent_child_with_names(tree: ClassHierarchy) -> None:
    assert tree.root == 0
    assert len(tree) == 9
    assert tree.leaves == (3, 4, 5, 7, 8)
    assert tree.children(0) == (1, 6, 8)
    assert tree.children("mammal") == (3, 4)
    assert tree.parent("cat") == 2
    assert tree.parent(0) is None
    assert tree.name(7) == "tree"


def test_parent_child_without_names_uses_ids(tmp_path: Path) -> None:
    h = ClassHierarchy.from_parent_child(write(tmp_path, "t.txt", EDGES))
    assert h.name(3) == "3"
    assert h.node("3") == 3
    assert h.similarity(3, 4) == pytest.approx(2 / 3)


def test_names_keep_everything_after_the_first_space(tmp_path: Path) -> None:
    edges = write(tmp_path, "e.txt", "10 11\n10 12\n")
    names = write(tmp_path, "n.txt", "10 all things\n11   ankle   boot \n# a comment\n\n12 T-shirt/top\n")
    h = ClassHierarchy.from_parent_child(edges, names)
    assert [h.name(n) for n in (10, 11, 12)] == ["all things", "ankle   boot", "T-shirt/top"]
    assert h.node("Ankle Boot") == 11  # case-insensitive, runs of spaces read as one
    assert h.node("t-shirt/TOP") == 12


def test_nested_mapping_matches_the_parent_child_tree(tree: ClassHierarchy) -> None:
    h = ClassHierarchy.from_mapping(NESTED)
    assert h.name(h.root) == "root"
    assert h.node("cat") == 3  # pre-order ids: root 0, animal 1, mammal 2, cat 3 ...
    assert sorted(h.name(leaf) for leaf in h.leaves) == ["bird", "cat", "dog", "rock", "tree"]
    for a, b in itertools.product(["cat", "dog", "bird", "tree", "rock", "mammal", "root"], repeat=2):
        assert h.similarity(a, b) == tree.similarity(a, b)
        assert h.name(h.lcs(a, b)) == tree.name(tree.lcs(a, b))


def test_nested_mapping_list_items_may_be_subtrees() -> None:
    h = ClassHierarchy.from_mapping({"r": ["a", {"b": ["c", "d"]}, {"e": {}}]})
    assert [h.name(c) for c in h.children("r")] == ["a", "b", "e"]
    assert [h.name(c) for c in h.children("b")] == ["c", "d"]
    assert h.max_height == 2


def test_from_file_dispatches_on_the_suffix(tmp_path: Path, tree: ClassHierarchy) -> None:
    from_json = ClassHierarchy.from_file(write(tmp_path, "h.json", json.dumps(NESTED)))
    assert from_json.similarity("cat", "bird") == pytest.approx(1 / 3)
    from_text = ClassHierarchy.from_file(write(tmp_path, "h.txt", EDGES), write(tmp_path, "n.txt", NAMES))
    assert from_text.nodes == tree.nodes
    assert [from_text.name(n) for n in from_text.nodes] == [tree.name(n) for n in tree.nodes]


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '{"root":\n  ["a",\n  ]\n}')
    with pytest.raises(SemretError, match=r"bad\.json:3: not valid JSON"):
        ClassHierarchy.from_file(path)


def test_missing_file_is_a_semret_error(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match="cannot read"):
        ClassHierarchy.from_file(tmp_path / "absent.txt")


# --- validation ---------------------------------------------------------------------------------


def test_two_roots(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"exactly one root, found 2: 0, 5"):
        ClassHierarchy.from_parent_child(write(tmp_path, "e.txt", "0 1\n0 2\n5 6\n"))
    with pytest.raises(SemretError, match=r"exactly one root, found 2: 'a', 'b'"):
        ClassHierarchy.from_mapping({"a": ["x"], "b": ["y"]})


def test_two_roots_are_named(tmp_path: Path) -> None:
    edges = write(tmp_path, "e.txt", "0 1\n5 6\n")
    names = write(tmp_path, "n.txt", "0 left\n1 x\n5 right\n6 y\n")
    with pytest.raises(SemretError, match=r"found 2: 0 \(left\), 5 \(right\)"):
        ClassHierarchy.from_parent_child(edges, names)


def test_cycle(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"cycle: (1 -> 2 -> 3 -> 1|2 -> 3 -> 1 -> 2|3 -> 1 -> 2 -> 3)"):
        ClassHierarchy.from_parent_child(write(tmp_path, "e.txt", "0 5\n1 2\n2 3\n3 1\n"))
    with pytest.raises(SemretError, match=r"cycle: 4 -> 4"):
        ClassHierarchy.from_parent_child(write(tmp_path, "e.txt", "0 1\n4 4\n"))


def test_two_parents(tmp_path: Path) -> None:
    path = write(tmp_path, "e.txt", "0 1\n0 2\n# comment\n1 3\n2 3\n")
    with pytest.raises(SemretError, match=r"e\.txt:5: node 3 gets a second parent 2 .*parent 1 from line 4"):
        ClassHierarchy.from_parent_child(path)
    with pytest.raises(
        SemretError, match=r"'Cat' appears twice .*\(root/a/cat and root/b/Cat\); a node can have only one"
    ):
        ClassHierarchy.from_mapping({"root": {"a": ["cat"], "b": ["Cat"]}})


def test_repeated_edge(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"e\.txt:3: edge 0 -> 1 repeats line 1"):
        ClassHierarchy.from_parent_child(write(tmp_path, "e.txt", "0 1\n0 2\n0 1\n"))


@pytest.mark.parametrize("line", ["0 1 2", "0", "a b", "0 1.5"])
def test_malformed_parent_child_line(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "edges.txt", f"0 1\n\n{line}\n")
    with pytest.raises(SemretError, match=rf"edges\.txt:3: expected 'parent child'.*{line!r}"):
        ClassHierarchy.from_parent_child(path)


def test_empty_parent_child_file(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"no 'parent child' lines"):
        ClassHierarchy.from_parent_child(write(tmp_path, "e.txt", "# nothing\n\n"))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("0 root\n1\n", r"n\.txt:2: expected 'id name'"),
        ("0 root\nx cat\n", r"n\.txt:2: expected an integer id"),
        ("0 root\n0 again\n", r"n\.txt:2: id 0 is already named 'root' on line 1"),
        ("0 root\n7 ghost\n", r"node 7, which is not in the hierarchy"),
        ("0 thing\n1 Thing\n", r"nodes 0 \('thing'\) and 1 \('Thing'\) have the same name"),
    ],
)
def test_malformed_names_file(tmp_path: Path, names: str, message: str) -> None:
    edges = write(tmp_path, "e.txt", "0 1\n")
    with pytest.raises(SemretError, match=message):
        ClassHierarchy.from_parent_child(edges, write(tmp_path, "n.txt", names))


@pytest.mark.parametrize(
    ("nested", "message"),
    [
        ({"r": 3}, r"under r: expected a mapping, a list or nothing"),
        ({"r": ["a", 4]}, r"under r: a node name must be a non-empty string, got 4"),
        ({"r": {"": []}}, r"under r: a node name must be a non-empty string"),
        ({}, r"exactly one root, found 0"),
        (["r"], r"must map the root's name"),
    ],
)
def test_malformed_mapping(nested: object, message: str) -> None:
    with pytest.raises(SemretError, match=message):
        ClassHierarchy.from_mapping(nested)  # type: ignore[arg-type]


def test_require_classes_names_every_missing_one(tree: ClassHierarchy) -> None:
    assert tree.require_classes(["Cat", "DOG", "rock"]) == [3, 4, 8]
    with pytest.raises(SemretError, match=r"2 of 4 classes are not in the hierarchy: 'horse', 'fish'$"):
        tree.require_classes(["cat", "horse", "bird", "fish"])


def test_unknown_node(tree: ClassHierarchy) -> None:
    with pytest.raises(SemretError, match=r"no node named 'cta'.*did you mean cat"):
        tree.node("cta")
    with pytest.raises(SemretError, match=r"no node with id 42"):
        tree.depth(42)
    with pytest.raises(SemretError, match="not a node"):
        tree.node(True)


# --- queries on the hand-drawn tree -------------------------------------------------------------


def test_depth_and_height(tree: ClassHierarchy) -> None:
    depths = {"root": 0, "animal": 1, "plant": 1, "rock": 1, "mammal": 2, "bird": 2, "tree": 2, "cat": 3, "dog": 3}
    heights = {"root": 3, "animal": 2, "plant": 1, "rock": 0, "mammal": 1, "bird": 0, "tree": 0, "cat": 0, "dog": 0}
    assert {name: tree.depth(name) for name in depths} == depths
    assert {name: tree.height(name) for name in heights} == heights
    assert tree.max_height == 3


@pytest.mark.parametrize(
    ("a", "b", "lcs"),
    [
        ("cat", "dog", "mammal"),
        ("cat", "bird", "animal"),
        ("dog", "tree", "root"),
        ("cat", "mammal", "mammal"),
        ("animal", "cat", "animal"),
        ("rock", "rock", "rock"),
        ("tree", "rock", "root"),
    ],
)
def test_lcs(tree: ClassHierarchy, a: str, b: str, lcs: str) -> None:
    assert tree.name(tree.lcs(a, b)) == lcs
    assert tree.name(tree.lcs(b, a)) == lcs


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("cat", "cat", 1.0),
        ("cat", "dog", 1 - 1 / 3),  # lcs mammal, height 1
        ("cat", "bird", 1 - 2 / 3),  # lcs animal, height 2
        ("cat", "tree", 0.0),  # lcs root
        ("bird", "rock", 0.0),
        ("cat", "mammal", 2 / 3),
        ("animal", "animal", 1 / 3),  # an inner node is not fully similar to itself
        ("plant", "tree", 1 - 1 / 3),
    ],
)
def test_similarity(tree: ClassHierarchy, a: str, b: str, expected: float) -> None:
    assert tree.similarity(a, b) == pytest.approx(expected, abs=1e-15)
    assert tree.similarity(b, a) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("cat", "cat", 1.0),
        ("cat", "dog", 2 * 3 / (4 + 4)),  # WordNet depths (root 1): cat 4, dog 4, mammal 3
        ("cat", "bird", 2 * 2 / (4 + 3)),  # animal 2, bird 3
        ("cat", "tree", 2 * 1 / (4 + 3)),  # root 1, tree 3
        ("bird", "rock", 2 * 1 / (3 + 2)),
        ("root", "root", 1.0),
        ("mammal", "cat", 2 * 3 / (3 + 4)),
    ],
)
def test_wu_palmer(tree: ClassHierarchy, a: str, b: str, expected: float) -> None:
    assert tree.wu_palmer(a, b) == pytest.approx(expected, abs=1e-15)
    assert tree.wu_palmer(b, a) == pytest.approx(expected, abs=1e-15)


def test_similarity_matrix_matches_pairwise(tree: ClassHierarchy) -> None:
    classes: list[NodeRef] = ["rock", "cat", "tree", "dog", "bird", "mammal", "root", 6]
    matrix = tree.similarity_matrix(classes)
    assert matrix.shape == (8, 8)
    expected = np.array([[tree.similarity(a, b) for b in classes] for a in classes])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[1, 3] == pytest.approx(2 / 3)
    assert tree.similarity_matrix([]).shape == (0, 0)


def test_single_node_hierarchy() -> None:
    h = ClassHierarchy.from_mapping({"only": []})
    assert h.leaves == (0,)
    assert h.max_height == 0
    assert h.similarity(0, 0) == 1.0
    np.testing.assert_array_equal(h.similarity_matrix([0, 0]), np.ones((2, 2)))


def random_tree(nodes: int, seed: int) -> ClassHierarchy:
    """A random tree: node i's parent is drawn from the nodes before it, biased to recent ones
    so that the tree gets deep."""
    rng = np.random.default_rng(seed)
    parents: dict[int, int | None] = {0: None}
    for node in range(1, nodes):
        parents[node] = int(max(0, node - 1 - rng.geometric(0.02)))
    return ClassHierarchy(parents)


def test_similarity_matrix_matches_pairwise_on_random_trees() -> None:
    for seed in range(5):
        h = random_tree(120, seed)
        classes = list(np.random.default_rng(seed).permutation(h.nodes)[:40])
        expected = np.array([[h.similarity(a, b) for b in classes] for a in classes])
        np.testing.assert_array_equal(h.similarity_matrix(classes), expected)


def test_similarity_matrix_of_1000_classes_is_fast() -> None:
    h = random_tree(3000, 0)
    leaves = h.leaves[:1000]
    assert len(leaves) == 1000
    assert max(h.depth(leaf) for leaf in leaves) >= 10
    start = time.perf_counter()
    matrix = h.similarity_matrix(leaves)
    elapsed = time.perf_counter() - start
    assert matrix.shape == (1000, 1000)
    assert elapsed < 0.5, f"similarity_matrix took {elapsed:.3f} s for 1,000 classes"
    for i, j in [(0, 1), (5, 999), (500, 501), (123, 456)]:
        assert matrix[i, j] == h.similarity(leaves[i], leaves[j])


# --- packaged hierarchies -----------------------------------------------------------------------


def test_available_hierarchies() -> None:
    assert {"cifar100", "fashion-mnist"} <= set(available_hierarchies())


def test_unknown_packaged_hierarchy_lists_the_available_ones() -> None:
    with pytest.raises(SemretError, match=r"no packaged hierarchy 'imagenet'; available: .*cifar100.*fashion-mnist"):
        ClassHierarchy.packaged("imagenet")


def test_packaged_cifar100() -> None:
    h = ClassHierarchy.packaged("cifar100")
    assert len(h) == 163
    assert h.leaves == tuple(range(100))
    assert [h.name(leaf) for leaf in h.leaves] == CIFAR100_FINE_LABELS
    assert h.require_classes(CIFAR100_FINE_LABELS) == list(range(100))
    assert h.name(h.root) == "entity"
    assert h.max_height == 8
    assert h.name(h.lcs("oak_tree", "maple tree")) == "tree"
    assert h.similarity("oak_tree", "maple_tree") == pytest.approx(1 - 1 / 8)
    assert h.similarity("apple", "tractor") == 0.0


def test_packaged_fashion_mnist() -> None:
    h = ClassHierarchy.packaged("fashion-mnist")
    classes = h.require_classes(FASHION_MNIST_LABELS)
    assert sorted(classes) == list(h.leaves)
    assert {h.depth(c) for c in classes} == {3}
    assert h.max_height == 3
    assert h.similarity("T-shirt/top", "Shirt") == pytest.approx(2 / 3)
    assert h.similarity("Sneaker", "Ankle boot") == pytest.approx(1 / 3)
    assert h.similarity("Coat", "Pullover") == pytest.approx(1 / 3)
    assert h.similarity("Bag", "Dress") == 0.0
    assert h.similarity("Sandal", "Trouser") == 0.0


@pytest.mark.skipif(
    not (SHARED_DATA / "cifar100-hierarchy").is_dir(), reason="../shared/data/cifar100-hierarchy is not available"
)
def test_packaged_cifar100_matches_the_shared_copy_and_the_meta_file() -> None:
    folder = SHARED_DATA / "cifar100-hierarchy"
    shared = ClassHierarchy.from_parent_child(folder / "cifar.parent-child.txt", folder / "class_names.txt")
    packaged = ClassHierarchy.packaged("cifar100")
    assert shared.nodes == packaged.nodes
    assert [shared.parent(n) for n in shared.nodes] == [packaged.parent(n) for n in packaged.nodes]
    with (folder / "cifar100-meta.pickle").open("rb") as handle:
        meta = pickle.load(handle, encoding="bytes")
    fine = [name.decode() for name in meta[b"fine_label_names"]]
    assert fine == CIFAR100_FINE_LABELS
    assert [packaged.name(leaf) for leaf in packaged.leaves] == fine
