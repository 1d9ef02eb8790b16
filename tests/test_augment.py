"""Augmented views (`semret.vision.augment`): shapes, seeding, and that they are real augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semret.errors import SemretError
from semret.vision.augment import augmented_views


def test_views_keep_the_images_shape_and_are_seeded_per_image() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    colour = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    views = augmented_views(grey, 3, seed=5)
    assert views.shape == (6, 3, 28, 28) and views.dtype == np.uint8
    assert augmented_views(colour, 2, seed=5).shape == (3, 2, 20, 24, 3)
    # image i's views depend on the seed and i only: the same alone as in a batch
    np.testing.assert_array_equal(augmented_views(grey[:2], 3, seed=5), views[:2])
    np.testing.assert_array_equal(augmented_views(grey[[4, 1]], 3, seed=5, positions=[4, 1]), views[[4, 1]])
    assert not np.array_equal(augmented_views(grey, 3, seed=6), views)
    assert all(not np.array_equal(views[i, 0], views[i, 1]) for i in range(6))  # two different views
    assert all(not np.array_equal(views[i, 0], grey[i]) for i in range(6))


def test_a_view_crops_and_rescales_what_it_sees() -> None:
    # a white square in the centre of a black image: a crop of at most the whole image, resized
    # back, shows the square at least as large as it was, and never a pixel that was not there
    image = np.zeros((1, 32, 32), dtype=np.uint8)
    image[0, 12:20, 12:20] = 255
    views = augmented_views(image, 16, seed=0)
    bright = (views > 128).reshape(16, -1).sum(axis=1)
    assert bright.max() > 64  # some crops enlarge the square
    assert views.max() <= 255 and views.min() >= 0


def test_the_global_random_state_is_left_alone_and_bad_input_is_refused() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    augmented_views(np.zeros((2, 8, 8), dtype=np.uint8), 2)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    with pytest.raises(SemretError, match=r"uint8 \(n, h, w\) or \(n, h, w, 3\), got float64"):
        augmented_views(np.zeros((2, 8, 8)), 2)
    with pytest.raises(SemretError, match="n_views"):
        augmented_views(np.zeros((2, 8, 8), dtype=np.uint8), 0)
