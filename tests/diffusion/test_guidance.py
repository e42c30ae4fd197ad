from __future__ import annotations

import math

import torch

from usbrain.config import GuidanceConfig, LesionMap, PullTarget
from usbrain.diffusion.guidance import (
    ConsistencyGuidance,
    EditContext,
    ReplaceOutside,
    acg_strength,
    anatomy_weight,
    consistency_hooks,
    end_at,
    hard_mask_hooks,
    latent_lesion_map,
    lesion_condition_scale,
    lesion_occupancy,
    pooled_lesion_map,
    pull,
    release_lesion,
    soft_lesion_map,
)
from usbrain.diffusion.samplers import StepOutput
from usbrain.diffusion.schedule import NoiseSchedule, q_sample

S = NoiseSchedule.linear(1024, 1e-4, 2e-2)


def test_acg_strength_closed_form():
    assert acg_strength(0, 300, 20.0, 0.5) == 20.0
    assert math.isclose(acg_strength(150, 300, 20.0, 0.5), 20.0 * math.exp(-0.25))
    assert acg_strength(300, 300, 20.0, 0.5) < acg_strength(100, 300, 20.0, 0.5)


def test_anatomy_weight_hand_computed():
    x0 = torch.tensor([0.0, 0.1, 1.0])
    lam = anatomy_weight(x0, torch.zeros(3), alpha=10.0)
    torch.testing.assert_close(lam, torch.tensor([1.0, math.exp(-1.0), math.exp(-10.0)]))


def test_release_and_pull():
    lam = torch.tensor([1.0, 1.0, 0.5])
    soft = torch.tensor([0.0, 1.0, 0.5])
    torch.testing.assert_close(release_lesion(lam, soft, 1.0), torch.tensor([1.0, 0.0, 0.25]))
    torch.testing.assert_close(release_lesion(lam, soft, 0.5), torch.tensor([1.0, 0.5, 0.375]))
    z, target = torch.tensor([0.0, 2.0, 4.0]), torch.tensor([1.0, 1.0, 1.0])
    torch.testing.assert_close(
        pull(z, target, torch.tensor([1.0, 0.0, 0.5])), torch.tensor([1.0, 2.0, 2.5])
    )


def test_pooled_map_marks_the_lesion_latent_voxels():
    mask = torch.zeros(1, 1, 16, 16, 16)
    mask[0, 0, 4:8, 4:8, 4:8] = 1  # exactly latent voxel (1, 1, 1) at 4x downsampling
    soft = pooled_lesion_map(mask, (4, 4, 4), kernel=1, dilation=0)
    assert soft.shape == (1, 1, 4, 4, 4)
    assert soft[0, 0, 1, 1, 1] == 1 and soft.sum() == 1
    # A soft edge and a dilation spread it to the neighbours, staying in [0, 1].
    wide = pooled_lesion_map(mask, (4, 4, 4), kernel=5, dilation=1)
    assert wide[0, 0, 1, 1, 1] == 1 and 0 < wide[0, 0, 2, 1, 1] < 1 and wide[0, 0, 3, 3, 3] == 0
    assert wide.min() >= 0 and wide.max() <= 1
    # A single-voxel lesion still releases its latent voxel (max, not mean, to latent size).
    dot = torch.zeros(1, 1, 16, 16, 16)
    dot[0, 0, 13, 2, 9] = 1
    assert pooled_lesion_map(dot, (4, 4, 4), kernel=1, dilation=0)[0, 0, 3, 0, 2] == 1


def test_latent_map_is_zero_for_the_empty_mask():
    m_empty = torch.randn(1, 3, 4, 4, 4)
    assert latent_lesion_map(m_empty, m_empty).abs().max() == 0
    shifted = m_empty.clone()
    shifted[:, :, 0, 0, 0] += 3.0
    soft = latent_lesion_map(shifted, m_empty)
    assert soft[0, 0, 0, 0, 0] == 1 and soft.sum() == 1
    cfg = GuidanceConfig(lesion_map=LesionMap.LATENT)
    empty_mask = torch.zeros(1, 1, 16, 16, 16)
    assert torch.equal(
        soft_lesion_map(cfg, empty_mask, (4, 4, 4), lambda: (shifted, m_empty)), soft
    )


