"""Guidance: everything that steers a sampling chain away from the plain U-Net prediction.

Classifier-free guidance acts on the brain model's ε̂ (:func:`classifier_free_eps`). Everything
else is a *hook*: a function ``(StepOutput, t, t_prev) → StepOutput`` applied after each sampler
step. An edit's hooks are built from its :class:`EditContext` by a :data:`HookBuilder`; USB's
is :func:`consistency_hooks` (ACG + LCG), and the benchmark's baselines are other builders —
:func:`hard_mask_hooks` (latent inpainting) and :func:`end_at` (the "true latent" floor) — so a
baseline is a different list of hooks, not a different code path.

After each sampler step of an edit, with source latent ``x_src``:

- ACG: ``alpha_t = alpha0 · exp(-decay · t / N)``; ``lam = exp(-alpha_t · |x0_hat - x_src|)``;
  ``x0_hat ← x0_hat + lam (x_src - x0_hat)`` and the next latent is pulled the same way. Where the
  estimate stays near the source it is held there; where it departs (the lesion being removed or
  drawn) it may move.
- LCG: ``lam ← lam · (1 - s · soft_map)``: anatomy is released inside the soft lesion map and held
  outside it.

``N`` is the span of the edit in training timesteps (``t_start``). The authors' edits step through
every timestep below ``t_start``, so there ``N`` is both the number of steps and ``t_start``; fixing
``N = t_start`` keeps the guidance schedule the same when a faster sampler takes fewer steps.

Guidance knows nothing about U-Nets: a hook takes a sampler's
:class:`~usbrain.diffusion.samplers.StepOutput` and returns the corrected one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from usbrain.config import GuidanceConfig, LesionMap, PullTarget
from usbrain.diffusion.prediction import NoisePredictor
from usbrain.diffusion.samplers import StepOutput
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.models.coder import Box

Hook = Callable[[StepOutput, int, int], StepOutput]


def classifier_free_eps(
    predictor: NoisePredictor,
    x: torch.Tensor,
    t: torch.Tensor,
    condition: torch.Tensor,
    scale: float | torch.Tensor,
) -> torch.Tensor:
    """The brain model's ε̂ under classifier-free guidance of weight ``scale`` on the mask
    ``condition`` (1: the plain conditioned prediction); the conditioned and the zero-condition
    passes run as one batch of 2B. ``scale`` is a number or a weight per latent voxel
    (B, 1, d, h, w), e.g. :func:`lesion_condition_scale`'s."""
    if not isinstance(scale, torch.Tensor) and scale == 1.0:
        return predictor.eps_brain(x, t, condition)
    both = predictor.eps_brain(
        torch.cat([x, x]), torch.cat([t, t]), torch.cat([condition, torch.zeros_like(condition)])
    )
    conditioned, unconditioned = both.chunk(2)
    return unconditioned + scale * (conditioned - unconditioned)


def lesion_occupancy(mask: torch.Tensor, f: int) -> torch.Tensor:
    """The share of each latent voxel that the lesion fills: ``mask`` (B, 1, D, H, W) in
    {0, 1}, D, H, W multiples of the autoencoder's downsampling ``f``, averaged over each
    f³ block → (B, 1, D/f, H/f, W/f) in [0, 1].

    >>> m = torch.zeros(1, 1, 4, 4, 4); m[..., :2, :2, :2] = 1; m[..., 2, 2, 2] = 1
    >>> lesion_occupancy(m, 2).flatten().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.125]
    """
    return F.avg_pool3d(mask.float(), f, stride=f)


def lesion_condition_scale(
    occupancy: torch.Tensor, partial: float, filled: float
) -> float | torch.Tensor:
    """Insertion's classifier-free guidance weight per latent voxel, linear in the lesion's
    ``occupancy`` of it (B, 1, d, h, w in [0, 1]): ``partial`` where the lesion covers little
    of the voxel (and outside it), ``filled`` where it fills it. A lesion smaller than a latent
    voxel (a lacune, a thin white-matter lesion) needs the stronger pull to be drawn at all; a
    large one drawn with it overshoots into a void (docs/method.md §5). Equal weights give the
    number itself, the one-weight guidance.

    >>> lesion_condition_scale(torch.tensor([0.0, 0.5, 1.0]), 3.0, 1.5).tolist()
    [3.0, 2.25, 1.5]
    """
    if partial == filled:
        return partial
    return partial + (filled - partial) * occupancy


def acg_strength(t: int, horizon: int, alpha0: float, decay: float) -> float:
    """``alpha_t = alpha0 · exp(-decay · t / horizon)``: weak early (large t), strong late.

    >>> round(acg_strength(300, 300, 20.0, 0.5), 4)
    12.1306
    """
    return alpha0 * math.exp(-decay * t / horizon)


