"""The sampling loops with a stub denoiser whose calls are recorded."""

from __future__ import annotations

import torch

from usbrain.config import Coupling
from usbrain.diffusion.chains import (
    estimated_condition,
    sample_brain,
    sample_lesion,
    sample_pair,
)
from usbrain.diffusion.guidance import classifier_free_eps
from usbrain.diffusion.samplers import DDIMSampler
from usbrain.diffusion.schedule import NoiseSchedule, q_sample, x0_from_eps

S = NoiseSchedule.linear(100, 1e-4, 2e-2)
SHAPE = (1, 2, 3, 3, 3)


class StubDenoiser:
    """eps_lesion = 0.1 m_t + 0.2 x_t, eps_brain = 0.3 x_t + 0.4 cond; records its inputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, torch.Tensor, torch.Tensor]] = []

    def eps_lesion(self, m_t, t, x_t):
        self.calls.append(("lesion", int(t[0]), m_t.clone(), x_t.clone()))
        return 0.1 * m_t + 0.2 * x_t

    def eps_brain(self, x_t, t, cond):
        self.calls.append(("brain", int(t[0]), x_t.clone(), cond.clone()))
        return 0.3 * x_t + 0.4 * cond


def sampler(steps: int = 5) -> DDIMSampler:
    s = DDIMSampler(S)
    s.set_timesteps(steps)
    return s


def test_pair_steps_both_chains_with_the_clamped_lesion_estimate():
    net, s = StubDenoiser(), sampler()
    x, m = sample_pair(net, s, SHAPE, torch.Generator().manual_seed(0), 5.0, torch.device("cpu"))
    # Replay by hand: lesion first, its clamped x0 estimate conditions the brain.
    g = torch.Generator().manual_seed(0)
    xr, mr = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    for i, t in enumerate(s.timesteps):
        tt = torch.tensor([t])
        eps_m = 0.1 * mr + 0.2 * xr
        cond = x0_from_eps(S, mr, tt, eps_m).clamp(-5, 5)
        assert net.calls[2 * i][0] == "lesion" and net.calls[2 * i + 1][0] == "brain"
        torch.testing.assert_close(net.calls[2 * i + 1][3], cond)
        eps_x = 0.3 * xr + 0.4 * cond
        xr, mr = s.step(eps_x, t, xr).prev_sample, s.step(eps_m, t, mr).prev_sample
    torch.testing.assert_close(x, xr)
    torch.testing.assert_close(m, mr)


def test_pair_with_noisy_coupling_conditions_the_brain_on_the_noisy_mask():
    net, s = StubDenoiser(), sampler()
    cpu = torch.device("cpu")
    sample_pair(net, s, SHAPE, torch.Generator().manual_seed(0), 5.0, cpu, coupling=Coupling.NOISY)
    lesion_calls = [c for c in net.calls if c[0] == "lesion"]
    brain_calls = [c for c in net.calls if c[0] == "brain"]
    for (_, _, m_t, _), (_, _, _, cond) in zip(lesion_calls, brain_calls, strict=True):
        torch.testing.assert_close(cond, m_t)


def test_brain_chain_sees_the_fixed_condition_and_applies_its_hooks_in_order():
    net, s = StubDenoiser(), sampler()
    cond = torch.full(SHAPE, 0.5)
    start = torch.ones(SHAPE)
    seen = []

    def guidance(out, t, t_prev):
        seen.append((t, t_prev))
        return type(out)(out.prev_sample * 0, out.pred_original_sample * 0 + t)

    def then_add_one(out, t, t_prev):  # a second hook sees the first one's output
        return type(out)(out.prev_sample, out.pred_original_sample + 1)

    steps = s.timesteps_from(50)
    x0 = sample_brain(net, s, cond, start, steps, torch.Generator(), [guidance, then_add_one])
    assert seen == [(t, s.previous_timestep(t)) for t in steps]
    assert all(torch.equal(c[3], cond) for c in net.calls)
    assert torch.equal(x0, torch.full(SHAPE, float(steps[-1]) + 1))  # the last hooked estimate


def test_brain_chain_with_an_estimated_condition_sees_the_lesion_models_estimate():
    net, s = StubDenoiser(), sampler()
    mask = torch.linspace(-8, 8, 54).reshape(SHAPE)  # beyond the clip at both ends
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    start = torch.ones(SHAPE)
    cond_fn = estimated_condition(net, S, mask, noise, 5.0)
    sample_brain(net, s, cond_fn, start, s.timesteps, torch.Generator())
    lesion_calls = [c for c in net.calls if c[0] == "lesion"]
    brain_calls = [c for c in net.calls if c[0] == "brain"]
    assert len(lesion_calls) == len(brain_calls) == len(s.timesteps)
    for (_, t, m_t, x_t), (_, tb, xb, cond) in zip(lesion_calls, brain_calls, strict=True):
        tt = torch.tensor([t])
        assert t == tb and torch.equal(x_t, xb)  # the lesion model sees the current brain
        torch.testing.assert_close(m_t, q_sample(S, mask, tt, noise))
        expected = x0_from_eps(S, m_t, tt, 0.1 * m_t + 0.2 * x_t).clamp(-5, 5)
        torch.testing.assert_close(cond, expected)


def test_lesion_chain_sees_the_source_noised_to_each_step():
    net, s = StubDenoiser(), sampler()
    x_src = torch.linspace(-1, 1, 54).reshape(SHAPE)
    sample_lesion(net, s, x_src, torch.Generator().manual_seed(2))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    for (kind, t, _, x_t), step in zip(net.calls, s.timesteps, strict=True):
        assert kind == "lesion" and t == step
        torch.testing.assert_close(x_t, q_sample(S, x_src, torch.tensor([t]), noise))


def test_condition_scale_is_classifier_free_guidance_in_one_batch():
    net, s = StubDenoiser(), sampler()
    cond = torch.full(SHAPE, 0.5)
    x = torch.ones(SHAPE)
    t = torch.tensor([7])
    assert torch.equal(classifier_free_eps(net, x, t, cond, 1.0), 0.3 * x + 0.4 * cond)
    net.calls.clear()
    eps = classifier_free_eps(net, x, t, cond, 3.0)
    # uncond = 0.3 x, cond = 0.3 x + 0.4 c  →  0.3 x + 3 · 0.4 c
    torch.testing.assert_close(eps, 0.3 * x + 1.2 * cond)
    assert len(net.calls) == 1 and net.calls[0][2].shape[0] == 2  # one forward of batch 2
    out = sample_brain(net, s, cond, x, s.timesteps, torch.Generator(), condition_scale=3.0)
    assert out.shape == SHAPE


def test_a_scale_per_latent_voxel_guides_each_voxel_with_its_own_weight():
    net = StubDenoiser()
    cond, x, t = torch.full(SHAPE, 0.5), torch.ones(SHAPE), torch.tensor([7])
    scale = torch.ones(SHAPE[0], 1, *SHAPE[2:])
    scale[..., 0, :, :] = 3.0
    eps = classifier_free_eps(net, x, t, cond, scale)
    at_one, at_three = (
        classifier_free_eps(net, x, t, cond, 1.0),
        classifier_free_eps(net, x, t, cond, 3.0),
    )
    torch.testing.assert_close(eps[..., 0, :, :], at_three[..., 0, :, :])
    torch.testing.assert_close(eps[..., 1:, :, :], at_one[..., 1:, :, :])
