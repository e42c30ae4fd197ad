from __future__ import annotations

import numpy as np

from tests.conftest import lesioned_phantom
from usbrain.config import SamplingConfig
from usbrain.data.pseudo import white_matter_mean
from usbrain.evaluate.baselines import (
    fill_mirror,
    fill_white_matter,
    intensity_model_lesion,
    paste_lesion_intensities,
    sdedit_config,
)


def _case():
    return lesioned_phantom()


def test_white_matter_fill_changes_only_the_lesion():
    _, sick, mask = _case()
    out = fill_white_matter(sick, mask)
    assert np.array_equal(out[mask == 0], sick[mask == 0])
    wm = white_matter_mean(sick, sick > 0, exclude=mask)
    assert np.allclose(out[mask > 0], wm) and 850 < wm < 950  # the phantom's WM is 900 ± noise


def test_mirror_fill_reads_the_other_hemisphere():
    image = np.zeros((9, 5, 5), np.float32)
    image[:4] = 1.0  # left (x < 0) bright, right dark
    image[5:] = 3.0
    affine = np.eye(4)
    affine[0, 3] = -4.0  # voxel i sits at x = i - 4: the midline is i = 4
    mask = np.zeros_like(image, np.uint8)
    mask[7, 2, 2] = 1  # x = +3 → mirrored to x = −3 (i = 1)
    out = fill_mirror(image, mask, affine)
    assert out[7, 2, 2] == 1.0 and np.array_equal(out[mask == 0], image[mask == 0])


def test_pasted_and_modelled_lesions_are_dark_and_local():
    healthy, sick, mask = _case()
    rng = np.random.default_rng(0)
    pasted = paste_lesion_intensities(healthy, mask, sick, mask, rng)
    assert np.allclose(pasted[mask > 0], 300.0, rtol=0.05)  # same WM: intensities kept
    assert np.array_equal(pasted[mask == 0], healthy[mask == 0])
    modelled = intensity_model_lesion(healthy, mask, 0.4, np.random.default_rng(0))
    assert modelled[mask > 0].mean() < 0.5 * healthy[mask > 0].mean()


def test_sdedit_turns_guidance_off():
    cfg = sdedit_config(SamplingConfig())
    assert not cfg.guidance.anatomy and not cfg.guidance.lesion
    assert sdedit_config(SamplingConfig(), keep_anatomy=True).guidance.anatomy
