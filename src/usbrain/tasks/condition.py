"""Task 2, condition: brains whose lesion lies where a given mask says.

The mask (in MNI space, as lesion datasets ship them) is brought to the model grid; its latent,
clamped to the range the brain model's condition has in training, conditions the brain model at
every step (or, with ``sampling.condition_input = estimate``, the lesion model's estimate from it
at each step's noise level) and only the brain chain is sampled. The brain comes back on the
mask's own grid, intensities in [0, 1].
"""

from __future__ import annotations

from usbrain.config import ConditionInput, SamplingConfig
from usbrain.data.geometry import MNI_BRAIN_CENTRE_MM, Geometry
from usbrain.data.masks import fraction_in_brain
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import VolumeKind, brain_mask, to_model, to_native
from usbrain.data.scan import check_lesion_kept
from usbrain.diffusion.chains import estimated_condition, randn, sample_brain
from usbrain.errors import InputError
from usbrain.pipeline import Pipeline
from usbrain.progress import progress_bar
from usbrain.tasks.results import Result, generator


def condition(
    pipe: Pipeline,
    mask: Volume,
    n: int,
    sampling: SamplingConfig,
    seed: int = 0,
    progress: bool = False,
) -> list[Result]:
    """``n`` brains for ``mask`` (native grid, {0, 1}); brain ``i`` depends on ``seed + i``."""
    pipe.require_mask_conditioning("condition")
    # 1. The mask on the model grid, centred on the MNI brain (identity intensity window: the
    #    output on the mask's grid is in [0, 1]); a lesion the grid would cut is refused.
    space = pipe.config.space
    geometry = Geometry.build(mask.affine, mask.shape, MNI_BRAIN_CENTRE_MM, space, 0.0, 1.0)
    check_lesion_kept(mask, geometry)
    mask_m = to_model(mask, geometry, VolumeKind.MASK)
    if not mask_m.any():
        raise InputError(f"{mask.name}: the lesion vanishes at the model's resolution")
    # 2. Its latent, as the brain model's condition.
    coder, sampler, predictor = (
        pipe.coder(sampling),
        pipe.sampler(sampling),
        pipe.predictor(sampling),
    )
    condition_latent = pipe.mask_condition(coder.encode(mask_m))
    clip = pipe.config.diffusion.condition_clip
    results = []
    for i in progress_bar(range(n), desc="samples", disable=not progress or n == 1):
        gen = generator(seed + i)
        # 3. The brain chain from noise, conditioned on the mask (or the lesion model's
        #    estimate from it at each step's noise level).
        start = randn(tuple(condition_latent.shape), gen, pipe.device)
        given = condition_latent
        if sampling.condition_input is ConditionInput.ESTIMATE:
            noise = randn(tuple(condition_latent.shape), gen, pipe.device)
            given = estimated_condition(predictor, sampler.schedule, condition_latent, noise, clip)
        x = sample_brain(
            predictor,
            sampler,
            given,
            start,
            sampler.timesteps,
            gen,
            progress=progress,
            condition_scale=sampling.generation_condition_scale,
        )
        # 4. Decoded and brought to the mask's grid.
        image_m = coder.decode(x).clip(0.0, 1.0)
        image = to_native(image_m, geometry, VolumeKind.IMAGE)
        info = {
            "seed": seed + i,
            "lesion_voxels": int(mask_m.sum()),
            "lesion_in_brain": fraction_in_brain(mask_m, brain_mask(image_m)),
        }
        results.append(Result(Volume(image, mask.affine, None, mask.header), mask, None, info))
    return results
