"""What the U-Nets predict (ε or v) and the ε̂ that samplers, guidance and the paired coupling
read, whichever it is.

Training compares the U-Net's raw output with :func:`prediction_target`; everything downstream
goes through :class:`NoisePredictor`, whose ``eps_lesion`` / ``eps_brain`` always return ε̂.
"""

from __future__ import annotations

from typing import Protocol

import torch

from usbrain.config import PredictionType
from usbrain.diffusion.schedule import NoiseSchedule, eps_from_v, v_target


def prediction_target(
    prediction: PredictionType,
    schedule: NoiseSchedule,
    z0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """What a U-Net of type ``prediction`` should output for ``z0`` (B, C, …) noised with
    ``eps`` to steps ``t`` (B,)."""
    if prediction is PredictionType.V:
        return v_target(schedule, z0, t, eps)
    return eps


def eps_from_prediction(
    prediction: PredictionType,
    schedule: NoiseSchedule,
    zt: torch.Tensor,
    t: torch.Tensor,
    output: torch.Tensor,
) -> torch.Tensor:
    """ε̂ from a U-Net's ``output`` at the noisy latent ``zt`` (same shape)."""
    if prediction is PredictionType.V:
        return eps_from_v(schedule, zt, t, output.float())
    return output


def min_snr_weights(
    prediction: PredictionType, schedule: NoiseSchedule, t: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023) at steps ``t`` (B,) → (B,) float32.

    The clean-latent loss is weighted by min(SNR, γ); an ε (v) output's MSE is SNR (SNR + 1)
    times that loss, hence min(SNR, γ) / SNR (/ (SNR + 1)). Scaled to average 1 over all
    timesteps, so the learning rate keeps its meaning.
    """
    ab = schedule.alphas_cumprod
    snr = ab / (1 - ab)
    base = snr + 1 if prediction is PredictionType.V else snr
    weights = snr.clamp(max=gamma) / base
    return (weights / weights.mean()).float().to(t.device)[t]


class Predictor(Protocol):
    """A pair of U-Nets' raw outputs (:class:`~usbrain.models.denoiser.PairedDenoiser` or one
    of its autocast / compiled wrappers)."""

    def predict_lesion(
        self, m_t: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor
    ) -> torch.Tensor: ...

    def predict_brain(
        self, x_t: torch.Tensor, t: torch.Tensor, m0_hat: torch.Tensor
    ) -> torch.Tensor: ...


class NoisePredictor:
    """The paired U-Nets seen as noise predictors, the interface of the sampling loops.

    >>> from usbrain.config import UNetConfig
    >>> from usbrain.models.denoiser import PairedDenoiser
    >>> cfg = UNetConfig(channels=(8, 8), attention_levels=(False, False), num_head_channels=8,
    ...                  norm_num_groups=4)
    >>> net = NoisePredictor(PairedDenoiser(cfg, 3), NoiseSchedule.linear(1024, 1e-4, 2e-2),
    ...                      PredictionType.V)
    >>> z, t = torch.zeros(1, 3, 4, 4, 4), torch.tensor([10])
    >>> net.eps_lesion(z, t, z).shape
    torch.Size([1, 3, 4, 4, 4])
    """

    def __init__(
        self, predictor: Predictor, schedule: NoiseSchedule, prediction: PredictionType
    ) -> None:
        self.predictor = predictor
        self.schedule = schedule
        self.prediction = prediction

    def eps_lesion(self, m_t: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """ε̂ of the mask latent ``m_t`` given the noisy brain ``x_t``."""
        output = self.predictor.predict_lesion(m_t, t, x_t)
        return eps_from_prediction(self.prediction, self.schedule, m_t, t, output)

    def eps_brain(self, x_t: torch.Tensor, t: torch.Tensor, m0_hat: torch.Tensor) -> torch.Tensor:
        """ε̂ of the brain latent ``x_t`` given the clean-mask estimate ``m0_hat``."""
        output = self.predictor.predict_brain(x_t, t, m0_hat)
        return eps_from_prediction(self.prediction, self.schedule, x_t, t, output)
