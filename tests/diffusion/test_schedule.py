from __future__ import annotations

import math

import torch

from usbrain.diffusion.schedule import (
    NoiseSchedule,
    antithetic_timesteps,
    extract,
    q_sample,
    x0_from_eps,
)

S = NoiseSchedule.linear(1024, 1e-4, 2e-2)


def test_linear_schedule_closed_form():
    assert S.betas[0].item() == 1e-4 and abs(S.betas[-1].item() - 2e-2) < 1e-15
    # beta_t = start + (end - start) t / (T - 1); ab_t = prod (1 - beta_s)
    t = 500
    beta = [1e-4 + (2e-2 - 1e-4) * s / 1023 for s in range(t + 1)]
    assert math.isclose(S.alphas_cumprod[t].item(), math.prod(1 - b for b in beta), rel_tol=1e-12)
    assert S.alphas_cumprod[-1].item() < 1e-4  # nearly pure noise at the end


def test_extract_broadcasts_per_sample():
    t = torch.tensor([0, 1023])
    out = extract(S.alphas_cumprod, t, torch.Size([2, 3, 4, 4, 4]))
    assert out.shape == (2, 1, 1, 1, 1) and out.dtype == torch.float32
    assert out[0].item() == S.alphas_cumprod[0].float().item()


def test_q_sample_hand_computed():
    z0, eps = torch.full((1, 1, 2, 2, 2), 2.0), torch.full((1, 1, 2, 2, 2), -1.0)
    t = torch.tensor([10])
    ab = S.alphas_cumprod[10].item()
    expected = math.sqrt(ab) * 2.0 - math.sqrt(1 - ab)
    torch.testing.assert_close(q_sample(S, z0, t, eps), torch.full_like(z0, expected))


def test_x0_from_eps_inverts_q_sample():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(4, 3, 5, 5, 5, generator=g)
    eps = torch.randn(4, 3, 5, 5, 5, generator=g)
    t = torch.tensor([0, 100, 600, 900])
    zt = q_sample(S, z0, t, eps)
    torch.testing.assert_close(x0_from_eps(S, zt, t, eps), z0, atol=1e-4, rtol=1e-4)


def test_antithetic_pairs_and_determinism():
    t = antithetic_timesteps(8, 1024, torch.Generator().manual_seed(1))
    assert t.shape == (8,) and t.dtype == torch.int64
    torch.testing.assert_close(t[:4] + t[4:], torch.full((4,), 1023))
    assert ((t >= 0) & (t < 1024)).all()
    again = antithetic_timesteps(8, 1024, torch.Generator().manual_seed(1))
    assert torch.equal(t, again)
    assert antithetic_timesteps(5, 1024).shape == (5,)
