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


def test_an_upsampling_into_fewer_channels_never_holds_the_upsampled_tensor(monkeypatch):
    from usbrain.config import AutoencoderConfig
    from usbrain.models.autoencoder import Autoencoder

    torch.manual_seed(0)
    # decoder levels (16, 16, 8): the last upsampling feeds a 16 → 8 residual block
    ae = Autoencoder(AutoencoderConfig(channels=(8, 16, 16), num_res_blocks=1, norm_num_groups=4))
    fused = []
    real = streaming.upsample_narrowing_block
    monkeypatch.setattr(
        streaming, "upsample_narrowing_block", lambda *a: (fused.append(1), real(*a))[1]
    )
    with torch.no_grad():
        z = ae.encode(torch.rand(1, 1, 16, 16, 16))
        torch.testing.assert_close(ae.decode_streamed(z, 2), ae.decode(z), atol=1e-5, rtol=0)
    assert fused == [1]
