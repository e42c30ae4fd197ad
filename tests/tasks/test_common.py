"""Task-level coding: whole volumes below the size threshold, slabs above it (same result)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import micro_config, phantom_brain
from tests.tasks.conftest import TASK_OVERRIDES
from usbrain.config import Precision, load_config
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import preprocess
from usbrain.errors import InputError
from usbrain.pipeline import Pipeline
from usbrain.tasks import common


def _pipe_and_volume() -> tuple[Pipeline, np.ndarray]:
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config(*TASK_OVERRIDES))
    pipe.autoencoder.eval()
    image = Volume(phantom_brain(), np.diag([2.0, 2.0, 2.0, 1.0]))
    return pipe, preprocess(image, pipe.config.space).image


def _count_streamed_calls(monkeypatch, pipe: Pipeline) -> list[str]:
    calls: list[str] = []
    for name in ("encode_streamed", "decode_streamed"):
        method = getattr(pipe.autoencoder, name)
        monkeypatch.setattr(
            pipe.autoencoder,
            name,
            lambda *a, m=method, n=name, **k: (calls.append(n), m(*a, **k))[1],
        )
    return calls


def test_the_paper_size_is_large_and_the_tiny_preset_is_not():
    assert common.is_large(load_config("paper").space.size)  # 160³
    assert not common.is_large(load_config("tiny").space.size)  # 48³: coded whole, as before
    assert not common.is_large((128, 128, 120)) and common.is_large((128, 128, 128))


def test_small_volumes_are_coded_whole(monkeypatch):
    pipe, volume = _pipe_and_volume()
    calls = _count_streamed_calls(monkeypatch, pipe)
    z = common.encode(pipe, volume)
    common.decode(pipe, z)
    assert calls == []
    torch.testing.assert_close(z, pipe.autoencoder.encode(torch.as_tensor(volume)[None, None]))


def test_large_volumes_are_coded_in_slabs_with_the_whole_volume_result(monkeypatch):
    pipe, volume = _pipe_and_volume()  # 16³, 8³ latents
    z = common.encode(pipe, volume)
    x = common.decode(pipe, z)
    monkeypatch.setattr(common, "LARGE_VOLUME_VOXELS", 15**3)  # 16³ counts as large
    calls = _count_streamed_calls(monkeypatch, pipe)
    zs, xs = common.encode(pipe, volume), common.decode(pipe, z)
    assert calls == ["encode_streamed", "decode_streamed"]
    torch.testing.assert_close(zs, z, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(xs, x, atol=1e-5)


def test_mask_conditioned_tasks_refuse_an_ablation_checkpoint():
    common.require_mask_conditioning(Pipeline.build(micro_config()), "heal")
    for coupling in ("noisy", "none"):
        pipe = Pipeline.build(micro_config(f"diffusion.coupling={coupling}"))
        with pytest.raises(InputError, match=f"heal needs .* coupling={coupling}"):
            common.require_mask_conditioning(pipe, "heal")


def test_the_empty_mask_latent_is_encoded_once_per_pipeline_and_device(monkeypatch):
    pipe = Pipeline.build(micro_config())
    calls = []
    encode = common.encode

    def counted(pipe, volume):
        calls.append(volume.shape)
        return encode(pipe, volume)

    monkeypatch.setattr(common, "encode", counted)
    first = common.empty_mask_latent(pipe)
    assert common.empty_mask_latent(pipe) is first and len(calls) == 1
    assert torch.equal(first, encode(pipe, np.zeros(pipe.config.space.size, np.float32)))
    pipe.to("cpu")  # moving the weights drops what was computed with them
    common.empty_mask_latent(pipe)
    assert len(calls) == 2


def test_compiled_sampling_is_made_once_per_pipeline_and_device():
    pipe = Pipeline.build(micro_config())
    plain = load_config("tiny").sampling
    compiled = replace(plain, compile=True)
    assert common.denoiser_for(pipe, plain).predictor is pipe.denoiser
    first = common.denoiser_for(pipe, compiled).predictor
    assert first is pipe.compiled and not first.cuda_graphs  # graphs on a GPU only
    assert common.denoiser_for(pipe, compiled).predictor is first
    half = common.denoiser_for(pipe, replace(compiled, precision=Precision.BF16)).predictor
    assert half.denoiser is first  # autocast around the compiled nets
    pipe.to("cpu")  # its frozen weights were the old device's
    assert pipe.compiled is None
