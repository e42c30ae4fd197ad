"""The built-in cohort: synthetic subjects with ground truth, made from a real brain.

Seed: the MNI152 2009a symmetric template that nilearn ships (skull-stripped T1 with grey- and
white-matter probability maps). Each subject gets a random smooth deformation and affine jitter
of that anatomy, a contrast change, a bias field and noise, and — four subjects in five — a
lesion grown inside tissue priors (:func:`usbrain.data.pseudo.fluid_lesion_shape`):

- ``stroke``: territorial (cortical + subcortical, 10–150 mL) or lacunar (deep, 1–15 mL);
- ``wmh``: periventricular or deep white-matter hyperintensities, 0.5–30 mL in all.

Every subject is written as healthy, pathological and mask (plus its brain mask); the
pathological image equals the healthy one beyond one voxel outside the lesion, and bias and noise
are shared, so every task has exact ground truth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import datasets
from scipy import ndimage
from tqdm import tqdm

from usbrain.data.datasets import Record, Split, assign_splits, write_manifest
from usbrain.data.nifti import save_nifti
from usbrain.data.pseudo import (
    LesionKind,
    embed_lesion,
    fluid_lesion_shape,
    sample_lesion_ratio,
    smooth_noise,
    white_matter_mean,
)
from usbrain.errors import ConfigError
from usbrain.files import atomic_dir, check_writable

FIELD_OF_VIEW_MM = 200.0  # holds the ≈145×181×155 mm MNI brain with room for jitter
VOLUME_ML = {
    "territorial": (10.0, 150.0),
    "lacunar": (1.0, 15.0),
    LesionKind.WMH: (0.5, 30.0),
}
HEALTHY_EVERY = 5  # subjects 4, 9, 14, … are healthy only
SPLIT_FRACTIONS = {Split.TRAIN: 0.7, Split.VAL: 0.15, Split.TEST: 0.15}
WM_LEVEL = 800.0  # white matter is scaled to about this value, as a scanner's units might be


@dataclass(frozen=True)
class Template:
    """The MNI152 template at 1 mm: ``t1``, ``gm``, ``wm`` in [0, 1], ``brain`` {0, 1}."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    affine: np.ndarray

    @functools.cached_property
    def centre_mm(self) -> np.ndarray:
        return nib.affines.apply_affine(self.affine, np.argwhere(self.brain > 0.5).mean(0))


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """nilearn's MNI152 2009a template and tissue maps (shipped in its wheel, no download)."""
    t1 = datasets.load_mni152_template(resolution=1)
    maps = [
        np.asarray(img.get_fdata(), dtype=np.float32)
        for img in (
            t1,
            datasets.load_mni152_gm_template(resolution=1),
            datasets.load_mni152_wm_template(resolution=1),
            datasets.load_mni152_brain_mask(resolution=1),
        )
    ]
    return Template(*maps, affine=t1.affine.copy())


@functools.lru_cache(maxsize=4)
def _prefiltered(spacing: float) -> tuple[np.ndarray, ...]:
    """Template maps blurred for sampling at ``spacing`` mm (FWHM = spacing), no aliasing."""
    template = load_template()
    sigma = np.sqrt(max(spacing**2 - 1.0, 0.0)) / 2.3548
    maps = (template.t1, template.gm, template.wm, template.brain)
    return tuple(ndimage.gaussian_filter(m, sigma) if sigma > 0.1 else m for m in maps)


@dataclass(frozen=True)
class CohortSubject:
    """One synthetic subject on an (S, S, S) grid: ``healthy`` and ``pathological`` float32,
    ``mask`` and ``brain`` uint8 {0, 1}, the grid ``affine``, the lesion ``kind`` ("stroke",
    "wmh" or "healthy"), its ``subtype`` and volume ``lesion_ml``."""

    healthy: np.ndarray
    pathological: np.ndarray
    mask: np.ndarray
    brain: np.ndarray
    wm: np.ndarray
    affine: np.ndarray
    kind: str
    subtype: str
    lesion_ml: float


