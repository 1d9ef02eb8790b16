"""FGSM and PGD (semret.attacks.gradient) against a hand-computed gradient and the Adversarial
Robustness Toolbox, and the attack targets (semret.attacks.targets) against the models' own outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from semret.attacks.gradient import fgsm, loss_gradient, pgd
from semret.attacks.run import attack_images, output_change
from semret.attacks.targets import ClassifierTarget, HashTarget
from semret.errors import SemretError
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.hasher import SemanticHasher
from semret.vision.backbones import make_backbone, to_unit_pixels
from semret.vision.classifier import FeatureClassifier
from semret.vision.hierarchy import ClassHierarchy
from semret.vision.training import train_backbone


def _linear(n_inputs: int, n_classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, n_classes))


def _cross_entropy(model: nn.Module):  # type: ignore[no-untyped-def]
    return lambda pixels, labels: functional.cross_entropy(model(pixels), labels, reduction="none")


def test_fgsm_steps_each_pixel_by_eps_along_the_hand_computed_gradient_sign() -> None:
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.uniform(0.2, 0.8, (5, 1, 4, 4)).astype(np.float32))
    labels = torch.tensor([0, 1, 2, 1, 0])
    model = _linear(16, 3)
    weight, bias = model[1].weight.detach().numpy(), model[1].bias.detach().numpy()
    flat = pixels.numpy().reshape(5, 16)
    logits = flat @ weight.T + bias
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    # d CE / d x = W^T (softmax - one-hot): the gradient of softmax regression, by hand
    by_hand = (softmax - np.eye(3)[labels.numpy()]) @ weight
    gradient = loss_gradient(_cross_entropy(model), pixels, labels).numpy().reshape(5, 16)
    np.testing.assert_allclose(gradient, by_hand, rtol=1e-5, atol=1e-7)
    attacked = fgsm(_cross_entropy(model), pixels, labels, 0.05).numpy().reshape(5, 16)
    np.testing.assert_allclose(attacked, flat + 0.05 * np.sign(by_hand), atol=1e-6)
    # raising the loss: every image's cross entropy grows
    before = _cross_entropy(model)(pixels, labels)
    after = _cross_entropy(model)(torch.from_numpy(attacked.reshape(5, 1, 4, 4)), labels)
    assert torch.all(after > before)


def _small_convnet() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    ).eval()


def _art_classifier(model: nn.Module):  # type: ignore[no-untyped-def]
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=3, clip_values=(0.0, 1.0),
        device_type="cpu",
    )  # fmt: skip


def test_fgsm_and_pgd_equal_the_adversarial_robustness_toolbox() -> None:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    rng = np.random.default_rng(2)
    images = rng.uniform(0.0, 1.0, (6, 1, 8, 8)).astype(np.float32)
    images[:, :, :2] = 0.0  # pixels at the edge of [0, 1]: the clipping counts
    labels = np.array([0, 1, 2, 0, 1, 2])
    model = _small_convnet()
    art = _art_classifier(model)
    loss = _cross_entropy(model)
    pixels, label_tensor = torch.from_numpy(images), torch.from_numpy(labels)
    for eps in (0.01, 0.1):
        theirs = FastGradientMethod(art, norm=np.inf, eps=eps).generate(images, y=np.eye(3)[labels])
        np.testing.assert_allclose(fgsm(loss, pixels, label_tensor, eps).numpy(), theirs, atol=1e-6)
        theirs = ProjectedGradientDescent(
            art, norm=np.inf, eps=eps, eps_step=eps / 4, max_iter=10, num_random_init=0, verbose=False
        ).generate(images, y=np.eye(3)[labels])
        ours = pgd(loss, pixels, label_tensor, eps, steps=10, random_start=False).numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_pgd_stays_in_the_ball_is_seeded_and_beats_fgsm() -> None:
    rng = np.random.default_rng(3)
    pixels = torch.from_numpy(rng.uniform(0.0, 1.0, (64, 1, 8, 8)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 3, 64))
    model = _small_convnet()
    loss = _cross_entropy(model)
    eps = 0.05
    first = pgd(loss, pixels, labels, eps, generator=torch.Generator().manual_seed(7))
    again = pgd(loss, pixels, labels, eps, generator=torch.Generator().manual_seed(7))
    other = pgd(loss, pixels, labels, eps, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert float((first - pixels).abs().max()) <= eps + 1e-6
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    with torch.no_grad():
        assert float(loss(first, labels).mean()) > float(loss(fgsm(loss, pixels, labels, eps), labels).mean())


def test_bad_budgets_and_losses_are_errors() -> None:
    model = _small_convnet()
    pixels, labels = torch.full((2, 1, 8, 8), 0.5), torch.tensor([0, 1])
    with pytest.raises(SemretError, match="eps must not be negative"):
        fgsm(_cross_entropy(model), pixels, labels, -0.1)
    with pytest.raises(SemretError, match=r"at most 1\.0"):
        pgd(_cross_entropy(model), pixels, labels, 8.0)
    with pytest.raises(SemretError, match="one value per image"):
        fgsm(lambda p, y: functional.cross_entropy(model(p), y), pixels, labels, 0.1)
    with pytest.raises(SemretError, match="pixels in \\[0, 1\\]"):
        fgsm(_cross_entropy(model), pixels * 255, labels, 0.1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small CNN at 16 px trained on labelled noise whose classes differ in brightness, and a
    hash model and a classifier trained on its features."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    images = np.clip(rng.normal(60 + 60 * labels[:, None, None], 25, (120, 12, 12)), 0, 255).astype(np.uint8)
    weights = tmp_path_factory.mktemp("attacks") / "small-cnn.pth"
    backbone = train_backbone("small-cnn", images, labels, 3, epochs=5, batch_size=16, image_size=16, out=weights)
    backbone.module.eval()
    with torch.no_grad():
        features = backbone.module(backbone.preprocess(images)).numpy()
    names = ["dark", "grey", "light"]
    hierarchy = ClassHierarchy.from_mapping({"all": {"shades": ["dark", "grey"], "light": []}})
    hasher = SemanticHasher(n_bits=16, epochs=30, batch_size=16, seed=0).fit(
        features, labels, class_embeddings(hierarchy, names), names
    )
    classifier = FeatureClassifier(epochs=30, seed=0).fit(features, labels, 3)
    return {"images": images, "labels": labels, "features": features, "backbone": backbone,
            "hasher": hasher, "classifier": classifier, "names": names}  # fmt: skip


def test_targets_give_what_the_models_give_on_the_same_features(trained: dict) -> None:  # type: ignore[type-arg]
    pixels = to_unit_pixels(trained["images"])
    hash_target = HashTarget(trained["hasher"], trained["backbone"])
    encoded = trained["hasher"].encode(trained["features"])
    outputs = hash_target.outputs(pixels)
    np.testing.assert_allclose(outputs.embeddings, encoded.embeddings, atol=1e-5)
    assert np.mean(outputs.codes == encoded.codes) > 0.99  # a bit at 0.5 may tip either way
    np.testing.assert_array_equal(outputs.predictions, trained["hasher"].predict_classes(trained["features"]))
    classifier_target = ClassifierTarget(trained["classifier"], trained["backbone"], trained["names"])
    np.testing.assert_allclose(
        classifier_target.outputs(pixels).probabilities, trained["classifier"].predict_proba(trained["features"]),
        atol=1e-5,
    )  # fmt: skip
    with pytest.raises(SemretError, match="expects 256 features, backbone efficientnet-lite0 gives 1280"):
        HashTarget(trained["hasher"], make_backbone("efficientnet-lite0", "none", 32, seed=0))


def test_attacking_a_target_flips_predictions_and_codes(trained: dict) -> None:  # type: ignore[type-arg]
    pixels = to_unit_pixels(trained["images"])
    labels = trained["labels"]
    for target in (
        HashTarget(trained["hasher"], trained["backbone"]),
        ClassifierTarget(trained["classifier"], trained["backbone"], trained["names"]),
    ):
        clean = target.outputs(pixels)
        previous = -1.0
        for eps in (0.0, 0.05, 0.3):
            attacked = attack_images(target, pixels, labels, "pgd", eps, steps=5, seed=0)
            change = output_change(clean, target.outputs(attacked.pixels), labels, pixels, attacked.pixels)
            assert change.max_perturbation <= eps + 1e-6
            if eps == 0.0:
                assert change.prediction_flips == 0.0 and (change.bits_flipped in (None, 0.0))
            assert change.prediction_flips >= previous
            previous = change.prediction_flips
        assert float(np.mean(clean.predictions == labels)) == 1.0  # the models know the classes...
        assert previous > 0.5 and change.accuracy < 0.5  # ...until the pixels move by 0.3
        if target.kind == "hash":
            assert change.bits_flipped is not None and change.bits_flipped > 1.0
