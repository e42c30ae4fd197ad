from __future__ import annotations

import pytest

from usbrain.config import Precision, load_config, save_config, space_preset
from usbrain.errors import ConfigError


def test_presets():
    paper = load_config("paper")
    assert paper.space.size == (160, 160, 160) and paper.space.spacing == 1.0
    assert paper.latent_size == (20, 20, 20) and paper.autoencoder.latent_channels == 3
    assert paper.unet.channels == (128, 256, 256)
    assert paper.unet.attention_levels == (False, False, True)
    assert paper.diffusion.timesteps == 1024
    assert (paper.diffusion.beta_start, paper.diffusion.beta_end) == (1e-4, 2e-2)
    assert paper.train_diffusion.lr == 1e-4 and paper.train_diffusion.batch_size == 8
    tiny = load_config("tiny")
    assert tiny.space.size == (48, 48, 48) and tiny.latent_size == (12, 12, 12)
    assert space_preset("tiny") == tiny.space


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: tiny\ntrain_diffusion:\n  steps: 10\n  precision: bf16\n")
    config = load_config(path=path, overrides=["train_diffusion.steps=20", "seed=3"])
    assert config.train_diffusion.steps == 20 and config.seed == 3
    assert config.train_diffusion.precision is Precision.BF16
    assert config.space.size == (48, 48, 48)  # from the preset the file names


def test_save_and_load_round_trip(tmp_path):
    config = load_config("tiny", overrides=["unet.channels=[16,32,32]"])
    save_config(config, tmp_path / "c.yaml")
    assert load_config(path=tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train_diffusion.stepz=3"], "train_diffusion.stepz: unknown key"),
        (["unet.channels=12"], "unet.channels: expected a list"),
        (["train_diffusion.steps=1.5"], "train_diffusion.steps: expected an integer"),
        (["train_diffusion.precision=fp8"], "train_diffusion.precision: 'fp8' is not one of"),
        (["diffusion.staged=maybe"], "diffusion.staged: expected true or false"),
        (["space.size=[50,48,48]"], "space.size: 50 (axis 0) is not divisible"),
        (["unet.channels=[30,64,64]"], "unet.channels: [30] not divisible"),
        (["space.spacing=0"], "space.spacing: must be positive"),
        (["autoencoder.whole_volume_steps=-1"], "autoencoder.whole_volume_steps: must be 0"),
        (["sampling.guidance.dilation=-1"], "sampling.guidance.dilation: must be 0 or more"),
        (
            ["sampling.guidance.heal_extra_dilation=-2"],
            "sampling.guidance.heal_extra_dilation: must be 0 or more",
        ),
        (["diffusion.min_snr_gamma=-1"], "diffusion.min_snr_gamma: must be 0 (off) or more"),
        (["seed"], "expected key=value"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=overrides)
    assert message in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(path=tmp_path / "none.yaml")
    (tmp_path / "x.yaml").write_text("preset: tiny\nunet: {channels: [1, 2}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path=tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("preset: huge\n")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config(path=tmp_path / "y.yaml")


def test_a_file_naming_a_preset_starts_from_it_whatever_preset_is_asked(tmp_path):
    (tmp_path / "exp.yaml").write_text("preset: base\n")
    assert load_config("paper", path=tmp_path / "exp.yaml") == load_config("base")


def test_exponent_without_a_dot_is_a_number():
    # YAML 1.1 reads "1e-8" as a string; a user typing it on the command line means a number.
    assert (
        load_config("tiny", overrides=["autoencoder.kl_weight=1e-8"]).autoencoder.kl_weight == 1e-8
    )
