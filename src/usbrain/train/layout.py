"""Memory layout of training tensors.

On CPU, oneDNN's 3D convolutions run faster on channels-last tensors: measured on 2 cores, a
tiny-preset autoencoder step ~20% and a paired U-Net step 18% (0.745 → 0.611 s) faster. (bf16
autocast, by contrast, made the U-Net step 2.3× slower there.)
"""

from __future__ import annotations

import torch
from torch import nn


def channels_last_on_cpu(
    model: nn.Module, tensors: dict[str, torch.Tensor], device: torch.device
) -> dict[str, torch.Tensor]:
    """On CPU, ``model`` and the 5D ``tensors`` in channels-last-3d; elsewhere unchanged."""
    if device.type != "cpu":
        return tensors
    model.to(memory_format=torch.channels_last_3d)
    return {
        k: v.contiguous(memory_format=torch.channels_last_3d) if v.ndim == 5 else v
        for k, v in tensors.items()
    }
