from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from usbrain.config import Config, load_config, preset_names, to_dict
from usbrain.config.presets import PRESET_DIR, read_preset
from usbrain.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def schema_keys(cls: type, prefix: str = "") -> set[str]:
    """Every dotted key of the schema dataclass ``cls``, leaves only."""
    hints = typing.get_type_hints(cls)
    keys = set()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= schema_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.add(prefix + f.name)
    return keys


def file_keys(raw: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in raw.items():
        keys |= file_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return keys


def test_the_presets_are_the_yaml_files():
    assert preset_names() == ("base", "paper", "tiny")
    assert sorted(p.name for p in PRESET_DIR.glob("*.yaml")) == [
        "base.yaml",
        "paper.yaml",
        "tiny.yaml",
    ]


@pytest.mark.parametrize("name", ["tiny", "base", "paper"])
def test_each_preset_file_spells_out_every_key_of_the_schema(name):
    raw = read_preset(name)
    assert file_keys(raw) == schema_keys(Config)
    assert raw["preset"] == name
    assert to_dict(load_config(name)) == raw  # what the file says is what loads, value by value


def test_a_changed_preset_file_changes_the_preset(tmp_path, monkeypatch):
    text = (PRESET_DIR / "tiny.yaml").read_text().replace("steps: 900", "steps: 901")
    (tmp_path / "tiny.yaml").write_text(text)
    monkeypatch.setattr("usbrain.config.presets.PRESET_DIR", tmp_path)
    assert load_config("tiny").train_diffusion.steps == 901
    assert preset_names() == ("tiny",)
    with pytest.raises(ConfigError, match="unknown preset 'base'; choose one of tiny"):
        load_config("base")


def test_configs_at_the_top_of_the_repository_are_the_presets():
    assert (REPO / "configs").resolve() == PRESET_DIR.resolve()


def test_every_preset_comment_line_fits_and_no_test_figure_is_quoted():
    for path in PRESET_DIR.glob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert len(line) <= 100, f"{path.name}:{number}"
            assert "test" not in line.lower(), f"{path.name}:{number}: {line}"
