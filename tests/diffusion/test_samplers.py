from __future__ import annotations

import itertools
import math

import pytest
import torch

from usbrain.config import SamplerKind
from usbrain.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverPP2M,
    make_sampler,
    trailing_timesteps,
)
from usbrain.diffusion.schedule import NoiseSchedule, q_sample

S = NoiseSchedule.linear(1024, 1e-4, 2e-2)


def ab(t: int) -> float:
    return 1.0 if t < 0 else S.alphas_cumprod[t].item()


def test_trailing_timesteps_start_at_pure_noise_and_descend():
    steps = trailing_timesteps(1024, 300)
    assert steps[0] == 1023 and len(steps) == 300 and len(set(steps)) == 300
    assert all(a > b for a, b in itertools.pairwise(steps)) and steps[-1] >= 0
    assert trailing_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError):
        trailing_timesteps(10, 11)


def test_previous_timestep_and_edit_start():
    s = DDIMSampler(S)
    s.set_timesteps(4)  # 1023, 767, 511, 255
    assert [s.previous_timestep(t) for t in s.timesteps] == [767, 511, 255, -1]
    assert s.timesteps_from(600) == [511, 255]
    with pytest.raises(ValueError):
        s.timesteps_from(100)


def test_ddim_step_hand_computed():
    s = DDIMSampler(S, eta=0.0)
    s.set_timesteps(4)
    z = torch.full((1, 1, 2, 2, 2), 0.7)
    eps = torch.full_like(z, -0.3)
    out = s.step(eps, 767, z)
    a_t, a_p = ab(767), ab(511)
    x0 = (0.7 - math.sqrt(1 - a_t) * -0.3) / math.sqrt(a_t)
    prev = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * -0.3
    torch.testing.assert_close(out.pred_original_sample, torch.full_like(z, x0))
    torch.testing.assert_close(out.prev_sample, torch.full_like(z, prev))


def test_ddim_with_true_noise_follows_the_forward_process():
    """Given the exact noise, DDIM (eta 0) lands on q_sample(x0, t_prev, eps): no drift."""
    s = DDIMSampler(S)
    s.set_timesteps(8)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, 4, generator=g), torch.randn(2, 3, 4, 4, 4, generator=g)
    z = q_sample(S, x0, torch.full((2,), s.timesteps[0]), eps)
    for t in s.timesteps:
        out = s.step(eps, t, z)
        t_prev = s.previous_timestep(t)
        expected = x0 if t_prev < 0 else q_sample(S, x0, torch.full((2,), t_prev), eps)
        torch.testing.assert_close(out.prev_sample, expected, atol=2e-4, rtol=1e-4)
        z = out.prev_sample


def test_ddpm_step_hand_computed():
    s = DDPMSampler(S)
    s.set_timesteps(2)  # 1023, 511
    z, eps = torch.full((1, 1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1, 1), 0.2)
    out = s.step(eps, 1023, z, torch.Generator().manual_seed(3))
    noise = torch.randn((1, 1, 1, 1, 1), generator=torch.Generator().manual_seed(3)).item()
    a_t, a_p = ab(1023), ab(511)
    beta = 1 - a_t / a_p
    x0 = (0.5 - math.sqrt(1 - a_t) * 0.2) / math.sqrt(a_t)
    mean = (
        math.sqrt(a_p) * beta / (1 - a_t) * x0 + math.sqrt(1 - beta) * (1 - a_p) / (1 - a_t) * 0.5
    )
    std = math.sqrt(beta * (1 - a_p) / (1 - a_t))
    assert out.prev_sample.item() == pytest.approx(mean + std * noise, rel=1e-4)
    # The last step returns the clean estimate without noise.
    last = s.step(eps, 511, z, torch.Generator().manual_seed(3))
    torch.testing.assert_close(last.prev_sample, last.pred_original_sample)


