"""Task 3, heal (pathology → healthy): remove a lesion and fill it with healthy tissue.

With a mask: the brain chain is conditioned on the empty mask's latent (what healthy pairs
trained with), and LCG releases anatomy inside the given lesion, so the lesion may vanish there
while ACG holds everything else; inside the mask the output is the decoded edit. Without one
(the authors' p2h): ACG alone, which lets the model move wherever the scan departs from a
healthy brain; the lesion it removed is returned as the mask (:mod:`usbrain.tasks.find`).
The result is on the input scan's grid (same affine, shape, intensity scale).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from usbrain.config import SamplingConfig
from usbrain.data.scan import Scan
from usbrain.diffusion.guidance import HookBuilder, consistency_hooks
from usbrain.errors import InputError
from usbrain.pipeline import Pipeline
from usbrain.tasks import editing
from usbrain.tasks.find import removed_lesion
from usbrain.tasks.results import Result, check_samples, generator, sampled_edits


def heal(
    pipe: Pipeline,
    scan: Scan,
    sampling: SamplingConfig,
    seed: int = 0,
    t_start: int | None = None,
    blend: bool = False,
    progress: bool = False,
    hooks: HookBuilder = consistency_hooks,
    samples: int = 1,
) -> Result:
    """The healthy version of ``scan``; its lesion (``scan.lesion``) marks what to remove, a
    scan loaded without one lets the model find it. ``samples`` K > 1 returns the mean of K
    seeds' edits, their standard deviation as the map ``std``.

    >>> scan = Scan.load(load_image("sub-1_T1w.nii.gz"), pipe.config.space,
    ...                  load_mask("sub-1_mask.nii.gz"))  # doctest: +SKIP
    >>> healed = heal(pipe, scan, pipe.config.sampling)  # doctest: +SKIP
    """
    pipe.require_mask_conditioning("heal")
    check_samples(samples)
    with_mask = scan.lesion is not None
    if not with_mask and blend:
        raise InputError(f"{scan.native.name}: --blend needs --mask (it keeps the change near it)")
    info: dict = {"seed": seed, "with_mask": with_mask}
    if with_mask:
        info["lesion_in_brain"] = scan.lesion_in_brain

    # 1. What may change. With a mask, LCG releases it (grown by heal_extra_dilation); without
    #    one, nothing is released and ACG alone lets the model depart where it must.
    g = sampling.guidance
    if with_mask:
        g = replace(g, dilation=g.dilation + g.heal_extra_dilation)
        lesion_m = scan.lesion
    else:
        g = replace(g, lesion=False, alpha0=g.alpha0_without_mask or g.alpha0)
        lesion_m = np.zeros(scan.image.shape, np.uint8)
    sampling = replace(sampling, guidance=g)
    coder = pipe.coder(sampling)
    x_whole = None if with_mask else coder.encode(scan.image)  # the search needs all of it

    def one(k: int) -> tuple[np.ndarray, dict]:
        gen = generator(seed + k)
        # 2. The region the edit runs in (all of the latent but for large cropped volumes) and
        #    its source latent, noised to t_start.
        sampler = pipe.sampler(sampling, sampling.t_start_heal if t_start is None else t_start)
        steps = sampler.timesteps
        src = editing.edit_source(pipe, coder, scan, lesion_m, sampling, steps[0], gen, x_whole)
        # 3. Denoise conditioned on the empty mask (healthy), ACG + LCG after every step.
        scale = sampling.condition_scale_heal
        x_edit = editing.denoise(
            pipe, sampling, sampler, src.empty, src, gen, hooks, scale, progress
        )
        # 4. The change D(x_edit) - D(x_src); inside a known lesion the decoded edit itself, so
        #    nothing the autoencoder cannot represent of the lesion survives there.
        edited, recon, box = editing.decode_change(coder, x_edit, src, sampling)
        region = src.region
        delta_c = edited - recon
        if with_mask:
            delta_c = editing.filled_lesion(delta_c, edited, src.image, src.lesion, box, region)
        delta = np.zeros(lesion_m.shape, np.float32)
        delta[region.model] = delta_c
        # 5. Back on the scan's grid: the input plus the change.
        out = editing.write_back(scan, delta, lesion_m if blend else None)
        info = editing.change_info(delta, lesion_m, steps, src.context.config, blend, region, box)
        return out, info

    healed, edit_info, maps = sampled_edits(samples, seed, one)
    info, mask = {**info, **edit_info}, scan.mask
    if not with_mask:  # 6. What the model removed: the lesion it found.
        mask, maps["anomaly"], found = removed_lesion(
            pipe, scan, healed, x_whole, sampling, seed, progress
        )
        info |= found
    return Result(scan.native_volume(healed), mask, scan.native, info, maps)
