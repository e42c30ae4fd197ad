from __future__ import annotations

import pytest
import torch

from tests.conftest import micro_config
from usbrain.errors import InputError, OutputExistsError
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