def test_ddim_eta_one_equals_ddpm_posterior():
    """DDIM with eta = 1 samples the same posterior as DDPM: same noise, same result."""
    ddim, ddpm = make_sampler(SamplerKind.DDIM, S, eta=1.0), make_sampler(SamplerKind.DDPM, S)
    for s in (ddim, ddpm):
        s.set_timesteps(16)
    g = torch.Generator().manual_seed(1)
    z, eps = torch.randn(1, 3, 4, 4, 4, generator=g), torch.randn(1, 3, 4, 4, 4, generator=g)
    for t in (1023, 511, 127):
        a = ddim.step(eps, t, z, torch.Generator().manual_seed(7)).prev_sample
        b = ddpm.step(eps, t, z, torch.Generator().manual_seed(7)).prev_sample
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_dpm_solver_first_step_is_ddim_and_exact_on_a_clean_trajectory():
    dpm, ddim = DPMSolverPP2M(S), DDIMSampler(S)
    for s in (dpm, ddim):
        s.set_timesteps(10)
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(1, 3, 4, 4, 4, generator=g), torch.randn(1, 3, 4, 4, 4, generator=g)
    z = q_sample(S, x0, torch.tensor([1023]), eps)
    first = dpm.step(eps, 1023, z)
    torch.testing.assert_close(first.prev_sample, ddim.step(eps, 1023, z).prev_sample)
    # With the true noise every estimate is x0, so the second-order term vanishes and the
    # solver stays on the forward process.
    z = first.prev_sample
    for t in dpm.timesteps[1:]:
        out = dpm.step(eps, t, z)
        t_prev = dpm.previous_timestep(t)
        expected = x0 if t_prev < 0 else q_sample(S, x0, torch.tensor([t_prev]), eps)
        torch.testing.assert_close(out.prev_sample, expected, atol=2e-4, rtol=1e-4)
        z = out.prev_sample


def test_dpm_solver_second_order_step_hand_computed():
    s = DPMSolverPP2M(S)
    s.set_timesteps(4)  # 1023, 767, 511, 255
    z1, e1 = torch.full((1, 1, 1, 1, 1), 1.0), torch.full((1, 1, 1, 1, 1), 0.5)
    s.step(e1, 1023, z1)
    z2, e2 = torch.full((1, 1, 1, 1, 1), 0.8), torch.full((1, 1, 1, 1, 1), 0.1)
    out = s.step(e2, 767, z2)

    def lam(t):
        return 0.5 * math.log(ab(t) / (1 - ab(t)))

    x0_1 = (1.0 - math.sqrt(1 - ab(1023)) * 0.5) / math.sqrt(ab(1023))
    x0_2 = (0.8 - math.sqrt(1 - ab(767)) * 0.1) / math.sqrt(ab(767))
    h = lam(511) - lam(767)
    r = (lam(767) - lam(1023)) / h
    d = (1 + 1 / (2 * r)) * x0_2 - x0_1 / (2 * r)
    expected = (
        math.sqrt((1 - ab(511)) / (1 - ab(767))) * 0.8 - math.sqrt(ab(511)) * math.expm1(-h) * d
    )
    assert out.prev_sample.item() == pytest.approx(expected, rel=1e-5)
    # A fresh copy has no memory: its step is first order again.
    fresh = s.fresh()
    assert fresh._last is None and fresh.timesteps == s.timesteps


@pytest.mark.parametrize("kind", list(SamplerKind))
def test_exact_denoiser_recovers_a_gaussian_data_distribution(kind):
    """With the exact ε̂ of data N(μ, σ²), the whole chain from noise must end at N(μ, σ²):
    a check of the samplers independent of any trained model."""
    schedule = NoiseSchedule.linear(1024, 1e-4, 2e-2)
    mu, sigma = 1.5, 0.3

    def exact_eps(x: torch.Tensor, t: int) -> torch.Tensor:
        a2 = schedule.alphas_cumprod[t].double()
        return ((1 - a2).sqrt() * (x.double() - a2.sqrt() * mu) / (a2 * sigma**2 + 1 - a2)).float()

    sampler = make_sampler(kind, schedule, 0.0)
    sampler.set_timesteps(50)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, generator=g)
    for t in sampler.timesteps:
        x = sampler.step(exact_eps(x, t), t, x, g).prev_sample
    assert abs(float(x.mean()) - mu) < 0.02
    assert 0.8 * sigma < float(x.std()) < 1.05 * sigma  # 50 steps discretise: slightly narrow


def test_edit_timesteps_are_the_authors_loop_and_a_sampler_can_use_them():
    from usbrain.diffusion.samplers import edit_timesteps

    assert edit_timesteps(300, 1) == list(range(299, -1, -1))
    assert edit_timesteps(10, 4) == [8, 4, 0]
    with pytest.raises(ValueError):
        edit_timesteps(10, 0)
    s = DDIMSampler(S)
    s.use_timesteps(edit_timesteps(300, 1))
    assert len(s.timesteps) == 300 and s.previous_timestep(0) == -1
    assert s.previous_timestep(299) == 298
    for bad in ([3, 3, 1], [1, 2], [1024, 5], []):
        with pytest.raises(ValueError):
            s.use_timesteps(bad)
