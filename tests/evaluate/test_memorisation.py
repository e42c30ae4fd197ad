"""Memorisation scores: nearest-training-scan distances of generated and held-out features."""

from __future__ import annotations

import numpy as np
import pytest

from usbrain.evaluate.memorisation import memorisation_scores, nearest_distances


def test_nearest_distances_refuses_features_of_another_width():
    with pytest.raises(ValueError, match="different widths"):
        nearest_distances(np.zeros((2, 3)), np.zeros((4, 2)))


def test_copies_of_training_scans_are_caught_and_new_samples_are_not():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 8))
    held_out = train[:6] + rng.normal(0, 0.5, (6, 8))  # the same population, other scans
    copies = memorisation_scores(train[10:14], held_out, train)
    assert copies["generated_to_train"] == pytest.approx(0.0, abs=1e-6)
    assert copies["closer_than_held_out"] == 1.0
    new = memorisation_scores(train[10:14] + rng.normal(0, 2.0, (4, 8)), held_out, train)
    assert new["closer_than_held_out"] == 0.0
    assert new["closest_generated"] > new["closest_held_out"]
    assert new["held_out_to_train"] == pytest.approx(
        float(np.median(nearest_distances(held_out, train)))
    )
