"""Whole-volume PSNR and SSIM of an edit against its paired ground truth, split by region.

The editing papers of this family (USB, UNA and the pseudo-healthy synthesis work they compare
with) score an edit against the scan it should have produced — the healthy scan for heal, the
pathological one for lesion insertion — over the whole volume and again inside and outside the
lesion ("full", "healthy region", "lesion region"): the whole-volume figure alone is dominated
by the unchanged tissue and hides what happened in the lesion.

Both scans are divided by the truth's 99.5th brain percentile and clipped to [0, 1]; PSNR has
peak 1; SSIM is the 3D map of MONAI's constants (Gaussian window of 11 taps, σ 1.5, k1 0.01,
k2 0.03, data range 1, mirror padding) averaged over each region.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WINDOW, SIGMA = 11, 1.5
C1, C2 = 0.01**2, 0.03**2
REGIONS = ("full", "healthy", "lesion")


def gaussian_blur(volume: np.ndarray, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """``volume`` blurred along ``axes`` (default all) by SSIM's window: 11 taps of a σ 1.5
    Gaussian, normalised, mirror padding (torch's ``reflect``: the edge voxel not repeated)."""
    taps = np.arange(WINDOW) - (WINDOW - 1) / 2
    kernel = np.exp(-0.5 * (taps / SIGMA) ** 2)
    kernel /= kernel.sum()
    for axis in range(volume.ndim) if axes is None else axes:
        volume = ndimage.correlate1d(volume, kernel, axis=axis, mode="mirror")
    return volume


def ssim_map_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM at every voxel of two (I, J, K) volumes in [0, 1]; float64 (I, J, K)."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    mu_x, mu_y = gaussian_blur(x), gaussian_blur(y)
    var_x, var_y = gaussian_blur(x * x) - mu_x**2, gaussian_blur(y * y) - mu_y**2
    cov = gaussian_blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
    )


def paired_scores(output: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``psnr_<region>`` (dB) and ``ssim_<region>`` of ``output`` against ``truth``.

    ``output``, ``truth``: (I, J, K) scans on one grid, any intensity unit, zero background;
    ``mask``: the lesion, (I, J, K), nonzero inside (not empty). Regions: ``full`` (every
    voxel), ``healthy`` (outside the mask), ``lesion`` (inside it).
    """
    lesion = mask > 0
    if not lesion.any():
        raise ValueError("paired_scores: the lesion mask is empty")
    brain = truth > 0
    top = float(np.percentile(truth[brain], 99.5)) if brain.any() else float(truth.max())
    x = np.clip(output / top, 0.0, 1.0)
    y = np.clip(truth / top, 0.0, 1.0)
    ssim = ssim_map_3d(x, y)
    squared = (x - y) ** 2
    scores = {}
    for name, region in zip(REGIONS, (np.ones_like(lesion), ~lesion, lesion), strict=True):
        mse = float(squared[region].mean())
        scores[f"psnr_{name}"] = 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")
        scores[f"ssim_{name}"] = float(ssim[region].mean())
    return scores
