"""Brain atrophy for the built-in cohort: enlarged ventricles, widened sulci, shrunken hippocampi.

Ageing and Alzheimer cohorts (OASIS, ADNI), on which the paper trains, differ from a template
mostly in three ways, each of which a smooth warp of one template never shows:

- the lateral ventricles enlarge (:func:`ventricle_pull`: a displacement field that makes the
  template be read from nearer the ventricles, so their CSF grows outward);
- the cortex thins and the sulci between its folds widen (:func:`widen_csf` in the cortical
  ribbon: a grey-value erosion spreads the dark sulcal CSF into the grey matter beside it);
- the hippocampi shrink and the temporal horns beside them open (the same erosion, in the
  hippocampal region of each hemisphere, :func:`hippocampal_weight`).

All are pure functions of arrays; the degree of each comes from the caller.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# MNI152 mm: the hippocampi's centres and half-extents (long axis anterior–posterior).
HIPPOCAMPUS_MM = ((-26.0, -22.0, -14.0), (26.0, -22.0, -14.0))
HIPPOCAMPUS_RADII_MM = (9.0, 20.0, 10.0)
VENTRICLE_RADII_MM = (30.0, 50.0, 30.0)  # the lateral ventricles' reach from the brain centre
VENTRICLE_DEPTH_MM = 15.0  # deeper than the cortex: central CSF is ventricular, not sulcal
PULL_SIGMA_MM = 8.0  # spatial scale of the enlargement: smooth enough to stay invertible


def central_csf(
    gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, offset_mm: np.ndarray, spacing: float
) -> np.ndarray:
    """The ventricles: brain voxels with little grey or white matter, deep and central.

    ``gm``, ``wm``: tissue probabilities in [0, 1]; ``brain``: bool; all (I, J, K).
    ``offset_mm``: (3, I, J, K) position of each voxel relative to the brain's centre. Returns
    bool (I, J, K).
    """
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    radii = np.asarray(VENTRICLE_RADII_MM)[:, None, None, None]
    central = ((offset_mm / radii) ** 2).sum(axis=0) < 1.0
    return brain & (gm < 0.25) & (wm < 0.25) & (depth > VENTRICLE_DEPTH_MM) & central


def ventricle_pull(ventricles: np.ndarray, spacing: float) -> np.ndarray:
    """Unit-peak displacement (3, I, J, K), in mm per mm of enlargement, toward the ventricles.

    The gradient of the ventricles' indicator blurred by 8 mm, scaled so its largest magnitude
    is 1: reading an image at ``x + e · pull(x)`` moves its content away from the ventricles by
    up to ``e`` mm, so the ventricles grow by about ``e`` mm on every side and the tissue around
    them is pushed outward, fading over ~2 blur widths. For ``e`` below the blur width (8 mm)
    the map stays one-to-one (its Jacobian stays positive).
    """
    if not ventricles.any():
        return np.zeros((3, *ventricles.shape), np.float32)
    field = ndimage.gaussian_filter(ventricles.astype(np.float32), PULL_SIGMA_MM / spacing)
    gradient = np.stack(np.gradient(field, spacing))
    peak = float(np.sqrt((gradient**2).sum(axis=0)).max())
    return (gradient / peak).astype(np.float32)


def hippocampal_weight(world_mm: np.ndarray) -> np.ndarray:
    """Where the hippocampi are, in [0, 1] (1 at their centres, 0 beyond their extent).

    ``world_mm``: (3, ...) MNI coordinates each voxel shows (after the subject's jitter, so the
    region follows the anatomy). Returns an array of shape ``world_mm.shape[1:]``.
    """
    radii = np.asarray(HIPPOCAMPUS_RADII_MM).reshape((3,) + (1,) * (world_mm.ndim - 1))
    weight = np.zeros(world_mm.shape[1:], np.float32)
    for centre in HIPPOCAMPUS_MM:
        c = np.asarray(centre).reshape(radii.shape)
        r2 = (((world_mm - c) / radii) ** 2).sum(axis=0)
        weight = np.maximum(weight, np.clip(1.0 - r2, 0.0, 1.0))
    return weight


def widen_csf(image: np.ndarray, weight: np.ndarray, radius: int = 1) -> np.ndarray:
    """``image`` with its dark CSF spread into the tissue beside it, by ``weight``.

    ``image``: (I, J, K) float (dark CSF, bright tissue); ``weight``: same shape in [0, 1] (0
    leaves a voxel as it is). A grey-value erosion (minimum over a ball of ``radius`` voxels)
    takes each voxel to its darkest neighbour's value, which opens sulci and horns where CSF
    lies within reach and leaves homogeneous tissue unchanged; the result is the blend
    ``(1 − w) · image + w · eroded``.
    """
    ball = ndimage.generate_binary_structure(3, 1)
    if radius > 1:
        ball = ndimage.iterate_structure(ball, radius)
    eroded = ndimage.grey_erosion(image, footprint=ball)
    return ((1.0 - weight) * image + weight * eroded).astype(image.dtype)


def cortical_ribbon(gm: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
    """Weight in [0, 1] of the cortex: grey matter within 12 mm of the brain's edge.

    ``gm``: grey-matter probability; ``depth_mm``: distance to the brain's edge; (I, J, K).
    """
    return (gm * np.clip((12.0 - depth_mm) / 6.0, 0.0, 1.0)).astype(np.float32)
