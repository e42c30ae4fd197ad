"""Lesion metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import cube
from usbrain.errors import EmptyReferenceError, InputError, ShapeMismatchError
from usbrain.evaluate.lesions import (
    Residual,
    absolute_volume_error_ml,
    lesion_dice,
    relative_volume_error,
    residual_lesion,
)

SHAPE = (12, 12, 12)


def test_dice_of_shifted_cubes():
    a = cube((0, 0, 0), 4)  # 64 voxels
    b = cube((2, 0, 0), 4)  # 64 voxels, 2·4·4 = 32 shared
    assert math.isclose(lesion_dice(a, b), 2 * 32 / (64 + 64))
    c = cube((1, 1, 1), 4)  # 3·3·3 = 27 shared with a
    assert math.isclose(lesion_dice(a, c), 2 * 27 / 128, rel_tol=1e-6)
    assert lesion_dice(a, a) == 1.0
    assert lesion_dice(a, cube((6, 6, 6), 4)) == 0.0  # disjoint


def test_dice_of_empty_masks_is_defined():
    empty = np.zeros(SHAPE, np.uint8)
    assert lesion_dice(empty, empty) == 1.0  # nothing to find, nothing found
    assert lesion_dice(cube((0, 0, 0), 2), empty) == 0.0
    assert lesion_dice(empty, cube((0, 0, 0), 2)) == 0.0


def test_dice_counts_nonzero_voxels_of_any_dtype():
    a = cube((0, 0, 0), 4)
    assert lesion_dice(a.astype(bool), a.astype(np.float32) * 0.7) == 1.0


def test_volumes_and_volume_errors_of_known_cubes():
    target = cube((0, 0, 0), 4)  # 64 voxels
    found = cube((5, 5, 5), 5)  # 125 voxels, elsewhere: only the volume counts here
    assert math.isclose(absolute_volume_error_ml(target, found, 0.064), 61 * 0.064)
    assert math.isclose(absolute_volume_error_ml(found, target, 0.064), 61 * 0.064)
    assert math.isclose(relative_volume_error(target, found), 61 / 64)
    assert math.isclose(relative_volume_error(found, target), 61 / 125)
    assert relative_volume_error(target, target) == 0.0
    empty = np.zeros(SHAPE)
    assert math.isclose(absolute_volume_error_ml(empty, target, 0.5), 32.0)
    with pytest.raises(EmptyReferenceError, match="target mask is empty"):
        relative_volume_error(empty, target)


def test_residual_lesion_after_healing():
    original = cube((4, 4, 4), 4)  # 64 voxels
    healed = np.zeros(SHAPE, np.uint8)
    assert residual_lesion(original, healed, 0.064) == Residual(ml=0.0, fraction=0.0)
    # 8 voxels left inside the lesion, 4 in its 1-voxel ring, 1 far away (not counted)
    found = cube((5, 5, 5), 2)
    found[3, 4, 4:8] = 1
    found[11, 11, 11] = 1
    left = residual_lesion(original, found, 0.5, dilation=1)
    assert math.isclose(left.ml, 12 * 0.5) and math.isclose(left.fraction, 12 / 64)
    # without dilation only the voxels inside the lesion count
    assert residual_lesion(original, found, 0.5, dilation=0).fraction == 8 / 64
    # nothing healed: the whole lesion is found again
    assert residual_lesion(original, original, 1.0) == Residual(ml=64.0, fraction=1.0)
    with pytest.raises(EmptyReferenceError, match="original mask is empty"):
        residual_lesion(np.zeros(SHAPE), found, 1.0)


@pytest.mark.parametrize(
    "metric",
    [
        lambda a, b: lesion_dice(a, b),
        lambda a, b: absolute_volume_error_ml(a, b, 1.0),
        lambda a, b: relative_volume_error(a, b),
        lambda a, b: residual_lesion(a, b, 1.0),
    ],
)
def test_mismatched_shapes_are_refused(metric):
    a = cube((0, 0, 0), 4)
    b = cube((0, 0, 0), 4, shape=(12, 12, 10))
    with pytest.raises(ShapeMismatchError, match=r"\(12, 12, 12\).*\(12, 12, 10\)") as info:
        metric(a, b)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InputError)
