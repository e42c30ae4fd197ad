"""The DDPM noise schedule and its closed forms, as pure functions of tensors.

With ``ab_t`` the cumulative product of ``1 - beta`` up to step ``t`` (docs/method.md §3):

- ``q_sample(z0, t, eps) = sqrt(ab_t) z0 + sqrt(1 - ab_t) eps``
- ``x0_from_eps(zt, t, eps) = (zt - sqrt(1 - ab_t) eps) / sqrt(ab_t)``
- ``v_target(z0, t, eps) = sqrt(ab_t) eps - sqrt(1 - ab_t) z0`` (v-prediction) and
  ``eps_from_v(zt, t, v) = sqrt(ab_t) v + sqrt(1 - ab_t) zt``
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from usbrain.config import DiffusionConfig


@dataclass(frozen=True)
class NoiseSchedule:
    """Per-step constants of a DDPM: ``betas`` and ``alphas_cumprod``, both (T,) float64.

    >>> s = NoiseSchedule.linear(1024, 1e-4, 2e-2)
    >>> s.num_timesteps, round(float(s.alphas_cumprod[0]), 6)
    (1024, 0.9999)
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @classmethod
    def linear(cls, timesteps: int, beta_start: float, beta_end: float) -> NoiseSchedule:
        """Betas linear from ``beta_start`` to ``beta_end`` over ``timesteps`` steps."""
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        return cls(betas, torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def from_config(cls, config: DiffusionConfig) -> NoiseSchedule:
        """The linear schedule ``config`` describes (its timesteps and beta range)."""
        return cls.linear(config.timesteps, config.beta_start, config.beta_end)

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])


def extract(values: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``values[t]`` for a batch of timesteps, shaped to broadcast against ``shape``.

    ``values``: (T,); ``t``: (B,) int; returns (B, 1, …, 1) float32 with ``len(shape)`` dims.
    """
    out = values.to(t.device)[t].to(torch.float32)
    return out.reshape(t.shape[0], *([1] * (len(shape) - 1)))


def q_sample(
    schedule: NoiseSchedule, z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Noise clean latents ``z0`` (B, C, …) to steps ``t`` (B,) with noise ``eps``."""
    ab = extract(schedule.alphas_cumprod, t, z0.shape)
    return ab.sqrt() * z0 + (1.0 - ab).sqrt() * eps


def x0_from_eps(
    schedule: NoiseSchedule, zt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """One-step estimate of the clean latent from noisy ``zt`` and predicted noise ``eps``."""
    ab = extract(schedule.alphas_cumprod, t, zt.shape)
    return (zt - (1.0 - ab).sqrt() * eps) / ab.sqrt()


def v_target(
    schedule: NoiseSchedule, z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """The velocity ``v`` that a v-predicting model learns for ``z0`` noised with ``eps``."""
    ab = extract(schedule.alphas_cumprod, t, z0.shape)
    return ab.sqrt() * eps - (1.0 - ab).sqrt() * z0


def eps_from_v(
    schedule: NoiseSchedule, zt: torch.Tensor, t: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """The noise implied by a velocity ``v`` at ``zt``: no division, so an error in ``v`` stays
    an error of the same size in the clean estimate ``sqrt(ab) zt - sqrt(1 - ab) v``."""
    ab = extract(schedule.alphas_cumprod, t, zt.shape)
    return ab.sqrt() * v + (1.0 - ab).sqrt() * zt


def antithetic_timesteps(
    batch_size: int, num_timesteps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) int64 timesteps drawn in pairs ``(t, T - 1 - t)``: the pair's losses are negatively
    correlated, which lowers the variance of the batch loss. An odd batch keeps one unpaired."""
    half = (batch_size + 1) // 2
    t = torch.randint(0, num_timesteps, (half,), generator=generator)
    return torch.cat([t, num_timesteps - 1 - t])[:batch_size]
