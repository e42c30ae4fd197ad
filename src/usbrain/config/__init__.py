"""Typed configuration: the schema, the presets and their parsing, apart.

Values live in one place: :mod:`~usbrain.config.schema`'s dataclasses, filled from a preset
(a YAML file in ``usbrain/configs/``: ``tiny``, ``base``, ``paper``), then from an experiment's YAML
file, then from ``key.sub=value`` overrides (:mod:`~usbrain.config.parse`). Every other module
receives these objects, never loose numbers.
"""

from usbrain.config.parse import load_config, save_config, space_preset, to_dict
from usbrain.config.presets import preset_names
from usbrain.config.schema import (
    AutoencoderConfig,
    ConditionInput,
    Config,
    Coupling,
    DiffusionConfig,
    FindLesion,
    GuidanceConfig,
    LesionMap,
    ModelSpace,
    Precision,
    PredictionType,
    PullTarget,
    SamplerKind,
    SamplingConfig,
    TrainConfig,
    UNetConfig,
)

__all__ = [
    "AutoencoderConfig",
    "ConditionInput",
    "Config",
    "Coupling",
    "DiffusionConfig",
    "FindLesion",
    "GuidanceConfig",
    "LesionMap",
    "ModelSpace",
    "Precision",
    "PredictionType",
    "PullTarget",
    "SamplerKind",
    "SamplingConfig",
    "TrainConfig",
    "UNetConfig",
    "load_config",
    "preset_names",
    "save_config",
    "space_preset",
    "to_dict",
]
