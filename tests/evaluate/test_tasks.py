from __future__ import annotations

import math

import numpy as np

from tests.conftest import lesioned_phantom
from usbrain.data.masks import dilated
from usbrain.data.preprocess import brain_mask
from usbrain.evaluate.tasks import condition_scores, heal_scores, lesion_scores


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


def test_condition_contrast_hand_computed():
    healthy, sick, mask = _case()
    outside = brain_mask(sick) & ~dilated(mask, 2)
    s = condition_scores(healthy, mask, real=sick)
    assert math.isclose(s["real_contrast"], 300.0 / np.median(sick[outside]), rel_tol=1e-6)
    # no lesion drawn: contrast of the healthy tissue itself, about 1 and above the real one
    expected = healthy[mask > 0].mean() / np.median(healthy[outside])
    assert math.isclose(s["lesion_contrast"], expected, rel_tol=1e-6)
    assert s["lesion_contrast"] > s["real_contrast"]
    assert math.isnan(condition_scores(healthy, np.zeros_like(mask))["lesion_contrast"])
    assert "real_contrast" not in condition_scores(healthy, mask)


def test_sharpness_ratio_is_one_for_the_truth_and_lower_for_a_blurred_fill():
    from scipy import ndimage

    healthy, sick, mask = _case()
    rng = np.random.default_rng(0)
    textured = healthy + rng.normal(0, 20, healthy.shape) * (healthy > 0)
    assert heal_scores(textured, sick, textured, mask)["sharpness_ratio"] == 1.0
    blurred = ndimage.gaussian_filter(textured, 1.5)
    assert heal_scores(blurred, sick, textured, mask)["sharpness_ratio"] < 0.5
    condition = condition_scores(blurred, mask, textured)["sharpness_ratio"]
    assert 0 < condition < 1.0
    # A generated brain in model intensities ([0, 1]) against a real scan in its own units.
    scaled = condition_scores(textured / textured.max(), mask, textured)["sharpness_ratio"]
    assert math.isclose(scaled, 1.0, rel_tol=1e-9)
    assert math.isnan(heal_scores(textured, sick, np.zeros_like(textured), mask)["sharpness_ratio"])
