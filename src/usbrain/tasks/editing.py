"""The pieces heal and lesion insertion are built of (each task composes them in its own file).

An edit (SDEdit with consistency guidance) noises the model-space scan's latent ``x_src`` to
``t_start`` and denoises the brain chain with hooks after every step. Its result is a *change*:
``delta = D(x_edited) - D(x_src)``, so what the autoencoder cannot represent (fine detail, the
resolution lost to the model grid) is never part of it; ``delta`` goes back to the scan's grid
and is added to the native scan, so where the model changed nothing the output equals the input
voxel for voxel.

Every edit denoises the whole latent and decodes the whole volume (a large one in slabs that
compute the whole-volume result). ``sampling.edit_crop`` is a speed option for large volumes:
the edit then runs in a crop (:func:`edit_region`), the latent box where the lesion guidance
releases anatomy grown by real neighbours; only its centre box keeps a change
(:func:`decode_change`). It is an approximation: the U-Nets never saw crops in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from usbrain.config import GuidanceConfig, SamplingConfig
from usbrain.data.masks import dilated
from usbrain.data.preprocess import VolumeKind
from usbrain.data.scan import Scan
from usbrain.diffusion.chains import randn, sample_brain
from usbrain.diffusion.guidance import (
    EditContext,
    HookBuilder,
    alpha0_in_latent_units,
    lesion_condition_scale,
    lesion_occupancy,
    pooled_lesion_map,
    soft_lesion_map,
)
from usbrain.diffusion.samplers import Sampler
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.models.coder import Box, LatentCoder, grow, scaled
from usbrain.pipeline import Pipeline

BLEND_DILATION = 2  # model-space voxels around the lesion that --blend lets change


def guidance_in_latent_units(pipe: Pipeline, guidance: GuidanceConfig) -> GuidanceConfig:
    """``guidance`` with ACG's ``alpha0`` converted to this autoencoder's latent scale."""
    scale = float(pipe.autoencoder.scale_factor)
    alpha0 = alpha0_in_latent_units(guidance.alpha0, guidance.alpha0_scale, scale)
    return replace(guidance, alpha0=alpha0, alpha0_scale=0.0)


def released_box(soft_map: torch.Tensor, margin: int) -> Box | None:
    """Latent bounding box (slices over d, h, w) of ``soft_map > 0`` (1, 1, d, h, w), grown by
    ``margin`` voxels and clipped to the latent; None if the map is empty."""
    where = torch.nonzero(soft_map[0, 0] > 0)
    if len(where) == 0:
        return None
    low, high = where.min(0).values.tolist(), (where.max(0).values + 1).tolist()
    box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    return grow(box, margin, tuple(soft_map.shape[2:]))


def crop_box(kept: Box, shape: tuple[int, ...], multiple: int, context: int) -> Box:
    """``kept`` grown by ``context`` voxels per side, then to a multiple of ``multiple`` (what the
    U-Net's levels need), shifted to lie inside ``shape`` (whole axes where it does not fit)."""
    crop = []
    for b, n in zip(kept, shape, strict=True):
        size = min(n, -(-(b.stop - b.start + 2 * context) // multiple) * multiple)
        start = min(max((b.start + b.stop - size) // 2, 0), n - size)
        crop.append(slice(start, start + size))
    return tuple(crop)


@dataclass(frozen=True)
class EditRegion:
    """Where an edit runs: the whole latent (``crop`` None) or a latent crop; ``f`` is the
    autoencoder's downsampling; ``cropping``: whether ``sampling.edit_crop`` applies (a large
    volume), so that only the released box keeps a change even when the crop is everything."""

    crop: Box | None
    f: int
    cropping: bool = False

    @property
    def model(self) -> tuple[slice, ...]:
        """Indexes model-space volumes (D, H, W)."""
        return scaled(self.crop, self.f) if self.crop else (slice(None),) * 3

    @property
    def latent(self) -> tuple:
        """Indexes whole-scan latents (1, C, d, h, w)."""
        return (..., *self.crop) if self.crop else (...,)


def edit_region(
    pipe: Pipeline, coder: LatentCoder, lesion_m: np.ndarray, sampling: SamplingConfig
) -> EditRegion:
    """The latent crop a large volume is edited in with ``sampling.edit_crop``, else the whole
    latent.

    ``lesion_m`` (D, H, W) model-space {0, 1}. The crop is where the paper's pooled soft map of
    the mask is non-zero (whatever ``lesion_map`` is: the latent map is non-zero nearly
    everywhere), grown by ``sampling.crop_margin`` and ``sampling.crop_context``. Volumes that
    are not large, empty masks and crops covering the whole latent edit the whole latent.
    """
    f = coder.downsampling
    if not (sampling.edit_crop and coder.is_large(lesion_m.shape)):
        return EditRegion(None, f)
    g = sampling.guidance  # its kernel and dilation: the pooled map's, in model voxels
    latent = tuple(n // f for n in lesion_m.shape)
    mask = torch.as_tensor(lesion_m, dtype=torch.float32)[None, None]
    kept = released_box(pooled_lesion_map(mask, latent, g.kernel, g.dilation), sampling.crop_margin)
    if kept is None:
        return EditRegion(None, f, cropping=True)
    crop = crop_box(kept, latent, pipe.config.unet.downsampling, sampling.crop_context)
    whole = crop == tuple(slice(0, n) for n in latent)
    return EditRegion(None if whole else crop, f, cropping=True)


def noised_start(
    schedule: NoiseSchedule, x_src: torch.Tensor, t_start: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The edit's start noise (drawn from ``gen``) and ``x_src`` noised with it to ``t_start``."""
    noise = randn(tuple(x_src.shape), gen, x_src.device)
    t0 = torch.full((1,), t_start, dtype=torch.long, device=x_src.device)
    return noise, q_sample(schedule, x_src, t0, noise)


def lesion_soft_map(
    guidance: GuidanceConfig,
    coder: LatentCoder,
    lesion_c: np.ndarray,
    latent_shape: tuple[int, ...],
    empty: torch.Tensor,
) -> torch.Tensor:
    """The soft lesion map (1, 1, d, h, w) LCG releases, of the model-space ``lesion_c``; the
    latent variant encodes the mask (``empty``: the empty mask's latent, as cropped)."""
    mask = torch.as_tensor(lesion_c, dtype=torch.float32, device=coder.device)[None, None]
    return soft_lesion_map(guidance, mask, latent_shape, lambda: (coder.encode(lesion_c), empty))


@dataclass(frozen=True)
class EditSource:
    """What one edit starts from, in its ``region``: the model-space ``image`` (D, H, W in
    [0, 1]) and ``lesion`` ({0, 1}) there, the empty mask's latent ``empty`` (1, C, d, h, w)
    and the hooks' ``context`` (guidance in latent units, the source latent, the soft lesion
    map, the start noise) beside the noised start latent ``start``."""

    region: EditRegion
    image: np.ndarray
    lesion: np.ndarray
    empty: torch.Tensor
    context: EditContext
    start: torch.Tensor


def edit_source(
    pipe: Pipeline,
    coder: LatentCoder,
    scan: Scan,
    lesion_m: np.ndarray,
    sampling: SamplingConfig,
    t_start: int,
    gen: torch.Generator,
    x_whole: torch.Tensor | None = None,
) -> EditSource:
    """The region an edit of ``scan`` releasing ``lesion_m`` (D, H, W model space, {0, 1})
    runs in (:func:`edit_region`), its source latent (cut from ``x_whole``, the whole scan's
    latent, when given) noised to ``t_start`` with noise from ``gen``, and the soft lesion
    map the guidance of ``sampling.guidance`` releases."""
    region = edit_region(pipe, coder, lesion_m, sampling)
    image_c, lesion_c = scan.image[region.model], lesion_m[region.model]
    x_src = coder.encode(image_c) if x_whole is None else x_whole[region.latent]
    empty = pipe.empty_mask_latent(coder)[region.latent]
    noise, start = noised_start(pipe.schedule, x_src, t_start, gen)
    guidance = guidance_in_latent_units(pipe, sampling.guidance)
    soft = lesion_soft_map(guidance, coder, lesion_c, tuple(x_src.shape[2:]), empty)
    ctx = EditContext(guidance, pipe.schedule, x_src, soft, noise, t_start, region.crop)
    return EditSource(region, image_c, lesion_c, empty, ctx, start)


def insertion_scale(
    sampling: SamplingConfig, coder: LatentCoder, lesion_c: np.ndarray
) -> float | torch.Tensor:
    """Insertion's classifier-free guidance weight for the model-space lesion ``lesion_c``
    (D, H, W {0, 1} of the edited region): a number, or (1, 1, d, h, w) per latent voxel from
    the lesion's share of each (``sampling.condition_scale_lesion`` where it covers little,
    ``condition_scale_lesion_filled`` where it fills the voxel)."""
    mask = torch.as_tensor(lesion_c, dtype=torch.float32, device=coder.device)[None, None]
    return lesion_condition_scale(
        lesion_occupancy(mask, coder.downsampling),
        sampling.condition_scale_lesion,
        sampling.condition_scale_lesion_filled,
    )


def denoise(
    pipe: Pipeline,
    sampling: SamplingConfig,
    sampler: Sampler,
    condition: torch.Tensor,
    source: EditSource,
    gen: torch.Generator,
    hooks: HookBuilder,
    condition_scale: float | torch.Tensor,
    progress: bool = False,
) -> torch.Tensor:
    """The edited latent: ``source.start`` denoised over ``sampler.timesteps`` by the brain
    chain conditioned on the mask latent ``condition`` (clamped as in training; classifier-free
    guided with ``condition_scale``, a number or a weight per latent voxel), the ``hooks`` built
    from ``source.context`` after every step."""
    return sample_brain(
        pipe.predictor(sampling),
        sampler,
        pipe.mask_condition(condition),
        source.start,
        sampler.timesteps,
        gen,
        hooks(source.context),
        progress=progress,
        condition_scale=condition_scale,
    )


def decode_change(
    coder: LatentCoder, x_edit: torch.Tensor, source: EditSource, sampling: SamplingConfig
) -> tuple[np.ndarray, np.ndarray, Box | None]:
    """``D(x_edit)`` and ``D(x_src)`` (D, H, W of the edited region) and the latent box they
    are kept in: the whole latent (box None) unless the edit is cropping and the region the
    soft map releases, grown by ``sampling.crop_margin``, is smaller (both are 0 outside the
    box, so their difference is no change there)."""
    x_src, soft_map = source.context.x_src, source.context.soft_map
    box = released_box(soft_map, sampling.crop_margin) if source.region.cropping else None
    if box is None or box == tuple(slice(0, n) for n in x_src.shape[2:]):
        return coder.decode(x_edit), coder.decode(x_src), None
    edited, recon = coder.decode_in_box([x_edit, x_src], box, sampling.decode_context)
    return edited, recon, box


def filled_lesion(
    delta: np.ndarray,
    edited: np.ndarray,
    image: np.ndarray,
    lesion_m: np.ndarray,
    box: Box | None,
    region: EditRegion,
) -> np.ndarray:
    """``delta`` (D, H, W of the edited region) with the lesion ``lesion_m`` set to the change
    that makes it the decoded edit ``edited`` itself, clipped to [0, 1], over the model-space
    ``image``: what the autoencoder cannot represent of the lesion does not survive inside it
    (heal). With a decode ``box``, only inside it (``edited`` is decoded there only)."""
    inside = lesion_m > 0
    if box is not None:
        in_box = np.zeros(inside.shape, bool)
        in_box[scaled(box, region.f)] = True
        inside &= in_box
    out = delta.copy()
    out[inside] = np.clip(edited[inside], 0.0, 1.0) - image[inside]
    return out


def write_back(scan: Scan, delta: np.ndarray, blend_mask: np.ndarray | None = None) -> np.ndarray:
    """The native scan plus the model-space change ``delta`` (D, H, W) brought to its grid.

    With ``blend_mask`` (model space), only its dilation by :data:`BLEND_DILATION` may change.
    The change is kept inside the native brain; a non-negative scan stays non-negative. Where
    ``delta`` is zero the output equals the input exactly. Returns float32 of the scan's shape.
    """
    if blend_mask is not None:
        delta = delta * dilated(blend_mask, BLEND_DILATION)
    change = scan.to_native(delta, VolumeKind.DELTA) * scan.brain
    out = scan.native.data + change
    if scan.native.data.min() >= 0:
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def change_info(
    delta: np.ndarray,
    lesion_m: np.ndarray,
    timesteps: list[int],
    guidance: GuidanceConfig,
    blend: bool,
    region: EditRegion,
    box: Box | None,
) -> dict[str, Any]:
    """What an edit's sidecar records of it: its steps, the guidance strength in latent
    units, the mean change outside and inside the lesion, the crop and box it used."""
    info: dict[str, Any] = {
        "t_start": int(timesteps[0]),
        "steps_taken": len(timesteps),
        "alpha0_in_latent_units": guidance.alpha0,
        "blend": blend,
        "mean_abs_change_outside_model": float(np.abs(delta)[~dilated(lesion_m, 1)].mean()),
    }
    if lesion_m.any():
        info["mean_abs_change_in_lesion_model"] = float(np.abs(delta)[lesion_m > 0].mean())
    if region.crop:
        info["edited_latent_crop"] = [[b.start, b.stop] for b in region.crop]
    if box is not None:
        at = [c.start for c in region.crop] if region.crop else [0, 0, 0]
        info["decoded_latent_box"] = [
            [b.start + a, b.stop + a] for b, a in zip(box, at, strict=True)
        ]
    return info
