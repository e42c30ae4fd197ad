"""What the four tasks share: model-space input checks, encoding and decoding, results.

Volumes are numpy (D, H, W) on the model grid (images in [0, 1], masks {0, 1}); latents are
torch (1, C, d, h, w) scaled as diffusion sees them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from usbrain.config import Coupling, Precision, SamplingConfig
from usbrain.data.geometry import Geometry, model_affine
from usbrain.data.masks import fraction_in_brain
from usbrain.data.nifti import Volume, check_same_grid
from usbrain.data.preprocess import (
    Prepared,
    brain_mask,
    preprocess,
    resample,
    voxels_outside_model_grid,
)
from usbrain.diffusion.paired import clamp_condition
from usbrain.diffusion.prediction import NoisePredictor
from usbrain.diffusion.samplers import Sampler, edit_timesteps, make_sampler
from usbrain.errors import ConfigError, InputError
from usbrain.models.denoiser import AutocastDenoiser, CompiledDenoiser, PairedDenoiser
from usbrain.pipeline import Pipeline

# Centroid of the MNI152 2009a brain mask (mm): generated volumes are centred here, and masks
# given without an image (``condition``) are assumed to be in MNI space, as ATLAS ships them.
MNI_BRAIN_CENTRE_MM = np.array([0.0, -22.0, 9.5])
# A mask with more of its voxels outside the brain than this is refused as misplaced.
MAX_OUTSIDE_BRAIN = 0.5
# A scan edited without a mask (heal finding the lesion, lesion --propose) with more of its
# brain outside the model grid than this is refused: the model would search a fraction of it.
# The paper grid (160 mm) cuts 2.75% of the MNI brain (its poles).
MAX_BRAIN_OUTSIDE_GRID = 0.25
# Volumes of more voxels than this are "large": encoded and decoded in slabs
# (``Autoencoder.encode_streamed`` / ``decode_streamed``: the whole-volume result in less
# memory). Peak RSS of whole-volume encode + decode with the paper autoencoder grows with the
# voxel count: 0.99 GiB at 64³, 1.97 GiB at 96³, 7.33 GiB at 160³ (bench/memory.py's whole
# mode), so past 2 M voxels (128³ is 2.1 M) it would pass 4 GiB, the memory goal for a 160³
# heal on an 8 GiB CPU. Below the threshold the plain whole-volume pass is kept: the tiny
# preset (48³) never streams.
LARGE_VOLUME_VOXELS = 2_000_000


@dataclass
class Result:
    """One task output: ``image`` and ``mask`` as :class:`Volume` (native or model grid),
    the ``source`` scan for side-by-side figures (None for generation), ``info``: what
    produced it and what was checked, written to the JSON sidecar, and ``maps``."""

    image: Volume
    mask: Volume
    source: Volume | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # More float32 volumes on the image's grid, each written as ``<name>.nii.gz`` ("anomaly",
    # "std").
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def generator(seed: int) -> torch.Generator:
    """The CPU generator every random draw of a task comes from."""
    return torch.Generator().manual_seed(int(seed))


def check_samples(samples: int) -> None:
    if samples < 1:
        raise InputError(f"--samples {samples}: must be 1 or more")


def sampled_edits(
    samples: int, seed: int, run_one: Callable[[int], tuple[np.ndarray, dict[str, Any]]]
) -> tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
    """``run_one(k)`` for the samples k = 0 … ``samples`` − 1 (seed ``seed + k``), each an
    edited volume and its info: their voxel-wise mean (float32; one sample comes back as it
    is), the first sample's info with every seed, and the map ``std`` of several samples."""
    outputs, infos = zip(*(run_one(k) for k in range(samples)), strict=True)
    info = dict(infos[0])
    if samples == 1:
        return outputs[0], info, {}
    stack = np.stack(outputs).astype(np.float64)
    info["seeds"] = [seed + k for k in range(samples)]
    return stack.mean(0).astype(np.float32), info, {"std": stack.std(0).astype(np.float32)}


def sampler_for(pipe: Pipeline, sampling: SamplingConfig) -> Sampler:
    sampler = make_sampler(sampling.sampler, pipe.schedule, sampling.eta)
    sampler.set_timesteps(sampling.steps)
    return sampler


