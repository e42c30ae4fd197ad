"""The edit shared by heal and lesion: SDEdit start, guided brain chain, write-back as a change.

1. Encode the model-space scan: ``x_src``. Noise it to ``t_start`` (the first sampling step at
   or below it) and denoise the brain chain conditioned on a mask latent, with ACG + LCG after
   every step (:class:`~usbrain.diffusion.guidance.ConsistencyGuidance`).
2. The edit is the model-space change ``delta = D(x_edited) - D(x_src)``: the plain
   reconstruction is subtracted, so what the autoencoder cannot represent (fine detail, the
   resolution lost to the model grid) is never part of the change.
3. ``delta`` goes back to the scan's grid and is added to the native scan. Where the model changed
   nothing the output equals the input voxel for voxel; the background stays background.

A large volume (:func:`~usbrain.tasks.common.is_large`, e.g. 160³) decodes only a box around the
region the lesion guidance releases (:func:`delta_in_box`): outside it ``delta`` is 0 and the
output is the input, and the two decodes cost a fraction of two whole-volume ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from usbrain.config import GuidanceConfig, SamplingConfig
from usbrain.data.geometry import Geometry
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import Prepared, VolumeKind, brain_mask, to_native
from usbrain.diffusion.chains import Guidance, randn, sample_brain
from usbrain.diffusion.guidance import ConsistencyGuidance, soft_lesion_map
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.errors import ConfigError
from usbrain.pipeline import Pipeline
from usbrain.tasks.common import (
    decode,
    denoiser_for,
    device_of,
    dilate,
    empty_mask_latent,
    encode,
    is_large,
    sampler_for,
)

BLEND_DILATION = 2  # model-space voxels around the lesion that --blend lets change
# Region decoding of large volumes (latent voxels). The change is kept in the box around where
# the soft lesion map releases anatomy, grown by REGION_MARGIN (the decoder spreads the change a
# little past it); the box grown by DECODE_CONTEXT more is decoded, so the kept part sees real
# neighbours rather than zero padding. Per-window GroupNorm statistics make any window decode
# approximate: healing four cohort scans with the trained tiny autoencoder at 96³ (24³ latents),
# the kept change was within 0.005–0.024 mean abs (max 0.07–0.36; [0, 1] intensities) of the
# whole-volume change, closer than decoding the whole volume by 32-voxel windows (0.007–0.052);
# the whole-volume change left out beyond the box averaged 0.007–0.009.
REGION_MARGIN = 1
DECODE_CONTEXT = 2

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class EditState:
    """What per-step guidance of one edit may use: the guidance config, the schedule, the source
    latent ``x_src`` (1, C, d, h, w), the ``soft_map`` (1, 1, d, h, w) of the lesion, the start
    ``noise`` and the ``horizon`` (the edit's first timestep)."""

    config: GuidanceConfig
    schedule: NoiseSchedule
    x_src: torch.Tensor
    soft_map: torch.Tensor
    noise: torch.Tensor
    horizon: int


def consistency_guidance(state: EditState) -> ConsistencyGuidance | None:
    """ACG + LCG as configured (None when both are off: plain SDEdit)."""
    cfg = state.config
    if not (cfg.anatomy or cfg.lesion):
        return None
    soft = state.soft_map if cfg.lesion else None
    return ConsistencyGuidance(cfg, state.schedule, state.x_src, soft, state.noise, state.horizon)


def released_box(soft_map: torch.Tensor, margin: int) -> Box | None:
    """Latent bounding box (slices over d, h, w) of ``soft_map > 0`` (1, 1, d, h, w), grown by
    ``margin`` voxels and clipped to the latent; None if the map is empty."""
    where = torch.nonzero(soft_map[0, 0] > 0)
    if len(where) == 0:
        return None
    low, high = where.min(0).values.tolist(), (where.max(0).values + 1).tolist()
    box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    return grow(box, margin, tuple(soft_map.shape[2:]))


def grow(box: Box, by: int, shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``by`` voxels on every side, clipped to ``shape``."""
    return tuple(
        slice(max(b.start - by, 0), min(b.stop + by, n)) for b, n in zip(box, shape, strict=True)
    )


def delta_in_box(pipe: Pipeline, x_edit: torch.Tensor, x_src: torch.Tensor, box: Box) -> np.ndarray:
    """``D(x_edit) - D(x_src)`` (D, H, W) inside the latent ``box``, 0 outside it.

    Latents (1, C, d, h, w). Only the box grown by :data:`DECODE_CONTEXT` is decoded, once per
    latent; the context is cut off. Model-space voxels: latent voxels × the downsampling f.
    """
    f = pipe.config.autoencoder.downsampling
    window = grow(box, DECODE_CONTEXT, tuple(x_src.shape[2:]))
    change = decode(pipe, x_edit[(..., *window)]) - decode(pipe, x_src[(..., *window)])
    keep = tuple(
        slice((b.start - w.start) * f, (b.stop - w.start) * f)
        for b, w in zip(box, window, strict=True)
    )
    delta = np.zeros([n * f for n in x_src.shape[2:]], np.float32)
    delta[tuple(slice(b.start * f, b.stop * f) for b in box)] = change[keep]
    return delta


def edit_delta(
    pipe: Pipeline, x_edit: torch.Tensor, x_src: torch.Tensor, soft_map: torch.Tensor
) -> tuple[np.ndarray, Box | None]:
    """The model-space change ``D(x_edit) - D(x_src)`` (D, H, W) and the latent box it was
    decoded in: the whole volume (box None) unless the volume is large and the region the
    ``soft_map`` (1, 1, d, h, w) releases, grown by :data:`REGION_MARGIN`, is smaller."""
    latent = tuple(x_src.shape[2:])
    f = pipe.config.autoencoder.downsampling
    box = released_box(soft_map, REGION_MARGIN) if is_large(tuple(n * f for n in latent)) else None
    whole = tuple(slice(0, n) for n in latent)
    if box is None or box == whole:
        return decode(pipe, x_edit) - decode(pipe, x_src), None
    return delta_in_box(pipe, x_edit, x_src, box), box


def write_back(
    image: Volume, delta: np.ndarray, geometry: Geometry, blend_mask: np.ndarray | None = None
) -> np.ndarray:
    """The native ``image`` plus the model-space change ``delta`` (D, H, W) brought to its grid.

    With ``blend_mask`` (model space), only its dilation may change. The change is kept inside
    the native brain; a non-negative scan stays non-negative. Where ``delta`` is zero the output
    equals the input exactly. Returns float32 of the image's shape.
    """
    if blend_mask is not None:
        delta = delta * dilate(blend_mask, BLEND_DILATION)
    change = to_native(delta, geometry, VolumeKind.DELTA) * brain_mask(image.data)
    out = image.data + change
    if image.data.min() >= 0:
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def edit(
    pipe: Pipeline,
    image: Volume,
    prepared: Prepared,
    x_src: torch.Tensor,
    lesion_m: np.ndarray,
    condition: torch.Tensor,
    t_start: int,
    sampling: SamplingConfig,
    gen: torch.Generator,
    blend: bool = False,
    progress: bool = False,
    guidance_for: Callable[[EditState], Guidance | None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Edit ``image`` (native) whose model-space version is ``prepared``, encoded as ``x_src``
    (1, C, d, h, w; callers that already encoded it pass it on rather than encode it again).

    ``lesion_m``: model-space (D, H, W) {0, 1} mask of where the lesion goes or goes away (the
    soft map LCG releases); ``condition``: the mask latent the brain model sees;
    ``guidance_for``: builds the per-step guidance (default :func:`consistency_guidance`;
    baselines swap it). Returns the edited native image (float32, the input's shape) and what
    the sidecar records.
    """
    guidance_for = guidance_for or consistency_guidance
    sampler = sampler_for(pipe, sampling)
    if not 0 < t_start < pipe.schedule.num_timesteps:
        raise ConfigError(
            f"t_start {t_start}: must be between 1 and {pipe.schedule.num_timesteps - 1}"
        )
    try:
        timesteps = sampler.timesteps_from(t_start)
    except ValueError as exc:
        raise ConfigError(f"{exc} (steps={sampling.steps})") from None
    device = device_of(pipe)
    noise = randn(tuple(x_src.shape), gen, device)
    t0 = torch.full((1,), timesteps[0], dtype=torch.long, device=device)
    start = q_sample(pipe.schedule, x_src, t0, noise)

    mask_t = torch.as_tensor(lesion_m, dtype=torch.float32, device=device)[None, None]
    cfg = sampling.guidance
    soft = soft_lesion_map(
        cfg,
        mask_t,
        tuple(x_src.shape[2:]),
        lambda: (encode(pipe, lesion_m), empty_mask_latent(pipe)),
    )
    state = EditState(cfg, pipe.schedule, x_src, soft, noise, horizon=timesteps[0])
    x_edit = sample_brain(
        denoiser_for(pipe, sampling),
        sampler,
        condition,
        start,
        timesteps,
        gen,
        guidance_for(state),
        progress=progress,
        condition_scale=sampling.condition_scale,
    )
    delta, box = edit_delta(pipe, x_edit, x_src, soft)
    out = write_back(image, delta, prepared.geometry, lesion_m if blend else None)
    info = {
        "t_start": int(timesteps[0]),
        "steps_taken": len(timesteps),
        "blend": blend,
        "mean_abs_change_in_lesion_model": float(np.abs(delta)[lesion_m > 0].mean()),
        "mean_abs_change_outside_model": float(np.abs(delta)[~dilate(lesion_m, 1)].mean()),
    }
    if box is not None:
        info["decoded_latent_box"] = [[b.start, b.stop] for b in box]
    return out, info
