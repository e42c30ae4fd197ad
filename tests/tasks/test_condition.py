from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from tests.conftest import lesion_mask
from tests.tasks.conftest import LESION, lps_anisotropic
from usbrain.data.nifti import load_mask
from usbrain.pipeline import Pipeline
from usbrain.tasks.condition import condition
from usbrain.tasks.generate import generate


def test_from_noise_the_brain_is_guided_by_the_generation_scale_not_the_edit_scale(
    pipeline_dir, tmp_path
):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    with torch.no_grad():  # MONAI zero-initialises the output layers: every guidance would be 0
        for p in pipe.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mask = load_mask(lps_anisotropic(lesion_mask(**LESION), tmp_path / "m.nii.gz"))
    base = replace(pipe.config.sampling, condition_scale=1.0, generation_condition_scale=1.0)

    def brain(**scales) -> np.ndarray:
        return condition(pipe, mask, 1, replace(base, **scales), seed=3)[0].image.data

    def healthy(**scales) -> np.ndarray:
        return generate(pipe, 1, replace(base, **scales), seed=3, healthy=True)[0].image.data

    plain = brain()
    assert np.array_equal(brain(condition_scale=5.0), plain)
    assert not np.allclose(brain(generation_condition_scale=5.0), plain)
    assert np.array_equal(healthy(condition_scale=5.0), healthy())
