"""Where a volume lies before and after it is brought to model space.

A :class:`Geometry` records everything needed to undo preprocessing: the native grid (affine,
shape, orientation, spacing), the model grid it was resampled to, the box of the native volume
that grid covers, and the intensity window used for normalisation. It travels with every
prepared volume as JSON, so any model output can be written back in the input scan's space.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from usbrain.config import ModelSpace
from usbrain.errors import InputError

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

# Centroid of the MNI152 2009a brain mask (mm): generated volumes are centred here, and masks
# given without an image (``condition``) are assumed to be in MNI space, as ATLAS ships them.
MNI_BRAIN_CENTRE_MM = np.array([0.0, -22.0, 9.5])


def model_affine(centre_mm: np.ndarray, space: ModelSpace) -> np.ndarray:
    """RAS+ isotropic affine of ``space`` whose grid centre lies at world point ``centre_mm``.

    >>> from usbrain.config import ModelSpace
    >>> a = model_affine(np.zeros(3), ModelSpace(size=(4, 4, 4), spacing=2.0))
    >>> a[:3, 3].tolist()  # voxel (1.5, 1.5, 1.5) is the centre
    [-3.0, -3.0, -3.0]
    """
    affine = np.diag([space.spacing] * 3 + [1.0])
    half = (np.asarray(space.size, dtype=np.float64) - 1) / 2
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - space.spacing * half
    return affine


def covered_box(
    native_affine: np.ndarray, native_shape: tuple[int, ...], m_affine: np.ndarray, m_shape
) -> Box:
    """Index box of the RAS+-reoriented native volume that the model grid covers.

    Bounds are half-open and may run past the native volume (negative, or beyond its shape):
    that part of the model grid is padding.
    """
    ornt = nib.orientations.io_orientation(native_affine)
    canonical_affine = native_affine @ nib.orientations.inv_ornt_aff(ornt, native_shape)
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in m_shape], indexing="ij")).reshape(3, -1)
    world = nib.affines.apply_affine(m_affine, corners.T)
    idx = nib.affines.apply_affine(np.linalg.inv(canonical_affine), world)
    lo = np.floor(idx.min(0)).astype(int)
    hi = np.ceil(idx.max(0)).astype(int) + 1
    return tuple((int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Geometry:
    """How one scan maps to model space and back.

    ``native_affine``/``native_shape``: the input file's grid. ``orientation``: its axis codes
    (e.g. ``"LPS"``). ``spacing``: its voxel sizes (mm). ``model_affine``/``model_shape``: the
    RAS+ isotropic model grid. ``crop_box``: the (half-open) index box of the RAS+-reoriented input
    that the model grid covers. ``intensity_low``/``intensity_high``: the input intensities that
    map to 0 and 1 in model space.
    """

    native_affine: tuple[tuple[float, ...], ...]
    native_shape: tuple[int, int, int]
    orientation: str
    spacing: tuple[float, float, float]
    model_affine: tuple[tuple[float, ...], ...]
    model_shape: tuple[int, int, int]
    crop_box: Box
    intensity_low: float
    intensity_high: float

    @classmethod
    def build(
        cls,
        native_affine: np.ndarray,
        native_shape: tuple[int, int, int],
        centre_mm: np.ndarray,
        space: ModelSpace,
        intensity_low: float,
        intensity_high: float,
    ) -> Geometry:
        m_affine = model_affine(centre_mm, space)
        return cls(
            native_affine=_tuple2d(native_affine),
            native_shape=tuple(int(s) for s in native_shape),  # type: ignore[arg-type]
            orientation="".join(nib.aff2axcodes(native_affine)),
            spacing=tuple(float(z) for z in nib.affines.voxel_sizes(native_affine)),  # type: ignore[arg-type]
            model_affine=_tuple2d(m_affine),
            model_shape=tuple(int(s) for s in space.size),  # type: ignore[arg-type]
            crop_box=covered_box(native_affine, native_shape, m_affine, space.size),
            intensity_low=float(intensity_low),
            intensity_high=float(intensity_high),
        )

    @property
    def native(self) -> np.ndarray:
        """Native affine as a (4, 4) array."""
        return np.asarray(self.native_affine, dtype=np.float64)

    @property
    def model(self) -> np.ndarray:
        """Model affine as a (4, 4) array."""
        return np.asarray(self.model_affine, dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> Geometry:
        try:
            raw = json.loads(text)
            return cls(
                native_affine=_tuple2d(np.asarray(raw["native_affine"])),
                native_shape=tuple(raw["native_shape"]),
                orientation=str(raw["orientation"]),
                spacing=tuple(raw["spacing"]),
                model_affine=_tuple2d(np.asarray(raw["model_affine"])),
                model_shape=tuple(raw["model_shape"]),
                crop_box=tuple(tuple(b) for b in raw["crop_box"]),
                intensity_low=float(raw["intensity_low"]),
                intensity_high=float(raw["intensity_high"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: not a usbrain geometry record ({exc})") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Geometry:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: geometry record not found")
        return cls.from_json(path.read_text(), str(path))


def _tuple2d(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(a))
