from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from tests.conftest import lesion_mask
from tests.tasks.conftest import LESION, lps_anisotropic
from usbrain.config import ConditionInput
from usbrain.data.nifti import load_mask
from usbrain.pipeline import Pipeline
from usbrain.tasks.condition import condition
from usbrain.tasks.generate import generate


def test_from_noise_the_brain_is_guided_by_the_generation_scale_not_the_edit_scale(
    pipeline_dir, tmp_path
):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    with torch.no_grad():  # MONAI zero-initialises the output layers: every guidance would be 0
        for p in pipe.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mask = load_mask(lps_anisotropic(lesion_mask(**LESION), tmp_path / "m.nii.gz"))
    base = replace(
        pipe.config.sampling,
        condition_scale_heal=1.0,
        condition_scale_lesion=1.0,
        generation_condition_scale=1.0,
    )

    def brain(**scales) -> np.ndarray:
        return condition(pipe, mask, 1, replace(base, **scales), seed=3)[0].image.data

    def healthy(**scales) -> np.ndarray:
        return generate(pipe, 1, replace(base, **scales), seed=3, healthy=True)[0].image.data

    plain = brain()
    edit_scales = {
        "condition_scale_heal": 5.0,
        "condition_scale_lesion": 5.0,
        "condition_scale_lesion_filled": 0.5,
    }
    assert np.array_equal(brain(**edit_scales), plain)
    assert not np.allclose(brain(generation_condition_scale=5.0), plain)
    assert np.array_equal(healthy(**edit_scales), healthy())


def test_the_mask_latent_is_clamped_as_the_training_condition(pipeline_dir, tmp_path, monkeypatch):
    import usbrain.tasks.condition as task

    pipe = Pipeline.from_pretrained(pipeline_dir)
    pipe.config = replace(
        pipe.config, diffusion=replace(pipe.config.diffusion, condition_clip=0.01)
    )
    seen = []
    real_sample_brain = task.sample_brain

    def spy(denoiser, sampler, condition, *args, **kwargs):
        seen.append(condition)
        return real_sample_brain(denoiser, sampler, condition, *args, **kwargs)

    monkeypatch.setattr(task, "sample_brain", spy)
    mask = load_mask(lps_anisotropic(lesion_mask(**LESION), tmp_path / "m.nii.gz"))
    condition(pipe, mask, 1, replace(pipe.config.sampling, condition_input=ConditionInput.LATENT))
    (latent,) = seen
    assert latent.abs().max() <= 0.01
    # the clamp bit: the encoded mask itself reaches beyond ±clip
    grid = np.zeros(pipe.config.space.size, np.float32)
    grid[6:10, 6:10, 6:10] = 1.0
    assert pipe.coder(pipe.config.sampling).encode(grid).abs().max() > 0.01


def test_estimated_condition_is_another_deterministic_sample(pipeline_dir, tmp_path):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    with (
        torch.no_grad()
    ):  # MONAI zero-initialises the output layers: the condition would not matter
        for p in pipe.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mask = load_mask(lps_anisotropic(lesion_mask(**LESION), tmp_path / "m.nii.gz"))
    estimate = replace(pipe.config.sampling, condition_input=ConditionInput.ESTIMATE)
    latent = replace(pipe.config.sampling, condition_input=ConditionInput.LATENT)

    def brain(sampling) -> np.ndarray:
        return condition(pipe, mask, 1, sampling, seed=4)[0].image.data

    first = brain(estimate)
    assert np.array_equal(brain(estimate), first)
    assert not np.allclose(brain(latent), first)
