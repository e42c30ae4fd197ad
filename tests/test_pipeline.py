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
