from __future__ import annotations

import math

import torch

from usbrain.metrics import dice, psnr, ssim


def test_psnr_of_a_known_shift():
    x = torch.rand(1, 1, 8, 8, 8) * 0.5
    # MSE = 0.1² → PSNR = 10 log10(1 / 0.01) = 20 dB
    assert abs(float(psnr(x + 0.1, x)) - 20.0) < 1e-4


def test_ssim_identity_and_degradation():
    x = torch.rand(1, 1, 16, 16, 16)
    assert abs(float(ssim(x, x)) - 1.0) < 1e-6
    assert float(ssim(x.flip(2), x)) < 0.5


def test_dice_of_shifted_cubes_and_empty_masks():
    a = torch.zeros(1, 1, 10, 10, 10)
    b = torch.zeros(1, 1, 10, 10, 10)
    a[..., 0:4, 0:4, 0:4] = 1  # 64 voxels
    b[..., 2:6, 0:4, 0:4] = 1  # 64 voxels, 32 shared
    assert math.isclose(float(dice(a, b)), 2 * 32 / 128)
    empty = torch.zeros_like(a)
    assert float(dice(empty, empty)) == 1.0  # nothing to find, nothing found
    assert float(dice(a, empty)) == 0.0
