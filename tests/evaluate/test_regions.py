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


def test_region_gradient_of_a_ramp_and_of_a_blurred_edge():
    from usbrain.evaluate.regions import region_gradient

    i = np.arange(8, dtype=np.float64)[:, None, None] * np.ones((8, 8, 8))
    everywhere = np.ones((8, 8, 8), bool)
    assert region_gradient(3.0 * i, everywhere) == 3.0
    edge = (i > 3.5).astype(np.float64)  # a step of 1: central differences 0.5 on two slabs
    assert region_gradient(edge, everywhere) == 2 * 0.5 / 8
    assert math.isnan(region_gradient(edge, ~everywhere))
