"""The edit shared by heal and lesion: SDEdit start, guided brain chain, write-back as a change.

1. Encode the model-space scan: ``x_src``. Noise it to ``t_start`` (the first sampling step at
   or below it) and denoise the brain chain conditioned on a mask latent, with ACG + LCG after
   every step (:class:`~usbrain.diffusion.guidance.ConsistencyGuidance`).
2. The edit is the model-space change ``delta = D(x_edited) - D(x_src)``: the plain
   reconstruction is subtracted, so what the autoencoder cannot represent (fine detail, the
   resolution lost to the model grid) is never part of the change.
3. ``delta`` goes back to the scan's grid and is added to the native scan. Where the model changed
   nothing the output equals the input voxel for voxel; the background stays background.

Every edit denoises the whole latent and decodes the whole volume (a large one, e.g. 160³, in
slabs that compute the whole-volume result: ``tasks.common.decode``). ``sampling.edit_crop`` is
a speed option for large volumes: the edit then runs in a crop (:func:`edit_region`), the latent
box around where the lesion guidance releases anatomy grown by real neighbours; only that crop
is encoded, denoised and decoded, and only its centre box keeps a change (:func:`decode_in_box`,
outside it ``delta`` is 0). It is an approximation: the U-Nets never saw crops in training
(measured cost in :data:`CROP_CONTEXT`'s comment and bench/heal_160.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from usbrain.config import GuidanceConfig, SamplingConfig
from usbrain.data.geometry import Geometry
from usbrain.data.masks import dilated
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import Prepared, VolumeKind, brain_mask, to_native
from usbrain.diffusion.chains import Guidance, randn, sample_brain
from usbrain.diffusion.guidance import (
    ConsistencyGuidance,
    alpha0_in_latent_units,
    pooled_lesion_map,
    soft_lesion_map,
)
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.pipeline import Pipeline
from usbrain.tasks.common import (
    decode,
    denoiser_for,
    device_of,
    edit_sampler,
    empty_mask_latent,
    encode,
    is_large,
    mask_condition,
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
# sampling.edit_crop: latent voxels of real neighbours (at least) around the kept box in a large
# volume's edit crop, before rounding up to the U-Net's multiple. At the paper's 8× downsampling
# a 10 mm lesion keeps a 6³ box and gets an 8³ crop (64³ voxels, 6% of 160³). The crop is fast
# and approximate: bench/heal_160.py (paper architecture, random weights, 300 guided steps) heals
# 160³ in 128 s / 3.5 GiB with it against 723 s / 4.3 GiB whole; on the tiny `make demo`
# checkpoint forced through it (`bench/guidance.py --crop-context 1`, validation subjects,
# whole-latent edits in brackets) the heal MAE ratio is 0.47 [0.31] and the inserted-lesion
# intensity ratio 0.73 [0.63]: the U-Nets, which train on whole latents, do worse on crops.
CROP_CONTEXT = 1

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class EditState:
    """What per-step guidance of one edit may use: the guidance config, the schedule, the source
    latent ``x_src`` (1, C, d, h, w), the ``soft_map`` (1, 1, d, h, w) of the lesion, the start
    ``noise``, the ``horizon`` (the edit's first timestep) and the ``crop`` of the whole latent
    the edit runs in (None: all of it; see :func:`edit_region`)."""

    config: GuidanceConfig
    schedule: NoiseSchedule
    x_src: torch.Tensor
    soft_map: torch.Tensor
    noise: torch.Tensor
    horizon: int
    crop: Box | None = None


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


def crop_box(kept: Box, shape: tuple[int, ...], multiple: int, context: int) -> Box:
    """``kept`` grown by ``context`` voxels per side, then to a multiple of ``multiple`` (what the
    U-Net's levels need), shifted to lie inside ``shape`` (whole axes where it does not fit)."""
    crop = []
    for b, n in zip(kept, shape, strict=True):
        size = min(n, -(-(b.stop - b.start + 2 * context) // multiple) * multiple)
        start = min(max((b.start + b.stop - size) // 2, 0), n - size)
        crop.append(slice(start, start + size))
    return tuple(crop)


def edit_region(pipe: Pipeline, lesion_m: np.ndarray, config: GuidanceConfig) -> Box | None:
    """The latent box a large volume is edited in with ``sampling.edit_crop``, None for the
    whole volume.

    ``lesion_m`` (D, H, W) model-space {0, 1}. The box is where the paper's pooled soft map of
    the mask is non-zero (whatever ``config.lesion_map`` is: the latent map is non-zero nearly
    everywhere), grown by :data:`REGION_MARGIN` and :func:`crop_box`'s :data:`CROP_CONTEXT`.
    Volumes that are not large, empty masks and crops covering the whole latent give None.
    """
    if not is_large(lesion_m.shape):
        return None
    f = pipe.config.autoencoder.downsampling
    latent = tuple(n // f for n in lesion_m.shape)
    mask = torch.as_tensor(lesion_m, dtype=torch.float32)[None, None]
    soft = pooled_lesion_map(mask, latent, config.kernel, config.dilation)
    kept = released_box(soft, REGION_MARGIN)
    if kept is None:
        return None
    crop = crop_box(kept, latent, pipe.config.unet.downsampling, CROP_CONTEXT)
    return None if crop == tuple(slice(0, n) for n in latent) else crop


def scaled(box: Box, f: int) -> Box:
    """A latent ``box`` in model-space voxels (``f``: the autoencoder's downsampling)."""
    return tuple(slice(b.start * f, b.stop * f) for b in box)


def decode_in_box(pipe: Pipeline, latents: list[torch.Tensor], box: Box) -> list[np.ndarray]:
    """Each latent (1, C, d, h, w) decoded inside the latent ``box``: (D, H, W), 0 outside it.

    Only the box grown by :data:`DECODE_CONTEXT` is decoded, once per latent; the context is cut
    off. Model-space voxels: latent voxels × the downsampling f.
    """
    f = pipe.config.autoencoder.downsampling
    window = grow(box, DECODE_CONTEXT, tuple(latents[0].shape[2:]))
    keep = tuple(
        slice((b.start - w.start) * f, (b.stop - w.start) * f)
        for b, w in zip(box, window, strict=True)
    )
    out = []
    for z in latents:
        volume = np.zeros([n * f for n in z.shape[2:]], np.float32)
        volume[scaled(box, f)] = decode(pipe, z[(..., *window)])[keep]
        out.append(volume)
    return out


def decode_edit(
    pipe: Pipeline,
    x_edit: torch.Tensor,
    x_src: torch.Tensor,
    soft_map: torch.Tensor,
    cropped: bool,
) -> tuple[np.ndarray, np.ndarray, Box | None]:
    """``D(x_edit)`` and ``D(x_src)`` (D, H, W, model space) and the latent box they are kept in:
    the whole latent (box None) unless the edit is ``cropped`` (``sampling.edit_crop`` on a
    large volume) and the region the ``soft_map`` (1, 1, d, h, w) releases, grown by
    :data:`REGION_MARGIN`, is smaller (both are 0 outside the box, so their difference is no
    change there)."""
    latent = tuple(x_src.shape[2:])
    box = released_box(soft_map, REGION_MARGIN) if cropped else None
    if box is None or box == tuple(slice(0, n) for n in latent):
        return decode(pipe, x_edit), decode(pipe, x_src), None
    edited, source = decode_in_box(pipe, [x_edit, x_src], box)
    return edited, source, box


def write_back(
    image: Volume, delta: np.ndarray, geometry: Geometry, blend_mask: np.ndarray | None = None
) -> np.ndarray:
    """The native ``image`` plus the model-space change ``delta`` (D, H, W) brought to its grid.

    With ``blend_mask`` (model space), only its dilation may change. The change is kept inside
    the native brain; a non-negative scan stays non-negative. Where ``delta`` is zero the output
    equals the input exactly. Returns float32 of the image's shape.
    """
    if blend_mask is not None:
        delta = delta * dilated(blend_mask, BLEND_DILATION)
    change = to_native(delta, geometry, VolumeKind.DELTA) * brain_mask(image.data)
    out = image.data + change
    if image.data.min() >= 0:
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def edit(
    pipe: Pipeline,
    image: Volume,
    prepared: Prepared,
    lesion_m: np.ndarray,
    condition_m: np.ndarray | None,
    t_start: int,
    sampling: SamplingConfig,
    gen: torch.Generator,
    blend: bool = False,
    progress: bool = False,
    guidance_for: Callable[[EditState], Guidance | None] | None = None,
    x_src: torch.Tensor | None = None,
    fill: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Edit ``image`` (native) whose model-space version is ``prepared``.

    ``lesion_m``: model-space (D, H, W) {0, 1} mask of where the lesion goes or goes away (the
    soft map LCG releases); ``condition_m``: the model-space mask whose latent the brain model
    sees (None: the empty mask, healthy); ``guidance_for``: builds the per-step guidance
    (default :func:`consistency_guidance`; baselines swap it); ``x_src``: the scan's latent
    (1, C, d, h, w) if the caller already encoded it, else only what is edited is encoded;
    ``fill``: inside ``lesion_m`` the output is the decoded edit itself, not input + change.
    Returns the edited native image (float32, the input's shape) and what the sidecar records.
    """
    guidance_for = guidance_for or consistency_guidance
    sampler = edit_sampler(pipe, sampling, t_start)
    timesteps = sampler.timesteps
    g = sampling.guidance
    alpha0 = alpha0_in_latent_units(g.alpha0, g.alpha0_scale, float(pipe.autoencoder.scale_factor))
    cfg = replace(g, alpha0=alpha0, alpha0_scale=0.0)
    f = pipe.config.autoencoder.downsampling
    cropped = sampling.edit_crop and is_large(lesion_m.shape)
    crop = edit_region(pipe, lesion_m, cfg) if cropped else None
    model_crop = scaled(crop, f) if crop else (slice(None),) * 3
    latent_crop = (..., *crop) if crop else (...,)  # indexes whole-scan latents (1, C, d, h, w)
    image_c, lesion_c = prepared.image[model_crop], lesion_m[model_crop]
    x_src = encode(pipe, image_c) if x_src is None else x_src[latent_crop]
    empty = empty_mask_latent(pipe)[latent_crop]
    given = empty if condition_m is None else encode(pipe, condition_m[model_crop])

    device = device_of(pipe)
    noise = randn(tuple(x_src.shape), gen, device)
    t0 = torch.full((1,), timesteps[0], dtype=torch.long, device=device)
    start = q_sample(pipe.schedule, x_src, t0, noise)
    mask_t = torch.as_tensor(lesion_c, dtype=torch.float32, device=device)[None, None]
    soft = soft_lesion_map(
        cfg,
        mask_t,
        tuple(x_src.shape[2:]),
        lambda: (encode(pipe, lesion_c), empty),
    )
    state = EditState(cfg, pipe.schedule, x_src, soft, noise, timesteps[0], crop)
    x_edit = sample_brain(
        denoiser_for(pipe, sampling),
        sampler,
        mask_condition(pipe, given),
        start,
        timesteps,
        gen,
        guidance_for(state),
        progress=progress,
        condition_scale=sampling.condition_scale,
    )
    edited, recon, box = decode_edit(pipe, x_edit, x_src, soft, cropped)
    delta_c = edited - recon
    if fill:
        # As a change, the input would keep what the autoencoder cannot represent of the lesion
        # (input - D(x_src), a blurred remnant of it) wherever the edit replaced the lesion.
        inside = lesion_c > 0
        if box is not None:  # D(x_edit) was decoded inside the box only
            in_box = np.zeros(inside.shape, bool)
            in_box[scaled(box, f)] = True
            inside &= in_box
        delta_c[inside] = np.clip(edited[inside], 0.0, 1.0) - image_c[inside]
    delta = np.zeros(lesion_m.shape, np.float32)
    delta[model_crop] = delta_c
    out = write_back(image, delta, prepared.geometry, lesion_m if blend else None)
    info = {
        "t_start": int(timesteps[0]),
        "steps_taken": len(timesteps),
        "alpha0_in_latent_units": alpha0,
        "blend": blend,
        "mean_abs_change_outside_model": float(np.abs(delta)[~dilated(lesion_m, 1)].mean()),
    }
    if lesion_m.any():
        info["mean_abs_change_in_lesion_model"] = float(np.abs(delta)[lesion_m > 0].mean())
    if crop:
        info["edited_latent_crop"] = [[b.start, b.stop] for b in crop]
    if box is not None:
        at = [c.start for c in crop] if crop else [0, 0, 0]
        kept = zip(box, at, strict=True)
        info["decoded_latent_box"] = [[b.start + a, b.stop + a] for b, a in kept]
    return out, info
