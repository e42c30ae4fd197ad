"""The lesions the model finds: the one it proposes for a scan (``lesion`` without a mask) and
the one heal without a mask removed.

A proposal is the lesion chain sampled with the brain fixed to the scan, decoded and
thresholded. What heal removed is, with ``sampling.find_lesion = anomaly``, |input − healed|
over the scan's intensity window (its [0.5, 99.5] percentiles inside the brain) above
``sampling.anomaly_threshold`` inside the brain; with ``segment``, the proposal.
"""

from __future__ import annotations

import numpy as np
import torch

from usbrain.config import FindLesion, SamplingConfig
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import VolumeKind, brain_mask
from usbrain.data.scan import Scan
from usbrain.diffusion.chains import sample_lesion
from usbrain.pipeline import Pipeline
from usbrain.tasks.results import generator


def propose_lesion(
    pipe: Pipeline,
    scan: Scan,
    x_src: torch.Tensor,
    sampling: SamplingConfig,
    gen: torch.Generator,
    progress: bool = False,
) -> np.ndarray:
    """The lesion the model draws for ``scan``, whose latent is ``x_src`` (1, C, d, h, w): the
    lesion chain sampled with the brain fixed to it, decoded, above ``sampling.threshold`` and
    inside the brain; uint8 {0, 1} on the model grid."""
    m0 = sample_lesion(pipe.predictor(sampling), pipe.sampler(sampling), x_src, gen, progress)
    found = (pipe.coder(sampling).decode(m0) > sampling.threshold) & brain_mask(scan.image)
    return found.astype(np.uint8)


def removed_lesion(
    pipe: Pipeline,
    scan: Scan,
    healed: np.ndarray,
    x_src: torch.Tensor,
    sampling: SamplingConfig,
    seed: int,
    progress: bool,
) -> tuple[Volume, np.ndarray, dict]:
    """The lesion mask heal found (uint8 {0, 1} on ``scan``'s grid), the native anomaly map
    |input − ``healed``| (float32, the scan's intensities) and what the result's info records
    of the search. ``x_src``: the whole scan's latent, ``(1, C, d, h, w)``."""
    anomaly = np.abs(scan.native.data.astype(np.float32) - healed)
    if sampling.find_lesion is FindLesion.SEGMENT:
        found = propose_lesion(pipe, scan, x_src, sampling, generator(seed), progress)
        found = scan.to_native(found, VolumeKind.MASK)
    else:
        g = scan.geometry
        relative = anomaly / max(g.intensity_high - g.intensity_low, 1e-12)
        found = ((relative > sampling.anomaly_threshold) & scan.brain).astype(np.uint8)
    info: dict = {
        "lesion_found_by": str(sampling.find_lesion),
        "lesion_voxels": int(found.sum()),
        "intensity_window": [scan.geometry.intensity_low, scan.geometry.intensity_high],
    }
    if sampling.find_lesion is FindLesion.ANOMALY:
        info["anomaly_threshold"] = sampling.anomaly_threshold
    return scan.native_volume(found), anomaly, info
