"""The slab-wise autoencoder pass (whole-volume exactness is tested through
``Autoencoder.encode_streamed`` in test_autoencoder.py)."""

from __future__ import annotations

import pytest
import torch

from usbrain.models import streaming


def test_attention_blocks_are_refused_by_the_streamed_path():
    from monai.networks.nets import AutoencoderKL

    net = AutoencoderKL(
        spatial_dims=3,
        channels=(8, 8),
        latent_channels=3,
        num_res_blocks=1,
        norm_num_groups=4,
        attention_levels=(False, True),
    ).eval()
    with pytest.raises(NotImplementedError, match="does not stream"):
        streaming.encode_mean(net, torch.rand(1, 1, 8, 8, 8))


def test_group_norm_statistics_over_slabs_are_the_whole_tensors():
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, 8, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.5)
        norm.bias.normal_()
        x = torch.randn(2, 8, 7, 5, 6) * 3 + 1
        stats = streaming.GroupNormStats(norm, x, rows=2)
        torch.testing.assert_close(stats.apply(x[:, :, 3:5]), norm(x)[:, :, 3:5])
