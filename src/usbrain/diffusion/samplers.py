"""Samplers: walk a latent from noise (or from an edit's start) back to a clean estimate.

A sampler knows the noise schedule and nothing about brains or U-Nets (the diffusers split):
``set_timesteps(n)`` picks ``n`` of the ``T`` training steps, and ``step(eps, t, sample)``
returns the previous sample and the one-step estimate of the clean latent, so guidance can read
and correct both between the prediction and the next step.

Timesteps are spaced "trailing" (``T-1`` first, then every ``T/n``): the first step of a
generation starts from the last training step, where the latent really is pure noise.
"""

from __future__ import annotations

import copy
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from usbrain.config import SamplerKind
from usbrain.diffusion.schedule import NoiseSchedule, x0_from_eps


@dataclass(frozen=True)
class StepOutput:
    """``prev_sample``: the latent at the previous timestep; ``pred_original_sample``: the
    one-step estimate of the clean latent at this step. Both shaped like the sample."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def trailing_timesteps(num_train: int, num_steps: int) -> list[int]:
    """``num_steps`` of ``range(num_train)`` in descending order, the first being ``T - 1``.

    >>> trailing_timesteps(1024, 4)
    [1023, 767, 511, 255]
    """
    if not 1 <= num_steps <= num_train:
        raise ValueError(f"steps must be between 1 and {num_train}, got {num_steps}")
    stride = num_train / num_steps
    return [round(num_train - i * stride) - 1 for i in range(num_steps)]


def edit_timesteps(t_start: int, stride: int) -> list[int]:
    """Every ``stride``-th training timestep below ``t_start``, descending to 0: the authors'
    edit loop (``reversed(range(0, t_start, stride))``; stride 1 visits all ``t_start``).

    >>> edit_timesteps(7, 3)
    [6, 3, 0]
    """
    if not 1 <= stride <= t_start:
        raise ValueError(f"stride must be between 1 and t_start={t_start}, got {stride}")
    return list(range(0, t_start, stride))[::-1]


def _alpha_bar(schedule: NoiseSchedule, t: int) -> float:
    """ab_t, with ab_{-1} = 1 (the step after the last one lands on the clean latent)."""
    return 1.0 if t < 0 else float(schedule.alphas_cumprod[t])


class Sampler(ABC):
    """Shared timestep bookkeeping; subclasses define :meth:`step`.

    >>> from usbrain.diffusion.schedule import NoiseSchedule
    >>> s = DDIMSampler(NoiseSchedule.linear(1024, 1e-4, 2e-2))
    >>> s.set_timesteps(50)
    >>> len(s.timesteps), s.timesteps[0], s.previous_timestep(s.timesteps[-1])
    (50, 1023, -1)
    >>> s.timesteps_from(300)[0] <= 300
    True
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.timesteps: list[int] = []

    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def set_timesteps(self, num_steps: int) -> None:
        self.use_timesteps(trailing_timesteps(self.num_train_timesteps, num_steps))

    def use_timesteps(self, timesteps: list[int]) -> None:
        """Sample on exactly these training timesteps (strictly descending, in [0, T))."""
        if not timesteps or any(a <= b for a, b in itertools.pairwise(timesteps)):
            raise ValueError(f"timesteps must be strictly descending, got {timesteps[:4]}…")
        if timesteps[0] >= self.num_train_timesteps or timesteps[-1] < 0:
            raise ValueError(f"timesteps must lie in [0, {self.num_train_timesteps})")
        self.timesteps = list(timesteps)
        self._prev = dict(zip(self.timesteps, [*self.timesteps[1:], -1], strict=True))

    def fresh(self) -> Sampler:
        """A sampler with the same schedule and timesteps and no memory of past steps (samplers
        that remember, like multistep solvers, need one per chain)."""
        return copy.copy(self)

    def previous_timestep(self, t: int) -> int:
        """The timestep after ``t`` in this schedule (-1 after the last)."""
        return self._prev[t]

    def timesteps_from(self, t_start: int) -> list[int]:
        """The schedule's steps at or below ``t_start``: an edit noised to ``t_start`` skips
        the steps above it instead of wasting them."""
        steps = [t for t in self.timesteps if t <= t_start]
        if not steps:
            raise ValueError(f"no sampling step at or below t_start={t_start}; use more steps")
        return steps

    def _estimate(
        self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, float, float]:
        """The clean estimate from predicted noise, and ab at this and the previous step."""
        t = torch.full((sample.shape[0],), timestep, dtype=torch.long, device=sample.device)
        x0 = x0_from_eps(self.schedule, sample, t, model_output)
        ab_prev = _alpha_bar(self.schedule, self.previous_timestep(timestep))
        return x0, _alpha_bar(self.schedule, timestep), ab_prev

    @abstractmethod
    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """``model_output``: predicted noise (B, C, …) for ``sample`` at ``timestep``."""


