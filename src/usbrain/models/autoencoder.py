"""The KL autoencoder shared by brain images and lesion masks (MONAI ``AutoencoderKL``).

Latents are scaled to about unit variance before diffusion: ``z = E(x) * scale_factor`` with
``scale_factor = 1 / std`` of the training images' latents, computed after training and saved
with the weights (not the Stable Diffusion constant 0.18215, which belongs to another model).
"""

from __future__ import annotations

import torch
from monai.networks.nets import AutoencoderKL
from torch import nn

from usbrain.config import AutoencoderConfig
from usbrain.models import streaming


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma²) ‖ N(0, 1)) summed over latent voxels, averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1.0)
    return kl.flatten(1).sum(1).mean()


class Autoencoder(nn.Module):
    """``AutoencoderKL`` plus the latent scale factor.

    Images (B, 1, D, H, W) in [0, 1] and masks {0, 1} go in; latents (B, C, D/f, H/f, W/f) come
    out, f = ``config.downsampling``.

    >>> from usbrain.config import AutoencoderConfig
    >>> ae = Autoencoder(AutoencoderConfig(channels=(8, 8), num_res_blocks=1, norm_num_groups=4))
    >>> ae.encode(torch.zeros(1, 1, 8, 8, 8)).shape
    torch.Size([1, 3, 4, 4, 4])
    """

    def __init__(self, config: AutoencoderConfig, checkpointing: bool = False) -> None:
        super().__init__()
        self.config = config
        self.net = AutoencoderKL(
            spatial_dims=3,
            in_channels=1,
            out_channels=1,
            channels=config.channels,
            num_res_blocks=config.num_res_blocks,
            latent_channels=config.latent_channels,
            attention_levels=(False,) * len(config.channels),
            norm_num_groups=config.norm_num_groups,
            # Full-volume attention at the bottleneck costs memory and gave nothing measurable
            # at these sizes; the paper preset's 13.8 M-parameter AE has none.
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
            use_checkpoint=checkpointing,
        )
        if config.initial_log_variance != 0.0:
            head = self.net.quant_conv_log_sigma
            head = getattr(head, "conv", head)
            nn.init.constant_(head.bias, config.initial_log_variance)
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, mu, sigma); samples the posterior (global RNG)."""
        return self.net(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled posterior mean: the deterministic latent diffusion works on."""
        mu, _ = self.net.encode(x)
        return mu * self.scale_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Volume (B, 1, D, H, W) from a scaled latent."""
        return self.net.decode(z / self.scale_factor)

    def encode_streamed(self, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """:meth:`encode` computed block by block in slabs of ``rows`` rows along D (default:
        ``streaming.SLAB_ELEMENTS`` values a slab): the whole-volume result (GroupNorm
        statistics over the whole tensor), in a fraction of the memory
        (:mod:`usbrain.models.streaming`)."""
        return streaming.encode_mean(self.net, x, rows) * self.scale_factor

    def decode_streamed(self, z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """:meth:`decode` computed in slabs; see :meth:`encode_streamed`."""
        return streaming.decode(self.net, z / self.scale_factor, rows)