def cohort_affine(size: int, centre_mm: np.ndarray) -> np.ndarray:
    """RAS+ grid of ``size``³ voxels spanning 200 mm, centred on ``centre_mm``."""
    spacing = FIELD_OF_VIEW_MM / size
    affine = np.diag([spacing] * 3 + [1.0])
    affine[:3, 3] = centre_mm - spacing * (size - 1) / 2
    return affine


def _random_rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    a, b, c = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _anatomy(
    template: Template, affine: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Template T1, GM, WM and brain sampled through a random affine + smooth deformation."""
    spacing = float(affine[0, 0])
    grid = np.indices((size,) * 3, dtype=np.float32).reshape(3, -1)
    world = nib.affines.apply_affine(affine, grid.T).T
    centre = template.centre_mm[:, None]
    linear = _random_rotation(rng, 5.0) @ np.diag(rng.uniform(0.95, 1.05, 3))
    world = linear @ (world - centre) + centre + rng.uniform(-4.0, 4.0, (3, 1))
    # A smooth displacement of a few mm: noise on a coarse 6³ lattice, cubic-upsampled.
    coarse = rng.normal(0.0, 2.5, (3, 6, 6, 6)).astype(np.float32)
    world = world + np.stack(
        [ndimage.zoom(c, size / 6, order=3, mode="nearest").reshape(-1) for c in coarse]
    )
    voxel = nib.affines.apply_affine(np.linalg.inv(template.affine), world.T).T
    maps = _prefiltered(spacing)
    return tuple(
        ndimage.map_coordinates(m, voxel, order=1, mode="constant").reshape((size,) * 3)
        for m in maps
    )


def _blobs(shape: tuple[int, ...], points: np.ndarray, sigma: float) -> np.ndarray:
    seed = np.zeros(shape, np.float32)
    seed[tuple(points.T)] = 1.0
    return ndimage.gaussian_filter(seed, sigma) / max(1e-12, float(seed.max()))


def _grow_lesion(
    kind: LesionKind,
    gm: np.ndarray,
    wm: np.ndarray,
    brain: np.ndarray,
    voxel_ml: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """A lesion mask of ``kind`` on the subject's grid and its subtype."""
    tissue = np.clip(gm + wm, 0, 1) * brain
    depth = ndimage.distance_transform_edt(brain) * (voxel_ml * 1000) ** (1 / 3)  # mm to edge
    if kind is LesionKind.STROKE:
        subtype = "territorial" if rng.random() < 0.6 else "lacunar"
        if subtype == "territorial":  # cortex and the white matter beneath it
            candidates = np.argwhere((gm > 0.5) & (depth > 6) & (depth < 20) & brain)
            n_seeds, prior = int(rng.integers(1, 4)), tissue
        else:  # deep grey nuclei and white matter
            candidates = np.argwhere((tissue > 0.7) & (depth > 25) & brain)
            n_seeds, prior = 1, tissue
    else:
        subtype = "periventricular" if rng.random() < 0.5 else "deep"
        if subtype == "periventricular":
            csf = brain & (gm < 0.2) & (wm < 0.2) & (depth > 15)
            near = ndimage.binary_dilation(csf, iterations=2) & ~csf
            candidates = np.argwhere(near & (wm > 0.5))
        else:
            candidates = np.argwhere((wm > 0.9) & brain)
        n_seeds, prior = int(rng.integers(2, 7)), wm**2 * brain
    first = candidates[rng.integers(len(candidates))]
    if subtype == "territorial":  # neighbouring seeds: one vascular territory
        near_first = candidates[np.abs(candidates - first).max(1) < 6]
        points = near_first[rng.integers(len(near_first), size=n_seeds)]
    else:
        points = np.vstack([first, candidates[rng.integers(len(candidates), size=n_seeds - 1)]])
    low, high = VOLUME_ML[subtype if kind is LesionKind.STROKE else kind]
    target_ml = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    mask = fluid_lesion_shape(
        _blobs(brain.shape, points, 1.0),
        prior,
        round(target_ml / voxel_ml),
        rng,
        connected=n_seeds == 1 or subtype == "territorial",
    )
    return mask & brain, subtype


def make_subject(template: Template, index: int, size: int, seed: int) -> CohortSubject:
    """Subject ``index`` of the cohort with ``seed``: the same whatever the cohort's size."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    affine = cohort_affine(size, template.centre_mm)
    voxel_ml = float(affine[0, 0]) ** 3 / 1000.0
    t1, gm, wm, brain_p = _anatomy(template, affine, size, rng)
    brain = (brain_p > 0.5) & (t1 > 0.02)
    clean = np.where(brain, np.clip(t1, 0, None), 0.0).astype(np.float32)
    clean = (clean / max(float(clean.max()), 1e-6)) ** rng.uniform(0.8, 1.25)  # contrast

    if index % HEALTHY_EVERY == HEALTHY_EVERY - 1:
        kind, subtype, mask = "healthy", "", np.zeros(brain.shape, np.uint8)
        sick = clean
    else:
        lesion_kind = LesionKind.STROKE if rng.random() < 0.5 else LesionKind.WMH
        mask, subtype = _grow_lesion(lesion_kind, gm, wm, brain, voxel_ml, rng)
        kind = str(lesion_kind)
        level = sample_lesion_ratio(lesion_kind, rng) * white_matter_mean(clean, brain)
        sick = embed_lesion(clean, mask, level, rng)

    # Scanner effects after the lesion, identical for both versions: the images differ only
    # where the lesion was painted.
    bias = np.exp(0.08 * smooth_noise(brain.shape, size / 6, rng))
    scale = WM_LEVEL / white_matter_mean(clean, brain)
    noise = WM_LEVEL * rng.normal(0.0, rng.uniform(0.01, 0.03), brain.shape)  # 1–3% of WM

    def scanner(image: np.ndarray) -> np.ndarray:
        out = image * bias * scale + noise
        return np.where(brain, np.maximum(out, 0.0), 0.0).astype(np.float32)

    return CohortSubject(
        healthy=scanner(clean),
        pathological=scanner(sick),
        mask=mask.astype(np.uint8),
        brain=brain.astype(np.uint8),
        wm=wm.astype(np.float32),
        affine=affine,
        kind=kind,
        subtype=subtype,
        lesion_ml=float(mask.sum()) * voxel_ml,
    )


def write_cohort(
    out: str | Path,
    subjects: int,
    size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """``usbrain cohort``: write ``subjects`` synthetic subjects and a manifest into ``out``."""
    if subjects < 1:
        raise ConfigError(f"--subjects: need at least 1, got {subjects}")
    if not 16 <= size <= 256:
        raise ConfigError(f"--size: must be between 16 and 256 voxels, got {size}")
    out = check_writable(out, overwrite)
    template = load_template()
    records, kinds, subtypes, volumes, brains = [], [], [], [], []
    with atomic_dir(out, overwrite) as tmp:
        for i in tqdm(range(subjects), desc="cohort", unit="subject", disable=not progress):
            sub = make_subject(template, i, size, seed)
            name = f"sub-{i:03d}"
            files = {}
            for part in ("healthy", "pathological", "mask", "brain"):
                files[part] = save_nifti(
                    tmp / f"{name}_{part}.nii.gz", getattr(sub, part), sub.affine
                )
            records.append(Record(name, files["pathological"], files["mask"], files["healthy"]))
            kinds.append(sub.kind)
            subtypes.append(sub.subtype)
            volumes.append(f"{sub.lesion_ml:.3f}")
            brains.append(files["brain"].name)
        records = assign_splits(records, SPLIT_FRACTIONS, seed=seed)
        write_manifest(
            records,
            tmp / "manifest.csv",
            {"kind": kinds, "subtype": subtypes, "lesion_ml": volumes, "brain": brains},
        )
    return out / "manifest.csv"
