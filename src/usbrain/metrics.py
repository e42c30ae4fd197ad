"""Image and mask metrics on tensors (B, 1, D, H, W), built on MONAI's implementations.

Conventions: images in [0, 1] (``data_range`` 1); masks {0, 1}. The Dice of two empty masks is
defined as 1 (nothing to find, nothing found); one empty and one not gives 0.
"""

from __future__ import annotations

import torch
from monai.metrics import compute_dice
from monai.metrics.regression import PSNRMetric, SSIMMetric


def psnr(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB) per volume, (B,)."""
    return PSNRMetric(max_val=1.0, reduction="none")(prediction, reference).reshape(-1)


def ssim(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity per volume (3D, Gaussian window 11, data range 1), (B,)."""
    metric = SSIMMetric(spatial_dims=3, data_range=1.0, reduction="none")
    return metric(prediction, reference).reshape(-1)


def dice(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Dice overlap per volume, (B,); empty vs empty is 1."""
    return compute_dice(
        prediction.float(), reference.float(), include_background=True, ignore_empty=False
    ).reshape(-1)
