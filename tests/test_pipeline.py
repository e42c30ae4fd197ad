from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from usbrain.config import Precision, load_config
from usbrain.errors import ConfigError, InputError, OutputExistsError
from usbrain.models.coder import LatentCoder
from usbrain.pipeline import Pipeline


def test_save_and_load_round_trip(tmp_path):
    pipe = Pipeline.build(micro_config())
    pipe.autoencoder.scale_factor.fill_(0.5)
    pipe.save_pretrained(tmp_path / "p", trained_steps=3)
    loaded = Pipeline.from_pretrained(tmp_path / "p")
    assert loaded.config == pipe.config
    assert float(loaded.autoencoder.scale_factor) == 0.5
    for a, b in zip(loaded.denoiser.state_dict().values(), pipe.denoiser.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    with pytest.raises(OutputExistsError):
        pipe.save_pretrained(tmp_path / "p")


def test_refuses_what_is_not_a_pipeline(tmp_path):
    with pytest.raises(InputError, match="not a usbrain pipeline"):
        Pipeline.from_pretrained(tmp_path)
    Pipeline.build(micro_config()).save_pretrained(tmp_path / "p")
    (tmp_path / "p" / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        Pipeline.from_pretrained(tmp_path / "p")
    Pipeline.build(micro_config()).save_pretrained(tmp_path / "q")
    weights = tmp_path / "q" / "denoiser.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(InputError, match="corrupt or truncated weights"):
        Pipeline.from_pretrained(tmp_path / "q")


def test_a_shipped_model_is_found_by_name_and_its_absence_explained(tmp_path, monkeypatch):
    from usbrain import pipeline

    monkeypatch.chdir(tmp_path)  # no ./base folder here
    monkeypatch.setattr(pipeline, "SHIPPED_MODELS", tmp_path / "models")
    assert pipeline.pipeline_folder("base") == tmp_path / "models" / "base"
    assert pipeline.pipeline_folder("elsewhere") == pipeline.Path("elsewhere")
    with pytest.raises(InputError, match="make weights"):
        Pipeline.from_pretrained("base")
    Pipeline.build(micro_config()).save_pretrained(tmp_path / "models" / "base")
    assert Pipeline.from_pretrained("base").config == micro_config()
    (tmp_path / "base").mkdir()  # a folder of that name here is what the user means
    assert pipeline.pipeline_folder("base") == pipeline.Path("base")


def test_half_precision_files_load_as_float32_weights(tmp_path):
    pipe = Pipeline.build(micro_config())
    pipe.save_pretrained(tmp_path / "half", weights_dtype="float16")
    loaded = Pipeline.from_pretrained(tmp_path / "half")
    for (name, a), b in zip(
        pipe.denoiser.state_dict().items(), loaded.denoiser.state_dict().values(), strict=True
    ):
        assert b.dtype == a.dtype, name
        torch.testing.assert_close(b, a.half().to(a.dtype), rtol=0, atol=0)
    size = sum(f.stat().st_size for f in (tmp_path / "half").glob("*.safetensors"))
    pipe.save_pretrained(tmp_path / "full")
    assert size < 0.6 * sum(f.stat().st_size for f in (tmp_path / "full").glob("*.safetensors"))


def test_mask_conditioned_tasks_refuse_an_ablation_checkpoint():
    Pipeline.build(micro_config()).require_mask_conditioning("heal")
    for coupling in ("noisy", "none"):
        pipe = Pipeline.build(micro_config(f"diffusion.coupling={coupling}"))
        with pytest.raises(InputError, match=f"heal needs .* coupling={coupling}"):
            pipe.require_mask_conditioning("heal")


def test_the_empty_mask_latent_is_encoded_once_per_pipeline_and_device(monkeypatch):
    pipe = Pipeline.build(micro_config())
    coder = pipe.coder(pipe.config.sampling)
    calls = []
    encode = LatentCoder.encode

    def counted(self, volume):
        calls.append(volume.shape)
        return encode(self, volume)

    monkeypatch.setattr(LatentCoder, "encode", counted)
    first = pipe.empty_mask_latent(coder)
    assert pipe.empty_mask_latent(coder) is first and len(calls) == 1
    assert torch.equal(first, encode(coder, np.zeros(pipe.config.space.size, np.float32)))
    pipe.to("cpu")  # moving the weights drops what was computed with them
    pipe.empty_mask_latent(coder)
    assert len(calls) == 2


def test_compiled_sampling_is_made_once_per_pipeline_and_device():
    pipe = Pipeline.build(micro_config())
    plain = load_config("tiny").sampling
    compiled = replace(plain, compile=True)
    assert pipe.predictor(plain).predictor is pipe.denoiser
    first = pipe.predictor(compiled).predictor
    assert first is pipe.compiled and not first.cuda_graphs  # graphs on a GPU only
    assert pipe.predictor(compiled).predictor is first
    half = pipe.predictor(replace(compiled, precision=Precision.BF16)).predictor
    assert half.denoiser is first  # autocast around the compiled nets
    pipe.to("cpu")  # its frozen weights were the old device's
    assert pipe.compiled is None


def test_an_edit_sampler_takes_the_grid_below_its_start_or_every_stride():
    pipe = Pipeline.build(micro_config())  # 100 timesteps, 10 sampling steps
    sampling = pipe.config.sampling
    assert pipe.sampler(sampling).timesteps == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    assert pipe.sampler(sampling, 30).timesteps == [29, 19, 9]
    assert pipe.sampler(replace(sampling, edit_stride=7), 30).timesteps == [28, 21, 14, 7, 0]
    with pytest.raises(ConfigError, match="t_start 100"):
        pipe.sampler(sampling, 100)
