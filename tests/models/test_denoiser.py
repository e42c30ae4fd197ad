from __future__ import annotations

import pytest
import torch

from usbrain.config import UNetConfig, load_config
from usbrain.models.denoiser import AutocastDenoiser, CompiledDenoiser, PairedDenoiser

SMALL = UNetConfig(
    channels=(8, 8), attention_levels=(False, True), num_head_channels=8, norm_num_groups=4
)


def _random_model() -> PairedDenoiser:
    """:data:`SMALL` U-Nets in eval mode with seeded N(0, 0.1) weights: MONAI zero-initialises
    the output layers, which would make every prediction trivially equal."""
    torch.manual_seed(0)
    model = PairedDenoiser(SMALL, latent_channels=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def test_each_model_sees_its_condition():
    model = PairedDenoiser(SMALL, latent_channels=3).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # MONAI zero-initialises the output layer: make the nets non-trivial
        for p in model.parameters():
            p.normal_(0, 0.1)
    z = torch.randn(1, 3, 8, 8, 8)
    t = torch.tensor([5])
    base_l = model.predict_lesion(z, t, z)
    base_b = model.predict_brain(z, t, z)
    other = torch.randn_like(z)
    assert not torch.allclose(model.predict_lesion(z, t, other), base_l)  # lesion sees the brain
    assert not torch.allclose(model.predict_brain(z, t, other), base_b)  # brain sees m0_hat
    assert model.lesion is not model.brain


def test_paper_unet_size():
    model = PairedDenoiser(load_config("paper").unet, 3)
    n = sum(p.numel() for p in model.brain.parameters())
    assert 46.5e6 < n < 46.8e6  # the paper preset: 46.6 M parameters per U-Net


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = PairedDenoiser(SMALL, latent_channels=3)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0, 0.1)
    recompute = PairedDenoiser(SMALL, latent_channels=3, checkpointing=True)
    recompute.load_state_dict(plain.state_dict())  # same parameter names
    z, t = torch.randn(2, 3, 8, 8, 8), torch.tensor([5, 50])
    calls = {"plain": 0, "recompute": 0}
    for name, model in (("plain", plain), ("recompute", recompute)):
        inner = model.brain.down_blocks[0].resnets[0]
        inner.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    grads = []
    for model in (plain, recompute):
        model.zero_grad()
        loss = model.predict_brain(z, t, z).square().mean() + model.predict_lesion(z, t, z).mean()
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    assert calls == {"plain": 1, "recompute": 2}  # run again in the backward pass


def test_autocast_denoiser_returns_float32_close_to_full_precision():
    model = _random_model()
    with torch.no_grad():
        fast = AutocastDenoiser(model, torch.bfloat16)
        z, t = torch.randn(1, 3, 8, 8, 8), torch.tensor([7])
        for name in ("predict_lesion", "predict_brain"):
            full, half = getattr(model, name)(z, t, z), getattr(fast, name)(z, t, z)
            assert half.dtype == torch.float32
            assert (half - full).abs().mean() < 0.02 * full.abs().mean()


def test_channels_last_gives_the_same_predictions():
    model = _random_model()
    z, c, t = torch.randn(2, 3, 8, 8, 8), torch.randn(2, 3, 8, 8, 8), torch.tensor([5, 50])
    with torch.no_grad():
        plain = model.predict_lesion(z, t, c), model.predict_brain(z, t, c)
        model.to_channels_last()
        fast = model.predict_lesion(z, t, c), model.predict_brain(z, t, c)
    assert model.lesion.conv_in.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    for a, b in zip(plain, fast, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # compiling two small U-Nets takes tens of seconds on 2 cores
def test_compiled_denoiser_gives_the_eager_predictions():
    model = _random_model()
    z, c, t = torch.randn(1, 3, 8, 8, 8), torch.randn(1, 3, 8, 8, 8), torch.tensor([5])
    with torch.no_grad():
        eager = model.predict_lesion(z, t, c), model.predict_brain(z, t, c)
        compiled = CompiledDenoiser(model)
        fast = compiled.predict_lesion(z, t, c), compiled.predict_brain(z, t, c)
    for a, b in zip(eager, fast, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
