"""Model-space volumes ↔ latents: whole volumes below the size threshold, slabs above it, the
same result (usbrain.models.coder)."""

from __future__ import annotations

import numpy as np
import torch

from tests.conftest import micro_config, phantom_brain
from tests.tasks.conftest import TASK_OVERRIDES
from usbrain.config import load_config
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import preprocess
from usbrain.models.coder import LatentCoder, grow, scaled
from usbrain.pipeline import Pipeline


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


def test_the_paper_size_is_large_and_the_tiny_and_base_presets_are_not():
    coder = LatentCoder(Pipeline.build(micro_config()).autoencoder, 2_000_000)
    assert coder.is_large(load_config("paper").space.size)  # 160³
    assert not coder.is_large(load_config("tiny").space.size)
    assert not coder.is_large(load_config("base").space.size)  # 96³: coded whole
    assert not coder.is_large((128, 128, 120)) and coder.is_large((128, 128, 128))
    assert load_config("paper").sampling.stream_voxels == 2_000_000


def test_small_volumes_are_coded_whole(monkeypatch):
    pipe, volume = _pipe_and_volume()
    calls = _count_streamed_calls(monkeypatch, pipe)
    coder = pipe.coder(pipe.config.sampling)
    z = coder.encode(volume)
    coder.decode(z)
    assert calls == []
    torch.testing.assert_close(z, pipe.autoencoder.encode(torch.as_tensor(volume)[None, None]))


def test_large_volumes_are_coded_in_slabs_with_the_whole_volume_result(monkeypatch):
    pipe, volume = _pipe_and_volume()  # 16³, 8³ latents
    whole = LatentCoder(pipe.autoencoder, 2_000_000)
    z = whole.encode(volume)
    x = whole.decode(z)
    calls = _count_streamed_calls(monkeypatch, pipe)
    slabs = LatentCoder(pipe.autoencoder, 15**3)  # 16³ counts as large
    zs, xs = slabs.encode(volume), slabs.decode(z)
    assert calls == ["encode_streamed", "decode_streamed"]
    torch.testing.assert_close(zs, z, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(xs, x, atol=1e-5)


def test_boxes_grow_clip_and_scale():
    box = (slice(1, 3), slice(0, 2), slice(5, 8))
    assert grow(box, 2, (8, 8, 8)) == (slice(0, 5), slice(0, 4), slice(3, 8))
    assert scaled(box, 4) == (slice(4, 12), slice(0, 8), slice(20, 32))
