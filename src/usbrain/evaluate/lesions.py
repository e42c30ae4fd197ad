"""Lesion metrics: how well a found lesion (e.g. by the segmenter) matches what was asked for.

All functions take numpy masks of one grid, any dtype, where a voxel is lesion when it is
nonzero (``> 0``). Volumes are in mL: the voxel count times ``voxel_ml``, the volume of one voxel
(:func:`usbrain.data.masks.voxel_ml` of the grid's spacing; 4 mm isotropic → 0.064 mL).

Empty masks are handled explicitly:

- :func:`lesion_dice` of two empty masks is 1 (nothing to find, nothing found); one empty and one
  not gives 0 (as :func:`usbrain.metrics.dice`, which it uses);
- metrics relative to a reference lesion (:func:`relative_volume_error`, :func:`residual_lesion`)
  raise :class:`~usbrain.errors.EmptyReferenceError` when that
  lesion is empty: a ratio to nothing is undefined, and a silent NaN would vanish into a median.

Masks of different shapes raise :class:`~usbrain.errors.ShapeMismatchError`. Both errors are
``ValueError`` subclasses (and :class:`~usbrain.errors.InputError`, so the CLI shows one line).

>>> a = np.zeros((10, 10, 10), np.uint8); a[0:4, 0:4, 0:4] = 1
>>> b = np.roll(a, 2, axis=0)  # the same cube shifted by half its side: half of it shared
>>> lesion_dice(a, b)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from usbrain.data.masks import dilated
from usbrain.errors import EmptyReferenceError, ShapeMismatchError
from usbrain.evaluate.tasks import OUTSIDE_DILATION
from usbrain.metrics import dice


def _check_shapes(**masks: np.ndarray) -> None:
    shapes = {name: np.shape(m) for name, m in masks.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ShapeMismatchError(f"masks are not on one grid: {listing}; resample one first")


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(np.asarray(mask) > 0))


def _check_reference(mask: np.ndarray, name: str, metric: str) -> int:
    count = _count(mask)
    if count == 0:
        raise EmptyReferenceError(f"{metric}: the {name} mask is empty; it needs a lesion")
    return count


def lesion_dice(target: np.ndarray, found: np.ndarray) -> float:
    """Dice overlap ``2|T ∩ F| / (|T| + |F|)`` in [0, 1] of a target and a found lesion.

    ``target``, ``found``: (D, H, W) masks of one grid. Two empty masks give 1, one empty and one
    not give 0.
    """
    _check_shapes(target=target, found=found)

    def as_tensor(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(mask) > 0, np.float32))[None, None]

    return float(dice(as_tensor(found), as_tensor(target)))


def absolute_volume_error_ml(
    target: np.ndarray, found: np.ndarray, voxel_volume_ml: float
) -> float:
    """``|V(found) − V(target)|`` in mL (≥ 0); defined for empty masks too (then it is V of the
    other one).

    >>> t = np.zeros((8, 8, 8)); t[:2, :2, :2] = 1  # 8 voxels
    >>> f = np.zeros((8, 8, 8)); f[:3, :2, :2] = 1  # 12 voxels
    >>> absolute_volume_error_ml(t, f, voxel_volume_ml=0.5)
    2.0
    """
    _check_shapes(target=target, found=found)
    return abs(_count(found) - _count(target)) * float(voxel_volume_ml)


def relative_volume_error(target: np.ndarray, found: np.ndarray) -> float:
    """``|V(found) − V(target)| / V(target)`` (≥ 0, unitless; 0.5 = half the target's volume off).

    Raises :class:`~usbrain.errors.EmptyReferenceError` for an empty ``target``.
    """
    _check_shapes(target=target, found=found)
    reference = _check_reference(target, "target", "relative volume error")
    return abs(_count(found) - reference) / reference


@dataclass(frozen=True)
class Residual:
    """Lesion left after healing: ``ml`` found inside the (dilated) original lesion region, and
    ``fraction`` = residual voxels / original lesion voxels (0 = fully healed; it can exceed 1
    when the found lesion spills into the dilation ring)."""

    ml: float
    fraction: float


def residual_lesion(
    original: np.ndarray,
    found: np.ndarray,
    voxel_volume_ml: float,
    dilation: int = OUTSIDE_DILATION,
) -> Residual:
    """What a segmenter still finds of a healed lesion.

    ``original``: the lesion mask the scan was healed with; ``found``: the lesion a segmenter
    finds in the healed scan; both (D, H, W) on one grid. The region is ``original`` dilated by
    ``dilation`` voxels (26-connected; default 2, the complement of the "outside" region of
    :mod:`usbrain.evaluate.tasks`), so a lesion left slightly off the mask edge still counts while
    unrelated findings elsewhere do not. Raises :class:`~usbrain.errors.EmptyReferenceError` for
    an empty ``original``.

    >>> o = np.zeros((9, 9, 9)); o[3:6, 3:6, 3:6] = 1  # 27 voxels
    >>> f = np.zeros((9, 9, 9)); f[4, 4, 4:6] = 1; f[0, 0, 0] = 1  # 2 near it, 1 far away
    >>> residual_lesion(o, f, voxel_volume_ml=0.1, dilation=1)
    Residual(ml=0.2, fraction=0.07407407407407407)
    """
    _check_shapes(original=original, found=found)
    reference = _check_reference(original, "original", "residual lesion")
    left = _count((np.asarray(found) > 0) & dilated(np.asarray(original), dilation))
    return Residual(ml=left * float(voxel_volume_ml), fraction=left / reference)
