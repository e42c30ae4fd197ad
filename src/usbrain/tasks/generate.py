"""Task 1, generate: new (brain, lesion mask) pairs from noise, or healthy brains.

Pathological pairs sample both chains together (:func:`~usbrain.diffusion.chains.sample_pair`);
healthy brains sample the brain chain with the lesion chain fixed to the empty mask's latent,
the condition healthy pairs were trained with. Outputs lie on the model grid, centred on the
MNI brain.
"""

from __future__ import annotations

import numpy as np

from usbrain.config import SamplingConfig
from usbrain.data.masks import fraction_in_brain, lesion_ml
from usbrain.data.preprocess import brain_mask
from usbrain.diffusion.chains import randn, sample_brain, sample_pair
from usbrain.pipeline import Pipeline
from usbrain.progress import progress_bar
from usbrain.tasks.common import (
    Result,
    decode,
    denoiser_for,
    device_of,
    empty_mask_latent,
    generator,
    model_grid_volume,
    require_mask_conditioning,
    sampler_for,
)


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
        require_mask_conditioning(pipe, "healthy generation")
    sampler = sampler_for(pipe, sampling)
    device = device_of(pipe)
    shape = (1, pipe.config.autoencoder.latent_channels, *pipe.config.latent_size)
    empty = empty_mask_latent(pipe) if healthy else None
    results = []
    for i in progress_bar(range(n), desc="samples", disable=not progress or n == 1):
        gen = generator(seed + i)
        if empty is not None:
            x = sample_brain(
                denoiser_for(pipe, sampling),
                sampler,
                empty,
                randn(shape, gen, device),
                sampler.timesteps,
                gen,
                progress=progress,
                condition_scale=sampling.generation_condition_scale,
            )
            mask = np.zeros(pipe.config.space.size, dtype=np.uint8)
        else:
            x, m = sample_pair(
                denoiser_for(pipe, sampling),
                sampler,
                shape,
                gen,
                pipe.config.diffusion.condition_clip,
                device,
                progress=progress,
                coupling=pipe.config.diffusion.coupling,
            )
            mask = (decode(pipe, m) > sampling.threshold).astype(np.uint8)
        image = np.clip(decode(pipe, x), 0.0, 1.0)
        info = {
            "seed": seed + i,
            "healthy": healthy,
            "lesion_voxels": int(mask.sum()),
            "lesion_ml": lesion_ml(mask, pipe.config.space.spacing),
            "lesion_in_brain": fraction_in_brain(mask, brain_mask(image)) if mask.any() else None,
        }
        image_v, mask_v = model_grid_volume(image, pipe), model_grid_volume(mask, pipe)
        results.append(Result(image_v, mask_v, None, info))
    return results
