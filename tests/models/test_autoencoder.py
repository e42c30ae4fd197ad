from __future__ import annotations

import torch

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
    assert 13.7e6 < n < 13.9e6  # design.md §3b: 13.8 M parameters, 8× downsampling
    assert load_config("paper").autoencoder.downsampling == 8
