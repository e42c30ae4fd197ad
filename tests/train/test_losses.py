import pytest
import torch
from monai.metrics import SSIMMetric

from usbrain.train.losses import gaussian_window, ssim_loss


def test_gaussian_window_is_normalised_and_symmetric():
    w = gaussian_window(11, 1.5)
    assert w.shape == (11,)
    assert float(w.sum()) == pytest.approx(1.0)
    assert torch.equal(w, w.flip(0))
    assert int(w.argmax()) == 5


def test_ssim_loss_equals_one_minus_monai_ssim():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 20, 18, 16, generator=g)
    prediction = (target + 0.2 * torch.rand(2, 1, 20, 18, 16, generator=g)).clamp(0, 1)
    reference = SSIMMetric(spatial_dims=3, data_range=1.0)(prediction, target).mean()
    assert float(ssim_loss(prediction, target)) == pytest.approx(1 - float(reference), abs=1e-5)


def test_ssim_loss_is_zero_for_identical_volumes_and_has_gradients():
    target = torch.rand(1, 1, 16, 16, 16)
    assert float(ssim_loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    prediction = torch.zeros_like(target, requires_grad=True)
    ssim_loss(prediction, target).backward()
    assert prediction.grad is not None and float(prediction.grad.abs().sum()) > 0