def alpha0_in_latent_units(alpha0: float, alpha0_scale: float, scale_factor: float) -> float:
    """ACG's ``alpha0`` for latents scaled by ``scale_factor`` when it was set for latents scaled
    by ``alpha0_scale`` (0: it already is in ours). ``lam = exp(-alpha |x0_hat - x_src|)`` must
    hold the same change of the autoencoder's mean equally: distances grow with the scale, so
    alpha shrinks with it. The authors' 20 is for mean × 0.18215.

    >>> round(alpha0_in_latent_units(20.0, 0.18215, 0.5), 3)
    7.286
    """
    return alpha0 if not alpha0_scale else alpha0 * alpha0_scale / scale_factor


def anatomy_weight(x0_hat: torch.Tensor, x_src: torch.Tensor, alpha: float) -> torch.Tensor:
    """ACG's ``lam = exp(-alpha |x0_hat - x_src|)`` per latent element, in (0, 1]. A larger
    ``alpha`` holds *less*: the same departure from the source gives a smaller pull back."""
    return torch.exp(-alpha * (x0_hat - x_src).abs())


def pooled_lesion_map(
    mask: torch.Tensor, latent_shape: tuple[int, int, int], kernel: int, dilation: int
) -> torch.Tensor:
    """The paper's soft lesion map at latent resolution.

    ``mask`` (B, 1, D, H, W) in {0, 1} is dilated by ``dilation`` voxels, averaged by an
    ``AvgPool3d`` of ``kernel`` (stride 1, same size: a soft edge), then brought to
    ``latent_shape`` by max-pooling, so a lesion smaller than one latent voxel still releases
    that voxel. Returns (B, 1, d, h, w) in [0, 1].
    """
    soft = mask.float()
    if dilation > 0:
        soft = F.max_pool3d(soft, 2 * dilation + 1, stride=1, padding=dilation)
    soft = F.avg_pool3d(soft, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return F.adaptive_max_pool3d(soft, latent_shape)


def latent_lesion_map(m: torch.Tensor, m_empty: torch.Tensor) -> torch.Tensor:
    """The authors' variant: the mask latent, clamped to [0, 1], as the soft map.

    Their autoencoder encodes an empty mask near zero; ours need not, so the empty mask's latent
    ``m_empty`` is subtracted first. ``m``, ``m_empty`` (B, C, d, h, w) → (B, 1, d, h, w).
    """
    return (m - m_empty).abs().mean(dim=1, keepdim=True).clamp(0.0, 1.0)


def release_lesion(weight: torch.Tensor, soft_map: torch.Tensor, scale: float) -> torch.Tensor:
    """LCG: ``lam · (1 - s · soft_map)``, anatomy free to change where the map is 1."""
    return weight * (1.0 - scale * soft_map)


def pull(z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``z + lam (target - z)``: ``lam = 1`` replaces z by the target, 0 leaves it."""
    return z + weight * (target - z)


class ConsistencyGuidance:
    """ACG + LCG for one edit of source latents ``x_src`` (B, C, d, h, w).

    ``soft_map`` (B, 1, d, h, w): where the lesion may change (None without LCG). ``noise``: the
    noise the edit started from, used by the NOISED pull target. ``horizon``: N (see module doc).

    >>> from usbrain.config import GuidanceConfig
    >>> from usbrain.diffusion.schedule import NoiseSchedule
    >>> src = torch.zeros(1, 3, 4, 4, 4)
    >>> g = ConsistencyGuidance(GuidanceConfig(), NoiseSchedule.linear(1024, 1e-4, 2e-2), src,
    ...                         soft_map=None, noise=torch.zeros_like(src), horizon=300)
    >>> out = g(StepOutput(src + 1, src + 0.01), t=10, t_prev=5)
    >>> bool(out.pred_original_sample.abs().max() < 0.01)
    True
    """

    def __init__(
        self,
        config: GuidanceConfig,
        schedule: NoiseSchedule,
        x_src: torch.Tensor,
        soft_map: torch.Tensor | None,
        noise: torch.Tensor,
        horizon: int,
    ) -> None:
        self.config = config
        self.schedule = schedule
        self.x_src = x_src
        self.soft_map = soft_map
        self.noise = noise
        self.horizon = horizon

    def weight(self, x0_hat: torch.Tensor, t: int) -> torch.Tensor:
        """The per-element pull strength ``lam`` at step ``t``."""
        cfg = self.config
        if cfg.anatomy:
            alpha = acg_strength(t, self.horizon, cfg.alpha0, cfg.decay)
            lam = anatomy_weight(x0_hat, self.x_src, alpha)
        else:
            lam = torch.zeros_like(x0_hat)
        if cfg.lesion and self.soft_map is not None:
            lam = release_lesion(lam, self.soft_map, cfg.lesion_scale)
        return lam

    def target(self, t_prev: int) -> torch.Tensor:
        """What the next latent (at ``t_prev``; -1 = clean) is pulled toward."""
        if self.config.pull_target is PullTarget.CLEAN or t_prev < 0:
            return self.x_src
        t = torch.full((self.x_src.shape[0],), t_prev, device=self.x_src.device)
        return q_sample(self.schedule, self.x_src, t, self.noise)

    def __call__(self, out: StepOutput, t: int, t_prev: int) -> StepOutput:
        lam = self.weight(out.pred_original_sample, t)
        return StepOutput(
            prev_sample=pull(out.prev_sample, self.target(t_prev), lam),
            pred_original_sample=pull(out.pred_original_sample, self.x_src, lam),
        )


def soft_lesion_map(
    config: GuidanceConfig,
    mask: torch.Tensor,
    latent_shape: tuple[int, int, int],
    mask_latents: Callable[[], tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """The soft map ``config.lesion_map`` names, for model-space ``mask`` (B, 1, D, H, W), at
    ``latent_shape``. ``mask_latents()`` gives the mask's latent and the empty mask's (B, C, d,
    h, w); it is called only for the latent map, since encoding costs an autoencoder pass."""
    if config.lesion_map is LesionMap.LATENT:
        return latent_lesion_map(*mask_latents())
    return pooled_lesion_map(mask, latent_shape, config.kernel, config.dilation)


@dataclass(frozen=True)
class EditContext:
    """What an edit's hooks may use: the guidance ``config`` (``alpha0`` in latent units), the
    ``schedule``, the source latent ``x_src`` (1, C, d, h, w), the ``soft_map`` (1, 1, d, h, w)
    of the lesion, the start ``noise``, the ``horizon`` (the edit's first timestep) and the
    ``crop`` of the whole latent the edit runs in (None: all of it)."""

    config: GuidanceConfig
    schedule: NoiseSchedule
    x_src: torch.Tensor
    soft_map: torch.Tensor
    noise: torch.Tensor
    horizon: int
    crop: Box | None = None


HookBuilder = Callable[[EditContext], list[Hook]]


def consistency_hooks(ctx: EditContext) -> list[Hook]:
    """USB's edit guidance: ACG + LCG as configured (no hook when both are off: SDEdit)."""
    cfg = ctx.config
    if not (cfg.anatomy or cfg.lesion):
        return []
    soft = ctx.soft_map if cfg.lesion else None
    return [ConsistencyGuidance(cfg, ctx.schedule, ctx.x_src, soft, ctx.noise, ctx.horizon)]


class ReplaceOutside:
    """Hard-mask latent inpainting (RePaint-style replacement, without resampling loops): after
    every step the latent outside the lesion is replaced by the source noised to the next
    step's level, and the final estimate by the clean source. ``keep``: (B, 1, d, h, w) {0, 1},
    1 outside the lesion."""

    def __init__(
        self, schedule: NoiseSchedule, x_src: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor
    ) -> None:
        self.schedule = schedule
        self.x_src = x_src
        self.keep = keep
        self.noise = noise

    def __call__(self, out: StepOutput, t: int, t_prev: int) -> StepOutput:
        if t_prev < 0:
            target = self.x_src
        else:
            steps = torch.full((self.x_src.shape[0],), t_prev, device=self.x_src.device)
            target = q_sample(self.schedule, self.x_src, steps, self.noise)
        return StepOutput(
            prev_sample=self.keep * target + (1 - self.keep) * out.prev_sample,
            pred_original_sample=self.keep * self.x_src
            + (1 - self.keep) * out.pred_original_sample,
        )


def hard_mask_hooks(ctx: EditContext) -> list[Hook]:
    """Hard-mask inpainting: the lesion region is where the soft map is nonzero."""
    keep = (ctx.soft_map <= 0).to(ctx.x_src.dtype)
    return [ReplaceOutside(ctx.schedule, ctx.x_src, keep, ctx.noise)]


def end_at(latent: torch.Tensor) -> HookBuilder:
    """Hooks for an edit that ends at ``latent`` (1, C, d, h, w, of the whole scan): after
    every step the edit's latent is replaced by it (cropped as the edit is), noised to the next
    step's level, and the last by ``latent`` itself."""

    def build(ctx: EditContext) -> list[Hook]:
        target = latent[(..., *ctx.crop)] if ctx.crop else latent
        keep = torch.ones_like(ctx.soft_map)
        return [ReplaceOutside(ctx.schedule, target, keep, ctx.noise)]

    return build
