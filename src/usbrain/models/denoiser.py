"""The paired denoisers: two 3D U-Nets that see each other's chain (docs/method.md §3).

- ``predict_lesion(m_t, t, x_t)``: the lesion model denoises the mask latent, seeing the noisy
  brain.
- ``predict_brain(x_t, t, m0_hat)``: the brain model denoises the brain latent, seeing the lesion
  model's one-step estimate of the clean mask latent.

The condition enters by channel concatenation: each U-Net takes 2C channels and predicts C. What
they predict (ε or v) is the diffusion config's ``prediction``; ``usbrain.diffusion.prediction``
turns it into ε̂ for the samplers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn
from torch.utils.checkpoint import checkpoint

from usbrain.config import Config, Coupling, UNetConfig


def build_unet(config: UNetConfig, latent_channels: int) -> DiffusionModelUNet:
    """A U-Net mapping (B, 2C, d, h, w) and timesteps (B,) to ε̂ or v̂ (B, C, d, h, w)."""
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=2 * latent_channels,
        out_channels=latent_channels,
        channels=config.channels,
        attention_levels=config.attention_levels,
        num_res_blocks=config.num_res_blocks,
        num_head_channels=config.num_head_channels,
        norm_num_groups=config.norm_num_groups,
    )


def _recompute_in_backward(forward: Callable, *args, **kwargs):
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_blocks(unet: DiffusionModelUNet) -> None:
    """Activation checkpointing for MONAI's U-Net, which has no option for it: each down, middle
    and up block keeps only its inputs and recomputes its activations in the backward pass.
    Parameter names (and so checkpoints) are unchanged; without gradients nothing changes."""
    for block in [*unet.down_blocks, unet.middle_block, *unet.up_blocks]:
        block.forward = functools.partial(_recompute_in_backward, block.forward)


class PairedDenoiser(nn.Module):
    """The lesion and brain U-Nets as one module (one checkpoint, one optimizer per model).

    >>> from usbrain.config import UNetConfig
    >>> cfg = UNetConfig(channels=(8, 8), attention_levels=(False, False), num_head_channels=8,
    ...                  norm_num_groups=4)
    >>> model = PairedDenoiser(cfg, latent_channels=3)
    >>> z, t = torch.zeros(2, 3, 4, 4, 4), torch.tensor([0, 10])
    >>> model.predict_lesion(z, t, z).shape, model.predict_brain(z, t, z).shape
    (torch.Size([2, 3, 4, 4, 4]), torch.Size([2, 3, 4, 4, 4]))
    """

    def __init__(
        self,
        config: UNetConfig,
        latent_channels: int,
        checkpointing: bool = False,
        independent: bool = False,
    ) -> None:
        super().__init__()
        self.lesion = build_unet(config, latent_channels)
        self.brain = build_unet(config, latent_channels)
        # The ablation without coupling: the lesion model sees zeros instead of the brain.
        self.independent = independent
        self.memory_format = torch.contiguous_format
        if checkpointing:
            checkpoint_blocks(self.lesion)
            checkpoint_blocks(self.brain)

    @classmethod
    def from_config(cls, config: Config, checkpointing: bool = False) -> PairedDenoiser:
        """The untrained pair that ``config`` describes (the independent ablation when its
        coupling is ``none``)."""
        return cls(
            config.unet,
            config.autoencoder.latent_channels,
            checkpointing=checkpointing,
            independent=config.diffusion.coupling is Coupling.NONE,
        )

    def to_channels_last(self) -> PairedDenoiser:
        """Weights and inputs in channels-last-3d, the layout oneDNN's CPU 3D convolutions run
        fastest in (see bench/step.py); same results up to float rounding."""
        self.memory_format = torch.channels_last_3d
        return self.to(memory_format=self.memory_format)

    def _input(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, condition], dim=1).contiguous(memory_format=self.memory_format)

    def predict_lesion(self, m_t: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """The lesion model's output for the mask latent ``m_t`` given the noisy brain ``x_t``."""
        if self.independent:
            x_t = torch.zeros_like(x_t)
        return self.lesion(self._input(m_t, x_t), t)

    def predict_brain(
        self, x_t: torch.Tensor, t: torch.Tensor, m0_hat: torch.Tensor
    ) -> torch.Tensor:
        """The brain model's output for the brain latent ``x_t`` given the clean-mask estimate."""
        return self.brain(self._input(x_t, m0_hat), t)


class AutocastDenoiser:
    """A :class:`PairedDenoiser` whose predictions run under autocast to ``dtype`` (bf16 on CPU,
    bf16/fp16 on GPU) and come back as float32, so the sampler's arithmetic stays float32."""

    def __init__(self, denoiser: PairedDenoiser | CompiledDenoiser, dtype: torch.dtype) -> None:
        self.denoiser = denoiser
        self.dtype = dtype

    def _autocast(self, like: torch.Tensor):
        return torch.autocast(like.device.type, dtype=self.dtype)

    def predict_lesion(self, m_t: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        with self._autocast(m_t):
            return self.denoiser.predict_lesion(m_t, t, x_t).float()

    def predict_brain(
        self, x_t: torch.Tensor, t: torch.Tensor, m0_hat: torch.Tensor
    ) -> torch.Tensor:
        with self._autocast(x_t):
            return self.denoiser.predict_brain(x_t, t, m0_hat).float()


class CompiledDenoiser:
    """A :class:`PairedDenoiser` for sampling through ``torch.compile`` (inductor) with the
    weights frozen as constants, which lets the CPU backend pre-pack convolution weights and fuse
    GroupNorm/SiLU. Compiling costs a minute or more once per process (cached on disk after
    that), so it pays at paper scale and many steps, not for a short tiny-preset edit.
    Inference only: the weights must not change after the first call.

    ``cuda_graphs`` (GPU only) replays each compiled U-Net as one CUDA graph: at paper scale on a
    GPU a step is hundreds of small kernels, and launching them takes longer than running them.
    """

    def __init__(self, denoiser: PairedDenoiser, *, cuda_graphs: bool = False) -> None:
        denoiser.eval()
        options = {"freezing": True, "triton.cudagraphs": cuda_graphs}
        self._lesion = torch.compile(denoiser.predict_lesion, options=options)
        self._brain = torch.compile(denoiser.predict_brain, options=options)
        self.cuda_graphs = cuda_graphs

    def _call(self, fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        if not self.cuda_graphs:
            return fn(*args)
        # A graph's outputs live in memory that its next replay overwrites: start a new step,
        # and hand back a copy the sampler may keep.
        torch.compiler.cudagraph_mark_step_begin()
        return fn(*args).clone()

    def predict_lesion(self, m_t: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        return self._call(self._lesion, m_t, t, x_t)

    def predict_brain(
        self, x_t: torch.Tensor, t: torch.Tensor, m0_hat: torch.Tensor
    ) -> torch.Tensor:
        return self._call(self._brain, x_t, t, m0_hat)
