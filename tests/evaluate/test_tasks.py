from __future__ import annotations

import math

import numpy as np

from tests.conftest import lesioned_phantom
from usbrain.evaluate.tasks import heal_scores, lesion_scores


def _case():
    return lesioned_phantom()


def test_perfect_heal_and_untouched_input():
    healthy, sick, mask = _case()
    perfect = heal_scores(healthy, sick, healthy, mask)
    assert perfect["mae_lesion_output"] == 0 and perfect["mae_ratio"] == 0
    assert perfect["psnr_outside"] == math.inf  # healthy == sick outside the lesion
    untouched = heal_scores(sick, sick, healthy, mask)
    assert untouched["mae_ratio"] == 1.0
    expected = np.abs(sick - healthy)[mask > 0].mean()
    assert math.isclose(untouched["mae_lesion_input"], expected, rel_tol=1e-5)


def test_lesion_scores_hand_computed():
    healthy, sick, mask = _case()
    s = lesion_scores(sick, healthy, mask, truth=sick)
    assert math.isclose(s["intensity_ratio"], 300.0 / healthy[mask > 0].mean(), rel_tol=1e-5)
    assert s["mae_lesion_output"] == 0 and s["psnr_outside"] == math.inf
    shifted = sick + 10.0 * (healthy > 0)  # a uniform shift of 10 everywhere in the brain
    psnr = lesion_scores(shifted, healthy, mask)["psnr_outside"]
    assert math.isclose(psnr, 10 * math.log10(healthy.max() ** 2 / 100.0), rel_tol=1e-6)
