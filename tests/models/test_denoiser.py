from __future__ import annotations

import torch

from usbrain.config import UNetConfig, load_config
from usbrain.models.denoiser import PairedDenoiser

SMALL = UNetConfig(
    channels=(8, 8), attention_levels=(False, True), num_head_channels=8, norm_num_groups=4
)


def test_each_model_sees_its_condition():
    model = PairedDenoiser(SMALL, latent_channels=3).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # MONAI zero-initialises the output layer: make the nets non-trivial
        for p in model.parameters():
            p.normal_(0, 0.1)
    z = torch.randn(1, 3, 8, 8, 8)
    t = torch.tensor([5])
    base_l = model.eps_lesion(z, t, z)
    base_b = model.eps_brain(z, t, z)
    other = torch.randn_like(z)
    assert not torch.allclose(model.eps_lesion(z, t, other), base_l)  # lesion sees the brain
    assert not torch.allclose(model.eps_brain(z, t, other), base_b)  # brain sees m0_hat
    assert model.lesion is not model.brain


def test_paper_unet_size():
    model = PairedDenoiser(load_config("paper").unet, 3)
    n = sum(p.numel() for p in model.brain.parameters())
    assert 46.5e6 < n < 46.8e6  # design.md §3b: 46.6 M parameters per U-Net
