"""``semret attack`` end to end on the shipped Fashion-MNIST sample (SQLite): a small CNN trained
for a moment at 16 px, a semantic hash model and IWAN's classifier on its features, both attacked;
the clean point is what `semret query` finds, the attacked ones lose, and the errors are clear."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.app.attack import attack_collection
from semret.app.demo import sample_dir
from semret.app.query import query_hash, query_iwan
from semret.sql.engine import make_engine
from semret.vision.datasets import load_dataset
from semret.vision.training import train_backbone

from helpers import ok, semret

TEST, TRAIN = "fashion-mnist-test", "fashion-mnist-train"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample's splits as collections, a trained small CNN, the test split encoded with a hash
    model, and its IWAN graph built from a saved classifier's words."""
    folder = tmp_path_factory.mktemp("attack")
    url = f"sqlite+pysqlite:///{folder / 'semret.sqlite3'}"
    ok("db", "upgrade", "--db", url)
    ok("norms", "load", "--sample", "--db", url)
    for split in ("test", "train"):
        ok("collection", "import", "--dataset", "fashion-mnist", "--data-dir", sample_dir(), "--split", split,
           "--db", url)  # fmt: skip
    train = load_dataset("fashion-mnist", "train", sample_dir())
    weights = folder / "small-cnn.pth"
    train_backbone("small-cnn", train.images, train.labels, 10, epochs=2, image_size=16, out=weights)
    backbone = ["--backbone", "small-cnn", "--weights", str(weights), "--image-size", "16",
                "--cache-dir", str(folder / "cache"), "--db", url]  # fmt: skip
    hash_model, classifier = folder / "hash16.pt", folder / "classifier.pt"
    ok("hash", "train", "--collection", TRAIN, "--hierarchy", "fashion-mnist", "--bits", "16", "--epochs", "10",
       "--out", hash_model, *backbone)  # fmt: skip
    ok("hash", "encode", hash_model, "--collection", TEST, *backbone)
    saved = ok(
        "classify", "--collection", TEST, "--train-collection", TRAIN, "--save-classifier", classifier, *backbone
    )
    assert f"classifier written to {classifier}" in saved.stdout
    ok("iwan", "build", "--collection", TEST, "--db", url)
    return {"url": url, "folder": folder, "backbone": backbone, "hash": hash_model, "classifier": classifier,
            "weights": weights}  # fmt: skip


