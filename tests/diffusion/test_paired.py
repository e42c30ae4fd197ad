from __future__ import annotations

import torch

from tests.conftest import micro_config
from usbrain.config import Coupling
from usbrain.diffusion.paired import PairedObjective, Stage, brain_condition, lesion_condition
from usbrain.diffusion.schedule import NoiseSchedule, q_sample, x0_from_eps
from usbrain.models.denoiser import PairedDenoiser

S = NoiseSchedule.linear(100, 1e-4, 2e-2)


def inputs(n=4, keep=1.0):
    g = torch.Generator().manual_seed(0)
    z = lambda: torch.randn(n, 3, 8, 8, 8, generator=g)  # noqa: E731
    return {
        "x0": z(), "m0": z(), "t": torch.tensor([0, 30, 60, 99])[:n], "eps_x": z(),
        "eps_m": z(), "keep": torch.full((n,), keep),
    }  # fmt: skip


def objective(coupling=Coupling.ESTIMATE):
    torch.manual_seed(0)
    denoiser = PairedDenoiser(micro_config().unet, 3, independent=coupling is Coupling.NONE)
    with torch.no_grad():  # MONAI zero-initialises output layers, which would hide gradient paths
        for p in denoiser.parameters():
            p.normal_(0, 0.1)
    return PairedObjective(denoiser, S, clip=5.0, coupling=coupling)


def test_lesion_condition_is_the_clamped_one_step_estimate():
    m_t, eps = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    t = torch.tensor([3, 99])
    expected = x0_from_eps(S, m_t, t, eps).clamp(-5, 5)
    torch.testing.assert_close(lesion_condition(S, m_t, t, eps, 5.0), expected)
    assert lesion_condition(S, m_t, t, eps, 5.0).abs().max() <= 5.0


def test_losses_match_a_hand_written_pass():
    obj = objective()
    b = inputs()
    out = obj(**b)
    x_t, m_t = q_sample(S, b["x0"], b["t"], b["eps_x"]), q_sample(S, b["m0"], b["t"], b["eps_m"])
    eps_m_hat = obj.denoiser.lesion(torch.cat([m_t, x_t], 1), b["t"])
    m0_hat = x0_from_eps(S, m_t, b["t"], eps_m_hat).clamp(-5, 5)
    eps_x_hat = obj.denoiser.brain(torch.cat([x_t, m0_hat], 1), b["t"])
    torch.testing.assert_close(out["loss_lesion"], ((eps_m_hat - b["eps_m"]) ** 2).mean())
    torch.testing.assert_close(out["loss_brain"], ((eps_x_hat - b["eps_x"]) ** 2).mean())
    torch.testing.assert_close(out["loss"], out["loss_lesion"] + out["loss_brain"])


def test_brain_loss_does_not_train_the_lesion_model_through_the_condition():
    obj = objective()
    obj(**inputs())["loss"].backward()
    with_both = {n: p.grad.clone() for n, p in obj.denoiser.lesion.named_parameters()}
    obj.zero_grad()
    obj.stage = Stage.LESION
    obj(**inputs())["loss"].backward()
    for n, p in obj.denoiser.lesion.named_parameters():
        torch.testing.assert_close(p.grad, with_both[n])  # m0_hat is detached


def test_condition_dropout_zeroes_the_brain_condition():
    obj = objective()
    dropped = obj(**inputs(keep=0.0))["loss_brain"]
    b = inputs()
    x_t = q_sample(S, b["x0"], b["t"], b["eps_x"])
    eps_x_hat = obj.denoiser.brain(torch.cat([x_t, torch.zeros_like(x_t)], 1), b["t"])
    torch.testing.assert_close(dropped, ((eps_x_hat - b["eps_x"]) ** 2).mean())


def test_staged_brain_step_leaves_the_lesion_model_without_gradients():
    obj = objective()
    obj.stage = Stage.BRAIN
    out = obj(**inputs())
    out["loss"].backward()
    assert all(p.grad is None for p in obj.denoiser.lesion.parameters())
    assert any(p.grad is not None for p in obj.denoiser.brain.parameters())


def test_brain_condition_of_each_coupling():
    m_t, eps = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    t = torch.tensor([3, 99])
    estimate = brain_condition(Coupling.ESTIMATE, S, m_t, t, eps, 5.0)
    torch.testing.assert_close(estimate, lesion_condition(S, m_t, t, eps, 5.0))
    assert torch.equal(brain_condition(Coupling.NOISY, S, m_t, t, eps, 5.0), m_t)
    assert torch.equal(brain_condition(Coupling.NONE, S, m_t, t, eps, 5.0), torch.zeros_like(m_t))


def test_noisy_coupling_conditions_the_brain_model_on_the_noisy_mask():
    obj = objective(Coupling.NOISY)
    b = inputs()
    out = obj(**b)
    x_t, m_t = q_sample(S, b["x0"], b["t"], b["eps_x"]), q_sample(S, b["m0"], b["t"], b["eps_m"])
    eps_x_hat = obj.denoiser.brain(torch.cat([x_t, m_t], 1), b["t"])
    torch.testing.assert_close(out["loss_brain"], ((eps_x_hat - b["eps_x"]) ** 2).mean())


def test_independent_models_see_nothing_of_the_other_chain():
    obj = objective(Coupling.NONE)
    b = inputs()
    out = obj(**b)
    x_t, m_t = q_sample(S, b["x0"], b["t"], b["eps_x"]), q_sample(S, b["m0"], b["t"], b["eps_m"])
    zeros = torch.zeros_like(x_t)
    eps_m_hat = obj.denoiser.lesion(torch.cat([m_t, zeros], 1), b["t"])
    eps_x_hat = obj.denoiser.brain(torch.cat([x_t, zeros], 1), b["t"])
    torch.testing.assert_close(out["loss_lesion"], ((eps_m_hat - b["eps_m"]) ** 2).mean())
    torch.testing.assert_close(out["loss_brain"], ((eps_x_hat - b["eps_x"]) ** 2).mean())
