"""Training the paired denoisers on cached latents (``usbrain train``).

Co-evolution (default): each step draws one antithetic timestep pair per sample, and both
U-Nets learn in the same step, the brain model conditioned on the current lesion model's
detached one-step estimate. ``staged`` (the authors' code): ``steps`` lesion-only steps, then
``steps`` brain-only steps against the frozen lesion model — the same number of updates per
U-Net as co-evolution.
"""

from __future__ import annotations

import torch
from torch import nn

from usbrain.config import Config, TrainConfig
from usbrain.diffusion.paired import (
    PairedObjective,
    Stage,
    brain_condition,
    lesion_condition,
)
from usbrain.diffusion.prediction import NoisePredictor
from usbrain.diffusion.schedule import NoiseSchedule, antithetic_timesteps, q_sample, x0_from_eps
from usbrain.models.autoencoder import Autoencoder
from usbrain.models.denoiser import PairedDenoiser
from usbrain.train.autoencoder import mid_slices
from usbrain.train.latents import Latents

VALIDATION_SEED = 1234
VALIDATION_TIMESTEPS = 8  # per validation sample, evenly spread over [0, T)


class DiffusionJob:
    """The paired denoisers as a :class:`~usbrain.train.loop.Job`."""

    kind = "diffusion"
    auxiliary = None

    def __init__(
        self,
        config: Config,
        train: Latents,
        val: Latents,
        autoencoder: Autoencoder | None = None,
    ) -> None:
        self.config = config
        self.autoencoder = autoencoder  # only to show decoded estimates in TensorBoard
        self.schedule = NoiseSchedule.from_config(config.diffusion)
        torch.manual_seed(config.seed)  # the initial weights are part of what the seed fixes
        self.model = PairedDenoiser.from_config(
            config, checkpointing=config.train_diffusion.activation_checkpointing
        )
        d = config.diffusion
        # Validation (validation_loss) stays plain MSE, comparable across weightings.
        self.objective = PairedObjective(
            self.model,
            self.schedule,
            d.condition_clip,
            d.coupling,
            d.prediction,
            d.min_snr_gamma,
            d.lesion_weighted_loss,
        )
        self.train = train
        self.val = val
        self.num_items = train.x.shape[0]
        self.staged = config.diffusion.staged
        # Staged steps leave one U-Net idle; DDP must be told.
        self.find_unused_parameters = self.staged

    def learning_rate(self, step: int, scheduled: float) -> float:
        return scheduled

    def total_steps(self, train: TrainConfig) -> int:
        return 2 * train.steps if self.staged else train.steps

    def begin_step(self, step: int) -> None:
        if not self.staged:
            return
        stage = Stage.LESION if step < self.config.train_diffusion.steps else Stage.BRAIN
        self.objective.stage = stage
        self.model.lesion.requires_grad_(stage is Stage.LESION)
        self.model.brain.requires_grad_(stage is Stage.BRAIN)

    def inputs(
        self, indices: list[int], generator: torch.Generator, device: torch.device
    ) -> dict[str, torch.Tensor]:
        x0, m0 = self.train.x[indices], self.train.m[indices]
        return _noised_inputs(x0, m0, self.schedule, self.config, generator, device, train=True)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Loss of both models on the validation split, at fixed timesteps and noise."""
        return validation_loss(model, self.val, self.schedule, self.config, device)

    @torch.no_grad()
    def snapshots(self, model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
        """Decoded one-step estimates (brain, mask) of the first validation pair at t = T / 2."""
        if self.autoencoder is None:
            return {}
        ae = self.autoencoder.to(device)
        x0, m0 = self.val.x[:1].to(device), self.val.m[:1].to(device)
        t = torch.full((1,), self.schedule.num_timesteps // 2, device=device)
        generator = torch.Generator().manual_seed(VALIDATION_SEED)
        x_t = q_sample(self.schedule, x0, t, torch.randn(x0.shape, generator=generator).to(device))
        m_t = q_sample(self.schedule, m0, t, torch.randn(m0.shape, generator=generator).to(device))
        d = self.config.diffusion
        net = NoisePredictor(model, self.schedule, d.prediction)
        eps_m = net.eps_lesion(m_t, t, x_t)
        m0_hat = lesion_condition(self.schedule, m_t, t, eps_m, d.condition_clip)
        condition = brain_condition(d.coupling, self.schedule, m_t, t, eps_m, d.condition_clip)
        x0_hat = x0_from_eps(self.schedule, x_t, t, net.eps_brain(x_t, t, condition))
        decoded = ae.decode(torch.cat([x0, x0_hat, m0, m0_hat])).clamp(0, 1)
        return {"val/one_step_estimates": mid_slices(decoded)}


def _noised_inputs(
    x0: torch.Tensor,
    m0: torch.Tensor,
    schedule: NoiseSchedule,
    config: Config,
    generator: torch.Generator,
    device: torch.device,
    train: bool,
) -> dict[str, torch.Tensor]:
    n = x0.shape[0]
    t = antithetic_timesteps(n, schedule.num_timesteps, generator)
    eps_x = torch.randn(x0.shape, generator=generator)
    eps_m = torch.randn(m0.shape, generator=generator)
    drop = config.diffusion.condition_dropout if train else 0.0
    keep = (torch.rand(n, generator=generator) >= drop).float()
    tensors = {"x0": x0, "m0": m0, "t": t, "eps_x": eps_x, "eps_m": eps_m, "keep": keep}
    return {k: v.to(device) for k, v in tensors.items()}


@torch.no_grad()
def validation_loss(
    model: PairedDenoiser,
    val: Latents,
    schedule: NoiseSchedule,
    config: Config,
    device: torch.device,
) -> dict[str, float]:
    """Mean MSE of both models' outputs (ε or v) over ``val`` at evenly spread timesteps,
    fixed noise."""
    model.eval()
    d = config.diffusion
    objective = PairedObjective(model, schedule, d.condition_clip, d.coupling, d.prediction)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    steps = torch.linspace(0, schedule.num_timesteps - 1, VALIDATION_TIMESTEPS).long()
    total = {"loss_lesion": 0.0, "loss_brain": 0.0}
    for t_value in steps:
        inputs = _noised_inputs(val.x, val.m, schedule, config, generator, device, train=False)
        inputs["t"] = torch.full_like(inputs["t"], int(t_value))
        out = objective(**inputs)
        for key in total:
            total[key] += float(out[key]) / len(steps)
    return {f"val/{k}": v for k, v in total.items()}
