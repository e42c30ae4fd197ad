"""Bring a native scan to model space and model outputs back to the scan's space.

Model space (docs/method.md §1): RAS+, isotropic spacing, a fixed grid centred on the brain,
intensities clipped to the [0.5, 99.5] percentiles inside the brain and scaled to [0, 1]. The whole
geometric part is one resampling through world coordinates (native voxel → world mm → model voxel),
so any axis order, oblique affine or anisotropic spacing is handled by the same code and is undone
by the inverse resampling in :func:`to_native`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import nibabel as nib
import numpy as np
from scipy import ndimage

from usbrain.config import ModelSpace
from usbrain.data.geometry import Geometry
from usbrain.data.nifti import GRID_ATOL_MM, Volume, check_same_grid
from usbrain.errors import InputError

PERCENTILES = (0.5, 99.5)
# Skull-stripped scans have a zero background; 1% of the bright end separates it from the
# darkest tissue (CSF, stroke cavities: ~20–30% of white matter on T1) with a wide margin.
BRAIN_FRACTION = 0.01
# Full width at half maximum of a Gaussian, in units of its sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


class VolumeKind(StrEnum):
    """What a volume holds, which decides how it is resampled and rescaled."""

    IMAGE = "image"  # intensities in [0, 1] in model space
    MASK = "mask"  # {0, 1}
    DELTA = "delta"  # an intensity change in model units (an edit), no offset


def brain_mask(data: np.ndarray) -> np.ndarray:
    """Brain of a skull-stripped scan: voxels above 1% of the 99th percentile, holes filled.

    ``data``: (I, J, K) intensities, any unit. Returns a bool array of the same shape.
    """
    nonzero = data[data > 0]
    if nonzero.size == 0:
        return np.zeros(data.shape, dtype=bool)
    return ndimage.binary_fill_holes(data > BRAIN_FRACTION * np.percentile(nonzero, 99))


def intensity_window(data: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    """The [0.5, 99.5] intensity percentiles inside ``brain``."""
    low, high = np.percentile(data[brain], PERCENTILES)
    if not high > low:
        raise InputError("the brain has no intensity contrast (constant image?)")
    return float(low), float(high)


def normalise(data: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` to ``[0, 1]``, clipping outside; float32."""
    return np.clip((data - low) / (high - low), 0.0, 1.0).astype(np.float32)


def resample(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    order: int = 1,
) -> np.ndarray:
    """Resample ``data`` from its grid onto another through world coordinates.

    ``data``: (I, J, K) on ``src_affine``; returns ``dst_shape`` float32 on ``dst_affine``, zero
    outside the source. When the target samples the source more coarsely along an axis, that axis
    is Gaussian-smoothed first (FWHM = the new sampling interval) so thin structures and small
    lesions are averaged rather than aliased.
    """
    src_from_dst = np.linalg.inv(src_affine) @ dst_affine
    step = np.abs(src_from_dst[:3, :3]).max(axis=1)  # source voxels per target voxel, per axis
    sigma = np.sqrt(np.maximum(step**2 - 1.0, 0.0)) / FWHM_PER_SIGMA
    source = data.astype(np.float32)
    if np.any(sigma > 0.1):
        source = ndimage.gaussian_filter(source, sigma, mode="constant")
    out = ndimage.affine_transform(
        source,
        src_from_dst[:3, :3],
        offset=src_from_dst[:3, 3],
        output_shape=tuple(int(s) for s in dst_shape),
        order=order,
        mode="constant",
        cval=0.0,
    )
    return out.astype(np.float32)


def geometry_for(image: Volume, space: ModelSpace, brain: np.ndarray | None = None) -> Geometry:
    """The model grid and intensity window for ``image``: centred on its brain (``brain``: its
    :func:`brain_mask`, if the caller has it already)."""
    brain = brain_mask(image.data) if brain is None else brain
    if not brain.any():
        raise InputError(f"{image.name}: no brain found (image has no positive voxels)")
    try:
        low, high = intensity_window(image.data, brain)
    except InputError as exc:
        raise InputError(f"{image.name}: {exc}") from None
    centre = nib.affines.apply_affine(image.affine, np.argwhere(brain).mean(axis=0))
    return Geometry.build(image.affine, image.shape, centre, space, low, high)


