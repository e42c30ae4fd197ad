from __future__ import annotations

import pytest
import torch
from torch import nn

from usbrain.config import AutoencoderConfig, load_config
from usbrain.models.autoencoder import Autoencoder, kl_divergence

SMALL = AutoencoderConfig(channels=(8, 8, 8), num_res_blocks=1, norm_num_groups=4)


def test_shapes_and_scale_factor():
    ae = Autoencoder(SMALL).eval()
    x = torch.rand(2, 1, 16, 16, 16)
    z = ae.encode(x)
    assert z.shape == (2, 3, 4, 4, 4)
    ae.scale_factor.fill_(2.0)
    torch.testing.assert_close(ae.encode(x), 2 * z)
    assert ae.decode(ae.encode(x)).shape == x.shape
    # decode divides by the scale: scaled latents decode to the same volume
    torch.testing.assert_close(ae.decode(2 * z), Autoencoder.decode(ae, 2 * z))


def test_kl_of_standard_normal_is_zero_and_positive_otherwise():
    mu, sigma = torch.zeros(2, 3, 4, 4, 4), torch.ones(2, 3, 4, 4, 4)
    assert float(kl_divergence(mu, sigma)) == 0.0
    # one latent voxel with mu = 1: KL = 0.5 * 1² per sample
    mu[:, 0, 0, 0, 0] = 1.0
    assert abs(float(kl_divergence(mu, sigma)) - 0.5) < 1e-6


def test_paper_autoencoder_size():
    ae = Autoencoder(load_config("paper").autoencoder)
    n = sum(p.numel() for p in ae.parameters())
    assert 13.7e6 < n < 13.9e6  # the paper preset: 13.8 M parameters, 8× downsampling
    assert load_config("paper").autoencoder.downsampling == 8


@pytest.mark.parametrize("rows", [1, 3, 5, None])
def test_streamed_coding_computes_the_whole_volume_result(rows):
    torch.manual_seed(0)
    # three levels (two down- and upsamplings), channel changes, two residual blocks a level
    cfg = AutoencoderConfig(channels=(8, 16, 16), num_res_blocks=2, norm_num_groups=4)
    ae = Autoencoder(cfg).eval()
    ae.scale_factor.fill_(1.7)
    with torch.no_grad():
        for m in ae.modules():  # GroupNorm's affine away from its (1, 0) initialisation
            if isinstance(m, nn.GroupNorm):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
        x = torch.rand(1, 1, 24, 32, 20)  # not cubic, D not a multiple of the slab
        z = ae.encode(x)
        torch.testing.assert_close(ae.encode_streamed(x, rows), z, atol=1e-5, rtol=0)
        torch.testing.assert_close(ae.decode_streamed(z, rows), ae.decode(z), atol=1e-5, rtol=0)


def test_initial_log_variance_starts_a_narrow_posterior():
    cfg = AutoencoderConfig(
        channels=(8, 8), num_res_blocks=1, norm_num_groups=4, initial_log_variance=-8.0
    )
    torch.manual_seed(0)
    _, sigma = Autoencoder(cfg).net.encode(torch.zeros(1, 1, 8, 8, 8))
    assert sigma.max() < 0.05  # exp(-8 / 2) ≈ 0.018, MONAI's default starts near 1
