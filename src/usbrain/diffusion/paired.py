"""The paired training objective (docs/method.md §3): one timestep, two chains, two losses.

For clean latents ``x0`` (brain) and ``m0`` (mask), a shared step ``t`` and noises ``eps_x``,
``eps_m``:

1. ``x_t = q_sample(x0, t, eps_x)``, ``m_t = q_sample(m0, t, eps_m)``;
2. the lesion model predicts ``eps_m_hat`` (directly, or as v̂ converted to ε̂) from
   ``(m_t, t, x_t)``;
3. its one-step estimate ``m0_hat = clamp(x0_from_eps(m_t, t, eps_m_hat))``, detached and zeroed
   for a random 10% of samples, conditions the brain model's prediction from ``(x_t, t, m0_hat)``;
4. losses are the MSEs of both U-Nets' outputs against their targets (ε, or v).
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from usbrain.config import Coupling, PredictionType
from usbrain.diffusion.prediction import (
    eps_from_prediction,
    min_snr_weights,
    prediction_target,
)
from usbrain.diffusion.schedule import NoiseSchedule, q_sample, x0_from_eps
from usbrain.models.denoiser import PairedDenoiser


class Stage(StrEnum):
    """What a training step updates: both models together (co-evolution) or one of them."""

    JOINT = "joint"
    LESION = "lesion"
    BRAIN = "brain"


def clamp_condition(mask_latent: torch.Tensor, clip: float) -> torch.Tensor:
    """A mask latent as the brain model may see it: clamped to ``±clip``, the range its
    condition (the one-step estimate) has in training. Every condition goes through here."""
    return mask_latent.clamp(-clip, clip)


def lesion_condition(
    schedule: NoiseSchedule,
    m_t: torch.Tensor,
    t: torch.Tensor,
    eps_m_hat: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """The brain model's condition: the clamped one-step estimate of the clean mask latent."""
    return clamp_condition(x0_from_eps(schedule, m_t, t, eps_m_hat), clip)


def brain_condition(
    coupling: Coupling,
    schedule: NoiseSchedule,
    m_t: torch.Tensor,
    t: torch.Tensor,
    eps_m_hat: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """What the brain model sees of the mask chain under ``coupling`` (same shape as ``m_t``):
    the clamped one-step estimate (USB), the noisy mask latent itself, or zeros."""
    if coupling is Coupling.ESTIMATE:
        return lesion_condition(schedule, m_t, t, eps_m_hat, clip)
    if coupling is Coupling.NOISY:
        return m_t
    return torch.zeros_like(m_t)


class PairedObjective(nn.Module):
    """forward(x0, m0, t, eps_x, eps_m, keep) → {"loss", "loss_lesion", "loss_brain"}.

    Latents (B, C, d, h, w); ``t`` (B,) int; ``keep`` (B,) float {0, 1}: 0 drops the brain
    model's condition. ``stage`` selects what is trained (staged training freezes the other).
    ``min_snr_gamma`` > 0 weights each item's MSE by :func:`min_snr_weights` (0: plain MSE);
    ``lesion_weighted`` weights the brain model's squared error by ``sigmoid(m0_hat)`` (the
    authors' ``loss_weight_flag``).
    """

    def __init__(
        self,
        denoiser: PairedDenoiser,
        schedule: NoiseSchedule,
        clip: float,
        coupling: Coupling = Coupling.ESTIMATE,
        prediction: PredictionType = PredictionType.EPSILON,
        min_snr_gamma: float = 0.0,
        lesion_weighted: bool = False,
    ) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.schedule = schedule
        self.clip = clip
        self.coupling = coupling
        self.prediction = prediction
        self.min_snr_gamma = min_snr_gamma
        self.lesion_weighted = lesion_weighted
        self.stage = Stage.JOINT

    def forward(
        self,
        x0: torch.Tensor,
        m0: torch.Tensor,
        t: torch.Tensor,
        eps_x: torch.Tensor,
        eps_m: torch.Tensor,
        keep: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        x_t = q_sample(self.schedule, x0, t, eps_x)
        m_t = q_sample(self.schedule, m0, t, eps_m)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage is not Stage.BRAIN):
            out_m = self.denoiser.predict_lesion(m_t, t, x_t)
        loss_lesion = self._mse(out_m.float(), self._target(m0, t, eps_m), t)
        if self.stage is Stage.LESION:
            return {"loss": loss_lesion, "loss_lesion": loss_lesion.detach()}
        eps_m_hat = eps_from_prediction(self.prediction, self.schedule, m_t, t, out_m.detach())
        m0_hat = brain_condition(self.coupling, self.schedule, m_t, t, eps_m_hat.float(), self.clip)
        condition = m0_hat * keep.reshape(-1, *([1] * (m0_hat.ndim - 1)))
        out_x = self.denoiser.predict_brain(x_t, t, condition)
        weight = m0_hat.sigmoid() if self.lesion_weighted else None
        loss_brain = self._mse(out_x.float(), self._target(x0, t, eps_x), t, weight)
        loss = loss_brain if self.stage is Stage.BRAIN else loss_lesion + loss_brain
        return {
            "loss": loss,
            "loss_lesion": loss_lesion.detach(),
            "loss_brain": loss_brain.detach(),
        }

    def _mse(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        t: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared error, each element weighted by ``weight`` (same shape) if given, each
        item by its Min-SNR weight if ``min_snr_gamma``."""
        if not self.min_snr_gamma and weight is None:
            return F.mse_loss(output, target)
        error = (output - target).square()
        if weight is not None:
            error = error * weight
        if not self.min_snr_gamma:
            return error.mean()
        per_item = error.flatten(1).mean(1)
        weights = min_snr_weights(self.prediction, self.schedule, t, self.min_snr_gamma)
        return (weights * per_item).mean()

    def _target(self, z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return prediction_target(self.prediction, self.schedule, z0, t, eps)
