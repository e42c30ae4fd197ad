"""The sampling loops of the four tasks: which chain moves and what each U-Net sees.

- :func:`sample_pair`: both chains from noise, stepping together. Each step the lesion model
  denoises the mask latent seeing the noisy brain, and the brain model denoises the brain latent
  seeing the lesion model's (clamped) one-step estimate of the clean mask latent.
- :func:`sample_brain`: the lesion chain is known (a given mask's latent, or the empty mask's);
  only the brain chain moves, conditioned on it — conditional generation and edits, with
  optional guidance after every step. The condition is a fixed latent or, through
  :func:`estimated_condition`, what the lesion model estimates from the known mask at each step.
- :func:`sample_lesion`: the brain is known; the lesion chain moves, seeing the source brain
  noised to each step's level — proposing where a lesion could go.

All latents are (B, C, d, h, w). Every random draw comes from ``generator`` (a CPU generator),
so a seed fixes the result on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from usbrain.config import Coupling
from usbrain.diffusion.guidance import Hook, classifier_free_eps
from usbrain.diffusion.paired import brain_condition, lesion_condition
from usbrain.diffusion.prediction import NoisePredictor
from usbrain.diffusion.samplers import Sampler
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.progress import progress_bar

ConditionFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) → condition


def randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the CPU ``generator``, moved to ``device``."""
    return torch.randn(shape, generator=generator).to(device)


def _batch_t(t: int, z: torch.Tensor) -> torch.Tensor:
    return torch.full((z.shape[0],), t, dtype=torch.long, device=z.device)


def _steps(timesteps: list[int], desc: str, progress: bool):
    return progress_bar(timesteps, desc=desc, leave=False, disable=not progress, unit="step")


@torch.no_grad()
def sample_pair(
    denoiser: NoisePredictor,
    sampler: Sampler,
    shape: tuple[int, ...],
    generator: torch.Generator,
    clip: float,
    device: torch.device,
    progress: bool = False,
    coupling: Coupling = Coupling.ESTIMATE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A new (brain latent, mask latent) pair of ``shape`` from noise, on ``sampler.timesteps``;
    ``coupling`` is the one the denoisers were trained with."""
    x = randn(shape, generator, device)
    m = randn(shape, generator, device)
    brain_sampler, lesion_sampler = sampler.fresh(), sampler.fresh()
    for t in _steps(sampler.timesteps, "generate", progress):
        tt = _batch_t(t, x)
        eps_m = denoiser.eps_lesion(m, tt, x)
        condition = brain_condition(coupling, sampler.schedule, m, tt, eps_m, clip)
        eps_x = denoiser.eps_brain(x, tt, condition)
        x = brain_sampler.step(eps_x, t, x, generator).prev_sample
        m = lesion_sampler.step(eps_m, t, m, generator).prev_sample
    return x, m


def estimated_condition(
    denoiser: NoisePredictor,
    schedule: NoiseSchedule,
    mask_latent: torch.Tensor,
    noise: torch.Tensor,
    clip: float,
) -> ConditionFn:
    """The brain model's condition for a known mask, as in training: at step ``t`` the lesion
    model's clamped one-step estimate from ``mask_latent`` noised with the fixed ``noise`` to
    ``t``, seeing the current brain latent ``x_t``. Near t = T that estimate is vague, as in
    training; at small t it is the mask latent."""

    def condition(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m_t = q_sample(schedule, mask_latent, t, noise)
        return lesion_condition(schedule, m_t, t, denoiser.eps_lesion(m_t, t, x_t), clip)

    return condition


@torch.no_grad()
def sample_brain(
    denoiser: NoisePredictor,
    sampler: Sampler,
    condition: torch.Tensor | ConditionFn,
    start: torch.Tensor,
    timesteps: list[int],
    generator: torch.Generator,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
    condition_scale: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Denoise the brain latent ``start`` (noisy at ``timesteps[0]``) to a clean estimate, the
    brain model conditioned on the mask latent ``condition`` (or on ``condition(x_t, t)``) at
    every step (classifier-free guided with ``condition_scale``, a number or a weight per latent
    voxel), each step's output passed through ``hooks`` in order
    (:mod:`usbrain.diffusion.guidance`).

    Returns the last step's (guided) estimate of the clean latent.
    """
    x = start
    x0 = start
    sampler = sampler.fresh()
    for t in _steps(timesteps, "denoise", progress):
        tt = _batch_t(t, x)
        cond = condition(x, tt) if callable(condition) else condition
        eps_x = classifier_free_eps(denoiser, x, tt, cond, condition_scale)
        out = sampler.step(eps_x, t, x, generator)
        for hook in hooks:
            out = hook(out, t, sampler.previous_timestep(t))
        x, x0 = out.prev_sample, out.pred_original_sample
    return x0


@torch.no_grad()
def sample_lesion(
    denoiser: NoisePredictor,
    sampler: Sampler,
    x_src: torch.Tensor,
    generator: torch.Generator,
    progress: bool = False,
) -> torch.Tensor:
    """A mask latent for the fixed brain ``x_src``, from noise over ``sampler.timesteps``.

    The lesion model was trained seeing the brain at the same noise level as the mask, so at each
    step it sees ``x_src`` noised (with one fixed noise draw) to that step.
    """
    noise = randn(tuple(x_src.shape), generator, x_src.device)
    m = randn(tuple(x_src.shape), generator, x_src.device)
    m0 = m
    sampler = sampler.fresh()
    for t in _steps(sampler.timesteps, "propose", progress):
        tt = _batch_t(t, m)
        x_t = q_sample(sampler.schedule, x_src, tt, noise)
        out = sampler.step(denoiser.eps_lesion(m, tt, x_t), t, m, generator)
        m, m0 = out.prev_sample, out.pred_original_sample
    return m0