def _noise_like(sample: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise drawn on the CPU generator, so results match across devices."""
    noise = torch.randn(sample.shape, generator=generator, dtype=torch.float32)
    return noise.to(device=sample.device, dtype=sample.dtype)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) with configurable ``eta``:

    ``z_prev = sqrt(ab_prev) z0_hat + sqrt(1 - ab_prev - sigma²) eps + sigma · noise``,
    ``sigma = eta · sqrt((1 - ab_prev) / (1 - ab_t)) · sqrt(1 - ab_t / ab_prev)``.
    """

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0) -> None:
        super().__init__(schedule)
        self.eta = eta

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        x0, ab_t, ab_prev = self._estimate(model_output, timestep, sample)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5
        prev = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * model_output
        if sigma > 0:
            prev = prev + sigma * _noise_like(sample, generator)
        return StepOutput(prev, x0)


class DDPMSampler(Sampler):
    """Ancestral sampling of the DDPM posterior between two (possibly strided) timesteps:

    with ``beta = 1 - ab_t / ab_prev``, ``z_prev ~ N(c0 z0_hat + ct z_t, var)``,
    ``c0 = sqrt(ab_prev) beta / (1 - ab_t)``, ``ct = sqrt(1 - beta) (1 - ab_prev) / (1 - ab_t)``,
    ``var = beta (1 - ab_prev) / (1 - ab_t)``.
    """

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        x0, ab_t, ab_prev = self._estimate(model_output, timestep, sample)
        beta = 1 - ab_t / ab_prev
        c0 = ab_prev**0.5 * beta / (1 - ab_t)
        ct = (1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
        prev = c0 * x0 + ct * sample
        variance = beta * (1 - ab_prev) / (1 - ab_t)
        if variance > 0:
            prev = prev + variance**0.5 * _noise_like(sample, generator)
        return StepOutput(prev, x0)


class DPMSolverPP2M(Sampler):
    """DPM-Solver++ (2M) (Lu et al. 2022), data prediction, in log-SNR time
    ``lam = log(alpha / sigma)``, ``alpha = sqrt(ab)``, ``sigma = sqrt(1 - ab)``:

    ``z_prev = (sigma_prev / sigma_t) z_t - alpha_prev (exp(-h) - 1) D``, ``h = lam_prev - lam_t``,
    with ``D = x0_hat`` on the first step (this is DDIM) and the second-order combination
    ``D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_last``, ``r = h_last / h``, after it. The last step
    lands on the clean estimate. It remembers the last estimate: one instance per chain
    (:meth:`fresh`), and :meth:`set_timesteps` / :meth:`use_timesteps` start over.
    """

    def use_timesteps(self, timesteps: list[int]) -> None:
        super().use_timesteps(timesteps)
        self._last: tuple[torch.Tensor, float] | None = None

    def fresh(self) -> DPMSolverPP2M:
        other = super().fresh()
        other._last = None
        return other

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        x0, ab_t, ab_prev = self._estimate(model_output, timestep, sample)
        prev_t = self.previous_timestep(timestep)
        lam_t = 0.5 * math.log(ab_t / (1 - ab_t))
        last, self._last = self._last, (x0, lam_t)
        if prev_t < 0:  # sigma_prev = 0: the clean estimate itself
            return StepOutput(x0, x0)
        lam_prev = 0.5 * math.log(ab_prev / (1 - ab_prev))
        h = lam_prev - lam_t
        d = x0
        if last is not None:
            r = (lam_t - last[1]) / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * last[0]
        ratio = math.sqrt((1 - ab_prev) / (1 - ab_t))
        prev = ratio * sample - math.sqrt(ab_prev) * math.expm1(-h) * d
        return StepOutput(prev, x0)


def make_sampler(kind: SamplerKind, schedule: NoiseSchedule, eta: float = 0.0) -> Sampler:
    """The sampler ``kind`` (``eta`` is DDIM's)."""
    if kind is SamplerKind.DDIM:
        return DDIMSampler(schedule, eta)
    if kind is SamplerKind.DPMPP_2M:
        return DPMSolverPP2M(schedule)
    return DDPMSampler(schedule)
