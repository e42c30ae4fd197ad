"""Distances between sets of samples: Fréchet distance and MMD of feature arrays, MS-SSIM diversity.

Feature arrays are (N, F), one row per volume, as :func:`usbrain.evaluate.features.extract_features`
returns them; they are compared in float64. Both distances are 0 for identical distributions and
grow as the sets part; neither is comparable across feature networks.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from monai.metrics.regression import MultiScaleSSIMMetric

# Added to both covariance diagonals: with fewer samples than features (N ≤ F, the usual case) the
# covariances are singular and sqrtm of their product is ill-conditioned. The bias it adds is far
# below the distances that matter (exactly 0 for identical sets).
FRECHET_EPS = 1e-6
# After the eps, sqrtm's imaginary parts are round-off; larger ones mean the result is unreliable.
FRECHET_MAX_IMAG = 1e-3

# MS-SSIM for small volumes: the standard first three scale weights (Wang et al. 2003,
# 0.0448, 0.2856, 0.3001) renormalised to sum to 1, and a 7³ Gaussian window (σ = 1.5). Three
# scales of a 7-voxel window fit any side ≥ 28 voxels (MONAI requires side // 4 > 6), so 32³ and
# 48³ volumes work; the five standard scales with an 11-voxel window would need sides > 160.
_FIRST_THREE = (0.0448, 0.2856, 0.3001)
MS_SSIM_WEIGHTS = tuple(w / sum(_FIRST_THREE) for w in _FIRST_THREE)
MS_SSIM_KERNEL = 7


def _features(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` as float64 (N, F) with N ≥ 2, or a ValueError."""
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be a feature array (N, F) with N ≥ 2, got shape {x.shape}")
    return x


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    ``a`` (N, F), ``b`` (M, F), N, M ≥ 2. With means μ and sample covariances Σ (ddof 1):
    |μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½), computed with ``scipy.linalg.sqrtm`` after adding
    ``FRECHET_EPS`` to both diagonals. Imaginary round-off in the square root is dropped; a
    ValueError is raised if it exceeds ``FRECHET_MAX_IMAG``. Returns a float ≥ 0 (up to round-off).
    """
    x, y = _features(a, "a"), _features(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    eye = FRECHET_EPS * np.eye(x.shape[1])
    cov_x = np.cov(x, rowvar=False, ddof=1).reshape(eye.shape) + eye
    cov_y = np.cov(y, rowvar=False, ddof=1).reshape(eye.shape) + eye
    root = scipy.linalg.sqrtm(cov_x @ cov_y)
    if np.iscomplexobj(root):
        if np.abs(root.imag).max() > FRECHET_MAX_IMAG:
            raise ValueError("Fréchet distance: the covariance square root is not real")
        root = root.real
    mean_term = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    return mean_term + float(np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(root))


def mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared maximum mean discrepancy with KID's polynomial kernel.

    ``a`` (N, F), ``b`` (M, F), N, M ≥ 2. Kernel k(x, y) = (x·y / F + 1)³, as in the Kernel
    Inception Distance (Bińkowski et al. 2018): unlike a Gaussian kernel it has no bandwidth to
    pick, so values from different comparisons share one scale. Estimate: the mean of k over
    distinct pairs within ``a``, plus that within ``b``, minus twice the mean over all pairs across.
    Unbiased, so it can be slightly negative when both sets come from one distribution; for
    identical sets it is 2 (mean off-diagonal k − mean diagonal k) / N, ≈ 0.
    """
    x, y = _features(a, "a"), _features(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    n, m = len(x), len(y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def ms_ssim_diversity(volumes: torch.Tensor, batch_size: int = 8) -> float:
    """Mean MS-SSIM over all pairs of volumes; lower means a more diverse set.

    ``volumes`` (N, 1, D, H, W) in [0, 1], N ≥ 2, every side ≥ 28 voxels. MS-SSIM is MONAI's
    ``MultiScaleSSIMMetric`` (data range 1) with ``MS_SSIM_WEIGHTS`` and a ``MS_SSIM_KERNEL``³
    Gaussian window, over the N(N−1)/2 unordered pairs, ``batch_size`` pairs at a time. Identical
    volumes give 1.
    """
    if volumes.ndim != 5 or volumes.shape[0] < 2:
        raise ValueError(f"volumes must be (N, 1, D, H, W) with N ≥ 2, got {tuple(volumes.shape)}")
    metric = MultiScaleSSIMMetric(
        spatial_dims=3,
        data_range=1.0,
        kernel_size=MS_SSIM_KERNEL,
        kernel_sigma=1.5,
        weights=MS_SSIM_WEIGHTS,
        reduction="none",
    )
    first, second = torch.triu_indices(len(volumes), len(volumes), offset=1)
    scores = [
        metric(
            volumes[first[i : i + batch_size]].float(), volumes[second[i : i + batch_size]].float()
        )
        for i in range(0, len(first), batch_size)
    ]
    return float(torch.cat(scores).mean())