def edit_sampler(pipe: Pipeline, sampling: SamplingConfig, t_start: int) -> Sampler:
    """The sampler of an edit noised to ``t_start``; its ``timesteps`` are the edit's:
    every ``sampling.edit_stride``-th below ``t_start``, or (stride 0) the ``sampling.steps``
    grid's at or below it."""
    T = pipe.schedule.num_timesteps
    if not 0 < t_start < T:
        raise ConfigError(f"t_start {t_start}: must be between 1 and {T - 1}")
    sampler = sampler_for(pipe, sampling)
    try:
        if sampling.edit_stride:
            sampler.use_timesteps(edit_timesteps(t_start, sampling.edit_stride))
        else:
            sampler.use_timesteps(sampler.timesteps_from(t_start))
    except ValueError as exc:
        raise ConfigError(
            f"{exc} (steps={sampling.steps}, edit_stride={sampling.edit_stride})"
        ) from None
    return sampler


def require_mask_conditioning(pipe: Pipeline, task: str) -> None:
    """Refuse ``task`` (one conditioned on a given mask) on an ablation checkpoint whose brain
    model never learned to read a clean mask latent (``diffusion.coupling`` other than
    ``estimate``)."""
    coupling = pipe.config.diffusion.coupling
    if coupling is not Coupling.ESTIMATE:
        raise InputError(
            f"{task} needs a checkpoint trained with diffusion.coupling=estimate; this one was "
            f"trained with coupling={coupling} (an ablation that can only generate pairs)"
        )


def denoiser_for(pipe: Pipeline, sampling: SamplingConfig) -> NoisePredictor:
    """The pipeline's U-Nets as noise predictors: compiled when ``sampling.compile`` asks for
    it (once per pipeline, with CUDA graphs on a GPU), under autocast when
    ``sampling.precision`` does."""
    predictor: PairedDenoiser | CompiledDenoiser | AutocastDenoiser = pipe.denoiser
    if sampling.compile:
        if pipe.compiled is None:
            on_gpu = device_of(pipe).type == "cuda"
            pipe.compiled = CompiledDenoiser(pipe.denoiser, cuda_graphs=on_gpu)
        predictor = pipe.compiled
    if sampling.precision is not Precision.FP32:
        dtype = torch.bfloat16 if sampling.precision is Precision.BF16 else torch.float16
        predictor = AutocastDenoiser(predictor, dtype)
    return NoisePredictor(predictor, pipe.schedule, pipe.config.diffusion.prediction)


def device_of(pipe: Pipeline) -> torch.device:
    return next(pipe.denoiser.parameters()).device


def is_large(shape: tuple[int, ...]) -> bool:
    """Whether a model-space volume of ``shape`` (D, H, W) is coded in slabs
    (more than :data:`LARGE_VOLUME_VOXELS` voxels)."""
    return math.prod(shape) > LARGE_VOLUME_VOXELS


@torch.no_grad()
def encode(pipe: Pipeline, volume: np.ndarray) -> torch.Tensor:
    """Model-space (D, H, W) volume → scaled latent (1, C, d, h, w); in slabs if large."""
    x = torch.as_tensor(np.asarray(volume, dtype=np.float32))[None, None].to(device_of(pipe))
    if is_large(x.shape[2:]):
        return pipe.autoencoder.encode_streamed(x)
    return pipe.autoencoder.encode(x)


@torch.no_grad()
def decode(pipe: Pipeline, z: torch.Tensor) -> np.ndarray:
    """Scaled latent (1, C, d, h, w) → model-space (D, H, W) float32 volume; in slabs if the
    volume is large."""
    shape = tuple(n * pipe.config.autoencoder.downsampling for n in z.shape[2:])
    ae = pipe.autoencoder
    x = ae.decode_streamed(z) if is_large(shape) else ae.decode(z)
    return x[0, 0].float().cpu().numpy()


def empty_mask_latent(pipe: Pipeline) -> torch.Tensor:
    """The latent of the empty mask: the condition of healthy pairs in training. Encoded once
    per pipeline (a 160³ encode costs seconds) and kept in its cache; do not modify it."""
    if "empty_mask" not in pipe.cache:
        pipe.cache["empty_mask"] = encode(pipe, np.zeros(pipe.config.space.size, np.float32))
    return pipe.cache["empty_mask"]


