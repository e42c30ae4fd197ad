"""Scores of edits against what the built-in cohort knows (native grids, native intensities).

- heal: in-lesion MAE of the output to the known healthy scan, next to the input's own in-lesion
  MAE (what healing must shrink), and PSNR to the input outside the dilated lesion (what it must
  leave alone);
- lesion insertion: mean intensity inside the target mask after / before (T1 lesions are dark),
  PSNR to the input outside the dilated mask, and, when the true pathological scan is known, the
  in-lesion MAE to it;
- condition: lesion contrast, the mean intensity inside the mask over the median of the brain
  outside the dilated mask, of the generated brain next to the real scan the mask came from
  (a lesion drawn like the real one scores alike; a signal void scores far lower; no lesion
  scores about 1).

Sharpness (``sharpness_ratio``): the mean intensity-gradient magnitude of the output over the
truth's: inside the lesion for heal; for condition, in each one's tissue away from the brain's
outline, per unit of its median intensity (:func:`~usbrain.evaluate.regions.brain_sharpness`).
1 when as sharp as the real scan, lower for a blurred fill; an inserted void is the intensity
ratio's to catch (its edge is sharp).

Outside regions are restricted to the input's brain (the zero background would flatter PSNR);
PSNR uses the input's maximum as its data range.

Heal and insertion (against a known pathological scan) also get the scores others publish: the
BraTS inpainting challenge's SSIM / PSNR / MSE in the mask (``brats_*``,
:mod:`usbrain.evaluate.brats`) for heal, and whole-volume PSNR / SSIM to the paired truth over
the full volume, the healthy region and the lesion region (:mod:`usbrain.evaluate.paired`).
"""

from __future__ import annotations

import numpy as np

from usbrain.data.masks import dilated
from usbrain.data.preprocess import brain_mask
from usbrain.evaluate.brats import inpainting_scores
from usbrain.evaluate.paired import paired_scores
from usbrain.evaluate.regions import (
    brain_sharpness,
    region_gradient,
    region_mae,
    region_mean,
    region_psnr,
)

OUTSIDE_DILATION = 2  # native voxels between the lesion and the "outside" region


def _regions(source: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lesion = mask > 0
    outside = brain_mask(source) & ~dilated(mask, OUTSIDE_DILATION)
    return lesion, outside


def sharpness_ratio(
    output: np.ndarray, region: np.ndarray, truth: np.ndarray, truth_region: np.ndarray
) -> float:
    """Mean gradient magnitude of ``output`` in ``region`` over ``truth``'s in ``truth_region``
    (one grid); NaN where the truth is flat there."""
    reference = region_gradient(truth, truth_region)
    return region_gradient(output, region) / reference if reference > 0 else float("nan")


def heal_scores(
    output: np.ndarray, source: np.ndarray, healthy: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """``output``: healed scan; ``source``: its input; ``healthy``: ground truth; all one grid."""
    lesion, outside = _regions(source, mask)
    mae_out = region_mae(output, healthy, lesion)
    mae_in = region_mae(source, healthy, lesion)
    brats = inpainting_scores(output, healthy, mask)
    return {
        "mae_lesion_output": mae_out,
        "mae_lesion_input": mae_in,
        "mae_ratio": mae_out / mae_in if mae_in > 0 else float("nan"),
        "psnr_outside": region_psnr(output, source, outside, float(source.max())),
        "sharpness_ratio": sharpness_ratio(output, lesion, healthy, lesion),
        **{f"brats_{k}": brats[k] for k in ("ssim", "psnr", "mse")},
        **paired_scores(output, healthy, mask),
    }


def lesion_scores(
    output: np.ndarray, source: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None
) -> dict[str, float]:
    """``output``: scan with the inserted lesion; ``source``: the healthy input; ``truth``: the
    real pathological scan if known."""
    lesion, outside = _regions(source, mask)
    scores = {
        "intensity_ratio": region_mean(output, lesion) / region_mean(source, lesion),
        "psnr_outside": region_psnr(output, source, outside, float(source.max())),
    }
    if truth is not None:
        scores["mae_lesion_output"] = region_mae(output, truth, lesion)
        scores["mae_lesion_input"] = region_mae(source, truth, lesion)
        scores |= paired_scores(output, truth, mask)
    return scores


def lesion_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean intensity inside ``mask`` / median intensity of ``image``'s brain outside the dilated
    mask (T1 lesions are dark: < 1); NaN for an empty mask or no brain outside it."""
    lesion, outside = _regions(image, mask)
    if not lesion.any() or not outside.any():
        return float("nan")
    return region_mean(image, lesion) / float(np.median(image[outside]))


def condition_scores(
    output: np.ndarray, mask: np.ndarray, real: np.ndarray | None = None
) -> dict[str, float]:
    """``output``: brain generated for ``mask``; ``real``: the scan the mask was traced on, if
    known (its own contrast is the one to match)."""
    scores = {"lesion_contrast": lesion_contrast(output, mask)}
    if real is not None:
        scores["real_contrast"] = lesion_contrast(real, mask)
        reference = brain_sharpness(real)  # the generated brain is in model intensities
        scores["sharpness_ratio"] = brain_sharpness(output) / reference
    return scores