def test_attacking_the_hash_model_flips_bits_and_loses_retrieval(store: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    out = tmp_path / "hash-attack"
    done = ok("attack", "--collection", TEST, "--model", store["hash"], "--eps", "0.01,0.2", "--queries", "40",
              "--steps", "3", "--examples", "3", "--ks", "5,20", "--out", out, *store["backbone"][:6],
              "--db", store["url"])  # fmt: skip
    assert "40 queries of fashion-mnist-test attacked against the hash model hash16" in done.stdout
    assert "clean codes share 100.0% of their bits with the stored ones" in done.stdout
    for name in ("attack.json", "attack.csv", "curves.png", "examples-fgsm.png", "examples-pgd.png"):
        assert (out / name).is_file() and f"written: {(out / name).resolve()}" in done.stdout.replace("\n", "")
    report = json.loads((out / "attack.json").read_text())
    assert report["kind"] == "hash" and report["queries"] == 40 and report["database"] == 1000
    clean, points = report["clean"], {(p["attack"], p["eps"]): p for p in report["points"]}
    assert clean["prediction_flips"] == 0.0 and clean["bits_flipped"] == 0.0
    assert set(points) == {("fgsm", 0.01), ("fgsm", 0.2), ("pgd", 0.01), ("pgd", 0.2)}
    for (_attack, eps), point in points.items():
        assert point["max_perturbation"] <= eps + 1e-6
    strong = points[("pgd", 0.2)]
    assert strong["prediction_flips"] > 0.3 and strong["bits_flipped"] > 1.0
    assert strong["scores"]["mAP"]["20"] < clean["scores"]["mAP"]["20"]
    assert strong["scores"]["mAHP"]["20"] < clean["scores"]["mAHP"]["20"]
    assert points[("pgd", 0.2)]["bits_flipped"] >= points[("pgd", 0.01)]["bits_flipped"]
    rows = (out / "attack.csv").read_text().splitlines()
    assert rows[0] == "attack,eps,prediction_flips,accuracy,bits_flipped,metric,k,value"
    assert len(rows) == 1 + 5 * 5 * 2  # (clean + 4 points) x 5 metrics x 2 ks


def test_the_clean_rankings_are_what_query_finds(store: dict) -> None:  # type: ignore[type-arg]
    """The clean queries, through the differentiable pipeline, rank as `semret query` ranks the
    stored images: the attack measures the pipeline users query."""
    engine = make_engine(store["url"])
    from semret.app import attack as attack_module

    captured: dict[str, object] = {}
    original = attack_module._Examples

    def capture(*args, **kwargs):  # type: ignore[no-untyped-def]
        examples = original(*args, **kwargs)
        captured["examples"] = examples
        return examples

    attack_module._Examples = capture  # type: ignore[misc]
    try:
        for model, kwargs in ((store["hash"], {"backbone": "small-cnn", "weights": str(store["weights"]),
                                                "image_size": 16}), (store["classifier"], {})):  # fmt: skip
            attack_collection(engine, TEST, model, attacks=["fgsm"], eps=[0.01], queries=5, examples=5, ks=[10],
                              out=None, **kwargs)  # fmt: skip
            examples = captured["examples"]
            for query_id, ranked in zip(examples.query_ids, examples.before, strict=True):  # type: ignore[attr-defined]
                if model == store["hash"]:
                    found = query_hash(engine, TEST, "hash16", int(query_id), mode="rerank", k=10).results
                else:
                    found = query_iwan(engine, TEST, image_id=int(query_id), k=10).results
                np.testing.assert_array_equal(ranked, [row["image_id"] for row in found])
    finally:
        attack_module._Examples = original  # type: ignore[misc]


def test_attacking_iwans_classifier(store: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    out = tmp_path / "iwan-attack"
    done = ok("attack", "--collection", TEST, "--model", store["classifier"], "--eps", "0.1", "--attacks", "pgd",
              "--queries", "30", "--steps", "3", "--examples", "0", "--json", "--out", out,
              "--db", store["url"])  # fmt: skip
    report = json.loads(done.stdout)
    assert report["kind"] == "classifier" and report["backbone"] == "small-cnn" and report["image_size"] == 16
    assert report["searched"].startswith("IWAN graph")
    point = report["points"][0]
    assert point["bits_flipped"] is None and point["prediction_flips"] > 0.3
    assert point["accuracy"] < report["clean"]["accuracy"]
    assert point["scores"]["mAP"]["100"] < report["clean"]["scores"]["mAP"]["100"]
    assert sorted(p.name for p in out.iterdir()) == ["attack.csv", "attack.json", "curves.png"]


def test_attack_errors_are_clear(store: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    url, folder = store["url"], store["folder"]
    base = ["--queries", "5", "--eps", "0.01", "--out", tmp_path / "out", "--db", url]

    def fails(*args: object) -> str:
        result = semret("attack", *args, *base)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        return result.stderr

    assert "unknown collection 'nosuch'" in fails("--collection", "nosuch", "--model", store["hash"])
    assert (
        "budget on pixels in [0, 1]: at most 1.0"
        in semret("attack", "--collection", TEST, "--model", store["hash"], "--eps", "3", "--db", url).stderr
    )
    assert "--eps must be numbers" in semret("attack", "--collection", TEST, "--model", store["hash"], "--eps",
                                             "big", "--db", url).stderr  # fmt: skip
    assert "unknown attack 'cw': choose one of fgsm, pgd" in fails(
        "--collection", TEST, "--model", store["hash"], "--attacks", "cw"
    )
    wrong_net = fails("--collection", TEST, "--model", store["hash"], "--backbone", "small-cnn", "--weights", "none",
                      "--image-size", "16")  # fmt: skip
    assert "share only" in wrong_net and "give the --backbone, --weights and --image-size" in wrong_net
    assert "expects 256 features, backbone efficientnet-lite0 gives 1280" in fails(
        "--collection", TEST, "--model", store["hash"], "--backbone", "efficientnet-lite0", "--image-size", "32"
    )
    assert "no codes of model 'hash16'" in fails(
        "--collection", TRAIN, "--model", store["hash"], *store["backbone"][:6]
    )
    assert "has no IWAN graph" in fails("--collection", TRAIN, "--model", store["classifier"])
    junk = folder / "junk.pt"
    junk.write_bytes(b"not a model")
    assert str(junk) in fails("--collection", TEST, "--model", junk)
    assert "no train images" in fails("--collection", TEST, "--model", store["classifier"], "--split", "train")
    renamed = folder / "other-name.pt"
    renamed.write_bytes(Path(store["hash"]).read_bytes())
    assert "unknown hash model 'other-name'" in fails("--collection", TEST, "--model", renamed, *store["backbone"][:6])
    named = ok("attack", "--collection", TEST, "--model", renamed, "--name", "hash16", *store["backbone"][:6],
               "--attacks", "fgsm", "--examples", "0", *base)  # fmt: skip
    assert "against the hash model hash16" in named.stdout