def mask_condition(pipe: Pipeline, mask_latent: torch.Tensor) -> torch.Tensor:
    """What the brain model sees of a known mask (a given one, or the empty mask for healthy
    output) in every task: its latent (1, C, d, h, w) clamped to ±``diffusion.condition_clip``,
    the range its condition has in training. A crisp mask's latent reaches ±12; unclamped,
    conditioned cortical strokes came out as signal voids (docs/method.md)."""
    return clamp_condition(mask_latent, pipe.config.diffusion.condition_clip)


def model_grid_volume(data: np.ndarray, pipe: Pipeline) -> Volume:
    """A generated model-space volume on the MNI-centred model grid."""
    return Volume(data, model_affine(MNI_BRAIN_CENTRE_MM, pipe.config.space))


def mask_geometry(mask: Volume, pipe: Pipeline) -> Geometry:
    """Model grid for a mask given without an image: centred on the MNI brain, identity
    intensity window (outputs on the mask's grid are in [0, 1])."""
    space = pipe.config.space
    return Geometry.build(mask.affine, mask.shape, MNI_BRAIN_CENTRE_MM, space, 0.0, 1.0)


def check_lesion_kept(mask: Volume, geometry: Geometry) -> None:
    """Refuse a lesion the model grid would cut (never crop silently through a lesion)."""
    cut = voxels_outside_model_grid(mask, geometry)
    if cut:
        total = int(np.count_nonzero(mask.data))
        raise InputError(
            f"{mask.name}: {cut} of {total} lesion voxels fall outside the model's "
            f"{'×'.join(map(str, geometry.model_shape))} grid (field of view "
            f"{geometry.model_shape[0] * abs(geometry.model[0, 0]):.0f} mm); the lesion would be "
            "cut. Is the scan skull-stripped and roughly centred on the brain?"
        )


def match_mask_grid(image: Volume, mask: Volume, resample_mask: bool) -> Volume:
    """``mask`` on ``image``'s grid: as is if it already is, resampled with ``resample_mask``,
    else the grid mismatch is an error."""
    try:
        check_same_grid(image, mask)
        return mask
    except InputError as exc:
        if not resample_mask:
            raise InputError(f"{exc}; pass --resample-mask to resample the mask") from None
    data = resample(mask.data, mask.affine, image.affine, image.shape) >= 0.5
    if not data.any():
        raise InputError(f"{mask.name}: no lesion voxel is left after resampling to {image.name}")
    return Volume(data.astype(np.uint8), image.affine.copy(), mask.path, image.header)


def check_inside_brain(image: Volume, mask: Volume) -> float:
    """Fraction of lesion voxels inside the image's brain; refuse a mostly-outside mask."""
    inside = fraction_in_brain(mask.data, brain_mask(image.data))
    if inside < 1 - MAX_OUTSIDE_BRAIN:
        raise InputError(
            f"{mask.name}: {100 * (1 - inside):.0f}% of the lesion lies outside the brain of "
            f"{image.name}; is it the mask of this scan?"
        )
    return inside


def prepare_edit(pipe: Pipeline, image: Volume, mask: Volume | None) -> Prepared:
    """Bring a scan (and lesion mask on its grid) to the pipeline's model space, with checks."""
    prepared = preprocess(image, pipe.config.space, mask)
    if mask is None:
        brain = Volume(brain_mask(image.data).astype(np.uint8), image.affine)
        cut = voxels_outside_model_grid(brain, prepared.geometry) / max(int(brain.data.sum()), 1)
        if cut > MAX_BRAIN_OUTSIDE_GRID:
            space = pipe.config.space
            raise InputError(
                f"{image.name}: {100 * cut:.0f}% of the brain falls outside the model's "
                f"{'×'.join(map(str, space.size))} grid at {space.spacing:g} mm; is the scan "
                "skull-stripped, in mm and roughly centred on the brain?"
            )
    if mask is not None:
        check_lesion_kept(mask, prepared.geometry)
        if prepared.mask is None or not prepared.mask.any():
            raise InputError(
                f"{mask.name}: the lesion vanishes at the model's resolution "
                f"({pipe.config.space.spacing:g} mm); it is too small for this checkpoint"
            )
    return prepared
