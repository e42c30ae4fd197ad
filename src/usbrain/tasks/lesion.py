"""Task 4, lesion (healthy → pathology): insert a lesion where a mask says, or where the model
proposes one.

With a mask, the brain chain is conditioned on the mask's latent and LCG releases anatomy inside
it. Without one (``propose``), the lesion chain is first sampled with the brain fixed to the
scan, the decoded mask is thresholded (and kept inside the brain), and that mask is inserted the
same way. The mask used is returned on the scan's grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from usbrain.config import SamplingConfig
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import Prepared, VolumeKind, brain_mask, to_native
from usbrain.diffusion.chains import Guidance, sample_lesion
from usbrain.errors import UsbrainError
from usbrain.pipeline import Pipeline
from usbrain.tasks.common import (
    Result,
    check_inside_brain,
    check_samples,
    decode,
    denoiser_for,
    encode,
    generator,
    prepare_edit,
    require_mask_conditioning,
    sampled_edits,
    sampler_for,
)
from usbrain.tasks.edit import EditState, edit


class NoLesionProposed(UsbrainError):
    """The model proposed an empty mask for this scan and seed."""


def lesion(
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
    """``image`` with a lesion inserted where ``mask`` says (None: where the model proposes).

    ``samples`` K > 1 inserts the same lesion (a proposal is made once, from ``seed``) with K
    seeds and returns the voxel-wise mean, their standard deviation as the map ``std``.
    """
    require_mask_conditioning(pipe, "lesion")
    check_samples(samples)
    gen = generator(seed)
    info: dict = {"seed": seed, "proposed": mask is None}
    if mask is not None:
        info["lesion_in_brain"] = check_inside_brain(image, mask)
    prepared = prepare_edit(pipe, image, mask)
    x_src = None  # with a mask, the edit encodes only what it edits
    if mask is None:
        x_src = encode(pipe, prepared.image)
        lesion_m = model_lesion(pipe, prepared, x_src, sampling, gen, progress)
        if not lesion_m.any():
            raise NoLesionProposed(
                f"{image.name}: the model proposed no lesion with seed {seed}; "
                "try another --seed or give --mask"
            )
        native = to_native(lesion_m, prepared.geometry, VolumeKind.MASK)
        mask = Volume(native, image.affine, None, image.header)
    else:
        lesion_m = prepared.mask
    t_start = sampling.t_start_lesion if t_start is None else t_start

    def one(k: int) -> tuple[np.ndarray, dict]:
        return edit(
            pipe,
            image,
            prepared,
            lesion_m,
            lesion_m,  # conditioned on the lesion it inserts
            t_start,
            sampling,
            gen if k == 0 else generator(seed + k),  # sample 0 is the single-sample run
            blend,
            progress,
            guidance_for,
            x_src,
        )

    inserted, edit_info, maps = sampled_edits(samples, seed, one)
    info = {**info, **edit_info}
    return Result(Volume(inserted, image.affine, None, image.header), mask, image, info, maps)


def model_lesion(
    pipe: Pipeline,
    prepared: Prepared,
    x_src: torch.Tensor,
    sampling: SamplingConfig,
    gen: torch.Generator,
    progress: bool = False,
) -> np.ndarray:
    """The lesion the model draws for the scan whose latent is ``x_src`` (1, C, d, h, w): the
    lesion chain sampled with the brain fixed to it, decoded, above ``sampling.threshold``
    and inside the brain; uint8 {0, 1} on the model grid."""
    m0 = sample_lesion(
        denoiser_for(pipe, sampling), sampler_for(pipe, sampling), x_src, gen, progress
    )
    lesion_m = (decode(pipe, m0) > sampling.threshold) & brain_mask(prepared.image)
    return lesion_m.astype(np.uint8)
