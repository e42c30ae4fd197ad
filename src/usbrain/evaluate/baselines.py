"""The simple alternatives every USB edit is compared with, run on the same inputs.

Heal (remove a lesion):
- :func:`fill_white_matter`: the lesion set to the scan's white-matter intensity;
- :func:`fill_mirror`: the lesion filled from the contralateral hemisphere (mirrored across the
  mid-sagittal plane x = 0 of MNI space, where the built-in cohort and ATLAS scans live);
- SDEdit and hard-mask latent inpainting: the same model and edit as ``heal`` with the guidance
  replaced (:func:`sdedit_config`; :func:`usbrain.diffusion.guidance.hard_mask_hooks`);
- and a floor rather than a baseline: ``heal`` ending at the healthy scan's own latent
  (:func:`usbrain.diffusion.guidance.end_at`), what a perfect denoiser would score with this
  autoencoder and model grid.

Lesion insertion:
- :func:`paste_lesion_intensities`: a real lesion's intensities (relative to its scan's white
  matter) pasted into the target mask (CarveMix-style copy-paste);
- :func:`intensity_model_lesion`: the built-in cohort's own lesion model
  (:func:`usbrain.data.pseudo.embed_lesion`);
- SDEdit without LCG (:func:`sdedit_config` with ACG kept).

Native-grid baselines take and return numpy (I, J, K) arrays in the scan's intensity units.
"""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
from scipy import ndimage

from usbrain.config import LesionMap, PullTarget, SamplingConfig
from usbrain.data.preprocess import brain_mask
from usbrain.data.pseudo import embed_lesion, white_matter_mean

PAPER_STEPS = 300  # the paper's DDIM steps, against our faster default


def fill_white_matter(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the lesion set to the white-matter intensity (lesion excluded from it)."""
    out = image.astype(np.float32, copy=True)
    out[mask > 0] = white_matter_mean(image, brain_mask(image), exclude=mask)
    return out


def fill_mirror(image: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``image`` with each lesion voxel replaced by the voxel mirrored across world x = 0
    (trilinear), i.e. the same place in the other hemisphere."""
    out = image.astype(np.float32, copy=True)
    idx = np.argwhere(mask > 0)
    if idx.size == 0:
        return out
    world = nib.affines.apply_affine(affine, idx)
    world[:, 0] *= -1.0
    mirrored = nib.affines.apply_affine(np.linalg.inv(affine), world)
    out[mask > 0] = ndimage.map_coordinates(image.astype(np.float32), mirrored.T, order=1)
    return out


def paste_lesion_intensities(
    image: np.ndarray,
    mask: np.ndarray,
    donor: np.ndarray,
    donor_mask: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``image`` with the target ``mask`` filled by a donor's lesion intensities: each target
    voxel gets a random donor lesion voxel, rescaled by the two scans' white-matter ratio."""
    out = image.astype(np.float32, copy=True)
    values = donor[donor_mask > 0]
    if values.size == 0 or not mask.any():
        return out
    scale = white_matter_mean(image, brain_mask(image), exclude=mask) / white_matter_mean(
        donor, brain_mask(donor), exclude=donor_mask
    )
    out[mask > 0] = rng.choice(values, size=int(np.count_nonzero(mask))) * scale
    return out


def intensity_model_lesion(
    image: np.ndarray, mask: np.ndarray, ratio: float, rng: np.random.Generator
) -> np.ndarray:
    """The built-in cohort's lesion model: ``ratio`` × white matter, textured, soft edge."""
    wm = white_matter_mean(image, brain_mask(image), exclude=mask)
    return embed_lesion(image.astype(np.float32), mask, ratio * wm, rng)


def sdedit_config(sampling: SamplingConfig, keep_anatomy: bool = False) -> SamplingConfig:
    """SDEdit: the same noising and denoising with LCG off, and ACG off unless ``keep_anatomy``."""
    return replace(
        sampling, guidance=replace(sampling.guidance, anatomy=keep_anatomy, lesion=False)
    )


def ablation_configs(sampling: SamplingConfig, timesteps: int) -> dict[str, SamplingConfig]:
    """USB's edit with one sampling choice changed each: the ablations docs/method.md §5 names
    (no ACG, no LCG, the other ACG pull target, the other lesion map, the paper's step count —
    at most the ``timesteps`` the model was trained with)."""
    g = sampling.guidance
    steps = min(PAPER_STEPS, timesteps)
    other_target = PullTarget.NOISED if g.pull_target is PullTarget.CLEAN else PullTarget.CLEAN
    other_map = LesionMap.LATENT if g.lesion_map is LesionMap.POOLED else LesionMap.POOLED
    return {
        "no-acg": replace(sampling, guidance=replace(g, anatomy=False)),
        "no-lcg": replace(sampling, guidance=replace(g, lesion=False)),
        f"pull-{other_target}": replace(sampling, guidance=replace(g, pull_target=other_target)),
        f"map-{other_map}": replace(sampling, guidance=replace(g, lesion_map=other_map)),
        f"{steps}-steps": replace(sampling, steps=steps),
    }
