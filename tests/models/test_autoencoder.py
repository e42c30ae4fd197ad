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


def test_tiled_coding_matches_whole_volume_coding():
    torch.manual_seed(0)
    cfg = AutoencoderConfig(channels=(8, 8), num_res_blocks=1, norm_num_groups=4)
    ae = Autoencoder(cfg).eval()
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        z = ae.encode(x)
        # One window covering the volume is the whole-volume pass.
        torch.testing.assert_close(ae.encode_tiled(x, tile=16), z)
        torch.testing.assert_close(ae.decode_tiled(z, tile=16), ae.decode(z))
        # Smaller windows give the same shapes; how close the values are (GroupNorm statistics
        # are per window) is measured on a trained model by bench/memory.py.
        zt = ae.encode_tiled(x, tile=8)
        xt = ae.decode_tiled(z, tile=8)
    assert zt.shape == z.shape and xt.shape == x.shape
    assert torch.isfinite(zt).all() and torch.isfinite(xt).all()


def test_tiled_encoding_runs_an_all_zero_window_once_and_is_unchanged_by_it():
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(channels=(8, 8), num_res_blocks=1, norm_num_groups=4))
    ae.eval().scale_factor.fill_(1.7)
    calls = []
    net_encode = ae.net.encode
    ae.net.encode = lambda p: (calls.append(bool(p.any())), net_encode(p))[1]
    x = torch.zeros(1, 1, 32, 32, 32)
    x[..., 20:, 20:, 20:] = torch.rand(12, 12, 12)  # one corner has content, the rest is empty
    with torch.no_grad():
        for volume in (torch.zeros_like(x), x):
            calls.clear()
            plain = sliding_window_inference(
                volume, (16,) * 3, 1, lambda p: net_encode(p)[0], 0.5, mode="gaussian"
            )
            assert torch.equal(ae.encode_tiled(volume, tile=8, overlap=0.5), plain * 1.7)
            # 27 windows: the empty ones are encoded once between them
            assert calls.count(False) == 1
    assert calls.count(True) == 8  # the windows that reach the corner


def test_initial_log_variance_starts_a_narrow_posterior():
    cfg = AutoencoderConfig(
        channels=(8, 8), num_res_blocks=1, norm_num_groups=4, initial_log_variance=-8.0
    )
    torch.manual_seed(0)
    _, sigma = Autoencoder(cfg).net.encode(torch.zeros(1, 1, 8, 8, 8))
    assert sigma.max() < 0.05  # exp(-8 / 2) ≈ 0.018, MONAI's default starts near 1
