"""Model-space volumes (numpy) to scaled latents (torch) and back, with one autoencoder.

Volumes are (D, H, W) float32 on the model grid (images in [0, 1], masks {0, 1}); latents are
(1, C, d, h, w), d = D / f for the autoencoder's downsampling f. A volume of more than
``stream_voxels`` voxels is coded in slabs (``Autoencoder.encode_streamed`` /
``decode_streamed``): the whole-volume result in less memory.

Boxes are tuples of three slices over a latent's (d, h, w); :meth:`LatentCoder.decode_in_box`
decodes only what lies in one, with real neighbours around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from usbrain.models.autoencoder import Autoencoder

Box = tuple[slice, slice, slice]


def grow(box: Box, by: int, shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``by`` voxels on every side, clipped to ``shape``."""
    return tuple(
        slice(max(b.start - by, 0), min(b.stop + by, n)) for b, n in zip(box, shape, strict=True)
    )


def scaled(box: Box, f: int) -> Box:
    """A latent ``box`` in model-space voxels (``f``: the autoencoder's downsampling)."""
    return tuple(slice(b.start * f, b.stop * f) for b in box)


@dataclass(frozen=True)
class LatentCoder:
    """Encode and decode with ``autoencoder``, in slabs past ``stream_voxels`` voxels."""

    autoencoder: Autoencoder
    stream_voxels: int

    @property
    def device(self) -> torch.device:
        return self.autoencoder.scale_factor.device

    @property
    def downsampling(self) -> int:
        return self.autoencoder.config.downsampling

    def is_large(self, shape: tuple[int, ...]) -> bool:
        """Whether a model-space volume of ``shape`` (D, H, W) is coded in slabs."""
        return math.prod(shape) > self.stream_voxels

    @torch.no_grad()
    def encode(self, volume: np.ndarray) -> torch.Tensor:
        """Model-space (D, H, W) volume → scaled latent (1, C, d, h, w)."""
        x = torch.as_tensor(np.asarray(volume, dtype=np.float32))[None, None].to(self.device)
        if self.is_large(x.shape[2:]):
            return self.autoencoder.encode_streamed(x)
        return self.autoencoder.encode(x)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Scaled latent (1, C, d, h, w) → model-space (D, H, W) float32 volume."""
        shape = tuple(n * self.downsampling for n in z.shape[2:])
        ae = self.autoencoder
        x = ae.decode_streamed(z) if self.is_large(shape) else ae.decode(z)
        return x[0, 0].float().cpu().numpy()

    def decode_in_box(
        self, latents: list[torch.Tensor], box: Box, context: int
    ) -> list[np.ndarray]:
        """Each latent (1, C, d, h, w) decoded inside the latent ``box``: (D, H, W), 0 outside.

        Only the box grown by ``context`` latent voxels is decoded, once per latent; the context
        is cut off again.
        """
        f = self.downsampling
        window = grow(box, context, tuple(latents[0].shape[2:]))
        keep = tuple(
            slice((b.start - w.start) * f, (b.stop - w.start) * f)
            for b, w in zip(box, window, strict=True)
        )
        out = []
        for z in latents:
            volume = np.zeros([n * f for n in z.shape[2:]], np.float32)
            volume[scaled(box, f)] = self.decode(z[(..., *window)])[keep]
            out.append(volume)
        return out
