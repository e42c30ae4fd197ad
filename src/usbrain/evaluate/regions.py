"""Fidelity inside and outside a region, on numpy volumes of one grid (any intensity unit).

Edits are judged in two places: inside the lesion (did it change as it should?) and outside the
dilated lesion (was the rest left alone?). ``region`` is a bool array of the volumes' shape.
:func:`region_gradient` measures sharpness: a blurred decode of the same anatomy scores lower;
:func:`brain_sharpness` is its whole-brain form, comparable across intensity scales.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from usbrain.data.masks import dilated

# Whole-brain sharpness looks at tissue, not at the brain's outline against the background
# (the steepest edge of any scan, and a blurred one's soft halo would pass a brain-mask
# threshold): voxels above this fraction of the 99th percentile, holes filled, eroded by
# OUTLINE_MARGIN voxels.
TISSUE_FRACTION = 0.3
OUTLINE_MARGIN = 2


def region_mae(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference over ``region`` (NaN for an empty region).

    >>> region_mae(np.array([1.0, 2.0, 5.0]), np.array([1.0, 0.0, 0.0]), np.array([0, 1, 1], bool))
    3.5
    """
    if not region.any():
        return float("nan")
    return float(np.abs(a[region].astype(np.float64) - b[region]).mean())


def region_psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray, data_range: float) -> float:
    """PSNR (dB) over ``region`` for intensities spanning ``data_range``; inf if identical.

    >>> round(region_psnr(np.full(4, 0.1), np.zeros(4), np.ones(4, bool), 1.0), 6)
    20.0
    """
    if not region.any():
        return float("nan")
    mse = float(np.mean((a[region].astype(np.float64) - b[region]) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def region_mean(a: np.ndarray, region: np.ndarray) -> float:
    """Mean intensity over ``region`` (NaN for an empty region)."""
    return float(a[region].mean()) if region.any() else float("nan")


def region_gradient(a: np.ndarray, region: np.ndarray) -> float:
    """Mean intensity-gradient magnitude over ``region``, per voxel (central differences,
    one-sided at the array's faces; NaN for an empty region). Compare volumes on one grid.

    >>> ramp = np.stack([np.full((3, 3), 2.0 * i) for i in range(4)])  # 2 per voxel along i
    >>> region_gradient(ramp, np.ones(ramp.shape, bool))
    2.0
    """
    if not region.any():
        return float("nan")
    gradients = np.gradient(a.astype(np.float64))
    return float(np.sqrt(sum(g**2 for g in gradients))[region].mean())


def brain_sharpness(a: np.ndarray) -> float:
    """Mean gradient magnitude inside a skull-stripped volume's tissue (:data:`TISSUE_FRACTION`,
    :data:`OUTLINE_MARGIN`), per unit of its median tissue intensity, so a brain in model
    intensities [0, 1] compares with one in scanner units (NaN without tissue).

    >>> rng = np.random.default_rng(0)
    >>> brain = np.pad(100 + rng.normal(0, 5, (8, 8, 8)), 4)
    >>> round(brain_sharpness(brain), 6) == round(brain_sharpness(brain / 100), 6)
    True
    """
    positive = a[a > 0]
    if positive.size == 0:
        return float("nan")
    tissue = ndimage.binary_fill_holes(a > TISSUE_FRACTION * np.percentile(positive, 99))
    interior = tissue & ~dilated(~tissue, OUTLINE_MARGIN)
    if not interior.any():
        return float("nan")
    return region_gradient(a, interior) / float(np.median(a[tissue]))
