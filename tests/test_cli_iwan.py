"""`semret iwan link/build` and `semret query iwan` through Typer's test runner, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.app.typed_words import parse_words
from semret.errors import SemretError

from helpers import ok, semret

FIXTURES = Path(__file__).parent / "fixtures" / "norms"


@pytest.fixture
def linked(database_url: str, tmp_path: Path) -> str:
    """A database with the fixture norms and a collection 'snacks' of 4 linked images."""
    ok("db", "upgrade", "--db", database_url)
    ok("norms", "load", FIXTURES, "--db", database_url)
    predictions = tmp_path / "predictions.npz"
    np.savez(
        predictions,
        image_ids=np.array([1, 2, 3, 4]),
        probabilities=np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0], [0.6, 0.4, 0.0]]),
        class_names=np.array(["apple", "pear", "hot_dog"]),
        labels=np.array(["apple", "pear", "hot_dog", "apple"]),
    )
    result = ok("iwan", "link", predictions, "--collection", "snacks", "--create", "--db", database_url)
    assert "hot_dog" in result.stdout and "HOT DOGS" in result.stdout and "variant" in result.stdout
    assert "images inserted 4" in result.stdout
    return database_url


def test_build_and_query_by_image_and_by_words(linked: str) -> None:
    built = ok("iwan", "build", "--collection", "snacks", "--top-iwk", "2", "--db", linked)
    assert "4 images with 7 links (top-IWK 2)" in built.stdout

    by_image = json.loads(ok("query", "iwan", "--image-id", "1", "-k", "3", "--json", "--db", linked).stdout)
    assert by_image["collection"] == "snacks"
    # image 1 is APPLE 0.9 + PEAR 0.1; image 4 is APPLE 0.6, image 2 APPLE 0.2, image 3 (HOT DOGS) unreachable;
    # image 1 itself is left out
    assert [r["image_id"] for r in by_image["results"]] == [4, 2]
    assert [r["distance"] for r in by_image["results"]] == pytest.approx([1 / 0.9 + 1 / 0.6, 1 / 0.9 + 1 / 0.2])
    first = by_image["results"][0]
    assert first["label"] == "apple" and first["path"][0] == "query" and first["path"][-1] == "4 (apple)"

    in_sql = json.loads(ok("query", "iwan", "--image-id", "1", "-k", "3", "--json", "--in-sql", "--db", linked).stdout)
    assert in_sql["results"] == by_image["results"]

    table = ok("query", "iwan", "--words", "pear:1.0", "-k", "2", "--db", linked).stdout
    assert "IWAN: the 2 images nearest to pear:1.0 in snacks" in table and "PEAR" in table


def test_query_errors_are_clear(linked: str) -> None:
    neither = semret("query", "iwan", "--db", linked)
    assert neither.exit_code == 1 and "exactly one of --image-id and --words" in neither.stderr
    no_graph = semret("query", "iwan", "--image-id", "1", "--db", linked)
    assert no_graph.exit_code == 1 and "no collection has an IWAN graph yet" in no_graph.stderr
    ok("iwan", "build", "--collection", "snacks", "--db", linked)
    unknown = semret("query", "iwan", "--words", "peer:0.5", "--db", linked)
    assert unknown.exit_code == 1 and "unknown word 'peer'" in unknown.stderr and "PEAR" in unknown.stderr
    missing = semret("query", "iwan", "--image-id", "99", "--db", linked)
    assert missing.exit_code == 1 and "image 99 is not in collection 'snacks'" in missing.stderr
    bad_k = semret("iwan", "build", "--collection", "snacks", "--top-wwk", "11", "--db", linked)
    assert bad_k.exit_code == 1 and "top-wwk must be between 1 and 10" in bad_k.stderr
    other = semret("iwan", "build", "--collection", "other", "--db", linked)
    assert other.exit_code == 1 and "unknown collection 'other' (collections: snacks)" in other.stderr


def test_weighted_words_are_parsed_with_clear_errors() -> None:
    assert parse_words("HOT DOGS:0.5, b & e:1") == {"HOT DOGS": 0.5, "b & e": 1.0}
    assert parse_words("winter, cold; ICE:0.25") == {"winter": 1.0, "cold": 1.0, "ICE": 0.25}  # as typed in serve
    with pytest.raises(SemretError, match="--words: the strength 'high' of APPLE is not a number"):
        parse_words("APPLE:high", "--words")
    with pytest.raises(SemretError, match="the strength of APPLE must be in"):
        parse_words("APPLE:1.5")
    with pytest.raises(SemretError, match=r"':0\.5' has no word before its strength"):
        parse_words(":0.5")
    with pytest.raises(SemretError, match="type at least one word"):
        parse_words(" , ")


def test_linking_never_creates_or_grows_a_collection_without_a_flag(sqlite_url: str, tmp_path: Path) -> None:
    ok("db", "upgrade", "--db", sqlite_url)
    ok("norms", "load", FIXTURES, "--db", sqlite_url)
    predictions = tmp_path / "predictions.npz"
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    np.savez(predictions, image_ids=np.array([1, 2, 3]), probabilities=probabilities, class_names=["apple", "pear"])
    typo = semret("iwan", "link", predictions, "--collection", "nosuch", "--db", sqlite_url)
    assert typo.exit_code == 1 and "collection 'nosuch' does not exist" in typo.stderr and "--create" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1
    assert json.loads(ok("collection", "list", "--json", "--db", sqlite_url).stdout) == []

    first = tmp_path / "first.npz"
    np.savez(first, image_ids=np.array([1, 2]), probabilities=probabilities[:2], class_names=["apple", "pear"])
    ok("iwan", "link", first, "--collection", "fruit", "--create", "--db", sqlite_url)
    grows = semret("iwan", "link", predictions, "--collection", "fruit", "--db", sqlite_url)
    assert grows.exit_code == 1 and "--add-images" in grows.stderr and "1 image is not in collection" in grows.stderr
    (fruit,) = json.loads(ok("collection", "list", "--json", "--db", sqlite_url).stdout)
    assert fruit["images"] == 2
    ok("iwan", "link", first, "--collection", "fruit", "--db", sqlite_url)  # the same images: no flag needed
    added = ok("iwan", "link", predictions, "--collection", "fruit", "--add-images", "--db", sqlite_url)
    assert "images inserted 1" in added.stdout


def test_published_workflow_imagenet_words_build_and_query(linked: str, tmp_path: Path) -> None:
    """`iwan link --imagenet` on a features file, `iwan build --published`, `query iwan` both ways."""
    from semret.iwan.published import predicted_words
    from semret.vision.backbones import make_backbone
    from semret.vision.imagenet import imagenet_class_names, imagenet_probabilities

    rng = np.random.default_rng(0)  # one image and its near copies: they share ImageNet words
    features = (rng.gamma(1.0, 0.3, 1280) + rng.normal(0, 0.05, (5, 1280))).clip(0).astype(np.float32)
    file = tmp_path / "features.npz"
    np.savez(
        file, image_ids=np.arange(1, 6), features=features, labels=np.array([0, 1, 0, 2, 1]),
        class_names=np.array(["apple", "pear", "hot_dog"]),
    )  # fmt: skip
    no_words = semret("iwan", "build", "--published", "--collection", "snacks", "--db", linked)
    assert no_words.exit_code == 1 and "collection 'snacks' has no ImageNet words" in no_words.stderr
    assert len(no_words.stderr.strip().splitlines()) == 1
    grows = semret("iwan", "link", file, "--imagenet", "--collection", "snacks", "--db", linked)
    assert grows.exit_code == 1 and "--add-images" in grows.stderr
    headless = semret("iwan", "link", file, "--imagenet", "--collection", "snacks", "--backbone", "small-cnn",
                      "--add-images", "--db", linked)  # fmt: skip
    assert headless.exit_code == 1 and "has no ImageNet classifier" in headless.stderr
    linked_words = ok("iwan", "link", file, "--imagenet", "--collection", "snacks", "--add-images", "--db", linked)
    assert "top-10 ImageNet words of efficientnet-lite0" in linked_words.stdout
    assert "ImageNet words inserted 50" in linked_words.stdout

    loose = semret("iwan", "build", "--collection", "snacks", "--label-strength", "0.8", "--db", linked)
    assert loose.exit_code == 1 and "--label-strength: only with --published" in loose.stderr
    bad = semret("iwan", "build", "--published", "--collection", "snacks", "--label-strength", "2", "--db", linked)
    assert bad.exit_code == 1 and "label-strength must be in (0, 1]" in bad.stderr
    built = ok("iwan", "build", "--published", "--collection", "snacks", "--top-iwk", "2", "--label-strength",
               "0.8", "--db", linked)  # fmt: skip
    assert "published IWAN graph of snacks" in built.stdout and "5 images with" in built.stdout
    assert "HOT DOG looks up HOT DOGS" in built.stdout  # the label fallback

    by_image = json.loads(ok("query", "iwan", "--image-id", "1", "-k", "4", "--json", "--db", linked).stdout)
    in_sql = json.loads(ok("query", "iwan", "--image-id", "1", "-k", "4", "--json", "--in-sql", "--db", linked).stdout)
    assert by_image == in_sql and by_image["results"] and 1 not in [r["image_id"] for r in by_image["results"]]
    top = predicted_words([1], imagenet_probabilities(make_backbone("efficientnet-lite0"), features[:1]),
                          imagenet_class_names())  # fmt: skip
    assert by_image["results"][0]["path"][1] in top.words[0]  # the query starts at one of its ImageNet words
    words = ok("query", "iwan", "--words", "pear:1.0", "-k", "2", "--db", linked).stdout
    assert "PEAR" in words
