"""A scan as the edits carry it: the native volume, its brain, its :class:`Geometry`, its
model-space image and lesion, computed and checked once on load (torchio's Subject is the model).

The tasks read the model-space arrays, and :meth:`Scan.to_native` / :meth:`Scan.native_volume`
bring their results back to the input's grid, affine, header and intensity scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usbrain.config import ModelSpace
from usbrain.data.geometry import Geometry
from usbrain.data.masks import fraction_in_brain
from usbrain.data.nifti import Volume, check_same_grid
from usbrain.data.preprocess import (
    VolumeKind,
    brain_mask,
    geometry_for,
    resample,
    to_model,
    to_native,
    voxels_outside_model_grid,
)
from usbrain.errors import InputError

# A mask with more of its voxels outside the brain than this is refused as misplaced.
MAX_OUTSIDE_BRAIN = 0.5
# A scan edited without a mask (heal finding the lesion, lesion --propose) with more of its
# brain outside the model grid than this is refused: the model would search a fraction of it.
# The paper grid (160 mm) cuts 2.75% of the MNI brain (its poles).
MAX_BRAIN_OUTSIDE_GRID = 0.25


@dataclass(frozen=True)
class Scan:
    """``native``: the scan as loaded; ``brain``: its brain mask (bool, native grid);
    ``geometry``: native ↔ model space; ``image``: (D, H, W) float32 in [0, 1] on the model
    grid; ``mask`` / ``lesion``: the lesion on the native grid (a :class:`Volume`) and the model
    grid (uint8 {0, 1}), or None; ``lesion_in_brain``: the fraction of the native lesion inside
    the brain (None without a mask)."""

    native: Volume
    brain: np.ndarray
    geometry: Geometry
    image: np.ndarray
    mask: Volume | None = None
    lesion: np.ndarray | None = None
    lesion_in_brain: float | None = None

    @classmethod
    def load(
        cls,
        image: Volume,
        space: ModelSpace,
        mask: Volume | None = None,
        brain: np.ndarray | None = None,
    ) -> Scan:
        """``image`` (and its lesion ``mask``, on the image's grid) in ``space``, refusing a mask
        that lies mostly outside the brain, that the model grid would cut or that vanishes at
        its resolution, and (without a mask) a brain the grid mostly misses.

        ``brain``: the scan's brain mask (bool, the image's shape) when it is known better than
        :func:`~usbrain.data.preprocess.brain_mask` finds it, as for an edit's output, whose
        brain is its input's: an inserted lesion darker than the threshold at the brain's edge
        would otherwise be cut out of it."""
        if brain is None:
            brain = brain_mask(image.data)
        elif brain.shape != image.shape:
            raise InputError(
                f"{image.name}: the brain mask has shape {brain.shape}, the scan {image.shape}"
            )
        inside = None
        if mask is not None:
            check_same_grid(image, mask)
            inside = fraction_in_brain(mask.data, brain)
            if inside < 1 - MAX_OUTSIDE_BRAIN:
                raise InputError(
                    f"{mask.name}: {100 * (1 - inside):.0f}% of the lesion lies outside the "
                    f"brain of {image.name}; is it the mask of this scan?"
                )
        geometry = geometry_for(image, space, brain)
        if mask is None:
            _check_brain_in_grid(image, brain, geometry, space)
        else:
            check_lesion_kept(mask, geometry)
        image_m = to_model(image, geometry, VolumeKind.IMAGE)
        lesion = None if mask is None else to_model(mask, geometry, VolumeKind.MASK)
        if lesion is not None and not lesion.any():
            raise InputError(
                f"{mask.name}: the lesion vanishes at the model's resolution "
                f"({space.spacing:g} mm); it is too small for this checkpoint"
            )
        return cls(image, brain, geometry, image_m, mask, lesion, inside)

    def to_native(self, data: np.ndarray, kind: VolumeKind) -> np.ndarray:
        """A model-space (D, H, W) volume on the scan's grid and intensity scale (see
        :func:`usbrain.data.preprocess.to_native`)."""
        return to_native(data, self.geometry, kind)

    def native_volume(self, data: np.ndarray) -> Volume:
        """``data`` of the native shape as a volume with the scan's affine and header."""
        return Volume(data, self.native.affine, None, self.native.header)


def _check_brain_in_grid(
    image: Volume, brain: np.ndarray, geometry: Geometry, space: ModelSpace
) -> None:
    cut = voxels_outside_model_grid(Volume(brain.astype(np.uint8), image.affine), geometry)
    fraction = cut / max(int(brain.sum()), 1)
    if fraction > MAX_BRAIN_OUTSIDE_GRID:
        raise InputError(
            f"{image.name}: {100 * fraction:.0f}% of the brain falls "
            f"outside the model's {'×'.join(map(str, space.size))} grid at {space.spacing:g} mm; "
            "is the scan skull-stripped, in mm and roughly centred on the brain?"
        )


def check_lesion_kept(mask: Volume, geometry: Geometry) -> None:
    """Refuse a lesion the model grid would cut (never crop silently through a lesion)."""
    cut = voxels_outside_model_grid(mask, geometry)
    if cut:
        total = int(np.count_nonzero(mask.data))
        raise InputError(
            f"{mask.name}: {cut} of {total} lesion voxels fall outside the model's "
            f"{'×'.join(map(str, geometry.model_shape))} grid (field of view "
            f"{geometry.model_shape[0] * abs(geometry.model[0, 0]):.0f} mm); the lesion would be "
            "cut. Is the scan skull-stripped and roughly centred on the brain?"
        )


def mask_on_grid(image: Volume, mask: Volume, resample_mask: bool) -> Volume:
    """``mask`` on ``image``'s grid: as is if it already is, resampled with ``resample_mask``,
    else the grid mismatch is an error."""
    try:
        check_same_grid(image, mask)
        return mask
    except InputError as exc:
        if not resample_mask:
            raise InputError(f"{exc}; pass --resample-mask to resample the mask") from None
    data = resample(mask.data, mask.affine, image.affine, image.shape) >= 0.5
    if not data.any():
        raise InputError(f"{mask.name}: no lesion voxel is left after resampling to {image.name}")
    return Volume(data.astype(np.uint8), image.affine.copy(), mask.path, image.header)
