"""Parsing: YAML and ``key=value`` overrides into the typed :class:`Config`.

A preset's keys, then an experiment file's, then each override are merged as nested dicts and
built into the schema's dataclasses. An unknown key or a wrong type fails here with a message
naming the key (and the file).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from usbrain.config.presets import read_preset, read_yaml
from usbrain.config.schema import Config, ModelSpace
from usbrain.errors import ConfigError


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` as the type ``annotation`` names, or a ConfigError naming ``key``."""
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(annotation, value, key)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(annotation)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}") from None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-8 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {annotation!r} for {key}")  # a bug, not user error


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**values)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> dict[str, Any]:
    """``a.b=3`` → ``{"a": {"b": 3}}`` (the value parsed as YAML: numbers, lists, booleans)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train_diffusion.steps=100")
    key, text = item.split("=", 1)
    value: Any = yaml.safe_load(text)
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples, strings for enums), as written to YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, StrEnum):
            return str(v)
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def load_config(
    preset: str = "tiny", path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Build a :class:`Config`: the preset, then the YAML file at ``path`` (whose ``preset``
    key, if it has one, names the preset instead), then ``key=value`` overrides.

    >>> load_config("tiny", overrides=["train_diffusion.steps=50"]).train_diffusion.steps
    50
    """
    raw = read_yaml(Path(path)) if path is not None else {}
    merged = _merge(read_preset(raw.get("preset", preset)), raw)
    for item in overrides or []:
        merged = _merge(merged, _parse_override(item))
    try:
        return _build(Config, merged)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML (not atomic by itself: called inside an atomic folder)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def space_preset(name: str) -> ModelSpace:
    """The model space of preset ``name``."""
    return load_config(name).space
