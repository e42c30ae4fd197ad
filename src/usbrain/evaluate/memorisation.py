"""Did the generator copy its training scans? Nearest-neighbour distances in feature space.

A generated volume that reproduced a training scan lies as close to it as that scan lies to
itself; a generator that learned the distribution puts its samples no closer to the training
scans than unseen real scans of the same population are. Both sets are measured the same way:
for each volume, the Euclidean distance of its features (the FID network's) to the nearest
training scan's.
"""

from __future__ import annotations

import numpy as np


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each row of ``queries`` (N, F), the Euclidean distance to the nearest row of
    ``reference`` (M, F): shape (N,).

    >>> nearest_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [3.0, 0.0]]))
    array([1., 4.])
    """
    if queries.ndim != 2 or reference.ndim != 2 or queries.shape[1] != reference.shape[1]:
        raise ValueError(f"features of different widths: {queries.shape} and {reference.shape}")
    squared = (
        (queries**2).sum(1)[:, None] + (reference**2).sum(1)[None, :] - 2 * queries @ reference.T
    )
    return np.sqrt(np.maximum(squared, 0.0).min(axis=1))


def memorisation_scores(
    generated: np.ndarray, held_out: np.ndarray, train: np.ndarray
) -> dict[str, float]:
    """Nearest-training-scan distances of generated and held-out real volumes' features.

    ``generated_to_train`` and ``held_out_to_train``: the medians of :func:`nearest_distances`
    to ``train``; ``closest_generated`` and ``closest_held_out``: their minima;
    ``closer_than_held_out``: the fraction of generated volumes nearer to a training scan than
    the nearest held-out scan is (0 for a generator that does not copy).
    """
    g = nearest_distances(generated, train)
    h = nearest_distances(held_out, train)
    return {
        "generated_to_train": float(np.median(g)),
        "held_out_to_train": float(np.median(h)),
        "closest_generated": float(g.min()),
        "closest_held_out": float(h.min()),
        "closer_than_held_out": float(np.mean(g < h.min())),
    }