def _guidance(**kw) -> tuple[ConsistencyGuidance, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    src, noise = torch.randn(1, 3, 4, 4, 4, generator=g), torch.randn(1, 3, 4, 4, 4, generator=g)
    soft = torch.zeros(1, 1, 4, 4, 4)
    soft[..., :2, :, :] = 1.0  # lesion in the first half
    cfg = GuidanceConfig(**kw)
    return ConsistencyGuidance(cfg, S, src, soft, noise, horizon=300), src, noise


def test_guidance_holds_anatomy_outside_and_releases_inside():
    guide, src, _ = _guidance()
    x0 = src + 0.01  # close to the source everywhere: held outside the lesion
    x0[..., :2, :, :] += 5.0  # far from it inside the lesion
    out = guide(StepOutput(x0.clone(), x0.clone()), t=100, t_prev=50)
    lam = math.exp(-acg_strength(100, 300, 20.0, 0.5) * 0.01)
    expected_outside = src[..., 2:, :, :] + 0.01 * (1 - lam)
    torch.testing.assert_close(out.pred_original_sample[..., 2:, :, :], expected_outside)
    torch.testing.assert_close(out.pred_original_sample[..., :2, :, :], x0[..., :2, :, :])
    torch.testing.assert_close(out.prev_sample[..., 2:, :, :], expected_outside)  # clean target


def test_noised_pull_target_is_the_source_at_the_next_level():
    guide, src, noise = _guidance(pull_target=PullTarget.NOISED)
    expected = q_sample(S, src, torch.tensor([50]), noise)
    torch.testing.assert_close(guide.target(50), expected)
    torch.testing.assert_close(guide.target(-1), src)  # the last step lands on the clean source


def test_switches_turn_each_guidance_off():
    guide, src, _ = _guidance(anatomy=False)
    out = guide(StepOutput(src + 1, src + 1), t=10, t_prev=5)
    torch.testing.assert_close(out.pred_original_sample, src + 1)  # nothing pulled
    guide, src, _ = _guidance(lesion=False)
    out = guide(StepOutput(src, src), t=10, t_prev=5)  # x0 == src: lam = 1 everywhere
    torch.testing.assert_close(out.pred_original_sample, src)


def test_pooled_map_does_not_encode_the_mask():
    def no_encoding():
        raise AssertionError("the pooled map must not ask for latents")

    mask = torch.zeros(1, 1, 16, 16, 16)
    mask[0, 0, 4:8, 4:8, 4:8] = 1
    soft = soft_lesion_map(GuidanceConfig(kernel=1, dilation=0), mask, (4, 4, 4), no_encoding)
    assert torch.equal(soft, pooled_lesion_map(mask, (4, 4, 4), kernel=1, dilation=0))


def test_alpha0_is_converted_from_the_latent_scale_it_was_set_for():
    from usbrain.diffusion.guidance import alpha0_in_latent_units

    assert alpha0_in_latent_units(20.0, 0.0, 0.3) == 20.0  # already in our units
    ours = alpha0_in_latent_units(20.0, 0.18215, 0.3)
    # the same change of the autoencoder's mean is held alike in both units
    mean_change = torch.tensor(0.7)
    theirs_weight = anatomy_weight(mean_change * 0.18215, torch.tensor(0.0), 20.0)
    ours_weight = anatomy_weight(mean_change * 0.3, torch.tensor(0.0), ours)
    torch.testing.assert_close(ours_weight, theirs_weight)


def test_replace_outside_keeps_the_source_outside_the_lesion():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    g = torch.Generator().manual_seed(0)
    src, noise = torch.randn(1, 2, 4, 4, 4, generator=g), torch.randn(1, 2, 4, 4, 4, generator=g)
    keep = torch.ones(1, 1, 4, 4, 4)
    keep[..., 0, 0, 0] = 0
    moved = StepOutput(src + 5, src + 5)
    out = ReplaceOutside(s, src, keep, noise)(moved, t=50, t_prev=40)
    expected = q_sample(s, src, torch.tensor([40]), noise)
    torch.testing.assert_close(
        out.prev_sample[keep.expand_as(src) > 0], expected[keep.expand_as(src) > 0]
    )
    assert torch.equal(out.prev_sample[..., 0, 0, 0], src[..., 0, 0, 0] + 5)
    final = ReplaceOutside(s, src, keep, noise)(moved, t=5, t_prev=-1)
    torch.testing.assert_close(final.prev_sample[..., 1:, :, :], src[..., 1:, :, :])


def test_hard_mask_hooks_free_exactly_the_soft_map():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    soft = torch.zeros(1, 1, 4, 4, 4)
    soft[..., 1, 1, 1] = 0.3
    src = torch.zeros(1, 2, 4, 4, 4)
    (guide,) = hard_mask_hooks(
        EditContext(GuidanceConfig(), s, src, soft, torch.zeros_like(src), 50)
    )
    assert guide.keep.sum() == 63 and guide.keep[0, 0, 1, 1, 1] == 0


def test_end_at_finishes_the_edit_at_the_given_latent_cropped_as_the_edit():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    target = torch.arange(2 * 6 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6, 6)
    src = torch.zeros(1, 2, 4, 4, 4)
    crop = (slice(1, 5), slice(0, 4), slice(2, 6))
    state = EditContext(GuidanceConfig(), s, src, torch.zeros(1, 1, 4, 4, 4), src, 50, crop)
    step = StepOutput(torch.randn_like(src), torch.randn_like(src))
    (hook,) = end_at(target)(state)
    final = hook(step, t=5, t_prev=-1)
    torch.testing.assert_close(final.prev_sample, target[..., 1:5, 0:4, 2:6])
    whole = EditContext(GuidanceConfig(), s, target, torch.zeros(1, 1, 6, 6, 6), target, 50)
    (hook,) = end_at(target)(whole)
    final = hook(StepOutput(target + 1, target + 1), t=5, t_prev=-1)
    torch.testing.assert_close(final.prev_sample, target)


def test_consistency_hooks_are_acg_and_lcg_or_none_for_sdedit():
    src = torch.zeros(1, 2, 4, 4, 4)
    soft = torch.ones(1, 1, 4, 4, 4)
    ctx = EditContext(GuidanceConfig(), S, src, soft, torch.zeros_like(src), 50)
    (hook,) = consistency_hooks(ctx)
    assert isinstance(hook, ConsistencyGuidance) and hook.soft_map is soft
    no_lcg = EditContext(GuidanceConfig(lesion=False), S, src, soft, src, 50)
    assert consistency_hooks(no_lcg)[0].soft_map is None
    sdedit = EditContext(GuidanceConfig(anatomy=False, lesion=False), S, src, soft, src, 50)
    assert consistency_hooks(sdedit) == []


def test_lesion_occupancy_is_the_lesions_share_of_each_latent_voxel():
    mask = torch.zeros(1, 1, 8, 8, 8)
    mask[..., :4, :4, :4] = 1  # fills latent voxel (0, 0, 0)
    mask[..., 4, 4, 4:6] = 1  # 2 of the 64 voxels of latent voxel (1, 1, 1)
    occ = lesion_occupancy(mask, 4)
    assert occ.shape == (1, 1, 2, 2, 2)
    assert occ[0, 0, 0, 0, 0] == 1.0 and occ[0, 0, 1, 1, 1] == 2 / 64
    assert occ.sum() == 1.0 + 2 / 64


def test_insertion_scale_runs_from_partial_to_filled_with_the_lesions_share():
    occ = torch.tensor([0.0, 0.25, 1.0]).reshape(1, 1, 3, 1, 1)
    scale = lesion_condition_scale(occ, partial=3.0, filled=1.0)
    torch.testing.assert_close(scale.flatten(), torch.tensor([3.0, 2.5, 1.0]))
    same = lesion_condition_scale(occ, partial=2.0, filled=2.0)
    assert same == 2.0 and not isinstance(same, torch.Tensor)  # one scale: the number itself
