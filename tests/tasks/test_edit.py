from __future__ import annotations

import numpy as np

from tests.conftest import lesion_mask, phantom_brain
from usbrain.config import ModelSpace
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import preprocess, resample
from usbrain.tasks.common import dilate
from usbrain.tasks.edit import BLEND_DILATION, write_back

SPACE = ModelSpace(size=(16, 16, 16), spacing=6.0)


def _scan() -> tuple[Volume, np.ndarray]:
    affine = np.diag([-1.8, -2.2, 2.6, 1.0])  # LPS, anisotropic
    image = Volume(phantom_brain(), affine)
    return image, preprocess(image, SPACE)


def test_zero_change_returns_the_input_voxel_for_voxel():
    image, prepared = _scan()
    out = write_back(image, np.zeros(SPACE.size, np.float32), prepared.geometry)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.array_equal(out, image.data)


def test_blend_confines_the_change_and_the_background_stays_background():
    image, prepared = _scan()
    lesion_m = np.zeros(SPACE.size, np.uint8)
    lesion_m[7:9, 7:9, 7:9] = 1
    delta = np.full(SPACE.size, 0.2, np.float32)
    free = write_back(image, delta, prepared.geometry)
    blended = write_back(image, delta, prepared.geometry, blend_mask=lesion_m)
    background = image.data == 0
    assert np.array_equal(free[background], image.data[background])
    changed = blended != image.data
    assert changed.any() and changed.sum() < (free != image.data).sum() / 3
    # Far from the (dilated) lesion nothing changes at all.
    g = prepared.geometry
    near = resample(
        dilate(lesion_m, BLEND_DILATION + 1).astype(np.float32), g.model, g.native, image.shape
    )
    far = near == 0
    assert far.sum() > 0.9 * far.size
    assert np.array_equal(blended[far], image.data[far])
    # The change is in native intensity units: 0.2 of the model window.
    inside = (free - image.data)[20, 22, 18]
    assert abs(inside - 0.2 * (g.intensity_high - g.intensity_low)) < 1e-3 * g.intensity_high


def test_lesion_mask_helper_is_inside_the_phantom():
    assert (phantom_brain()[lesion_mask() > 0] > 0).all()


def test_mni_centre_constant_matches_the_template():
    from usbrain.data.cohort import load_template
    from usbrain.tasks.common import MNI_BRAIN_CENTRE_MM

    assert np.abs(load_template().centre - MNI_BRAIN_CENTRE_MM).max() < 0.5
