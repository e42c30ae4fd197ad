from __future__ import annotations

import math

import numpy as np

from usbrain.evaluate.regions import region_mae, region_mean, region_psnr


def test_region_metrics_hand_computed():
    a = np.zeros((4, 4, 4))
    b = np.zeros((4, 4, 4))
    b[0] = 0.5  # a known shift on one slab
    slab = np.zeros((4, 4, 4), bool)
    slab[0] = True
    assert region_mae(a, b, slab) == 0.5 and region_mae(a, b, ~slab) == 0.0
    assert math.isclose(region_psnr(a, b, slab, 1.0), 10 * math.log10(1 / 0.25))
    assert region_psnr(a, b, ~slab, 1.0) == math.inf
    assert math.isclose(region_psnr(a, b, np.ones_like(slab), 2.0), 10 * math.log10(4 / (0.25 / 4)))
    assert region_mean(b, slab) == 0.5
    assert math.isnan(region_mae(a, b, np.zeros_like(slab)))
