from __future__ import annotations

import numpy as np
import torch

from tests.conftest import lesioned_phantom
from usbrain.config import SamplingConfig
from usbrain.data.pseudo import white_matter_mean
from usbrain.diffusion.samplers import StepOutput
from usbrain.diffusion.schedule import NoiseSchedule, q_sample
from usbrain.evaluate.baselines import (
    ReplaceOutside,
    fill_mirror,
    fill_white_matter,
    intensity_model_lesion,
    paste_lesion_intensities,
    sdedit_config,
)


def _case():
    return lesioned_phantom()


def test_white_matter_fill_changes_only_the_lesion():
    _, sick, mask = _case()
    out = fill_white_matter(sick, mask)
    assert np.array_equal(out[mask == 0], sick[mask == 0])
    wm = white_matter_mean(sick, sick > 0, exclude=mask)
    assert np.allclose(out[mask > 0], wm) and 850 < wm < 950  # the phantom's WM is 900 ± noise


def test_mirror_fill_reads_the_other_hemisphere():
    image = np.zeros((9, 5, 5), np.float32)
    image[:4] = 1.0  # left (x < 0) bright, right dark
    image[5:] = 3.0
    affine = np.eye(4)
    affine[0, 3] = -4.0  # voxel i sits at x = i - 4: the midline is i = 4
    mask = np.zeros_like(image, np.uint8)
    mask[7, 2, 2] = 1  # x = +3 → mirrored to x = −3 (i = 1)
    out = fill_mirror(image, mask, affine)
    assert out[7, 2, 2] == 1.0 and np.array_equal(out[mask == 0], image[mask == 0])


def test_pasted_and_modelled_lesions_are_dark_and_local():
    healthy, sick, mask = _case()
    rng = np.random.default_rng(0)
    pasted = paste_lesion_intensities(healthy, mask, sick, mask, rng)
    assert np.allclose(pasted[mask > 0], 300.0, rtol=0.05)  # same WM: intensities kept
    assert np.array_equal(pasted[mask == 0], healthy[mask == 0])
    modelled = intensity_model_lesion(healthy, mask, 0.4, np.random.default_rng(0))
    assert modelled[mask > 0].mean() < 0.5 * healthy[mask > 0].mean()


def test_sdedit_turns_guidance_off():
    cfg = sdedit_config(SamplingConfig())
    assert not cfg.guidance.anatomy and not cfg.guidance.lesion
    assert sdedit_config(SamplingConfig(), keep_anatomy=True).guidance.anatomy


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


def test_replace_outside_factory_frees_exactly_the_soft_map():
    from usbrain.config import GuidanceConfig
    from usbrain.evaluate.baselines import replace_outside
    from usbrain.tasks.edit import EditState

    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    soft = torch.zeros(1, 1, 4, 4, 4)
    soft[..., 1, 1, 1] = 0.3
    src = torch.zeros(1, 2, 4, 4, 4)
    guide = replace_outside(EditState(GuidanceConfig(), s, src, soft, torch.zeros_like(src), 50))
    assert guide.keep.sum() == 63 and guide.keep[0, 0, 1, 1, 1] == 0


def test_end_at_finishes_the_edit_at_the_given_latent_cropped_as_the_edit():
    from usbrain.config import GuidanceConfig
    from usbrain.evaluate.baselines import end_at
    from usbrain.tasks.edit import EditState

    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    target = torch.arange(2 * 6 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6, 6)
    src = torch.zeros(1, 2, 4, 4, 4)
    crop = (slice(1, 5), slice(0, 4), slice(2, 6))
    state = EditState(GuidanceConfig(), s, src, torch.zeros(1, 1, 4, 4, 4), src, 50, crop)
    step = StepOutput(torch.randn_like(src), torch.randn_like(src))
    final = end_at(target)(state)(step, t=5, t_prev=-1)
    torch.testing.assert_close(final.prev_sample, target[..., 1:5, 0:4, 2:6])
    whole = EditState(GuidanceConfig(), s, target, torch.zeros(1, 1, 6, 6, 6), target, 50)
    final = end_at(target)(whole)(StepOutput(target + 1, target + 1), t=5, t_prev=-1)
    torch.testing.assert_close(final.prev_sample, target)
