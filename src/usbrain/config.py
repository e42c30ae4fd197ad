"""Typed configuration and presets.

Values live in one place: the dataclasses below, filled from a preset (``tiny``, ``paper``) and
optionally from YAML. Every other module receives these objects, never loose numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from usbrain.errors import ConfigError


@dataclass(frozen=True)
class ModelSpace:
    """The grid every volume is brought to before the model sees it.

    RAS+, isotropic ``spacing`` mm, ``size`` voxels per axis, centred on the brain.

    >>> ModelSpace(size=(48, 48, 48), spacing=4.0).field_of_view_mm
    (192.0, 192.0, 192.0)
    """

    size: tuple[int, int, int] = (160, 160, 160)
    spacing: float = 1.0

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(s) < 1 for s in self.size):
            raise ConfigError(f"space.size: expected three positive integers, got {self.size}")
        if not self.spacing > 0:
            raise ConfigError(f"space.spacing: must be positive, got {self.spacing}")

    @property
    def field_of_view_mm(self) -> tuple[float, float, float]:
        return tuple(s * self.spacing for s in self.size)  # type: ignore[return-value]


# tiny: 4 mm keeps the whole MNI brain (≈145×181×155 mm) inside a 48³ grid, small enough for
# a CPU to train the full pipeline in minutes. paper: the published 160³ at 1 mm.
SPACE_PRESETS: dict[str, ModelSpace] = {
    "tiny": ModelSpace(size=(48, 48, 48), spacing=4.0),
    "paper": ModelSpace(size=(160, 160, 160), spacing=1.0),
}


def space_preset(name: str) -> ModelSpace:
    """Return the model space of preset ``name``."""
    try:
        return SPACE_PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of {', '.join(SPACE_PRESETS)}"
        ) from None
