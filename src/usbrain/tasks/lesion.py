"""Task 4, lesion (healthy → pathology): insert a lesion where a mask says, or where the model
proposes one.

With a mask, the brain chain is conditioned on the mask's latent and LCG releases anatomy inside
it. Without one (``propose``), the lesion chain is first sampled with the brain fixed to the
scan, the decoded mask is thresholded (and kept inside the brain), and that mask is inserted the
same way. The mask used is returned on the scan's grid.
"""

from __future__ import annotations

import numpy as np

from usbrain.config import SamplingConfig
from usbrain.data.preprocess import VolumeKind
from usbrain.data.scan import Scan
from usbrain.diffusion.guidance import HookBuilder, consistency_hooks
from usbrain.errors import UsbrainError
from usbrain.pipeline import Pipeline
from usbrain.tasks import editing
from usbrain.tasks.find import propose_lesion
from usbrain.tasks.results import Result, check_samples, generator, sampled_edits


class NoLesionProposed(UsbrainError):
    """The model proposed an empty mask for this scan and seed."""


def lesion(
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
    """``scan`` with a lesion inserted where its mask (``scan.lesion``) says; a scan loaded
    without one gets the lesion the model proposes.

    ``samples`` K > 1 inserts the same lesion (a proposal is made once, from ``seed``) with K
    seeds and returns the voxel-wise mean, their standard deviation as the map ``std``.
    """
    pipe.require_mask_conditioning("lesion")
    check_samples(samples)
    gen = generator(seed)
    info: dict = {"seed": seed, "proposed": scan.lesion is None}
    coder = pipe.coder(sampling)

    # 1. The lesion to insert: the given one, or the one the lesion chain draws for this brain.
    x_whole, mask, lesion_m = None, scan.mask, scan.lesion  # with a mask, only the crop is coded
    if scan.lesion is None:
        x_whole = coder.encode(scan.image)
        lesion_m = propose_lesion(pipe, scan, x_whole, sampling, gen, progress)
        if not lesion_m.any():
            raise NoLesionProposed(
                f"{scan.native.name}: the model proposed no lesion with seed {seed}; "
                "try another --seed or give --mask"
            )
        mask = scan.native_volume(scan.to_native(lesion_m, VolumeKind.MASK))
    else:
        info["lesion_in_brain"] = scan.lesion_in_brain
    first_step = sampling.t_start_lesion if t_start is None else t_start

    def one(k: int) -> tuple[np.ndarray, dict]:
        sample_gen = gen if k == 0 else generator(seed + k)  # sample 0 is the single-sample run
        # 2. The region the edit runs in and its source latent, noised to t_start.
        sampler = pipe.sampler(sampling, first_step)
        steps = sampler.timesteps
        src = editing.edit_source(
            pipe, coder, scan, lesion_m, sampling, steps[0], sample_gen, x_whole
        )
        # 3. Denoise conditioned on the lesion it inserts, ACG + LCG after every step.
        lesion_latent = coder.encode(src.lesion)
        scale = editing.insertion_scale(sampling, coder, src.lesion)
        x_edit = editing.denoise(
            pipe, sampling, sampler, lesion_latent, src, sample_gen, hooks, scale, progress
        )
        # 4. The change D(x_edit) - D(x_src), back on the scan's grid added to the input.
        edited, recon, box = editing.decode_change(coder, x_edit, src, sampling)
        region = src.region
        delta = np.zeros(lesion_m.shape, np.float32)
        delta[region.model] = edited - recon
        out = editing.write_back(scan, delta, lesion_m if blend else None)
        info = editing.change_info(delta, lesion_m, steps, src.context.config, blend, region, box)
        return out, info

    inserted, edit_info, maps = sampled_edits(samples, seed, one)
    info = {**info, **edit_info}
    return Result(scan.native_volume(inserted), mask, scan.native, info, maps)
