"""Task 3, heal (pathology → healthy): remove a lesion and fill it with healthy tissue.

With a mask: the brain chain is conditioned on the empty mask's latent (what healthy pairs
trained with), and LCG releases anatomy inside the given lesion, so the lesion may vanish there
while ACG holds everything else; inside the mask the output is the decoded edit.

Without one (the authors' p2h): the same chain with ACG alone, which lets the model move
wherever the scan departs from what a healthy brain at that noise level looks like. The lesion
it found is written beside the result: ``anomaly`` = |input − healed| on the native grid and a
mask, the anomaly thresholded or the lesion chain's estimate (``sampling.find_lesion``).

``samples`` K > 1 runs K seeds and returns their voxel-wise mean, with the standard deviation as
the map ``std``. The result is on the input scan's grid (same affine, shape, intensity scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from usbrain.config import FindLesion, SamplingConfig
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import Prepared, VolumeKind, brain_mask, to_native
from usbrain.diffusion.chains import Guidance
from usbrain.errors import InputError
from usbrain.pipeline import Pipeline
from usbrain.tasks.common import (
    Result,
    check_inside_brain,
    check_samples,
    encode,
    generator,
    prepare_edit,
    require_mask_conditioning,
    sampled_edits,
)
from usbrain.tasks.edit import EditState, edit
from usbrain.tasks.lesion import model_lesion


def heal(
    pipe: Pipeline,
    image: Volume,
    mask: Volume | None,
    sampling: SamplingConfig,
    seed: int = 0,
    t_start: int | None = None,
    blend: bool = False,
    progress: bool = False,
    guidance_for: Callable[[EditState], Guidance | None] | None = None,
    samples: int = 1,
) -> Result:
    """The healthy version of ``image``; ``mask`` (on the image's grid) marks the lesion, None
    lets the model find it.

    >>> healed = heal(pipe, load_image("sub-1_T1w.nii.gz"), load_mask("sub-1_mask.nii.gz"),
    ...               pipe.config.sampling)  # doctest: +SKIP
    """
    require_mask_conditioning(pipe, "heal")
    check_samples(samples)
    if mask is None and blend:
        raise InputError(f"{image.name}: --blend needs --mask (it keeps the change near it)")
    info: dict = {"seed": seed, "with_mask": mask is not None}
    if mask is not None:
        info["lesion_in_brain"] = check_inside_brain(image, mask)
    prepared = prepare_edit(pipe, image, mask)
    t_start = sampling.t_start_heal if t_start is None else t_start
    g = sampling.guidance
    if mask is None:  # ACG alone: nothing is released, the model departs where it must
        alpha0 = g.alpha0_without_mask or g.alpha0
        sampling = replace(sampling, guidance=replace(g, lesion=False, alpha0=alpha0))
        lesion_m = np.zeros(prepared.image.shape, np.uint8)
    else:
        sampling = replace(
            sampling, guidance=replace(g, dilation=g.dilation + g.heal_extra_dilation)
        )
        lesion_m = prepared.mask
    x_src = encode(pipe, prepared.image) if mask is None else None

    def one(k: int) -> tuple[np.ndarray, dict]:
        return edit(
            pipe,
            image,
            prepared,
            lesion_m,
            None,  # conditioned on the empty mask: healthy
            t_start,
            sampling,
            generator(seed + k),
            blend,
            progress,
            guidance_for,
            x_src,
            fill=mask is not None,  # nothing of a known lesion may survive inside its mask
        )

    healed, edit_info, maps = sampled_edits(samples, seed, one)
    info = {**info, **edit_info}
    if mask is None:
        anomaly = np.abs(image.data.astype(np.float32) - healed)
        found = found_lesion(pipe, image, prepared, anomaly, x_src, sampling, seed, progress)
        maps["anomaly"] = anomaly
        mask = Volume(found, image.affine, None, image.header)
        g = prepared.geometry
        info |= {
            "lesion_found_by": str(sampling.find_lesion),
            "lesion_voxels": int(found.sum()),
            "intensity_window": [g.intensity_low, g.intensity_high],
        }
        if sampling.find_lesion is FindLesion.ANOMALY:
            info["anomaly_threshold"] = sampling.anomaly_threshold
    return Result(Volume(healed, image.affine, None, image.header), mask, image, info, maps)


def found_lesion(
    pipe: Pipeline,
    image: Volume,
    prepared: Prepared,
    anomaly: np.ndarray,
    x_src: torch.Tensor,
    sampling: SamplingConfig,
    seed: int,
    progress: bool,
) -> np.ndarray:
    """The lesion heal without a mask found, uint8 {0, 1} on the image's grid: the native
    ``anomaly`` over the intensity window above ``sampling.anomaly_threshold`` inside the
    brain, or the lesion chain's estimate for the scan (``sampling.find_lesion``)."""
    if sampling.find_lesion is FindLesion.SEGMENT:
        found = model_lesion(pipe, prepared, x_src, sampling, generator(seed), progress)
        return to_native(found, prepared.geometry, VolumeKind.MASK)
    g = prepared.geometry
    relative = anomaly / max(g.intensity_high - g.intensity_low, 1e-12)
    return ((relative > sampling.anomaly_threshold) & brain_mask(image.data)).astype(np.uint8)
