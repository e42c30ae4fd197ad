"""Mask helpers shared by tasks, benchmark, training and demo (usbrain.data.masks)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import cube
from usbrain.data.masks import dilated, fraction_in_brain, lesion_ml, voxel_ml
from usbrain.errors import EmptyReferenceError, ShapeMismatchError

SHAPE = (12, 12, 12)


def test_dilated_grows_by_whole_voxels_in_every_direction():
    m = np.zeros((7, 7, 7), np.uint8)
    m[3, 3, 3] = 1
    assert dilated(m, 0).sum() == 1 and dilated(m, 1).sum() == 27 and dilated(m, 2).sum() == 125
    assert dilated(m, 0).dtype == bool


def test_voxel_and_lesion_volumes():
    assert math.isclose(voxel_ml(4.0), 0.064)
    assert math.isclose(voxel_ml((1.0, 2.0, 0.5)), 0.001)
    assert math.isclose(lesion_ml(cube((0, 0, 0), 4), 4.0), 4.096)
    assert lesion_ml(np.zeros(SHAPE), 2.0) == 0.0


def test_fraction_of_lesion_in_brain():
    brain = np.zeros(SHAPE, bool)
    brain[:, :, :6] = True
    lesion = cube((0, 0, 4), 4)  # z 4..7: half of it in the brain
    assert fraction_in_brain(lesion, brain) == 0.5
    assert fraction_in_brain(cube((0, 0, 0), 3), brain) == 1.0
    assert fraction_in_brain(cube((0, 0, 8), 3), brain) == 0.0
    with pytest.raises(EmptyReferenceError, match="lesion mask is empty"):
        fraction_in_brain(np.zeros(SHAPE), brain)


def test_fraction_in_brain_refuses_another_grid():
    with pytest.raises(ShapeMismatchError, match=r"\(12, 12, 12\).*\(12, 12, 10\)"):
        fraction_in_brain(cube((0, 0, 0), 4), cube((0, 0, 0), 4, shape=(12, 12, 10)))
