"""Task 3, heal (pathology → healthy): remove a lesion and fill it with healthy tissue.

The brain chain is conditioned on the empty mask's latent (what healthy pairs trained with), and
LCG releases anatomy inside the given lesion mask, so the lesion may vanish there while ACG holds
everything else. The result is on the input scan's grid (same affine, shape and intensity
scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from usbrain.config import SamplingConfig
from usbrain.data.nifti import Volume
from usbrain.diffusion.chains import Guidance
from usbrain.pipeline import Pipeline
from usbrain.tasks.common import (
    Result,
    check_inside_brain,
    generator,
    prepare_edit,
    require_mask_conditioning,
)
from usbrain.tasks.edit import EditState, edit


def heal(
    pipe: Pipeline,
    image: Volume,
    mask: Volume,
    sampling: SamplingConfig,
    seed: int = 0,
    t_start: int | None = None,
    blend: bool = False,
    progress: bool = False,
    guidance_for: Callable[[EditState], Guidance | None] | None = None,
) -> Result:
    """The healthy version of ``image``; ``mask`` (on the image's grid) marks the lesion.

    >>> healed = heal(pipe, load_image("sub-1_T1w.nii.gz"), load_mask("sub-1_mask.nii.gz"),
    ...               pipe.config.sampling)  # doctest: +SKIP
    """
    require_mask_conditioning(pipe, "heal")
    inside = check_inside_brain(image, mask)
    prepared = prepare_edit(pipe, image, mask)
    t_start = sampling.t_start_heal if t_start is None else t_start
    g = sampling.guidance
    sampling = replace(sampling, guidance=replace(g, dilation=g.dilation + g.heal_extra_dilation))
    out, info = edit(
        pipe,
        image,
        prepared,
        prepared.mask,
        None,  # conditioned on the empty mask: healthy
        t_start,
        sampling,
        generator(seed),
        blend,
        progress,
        guidance_for,
        fill=True,  # nothing of the lesion may survive inside its mask
    )
    info = {"seed": seed, "lesion_in_brain": inside, **info}
    return Result(Volume(out, image.affine, None, image.header), mask, image, info)