@dataclass(frozen=True)
class Prepared:
    """A scan in model space: ``image`` (D, H, W) float32 in [0, 1], ``mask`` (D, H, W) uint8
    {0, 1} or None, and the :class:`Geometry` that undoes it."""

    image: np.ndarray
    mask: np.ndarray | None
    geometry: Geometry


def _check_native_grid(volume: Volume, geometry: Geometry) -> None:
    if volume.shape != geometry.native_shape or not np.allclose(
        volume.affine, geometry.native, atol=GRID_ATOL_MM
    ):
        raise InputError(f"{volume.name}: not on the grid this geometry was computed for")


def to_model(volume: Volume, geometry: Geometry, kind: VolumeKind) -> np.ndarray:
    """Resample a native image or mask onto ``geometry``'s model grid (see :func:`preprocess`)."""
    _check_native_grid(volume, geometry)
    out = resample(volume.data, volume.affine, geometry.model, geometry.model_shape)
    if kind is VolumeKind.MASK:
        return (out >= 0.5).astype(np.uint8)
    if kind is VolumeKind.IMAGE:
        return normalise(out, geometry.intensity_low, geometry.intensity_high)
    return out


def preprocess(
    image: Volume,
    space: ModelSpace,
    mask: Volume | None = None,
    geometry: Geometry | None = None,
) -> Prepared:
    """Bring ``image`` (and its ``mask``) to model space.

    ``geometry`` reuses another scan's model grid and intensity window (e.g. the known healthy
    image of a pathological scan, so both share one model space). Masks are resampled as
    fractions (smoothed when downsampled) and cut at 0.5.

    >>> import numpy as np
    >>> from usbrain.config import ModelSpace
    >>> from usbrain.data.nifti import Volume
    >>> img = np.zeros((20, 20, 20), np.float32); img[5:15, 5:15, 5:15] = 1 + np.arange(10)
    >>> p = preprocess(Volume(img, np.eye(4)), ModelSpace(size=(8, 8, 8), spacing=2.0))
    >>> p.image.shape, bool(p.image.min() >= 0 and p.image.max() <= 1)
    ((8, 8, 8), True)
    """
    if mask is not None:
        check_same_grid(image, mask)
    if geometry is None:
        geometry = geometry_for(image, space)
    elif tuple(geometry.model_shape) != tuple(space.size):
        raise InputError(
            f"{image.name}: geometry is for a {geometry.model_shape} grid, not {space}"
        )
    image_m = to_model(image, geometry, VolumeKind.IMAGE)
    mask_m = None if mask is None else to_model(mask, geometry, VolumeKind.MASK)
    return Prepared(image_m, mask_m, geometry)


def to_native(data: np.ndarray, geometry: Geometry, kind: VolumeKind) -> np.ndarray:
    """Resample a model-space volume back onto the input scan's grid and intensity scale.

    ``data``: (D, H, W) on the model grid. IMAGE: [0, 1] → native intensities, background (0)
    stays 0. MASK: → uint8 {0, 1}. DELTA: a change in model units → the same change in native
    units. Returns an array of ``geometry.native_shape``.
    """
    if tuple(data.shape) != tuple(geometry.model_shape):
        raise InputError(
            f"volume of shape {data.shape} is not on the model grid {geometry.model_shape}"
        )
    out = resample(data, geometry.model, geometry.native, geometry.native_shape)
    scale = geometry.intensity_high - geometry.intensity_low
    if kind is VolumeKind.MASK:
        return (out >= 0.5).astype(np.uint8)
    if kind is VolumeKind.DELTA:
        return (out * scale).astype(np.float32)
    return np.where(out > 0, geometry.intensity_low + out * scale, 0.0).astype(np.float32)


def voxels_outside_model_grid(mask: Volume, geometry: Geometry) -> int:
    """How many nonzero voxels of a native ``mask`` fall outside the model grid (would be cut)."""
    idx = np.argwhere(mask.data > 0)
    if idx.size == 0:
        return 0
    model_idx = nib.affines.apply_affine(
        np.linalg.inv(geometry.model) @ mask.affine, idx.astype(np.float64)
    )
    limit = np.asarray(geometry.model_shape) - 0.5
    inside = np.all((model_idx >= -0.5) & (model_idx <= limit), axis=1)
    return int(np.count_nonzero(~inside))
