"""The presets: the YAML files in ``usbrain/configs/`` (``configs/`` at the repository's top).

Each file spells out every key of the schema, with a comment on why a value is what it is; a
preset is its file's name. A user's experiment file names the preset it starts from and changes
what it needs (:func:`usbrain.config.load_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from usbrain.errors import ConfigError

PRESET_DIR = Path(__file__).parents[1] / "configs"


def preset_names() -> tuple[str, ...]:
    """The presets there are, sorted: ``("base", "paper", "tiny")``."""
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path``, or a ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    return loaded


def read_preset(name: str) -> dict[str, Any]:
    """Preset ``name``'s keys as a nested dict (YAML lists as lists)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    return read_yaml(PRESET_DIR / f"{name}.yaml")
