"""The scores of the BraTS "Local Synthesis of Healthy Brain Tissue via Inpainting" challenge.

Computed as the challenge computes them (2023–2025), so a heal here can be set beside its
published results (winners: SSIM ≈ 0.84–0.86, PSNR ≈ 22–23 dB on BraTS scans):

1. both the inpainted scan and the ground truth are cut to the inpainting mask (zero outside);
2. each is clipped to the [0.5, 99.5] percentiles of the *voided* scan (the ground truth with
   the mask zeroed, background included: what the inpainting model is given), the lower one no
   less than 0, and scaled by them to [0, 1];
3. SSIM: a 2D SSIM map (Gaussian window of 11 taps, σ 1.5, k1 0.01, k2 0.03, reflect padding)
   in every plane of the last two axes, the first axis of a (I, J, K) volume taken as channels
   (how the challenge's (1, I, J, K) tensors reach torchmetrics), dynamic range the larger of
   the two images' ranges, averaged over the mask's voxels;
4. MSE and PSNR over the mask's voxels; PSNR with peak 1 (the normalised range) and, as the
   challenge's default also reports, with the ground truth's range inside the mask.

Written from the published protocol, not from the challenge's package (AGPL).
"""

from __future__ import annotations

import numpy as np

from usbrain.evaluate.paired import gaussian_blur

PERCENTILES = (0.5, 99.5)
K1, K2 = 0.01, 0.03


def normalise(image: np.ndarray, voided: np.ndarray) -> np.ndarray:
    """``image`` clipped to ``voided``'s [0.5, 99.5] percentiles (the lower ≥ 0), scaled to
    [0, 1]; float64 of ``image``'s shape."""
    low, high = np.percentile(voided, PERCENTILES)
    low = max(float(low), 0.0)
    return (np.clip(image.astype(np.float64), low, high) - low) / (high - low)


def _gaussian_blur_2d(planes: np.ndarray) -> np.ndarray:
    """Blur each plane of the last two axes with SSIM's 11-tap Gaussian."""
    return gaussian_blur(planes, axes=(1, 2))


def ssim_map(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2D SSIM at every voxel of (I, J, K) volumes, planes (J, K); float64 (I, J, K)."""
    x, y = prediction.astype(np.float64), target.astype(np.float64)
    data_range = max(x.max() - x.min(), y.max() - y.min())
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _gaussian_blur_2d(x), _gaussian_blur_2d(y)
    var_x = _gaussian_blur_2d(x * x) - mu_x**2
    var_y = _gaussian_blur_2d(y * y) - mu_y**2
    cov = _gaussian_blur_2d(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )


def inpainting_scores(
    prediction: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """BraTS inpainting SSIM, PSNR and MSE of ``prediction`` against ``target`` in ``mask``.

    ``prediction``: the inpainted scan; ``target``: the ground truth (the healthy scan); both
    (I, J, K) in any intensity unit; ``mask``: the region inpainted, (I, J, K), nonzero inside
    (not empty). Returns ``ssim`` (≤ 1), ``psnr`` (dB, peak 1), ``psnr_range`` (dB, peak the
    target's max − min in the mask), ``mse`` (of the [0, 1]-normalised values).
    """
    inside = mask > 0
    if not inside.any():
        raise ValueError("inpainting_scores: the mask is empty")
    voided = np.where(inside, 0.0, target)
    pred = normalise(np.where(inside, prediction, 0.0), voided)
    truth = normalise(np.where(inside, target, 0.0), voided)
    ssim = float(ssim_map(pred, truth)[inside].mean())
    error = float(np.mean((pred[inside] - truth[inside]) ** 2))
    peak = float(truth[inside].max() - truth[inside].min())

    def db(top: float) -> float:
        return 10.0 * np.log10(top**2 / error) if error > 0 else float("inf")

    return {"ssim": ssim, "psnr": db(1.0), "psnr_range": db(peak), "mse": error}
