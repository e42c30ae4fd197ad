from __future__ import annotations

import numpy as np
import pytest

from usbrain.evaluate.paired import paired_scores, ssim_map_3d


def test_regions_split_the_error_where_it_is():
    truth = np.full((12, 12, 12), 100.0)
    mask = np.zeros(truth.shape, np.uint8)
    mask[4:8, 4:8, 4:8] = 1
    output = truth.copy()
    output[mask > 0] = 50.0  # wrong inside the lesion only: half the truth's top
    s = paired_scores(output, truth, mask)
    assert s["psnr_healthy"] == float("inf") and s["psnr_lesion"] == pytest.approx(
        10 * np.log10(1 / 0.25)
    )
    fraction = mask.mean()
    assert s["psnr_full"] == pytest.approx(10 * np.log10(1 / (0.25 * fraction)))
    assert s["ssim_lesion"] < s["ssim_full"] < s["ssim_healthy"] <= 1.0
    assert paired_scores(truth, truth, mask)["ssim_full"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        paired_scores(output, truth, np.zeros_like(mask))


def test_ssim_of_constant_volumes_is_the_luminance_term():
    a, b = np.full((8, 8, 8), 0.8), np.ones((8, 8, 8))
    expected = (2 * 0.8 + 1e-4) / (0.64 + 1 + 1e-4)
    np.testing.assert_allclose(ssim_map_3d(a, b), expected)
