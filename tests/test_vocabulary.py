"""Tests of the label -> norm word mapping (`semret.iwan.vocabulary`).

All but the last test use small hand-made sets of known words; the last one checks the shipped
alias files against the real USF norms in ``../shared/data`` and skips where that is absent.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from semret.errors import SemretError
from semret.iwan.vocabulary import (
    AliasFileError,
    LabelWords,
    Vocabulary,
    available_datasets,
    dataset_aliases,
    load_aliases,
    parse_aliases,
)

from helpers import FASHION_MNIST_LABELS

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def build(labels: list[str], known: set[str], aliases: dict[str, list[str]] | None = None) -> Vocabulary:
    return Vocabulary.build(labels, known, aliases)


# --- the rules ---------------------------------------------------------------------------------


def test_exact_match_is_case_insensitive() -> None:
    vocabulary = build(["Dress", "cat"], {"DRESS", "CAT", "DOG"})
    assert vocabulary.mapping == {
        "Dress": LabelWords("Dress", ("DRESS",), "exact"),
        "cat": LabelWords("cat", ("CAT",), "exact"),
    }
    assert vocabulary.unmapped == []


def test_exact_match_reads_separators_as_spaces() -> None:
    known = {"MAPLE TREE", "MAPLE", "TREE", "T-SHIRT", "ICE CREAM"}
    vocabulary = build(["maple_tree", "T-shirt", "ice/cream"], known)
    assert vocabulary.mapping["maple_tree"] == LabelWords("maple_tree", ("MAPLE TREE",), "exact")
    # the hyphen as written wins over the spaced form when the norms spell the word with it
    assert vocabulary.words_for("T-shirt") == ("T-SHIRT",)
    assert vocabulary.mapping["T-shirt"].how == "exact"
    assert vocabulary.words_for("ice/cream") == ("ICE CREAM",)


def test_known_words_are_normalised() -> None:
    vocabulary = build(["hot dog"], {"hot  dog "})
    assert vocabulary.words_for("hot dog") == ("HOT DOG",)


@pytest.mark.parametrize(
    ("label", "known", "expected"),
    [
        ("Sandal", "SANDALS", "SANDALS"),  # singular label, plural word
        ("shoes", "SHOE", "SHOE"),  # plural label, singular word
        ("bus", "BUSES", "BUSES"),  # -es
        ("box", "BOXES", "BOXES"),
        ("butterfly", "BUTTERFLIES", "BUTTERFLIES"),  # -ies
        ("butterflies", "BUTTERFLY", "BUTTERFLY"),
        ("leaf", "LEAVES", "LEAVES"),  # -f / -ves
        ("knives", "KNIFE", "KNIFE"),
        ("mouse", "MICE", "MICE"),  # irregular, both directions
        ("mice", "MOUSE", "MOUSE"),
        ("woman", "WOMEN", "WOMEN"),
        ("hot_dog", "HOT DOGS", "HOT DOGS"),  # the last word of a phrase
    ],
)
def test_variant(label: str, known: str, expected: str) -> None:
    vocabulary = build([label], {known, "UNRELATED"})
    assert vocabulary.mapping[label] == LabelWords(label, (expected,), "variant")


def test_exact_beats_variant() -> None:
    vocabulary = build(["glasses"], {"GLASSES", "GLASS"})
    assert vocabulary.mapping["glasses"] == LabelWords("glasses", ("GLASSES",), "exact")


def test_variant_does_not_invent_words() -> None:
    # "BUS" must not be singularised to "BU", nor "DRESS" to "DRES"
    vocabulary = build(["bus", "dress"], {"BU", "DRES"})
    assert vocabulary.unmapped == ["bus", "dress"]


def test_compound_keeps_known_parts_in_order() -> None:
    known = {"MAPLE", "TREE", "ANKLE", "BOOTS"}
    vocabulary = build(["maple_tree", "Ankle boot"], known)
    assert vocabulary.mapping["maple_tree"] == LabelWords("maple_tree", ("MAPLE", "TREE"), "compound")
    # a part may match through a variant
    assert vocabulary.mapping["Ankle boot"] == LabelWords("Ankle boot", ("ANKLE", "BOOTS"), "compound")


def test_compound_drops_unknown_parts() -> None:
    vocabulary = build(["pickup_truck"], {"TRUCK", "CAR"})
    assert vocabulary.mapping["pickup_truck"] == LabelWords("pickup_truck", ("TRUCK",), "compound")


def test_compound_prefers_the_longest_known_run_of_parts() -> None:
    vocabulary = build(["T-shirt/top", "ice_cream_cone"], {"T-SHIRT", "SHIRT", "TOP", "ICE CREAM", "ICE", "CONE"})
    assert vocabulary.words_for("T-shirt/top") == ("T-SHIRT", "TOP")
    assert vocabulary.words_for("ice_cream_cone") == ("ICE CREAM", "CONE")


def test_compound_has_no_duplicate_words() -> None:
    vocabulary = build(["tree/trees"], {"TREE"})
    assert vocabulary.mapping["tree/trees"] == LabelWords("tree/trees", ("TREE",), "compound")


def test_alias_is_used_and_normalised() -> None:
    vocabulary = build(["Pullover"], {"SWEATER", "JUMPER"}, {"pullover": ["sweater", "Jumper"]})
    assert vocabulary.mapping["Pullover"] == LabelWords("Pullover", ("SWEATER", "JUMPER"), "alias")


def test_alias_beats_exact() -> None:
    vocabulary = build(["plain", "ray"], {"PLAIN", "FIELD", "RAY"}, {"PLAIN": ["FIELD"]})
    assert vocabulary.mapping["plain"] == LabelWords("plain", ("FIELD",), "alias")
    assert vocabulary.mapping["ray"].how == "exact"


def test_alias_to_an_unknown_word_names_label_and_word() -> None:
    with pytest.raises(SemretError, match=r"'Pullover'.*'JUMPER'"):
        build(["Pullover"], {"SWEATER"}, {"Pullover": ["SWEATER", "JUMPER"]})


def test_alias_of_a_label_not_in_use_is_not_checked() -> None:
    vocabulary = build(["cat"], {"CAT"}, {"dog": ["HOUND"]})
    assert vocabulary.words_for("cat") == ("CAT",)


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"cat": []}, "empty word list"),
        ({"cat": ["CAT", " "]}, "empty word"),
        ({"cat": "CAT"}, "list of words"),
        ({"cat": ["CAT"], "CAT": ["CAT"]}, "same label"),
    ],
)
def test_bad_alias_tables_are_rejected(aliases: dict[str, list[str]], message: str) -> None:
    with pytest.raises(SemretError, match=message):
        build(["cat"], {"CAT"}, aliases)


# --- the vocabulary ----------------------------------------------------------------------------


def test_unmapped_labels_are_kept_in_label_order() -> None:
    vocabulary = build(["zebu", "cat", "okapi", "dog"], {"CAT", "DOG"})
    assert vocabulary.unmapped == ["zebu", "okapi"]
    assert list(vocabulary.mapping) == ["cat", "dog"]
    assert vocabulary.labels == ["zebu", "cat", "okapi", "dog"]
    assert vocabulary.words_for("zebu") == ()


def test_require_complete_names_every_unmapped_label() -> None:
    vocabulary = build(["zebu", "cat", "okapi", "streetcar"], {"CAT"})
    with pytest.raises(SemretError) as caught:
        vocabulary.require_complete()
    message = str(caught.value)
    assert "3 of 4" in message
    for label in ("zebu", "okapi", "streetcar"):
        assert repr(label) in message
    assert "'cat'" not in message


def test_require_complete_passes_when_all_map() -> None:
    build(["cat", "dogs"], {"CAT", "DOG"}).require_complete()


def test_words_for_unknown_label_names_it_and_lists_labels() -> None:
    vocabulary = build(["cat", "dog"], {"CAT", "DOG"})
    assert vocabulary.words_for("CAT") == ("CAT",)
    with pytest.raises(SemretError, match=r"'horse'.*cat, dog"):
        vocabulary.words_for("horse")


def test_words_and_class_words() -> None:
    known = {"MAPLE", "TREE", "OAK", "CAT"}
    vocabulary = build(["maple_tree", "oak_tree", "cat", "zebu"], known)
    assert vocabulary.words == ["MAPLE", "TREE", "OAK", "CAT"]
    assert vocabulary.class_words(["cat", "zebu", "oak_tree"]) == [("CAT",), (), ("OAK", "TREE")]
    with pytest.raises(SemretError, match="'horse'"):
        vocabulary.class_words(["cat", "horse"])


def test_duplicate_and_empty_labels_are_rejected() -> None:
    with pytest.raises(SemretError, match="same label"):
        build(["Cat", "cat"], {"CAT"})
    with pytest.raises(SemretError, match="empty class label"):
        build(["cat", " "], {"CAT"})


# --- alias files -------------------------------------------------------------------------------


def test_load_aliases(tmp_path: Path) -> None:
    path = tmp_path / "toy.aliases"
    path.write_text(
        "# a header\n\nPullover: sweater  # a comment\n  Ankle  boot :BOOT, boots\nT-shirt/top: SHIRT,T-SHIRT\n",
        encoding="utf-8",
    )
    assert load_aliases(path) == {
        "Pullover": ["SWEATER"],
        "Ankle boot": ["BOOT", "BOOTS"],
        "T-shirt/top": ["SHIRT", "T-SHIRT"],
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Pullover SWEATER", "expected 'label: WORD, WORD'"),
        (": SWEATER", "no label"),
        ("Pullover:   # nothing", "no words"),
        ("Pullover: SWEATER,, JUMPER", "empty word"),
        ("Pullover: SWEATER, JUMPER,", "empty word"),
        ("Pullover: SWEATER, sweater", "repeated"),
    ],
)
def test_malformed_alias_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.aliases"
    path.write_text(f"# header\ncat: CAT\n{line}\n", encoding="utf-8")
    with pytest.raises(AliasFileError, match=message) as caught:
        load_aliases(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert caught.value.line == 3


def test_duplicate_label_in_alias_file(tmp_path: Path) -> None:
    path = tmp_path / "dup.aliases"
    path.write_text("Pullover: SWEATER\ncat: CAT\n  PULLOVER : JUMPER\n", encoding="utf-8")
    with pytest.raises(AliasFileError, match=r":3: label 'PULLOVER' already given on line 1"):
        load_aliases(path)


def test_missing_alias_file(tmp_path: Path) -> None:
    with pytest.raises(AliasFileError, match="cannot read"):
        load_aliases(tmp_path / "absent.aliases")


def test_parse_aliases_of_an_empty_text() -> None:
    assert parse_aliases("# only a comment\n\n", "empty") == {}


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "cifar100"])
def test_shipped_alias_files_load(name: str) -> None:
    assert name in available_datasets()
    aliases = dataset_aliases(name)
    for label, words in aliases.items():
        assert label.strip() and words and all(word == word.upper() for word in words)


def test_shipped_alias_contents() -> None:
    assert dataset_aliases("fashion-mnist")["Pullover"] == ["SWEATER"]
    assert dataset_aliases("cifar10") == {}
    assert dataset_aliases("cifar100")["pickup_truck"] == ["TRUCK"]


@pytest.mark.parametrize("name", ["imagenet", "../cifar10", "CIFAR10"])
def test_unknown_dataset_lists_the_available_ones(name: str) -> None:
    with pytest.raises(SemretError, match=r"no alias file for dataset .*available: cifar10, cifar100, fashion-mnist"):
        dataset_aliases(name)


# --- the real norms ----------------------------------------------------------------------------


def test_real_norms_map_every_label_of_the_shipped_datasets() -> None:
    """With the full USF norms and the shipped alias files, no label of the three datasets is lost."""
    norms_dir = SHARED_DATA / "usf-norms"
    meta_path = SHARED_DATA / "cifar100-hierarchy" / "cifar100-meta.pickle"
    if not norms_dir.is_dir():
        pytest.skip(f"the real USF norms are not at {norms_dir}")
    if not meta_path.is_file():
        pytest.skip(f"the CIFAR-100 meta file is not at {meta_path}")
    from semret.iwan.norms import find_norms_files, read_norms_file

    known: set[str] = set()
    for path in find_norms_files([norms_dir]):
        for record in read_norms_file(path).records:
            known.update((record.cue, record.target))
    with meta_path.open("rb") as handle:
        meta = pickle.load(handle, encoding="bytes")
    cifar100_labels = [name.decode() for name in meta[b"fine_label_names"]]
    assert len(cifar100_labels) == 100

    for name, labels in (
        ("fashion-mnist", FASHION_MNIST_LABELS),
        ("cifar10", CIFAR10_LABELS),
        ("cifar100", cifar100_labels),
    ):
        vocabulary = Vocabulary.build(labels, known, dataset_aliases(name))
        vocabulary.require_complete()
        assert all(vocabulary.words_for(label) for label in labels), name
