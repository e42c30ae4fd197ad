"""The scan the edits carry (usbrain.data.scan): a brain known better than found."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import lesion_mask, micro_config, phantom_brain
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import brain_mask
from usbrain.data.scan import Scan
from usbrain.errors import InputError

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SPACE = micro_config("space.size=[24,24,24]", "space.spacing=4.0").space  # 96 mm: the phantom


@pytest.fixture
def void_at_edge() -> tuple[Volume, Volume, np.ndarray]:
    """(scan, mask, brain): a lesion at the brain's edge made black, as a void insertion
    leaves it, and the brain of the scan before."""
    healthy = phantom_brain()
    mask = lesion_mask(centre=(6, 22, 18), radius=4) * (healthy > 0)
    void = np.where(mask > 0, 0.0, healthy).astype(np.float32)
    return Volume(void, AFFINE), Volume(mask.astype(np.uint8), AFFINE), brain_mask(healthy)


def test_a_void_at_the_edge_leaves_the_brain_it_is_found_from(void_at_edge):
    scan, mask, _ = void_at_edge
    with pytest.raises(InputError, match="outside the brain"):
        Scan.load(scan, SPACE, mask)


def test_a_known_brain_keeps_the_lesion_in_it(void_at_edge):
    scan, mask, brain = void_at_edge
    loaded = Scan.load(scan, SPACE, mask, brain)
    assert loaded.brain is brain and loaded.lesion_in_brain == 1.0
    assert loaded.lesion.any()


def test_a_brain_of_another_shape_is_refused(void_at_edge):
    scan, mask, brain = void_at_edge
    with pytest.raises(InputError, match="brain mask has shape"):
        Scan.load(scan, SPACE, mask, brain[1:])
