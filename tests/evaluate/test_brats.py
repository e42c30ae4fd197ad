from __future__ import annotations

import numpy as np
import pytest

from usbrain.evaluate.brats import inpainting_scores, normalise, ssim_map


def _case():
    """A (6, 16, 16) scan of 100 with planes 2 and 3 inpainted (truth 100 and 50 there)."""
    target = np.full((6, 16, 16), 100.0)
    target[3] = 50.0
    mask = np.zeros(target.shape, np.uint8)
    mask[2:4] = 1
    return target, mask


def test_hand_computed_example():
    target, mask = _case()
    prediction = 0.8 * target  # 80 and 40 where the truth is 100 and 50
    scores = inpainting_scores(prediction, target, mask)
    # The voided scan (mask zeroed) has percentiles 0 and 100: truth 1 and 0.5, prediction 0.8
    # and 0.4 after normalisation; each plane is constant, so its SSIM is the luminance term
    # with the dynamic range 1 (C1 = 1e-4) and no contrast term.
    ssim_2 = (2 * 0.8 * 1.0 + 1e-4) / (0.8**2 + 1.0 + 1e-4)
    ssim_3 = (2 * 0.4 * 0.5 + 1e-4) / (0.4**2 + 0.5**2 + 1e-4)
    assert scores["ssim"] == pytest.approx((ssim_2 + ssim_3) / 2, abs=1e-9)
    assert scores["mse"] == pytest.approx((0.2**2 + 0.1**2) / 2)
    assert scores["psnr"] == pytest.approx(10 * np.log10(1 / 0.025))  # 16.02 dB
    assert scores["psnr_range"] == pytest.approx(10 * np.log10(0.5**2 / 0.025))  # 10 dB


def test_a_perfect_fill_and_clipping_at_the_voided_scans_percentiles():
    target, mask = _case()
    perfect = inpainting_scores(target.copy(), target, mask)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["mse"] == 0.0
    assert perfect["psnr"] == float("inf")
    too_bright = target.copy()
    too_bright[2] = 150.0  # above the voided scan's 99.5th percentile: clipped to 1, as 100 is
    assert inpainting_scores(too_bright, target, mask)["mse"] == 0.0
    outside = target.copy()
    outside[0] = 0.0  # what lies outside the mask is not scored
    assert inpainting_scores(outside, target, mask) == perfect


def test_normalisation_and_the_ssim_map_follow_the_protocol():
    voided = np.arange(1000, dtype=float)
    low, high = np.percentile(voided, [0.5, 99.5])
    np.testing.assert_allclose(normalise(np.array([low, high, 2000.0]), voided), [0, 1, 1])
    assert normalise(np.array([-5.0, 0.0]), voided - 100).tolist()[1] == 0.0  # lower bound ≥ 0
    rng = np.random.default_rng(0)
    a = rng.random((2, 20, 20))
    assert np.allclose(ssim_map(a, a), 1.0)
    b = a.copy()
    b[1] = rng.random((20, 20))  # planes are scored apart: the first one is untouched
    assert np.allclose(ssim_map(b, a)[0], 1.0) and ssim_map(b, a)[1].mean() < 0.5
    with pytest.raises(ValueError, match="empty"):
        inpainting_scores(a, a, np.zeros(a.shape))
