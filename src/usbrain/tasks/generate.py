"""Task 1, generate: new (brain, lesion mask) pairs from noise, or healthy brains.

Pathological pairs sample both chains together (:func:`~usbrain.diffusion.chains.sample_pair`);
healthy brains sample the brain chain with the lesion chain fixed to the empty mask's latent,
the condition healthy pairs were trained with. Outputs lie on the model grid, centred on the
MNI brain.
"""

from __future__ import annotations

import numpy as np

from usbrain.config import SamplingConfig
from usbrain.data.geometry import MNI_BRAIN_CENTRE_MM, model_affine
from usbrain.data.masks import fraction_in_brain, lesion_ml
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import brain_mask
from usbrain.diffusion.chains import randn, sample_brain, sample_pair
from usbrain.pipeline import Pipeline
from usbrain.progress import progress_bar
from usbrain.tasks.results import Result, generator


def generate(
    pipe: Pipeline,
    n: int,
    sampling: SamplingConfig,
    seed: int = 0,
    healthy: bool = False,
    progress: bool = False,
) -> list[Result]:
    """``n`` generated pairs; sample ``i`` depends only on ``seed + i`` (and the pipeline).

    >>> results = generate(pipe, 2, pipe.config.sampling, seed=0)  # doctest: +SKIP
    >>> results[0].image.data.shape == pipe.config.space.size  # doctest: +SKIP
    True
    """
    if healthy:
        pipe.require_mask_conditioning("healthy generation")
    # 1. The models and the sampler; healthy brains see the empty mask's latent.
    coder, sampler = pipe.coder(sampling), pipe.sampler(sampling)
    shape = (1, pipe.config.autoencoder.latent_channels, *pipe.config.latent_size)
    empty = pipe.empty_mask_latent(coder) if healthy else None
    affine = model_affine(MNI_BRAIN_CENTRE_MM, pipe.config.space)
    results = []
    for i in progress_bar(range(n), desc="samples", disable=not progress or n == 1):
        gen = generator(seed + i)
        # 2. Denoise from noise: the brain chain alone, or both chains together.
        if empty is not None:
            x = sample_brain(
                pipe.predictor(sampling),
                sampler,
                empty,
                randn(shape, gen, pipe.device),
                sampler.timesteps,
                gen,
                progress=progress,
                condition_scale=sampling.generation_condition_scale,
            )
            mask = np.zeros(pipe.config.space.size, dtype=np.uint8)
        else:
            x, m = sample_pair(
                pipe.predictor(sampling),
                sampler,
                shape,
                gen,
                pipe.config.diffusion.condition_clip,
                pipe.device,
                progress=progress,
                coupling=pipe.config.diffusion.coupling,
            )
            mask = (coder.decode(m) > sampling.threshold).astype(np.uint8)
        # 3. Decode, and record what the pair holds.
        image = np.clip(coder.decode(x), 0.0, 1.0)
        info = {
            "seed": seed + i,
            "healthy": healthy,
            "lesion_voxels": int(mask.sum()),
            "lesion_ml": lesion_ml(mask, pipe.config.space.spacing),
            "lesion_in_brain": fraction_in_brain(mask, brain_mask(image)) if mask.any() else None,
        }
        results.append(Result(Volume(image, affine), Volume(mask, affine), None, info))
    return results
