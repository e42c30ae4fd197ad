"""Masks as numpy arrays (any dtype; a voxel is in the mask where it is nonzero): how far a
region reaches, how much a lesion holds, how much of it lies in the brain.

One of each, used by the tasks, the benchmark, training and the demo alike, so that "the lesion
dilated by 2 voxels" is the same region everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from usbrain.errors import EmptyReferenceError, ShapeMismatchError


def dilated(mask: np.ndarray, voxels: int) -> np.ndarray:
    """``mask`` grown by ``voxels`` 26-connected steps (every voxel within ``voxels`` along
    each axis of a mask voxel); bool of the mask's shape.

    >>> m = np.zeros((5, 5, 5)); m[2, 2, 2] = 1
    >>> int(dilated(m, 1).sum())
    27
    """
    if voxels == 0:
        return mask > 0
    return ndimage.binary_dilation(mask > 0, np.ones((3, 3, 3), bool), iterations=voxels)


def voxel_ml(spacing: float | tuple[float, ...]) -> float:
    """Volume of one voxel in mL for a grid ``spacing`` in mm (one value: isotropic).

    >>> voxel_ml(4.0)
    0.064
    """
    sides = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    return float(np.prod(sides) / 1000.0)


def lesion_ml(mask: np.ndarray, spacing: float | tuple[float, ...]) -> float:
    """The volume of ``mask`` in mL on a grid of ``spacing`` mm.

    >>> lesion_ml(np.ones((10, 10, 10)), 2.0)
    8.0
    """
    return int(np.count_nonzero(mask)) * voxel_ml(spacing)


def fraction_in_brain(lesion: np.ndarray, brain: np.ndarray) -> float:
    """Fraction in [0, 1] of ``lesion`` voxels inside ``brain`` (same shape). An empty
    ``lesion`` raises :class:`~usbrain.errors.EmptyReferenceError`: a ratio to nothing is
    undefined, and a silent NaN would vanish into a median.

    >>> fraction_in_brain(np.array([1, 1, 1, 1]), np.array([0, 1, 1, 1]))
    0.75
    """
    if np.shape(lesion) != np.shape(brain):
        raise ShapeMismatchError(
            f"lesion and brain differ in shape: {np.shape(lesion)} vs {np.shape(brain)}"
        )
    lesion = np.asarray(lesion) > 0
    total = int(np.count_nonzero(lesion))
    if total == 0:
        raise EmptyReferenceError("fraction in brain: the lesion mask is empty; it needs a lesion")
    return int(np.count_nonzero(lesion & (np.asarray(brain) > 0))) / total
