"""The built-in cohort: synthetic subjects with exact ground truth, made from a real brain.

Seed: the MNI152 2009a symmetric template that nilearn ships in its wheel (skull-stripped T1, grey-
and white-matter probability maps, brain mask; docs/method.md §6). Each subject is that anatomy
under a random affine jitter and smooth deformation, sampled onto an S³ grid spanning 200 mm, with a
contrast change, a bias field and noise. Four subjects in five carry a lesion grown inside the
subject's own (resampled) tissue priors by :func:`usbrain.data.pseudo.fluid_lesion_shape`:

- ``stroke`` (1–150 mL, log-uniform): below 8 mL a lacunar/subcortical infarct seeded deep in the
  tissue; above, a territorial one seeded in the cortex and grown into the white matter beneath;
- ``wmh`` (0.5–30 mL in all): periventricular caps seeded in the white matter next to the
  ventricles plus punctate deep white-matter lesions, kept inside the white-matter prior.

Every subject exists as healthy, pathological and mask (plus its brain mask). The lesion is
painted on the clean image and the bias field and noise come after, identical for both versions,
so the pathological image equals the healthy one bit for bit beyond one voxel outside the mask.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "cohort"
>>> write_cohort(out, subjects=2, size=16, progress=False).name
'manifest.csv'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from usbrain.data import atrophy
from usbrain.data.datasets import Record, Split, assign_splits, write_manifest
from usbrain.data.masks import voxel_ml
from usbrain.data.nifti import save_nifti
from usbrain.data.preprocess import FWHM_PER_SIGMA
from usbrain.data.pseudo import (
    LesionKind,
    advect_diffuse,
    embed_lesion,
    fluid_lesion_shape,
    gaussian_blobs,
    grow_region,
    sample_lesion_ratio,
    smooth_noise,
    white_matter_mean,
)
from usbrain.errors import ConfigError
from usbrain.files import atomic_dir
from usbrain.progress import progress_bar

FIELD_OF_VIEW_MM = 200.0  # holds the ≈145×181×155 mm MNI brain with room for the jitter
SIZE_RANGE = (16, 256)
HEALTHY = "healthy"
# Subject i's kind is KIND_CYCLE[i % 5]: one in five healthy only, stroke and WMH alternating,
# so any cohort of two or more subjects has both lesion kinds and five or more a healthy one.
KIND_CYCLE: tuple[str, ...] = (LesionKind.STROKE, LesionKind.WMH) * 2 + (HEALTHY,)
LESION_ML: dict[LesionKind, tuple[float, float]] = {
    LesionKind.STROKE: (1.0, 150.0),
    LesionKind.WMH: (0.5, 30.0),
}
LACUNAR_MAX_ML = 8.0  # smaller strokes are lacunar/subcortical (deep), larger ones territorial
SPLIT_FRACTIONS = {Split.TRAIN: 0.7, Split.VAL: 0.15, Split.TEST: 0.15}
HELD_OUT_FRACTIONS = {Split.TRAIN: 0.0, Split.VAL: 0.5, Split.TEST: 0.5}

WARP_LATTICE = 6  # control points per axis of the displacement: smooth over ~35 mm
WARP_MIDDLE = 16
# Appearance.
GAMMA_RANGE = (0.8, 1.25)
BIAS_RANGE = (0.1, 0.2)  # largest relative deviation of the bias field within the brain
NOISE_RANGE = (0.01, 0.03)  # noise std as a fraction of white matter
WM_LEVEL = 800.0  # white matter lands near 800, the brightest voxels near 1000
# Lesion growth, in mm so that shapes do not depend on the grid size.
FLOW_MM = {"flow_sigma": 9.0, "speed": 4.5, "diffusion_sigma": 2.2}
SEED_BLOB_MM = 4.0
MIDLINE_MARGIN_MM = 3.0
PERIVENTRICULAR_MM = 8.0  # decay length of the periventricular preference of WMH


@dataclass(frozen=True)
class Variation:
    """How far subjects depart from the template.

    ``rotation_deg``, ``scale_jitter``, ``shift_mm``: the affine jitter's ranges (uniform);
    ``warp_mm``: std of the smooth displacement; ``atrophy``: also enlarge the ventricles (by
    up to ``ventricle_mm``), widen the sulci and shrink the hippocampi, each to a degree drawn
    per subject from one atrophy score (:mod:`usbrain.data.atrophy`).
    """

    rotation_deg: float = 5.0
    scale_jitter: float = 0.05
    shift_mm: float = 4.0
    warp_mm: float = 2.5
    atrophy: bool = False
    ventricle_mm: float = 5.0


# "demo": smooth warps of the template (what `make demo` trains `tiny` on); "rich": the anatomy
# of ageing and Alzheimer cohorts, with larger deformations (what `base` trains on).
VARIATIONS: dict[str, Variation] = {
    "demo": Variation(),
    "rich": Variation(rotation_deg=8.0, scale_jitter=0.08, shift_mm=6.0, warp_mm=4.0, atrophy=True),
}


@dataclass(frozen=True)
class Template:
    """The MNI152 2009a template at 1 mm, (197, 233, 189) float32: ``t1`` in [0, 1], ``gm``,
    ``wm`` probabilities in [0, 1], ``brain`` {0, 1}; ``affine`` voxel → MNI mm; ``centre`` the
    brain's centroid in mm (≈ (0, −22, 10))."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    centre: np.ndarray


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """nilearn's MNI152 template and tissue maps (in its wheel: nothing is downloaded)."""
    from nilearn import datasets  # slow to import; only the cohort needs it

    images = (
        datasets.load_mni152_template(resolution=1),
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
        datasets.load_mni152_brain_mask(resolution=1),
    )
    t1, gm, wm, brain = (np.asarray(img.get_fdata(), dtype=np.float32) for img in images)
    affine = images[0].affine.copy()
    centre = nib.affines.apply_affine(affine, np.argwhere(brain > 0.5).mean(axis=0))
    return Template(t1, gm, wm, brain, affine, centre)


@dataclass(frozen=True)
class CohortSubject:
    """One synthetic subject on an (S, S, S) grid.

    ``healthy``, ``pathological``: float32 in about [0, 1000], zero outside the brain; ``mask``,
    ``brain``: uint8 {0, 1}; ``wm``: the subject's white-matter probability (float32 in [0, 1]);
    ``affine``: (4, 4) voxel → MNI mm; ``kind``: "stroke", "wmh" or "healthy"; ``subtype``:
    "territorial", "lacunar", "periventricular", "periventricular+deep" or ""; ``lesion_ml``;
    ``atrophy``: the subject's atrophy score in [0, 1] (0 without atrophy).

    >>> s = make_subject(load_template(), 0, 16, seed=0)
    >>> s.healthy.shape, s.kind, s.lesion_ml > 0
    ((16, 16, 16), 'stroke', True)
    """

    healthy: np.ndarray
    pathological: np.ndarray
    mask: np.ndarray
    brain: np.ndarray
    wm: np.ndarray
    affine: np.ndarray
    kind: str
    subtype: str
    lesion_ml: float
    atrophy: float = 0.0


@dataclass(frozen=True)
class Anatomy:
    """A subject's template maps on its output grid: ``t1``, ``gm``, ``wm`` float32 in [0, 1],
    ``brain`` bool, all (S, S, S); ``affine`` the grid's (isotropic, diagonal) voxel → mm;
    ``atrophy`` the score its atrophy was drawn with (0: none)."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    atrophy: float = 0.0

    @property
    def spacing(self) -> float:
        return float(self.affine[0, 0])

    @property
    def voxel_ml(self) -> float:
        return voxel_ml(self.spacing)


def cohort_affine(size: int, centre_mm: np.ndarray) -> np.ndarray:
    """RAS+ diagonal affine of a ``size``³ grid spanning 200 mm, centred on ``centre_mm``."""
    spacing = FIELD_OF_VIEW_MM / size
    affine = np.diag([spacing] * 3 + [1.0])
    affine[:3, 3] = np.asarray(centre_mm) - spacing * (size - 1) / 2
    return affine


@functools.lru_cache(maxsize=4)
def _prefiltered(spacing: float) -> tuple[np.ndarray, ...]:
    """The template maps blurred to be sampled every ``spacing`` mm without aliasing (a Gaussian
    of FWHM = the new sampling interval, as :func:`usbrain.data.preprocess.resample` does)."""
    template = load_template()
    sigma = np.sqrt(max(spacing**2 - 1.0, 0.0)) / FWHM_PER_SIGMA
    maps = (template.t1, template.gm, template.wm, template.brain)
    return tuple(ndimage.gaussian_filter(m, sigma) if sigma > 0.1 else m for m in maps)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _upsample(lattice: np.ndarray, size: int) -> np.ndarray:
    """A coarse (n, n, n) lattice interpolated to (size, size, size), corners aligned: cubic up
    to 16³ (smooth), then linear (cubic at full size costs ~0.2 s a component at 64³)."""
    middle = ndimage.zoom(lattice, WARP_MIDDLE / lattice.shape[0], order=3, mode="nearest")
    return ndimage.zoom(middle, size / WARP_MIDDLE, order=1, mode="nearest")


@functools.lru_cache(maxsize=1)
def _ventricle_pull() -> np.ndarray:
    """:func:`usbrain.data.atrophy.ventricle_pull` of the template's ventricles, (3, ...) on its
    1 mm grid, as MNI-mm vectors."""
    template = load_template()
    spacing = float(abs(template.affine[0, 0]))
    world = _world_mm(template.affine, template.brain.shape)
    offset = world - template.centre[:, None, None, None]
    ventricles = atrophy.central_csf(
        template.gm, template.wm, template.brain > 0.5, offset, spacing
    )
    pull = atrophy.ventricle_pull(ventricles, spacing)
    directions = template.affine[:3, :3] / spacing  # voxel axes → world axes (±1 on a diagonal)
    return np.tensordot(directions, pull, axes=1).astype(np.float32)


def _atrophy_degrees(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(score, ventricle, cortex, hippocampus): one score in [0, 1] (skewed to mild, as ageing
    cohorts are), each region's degree the score times its own factor (regions vary apart)."""
    score = float(rng.beta(1.3, 2.0))
    ventricle, cortex, hippocampus = np.clip(score * rng.uniform(0.5, 1.5, 3), 0.0, 1.0)
    return score, float(ventricle), float(cortex), float(hippocampus)


def sample_anatomy(
    template: Template,
    affine: np.ndarray,
    size: int,
    rng: np.random.Generator,
    variation: Variation = VARIATIONS["demo"],
) -> Anatomy:
    """The template seen through a random affine jitter and smooth deformation.

    Each output voxel's world position is rotated, scaled and shifted about the brain centre
    (by default ±5°, ±5%, ±4 mm), then displaced by a smooth random field (noise of std 2.5 mm
    on a 6³ lattice, interpolated); the prefiltered template is read there by linear
    interpolation. With ``variation.atrophy`` the ventricles are enlarged in the same read and
    the sulci and hippocampi atrophied on the output grid (:mod:`usbrain.data.atrophy`).
    """
    spacing = float(affine[0, 0])
    grid = np.indices((size,) * 3, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:]
    centre = template.centre[:, None]
    rotation = variation.rotation_deg
    scale = variation.scale_jitter
    linear = _rotation(rng.uniform(-rotation, rotation, 3)) @ np.diag(
        rng.uniform(1 - scale, 1 + scale, 3)
    )
    shift = rng.uniform(-variation.shift_mm, variation.shift_mm, (3, 1))
    world = linear @ (world - centre) + centre + shift
    lattice = rng.normal(0.0, variation.warp_mm, (3,) + (WARP_LATTICE,) * 3)
    warp = np.stack([_upsample(c, size).reshape(-1) for c in lattice])
    world = world + warp
    to_voxel = np.linalg.inv(template.affine)
    score = ventricle = cortex = hippocampus = 0.0
    if variation.atrophy:
        score, ventricle, cortex, hippocampus = _atrophy_degrees(rng)
        at = to_voxel[:3, :3] @ world + to_voxel[:3, 3:]
        pull = np.stack(
            [ndimage.map_coordinates(c, at, order=1, mode="constant") for c in _ventricle_pull()]
        )
        world = world + ventricle * variation.ventricle_mm * pull
    voxel = to_voxel[:3, :3] @ world + to_voxel[:3, 3:]
    t1, gm, wm, brain_p = (
        ndimage.map_coordinates(m, voxel, order=1, mode="constant").reshape((size,) * 3)
        for m in _prefiltered(spacing)
    )
    brain = ndimage.binary_fill_holes((brain_p > 0.5) & (t1 > 0.02))
    t1, gm, wm = (np.clip(m, 0, 1) for m in (t1, gm, wm))
    if variation.atrophy:
        depth = ndimage.distance_transform_edt(brain, sampling=spacing)
        # Uneven thinning: full degree in some lobes, 60% of it in others.
        patchy = 0.6 + 0.4 * np.clip(0.5 + 0.5 * smooth_noise(brain.shape, size / 8, rng), 0, 1)
        weight = cortex * patchy * atrophy.cortical_ribbon(gm, depth)
        weight = np.maximum(
            weight, hippocampus * atrophy.hippocampal_weight(world.reshape((3,) + (size,) * 3))
        )
        radius = max(1, round(2.0 / spacing))
        thinned = atrophy.widen_csf(t1, weight, radius)
        # Tissue lost where the image darkened toward CSF.
        kept = np.where(t1 > 1e-3, thinned / np.maximum(t1, 1e-3), 1.0)
        t1, gm, wm = thinned, gm * kept, wm * kept
    return Anatomy(t1=t1, gm=gm, wm=wm, brain=brain, affine=affine, atrophy=score)


def _log_uniform(low: float, high: float, rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _voxel_count(target_ml: float, kind: LesionKind, voxel_ml: float) -> int:
    """Voxels for ``target_ml``, kept inside the kind's volume range at this voxel size."""
    low, high = LESION_ML[kind]
    fewest, most = max(int(np.ceil(low / voxel_ml - 1e-9)), 1), int(np.floor(high / voxel_ml))
    return int(np.clip(round(target_ml / voxel_ml), fewest, max(most, fewest)))


def _pick(rng: np.random.Generator, n: int, *regions: np.ndarray) -> np.ndarray:
    """``n`` random voxels ((n, 3) indices) of the first non-empty region."""
    for region in regions:
        points = np.argwhere(region)
        if len(points):
            return points[rng.integers(len(points), size=n)]
    raise RuntimeError("no voxel to seed a lesion in")  # the brain region is never empty


def _world_mm(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(3, I, J, K) world coordinates (mm) of a grid's voxels."""
    grid = np.indices(shape, dtype=np.float64)
    return np.tensordot(affine[:3, :3], grid, axes=1) + affine[:3, 3, None, None, None]


def _flow(spacing: float) -> dict[str, float]:
    return {name: mm / spacing for name, mm in FLOW_MM.items()}


def grow_stroke(
    anatomy: Anatomy, depth: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A stroke lesion (bool mask, subtype) of log-uniform volume in 1–150 mL.

    ``depth``: mm from the brain's edge. Lacunar (< 8 mL): one seed in deep tissue, grown inside
    the tissue prior below 12 mm depth. Territorial: one to three seeds in the cortex within
    15 mm of each other (one vascular territory), grown inside the grey + white matter prior.
    """
    tissue = np.clip(anatomy.gm + anatomy.wm, 0, 1) * anatomy.brain
    target_ml = _log_uniform(*LESION_ML[LesionKind.STROKE], rng)
    n_voxels = _voxel_count(target_ml, LesionKind.STROKE, anatomy.voxel_ml)
    if target_ml < LACUNAR_MAX_ML:
        subtype, prior = "lacunar", tissue * (depth > 12.0)
        points = _pick(rng, 1, (tissue > 0.7) & (depth > 25.0), prior > 0.5, anatomy.brain)
    else:
        subtype = "territorial"
        x, y, z = _world_mm(anatomy.affine, tissue.shape)
        # Cerebral territories only (roughly above the tentorium in MNI space).
        cerebrum = ~((z < -12.0) & (y < -25.0))
        cortex = (anatomy.gm > 0.4) & (depth > 4.0) & (depth < 20.0) & cerebrum
        first = _pick(rng, 1, cortex, tissue > 0.5, anatomy.brain)[0]
        # An arterial territory lies in one hemisphere: the lesion stays on its seed's side.
        side = 1.0 if x[tuple(first)] >= 0 else -1.0
        prior = tissue * (cerebrum & (side * x > MIDLINE_MARGIN_MM))
        reach = int(np.ceil(15.0 / anatomy.spacing))  # one vascular territory: seeds ≤ 15 mm apart
        near = np.zeros_like(cortex)
        near[tuple(slice(max(c - reach, 0), c + reach + 1) for c in first)] = True
        extra = _pick(rng, int(rng.integers(0, 3)), near & cortex, near & anatomy.brain)
        points = np.vstack([first, extra])
    seeds = gaussian_blobs(tissue.shape, points, SEED_BLOB_MM / anatomy.spacing)
    mask = fluid_lesion_shape(
        seeds, prior, n_voxels, rng, prior_floor=0.3, **_flow(anatomy.spacing)
    ).astype(bool)
    if mask.sum() < n_voxels:  # a deep pocket too small at a coarse grid: let it reach further
        mask = grow_region(tissue, (tissue > 0.3) & anatomy.brain, mask, n_voxels - mask.sum())
    return mask, subtype


def _ventricles(anatomy: Anatomy, depth: np.ndarray) -> np.ndarray:
    """Central CSF: brain with little grey or white matter, deep and near the grid centre."""
    size = anatomy.brain.shape[0]
    offset = (np.indices(anatomy.brain.shape) - (size - 1) / 2) * anatomy.spacing
    radii = np.array([30.0, 50.0, 30.0])[:, None, None, None]  # mm: the lateral ventricles' reach
    central = ((offset / radii) ** 2).sum(axis=0) < 1.0
    return anatomy.brain & (anatomy.gm < 0.25) & (anatomy.wm < 0.25) & (depth > 15.0) & central


def grow_wmh(
    anatomy: Anatomy, depth: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """White-matter hyperintensities (bool mask, subtype), 0.5–30 mL in all (log-uniform).

    One to four periventricular seeds in white matter (probability > 0.6) within 4 mm of the
    ventricles and zero to four deep seeds (WM probability > 0.9); one shared advection–diffusion
    field inside the WM prior, then each seed floods its share of the volume (periventricular
    shares weigh double), so every seed gets a lesion however the field's peaks compare.
    """
    wm = anatomy.wm * anatomy.brain
    n_total = _voxel_count(
        _log_uniform(*LESION_ML[LesionKind.WMH], rng), LesionKind.WMH, anatomy.voxel_ml
    )
    ventricles = _ventricles(anatomy, depth)
    rim = max(1, round(4.0 / anatomy.spacing))
    caps = ndimage.binary_dilation(ventricles, iterations=rim) & ~ventricles & (wm > 0.6)
    n_caps, n_deep = int(rng.integers(1, 5)), int(rng.integers(0, 5))
    points = np.vstack(
        [_pick(rng, n_caps, caps, wm > 0.6), _pick(rng, n_deep, (wm > 0.9) & ~caps, wm > 0.6)]
    )
    shares = rng.dirichlet([2.0] * n_caps + [1.0] * n_deep)
    counts = np.floor(shares * n_total).astype(int)
    counts[: n_total - counts.sum()] += 1  # whole voxels, summing to n_total
    # Caps hug the ventricles: the flow's prior prefers white matter near them.
    if ventricles.any():
        distance = ndimage.distance_transform_edt(~ventricles, sampling=anatomy.spacing)
        prior = wm * (0.4 + 0.6 * np.exp(-distance / PERIVENTRICULAR_MM))
    else:
        prior = wm
    field = advect_diffuse(
        gaussian_blobs(wm.shape, points, SEED_BLOB_MM / anatomy.spacing),
        prior,
        rng,
        **_flow(anatomy.spacing),
    )
    eligible = (wm > 0.5) & (field > 0)
    mask = np.zeros(wm.shape, bool)
    for point, count in zip(points, counts, strict=True):
        start = np.zeros_like(mask)
        start[tuple(point)] = eligible[tuple(point)] and not mask[tuple(point)]
        if count > 0 and start.any():
            mask |= grow_region(field, eligible & ~mask, start, count - 1)
    if mask.sum() < n_total:  # seeds that fell on an earlier lesion: the rest grows from it all
        mask = grow_region(field, eligible, mask, n_total - mask.sum())
    return mask, "periventricular+deep" if n_deep else "periventricular"


def make_subject(
    template: Template,
    index: int,
    size: int,
    seed: int,
    variation: Variation = VARIATIONS["demo"],
) -> CohortSubject:
    """Subject ``index`` of the cohort made with ``seed`` on a ``size``³ grid.

    Deterministic from ``(seed, index)`` alone (a :class:`numpy.random.SeedSequence`), so a
    subject is the same whatever the cohort's size; anatomy, lesion and scanner draw from
    separate streams, so a subject's healthy anatomy does not depend on its lesion.
    """
    anatomy_rng, lesion_rng, scanner_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3)
    )
    affine = cohort_affine(size, template.centre)
    anatomy = sample_anatomy(template, affine, size, anatomy_rng, variation)
    brain = anatomy.brain
    top = float(np.percentile(anatomy.t1[brain], 99.5))
    gamma = scanner_rng.uniform(*GAMMA_RANGE)
    clean = np.where(brain, np.clip(anatomy.t1 / top, 0, 1) ** gamma, 0).astype(np.float32)
    field = smooth_noise(brain.shape, size / 5, scanner_rng)
    bias = 1 + scanner_rng.uniform(*BIAS_RANGE) * field / float(np.abs(field[brain]).max())
    noise = scanner_rng.normal(0, WM_LEVEL * scanner_rng.uniform(*NOISE_RANGE), brain.shape)
    wm_clean = white_matter_mean(clean, brain)

    kind = KIND_CYCLE[index % len(KIND_CYCLE)]
    mask, subtype, sick = np.zeros(brain.shape, bool), "", clean
    if kind != HEALTHY:
        depth = ndimage.distance_transform_edt(brain, sampling=anatomy.spacing)
        grow = grow_stroke if kind == LesionKind.STROKE else grow_wmh
        mask, subtype = grow(anatomy, depth, lesion_rng)
        ratio = sample_lesion_ratio(kind, lesion_rng)
        # The ratio is what a reader measures on the scan, after the bias field: undo the bias
        # difference between the lesion's site and the white matter in the painted intensity.
        wm_voxels = brain & (clean >= np.percentile(clean[brain], 70))
        level = ratio * wm_clean * bias[wm_voxels].mean() / bias[mask].mean()
        sick = embed_lesion(clean, mask, level, lesion_rng)

    scale = WM_LEVEL / wm_clean

    def scanner(image: np.ndarray) -> np.ndarray:
        # Element-wise and shared by both versions: equal inputs give bit-equal outputs.
        out = image * scale * bias + noise
        return np.where(brain, np.maximum(out, 0.0), 0.0).astype(np.float32)

    return CohortSubject(
        healthy=scanner(clean),
        pathological=scanner(sick),
        mask=mask.astype(np.uint8),
        brain=brain.astype(np.uint8),
        wm=anatomy.wm.astype(np.float32),
        affine=affine,
        kind=str(kind),
        subtype=subtype,
        lesion_ml=float(mask.sum()) * anatomy.voxel_ml,
        atrophy=anatomy.atrophy,
    )


def _check_arguments(subjects: int, size: int) -> None:
    if isinstance(subjects, bool) or not isinstance(subjects, int | np.integer) or subjects < 1:
        raise ConfigError(f"--subjects: need a whole number of at least 1, got {subjects!r}")
    low, high = SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not low <= size <= high:
        raise ConfigError(f"--size: need a whole number of voxels in [{low}, {high}], got {size!r}")


def write_cohort(
    out: str | Path,
    subjects: int,
    size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    variation: str = "demo",
    start: int = 0,
    held_out: bool = False,
) -> Path:
    """``usbrain cohort``: write ``subjects`` synthetic subjects into ``out``; return the manifest.

    Files per subject ``sub-XXX_{healthy,pathological,mask,brain}.nii.gz`` (float32 images,
    uint8 masks) and ``manifest.csv``: ``subject,image,mask,healthy_image,split,kind,lesion_ml,
    brain,subtype,atrophy`` (``image`` is the pathological scan; paths relative to the manifest;
    splits about 70/15/15 by a hash of subject and seed). ``variation`` names a
    :data:`VARIATIONS` entry. Subjects are numbered from ``start``: a cohort of the same seed
    starting past another's last subject shares no subject with it, and with ``held_out``
    every subject goes to validation or test (half each) — an evaluation set beside a training
    cohort. ``out`` appears whole or not at all; an existing ``out`` is refused before anything
    is computed unless ``overwrite``.
    """
    _check_arguments(subjects, size)
    if isinstance(start, bool) or not isinstance(start, int | np.integer) or start < 0:
        raise ConfigError(f"--start: need a whole number of at least 0, got {start!r}")
    if variation not in VARIATIONS:
        raise ConfigError(f"--variation: {variation!r} is not one of {', '.join(VARIATIONS)}")
    out = Path(out)
    with atomic_dir(out, overwrite) as tmp:
        template = load_template()
        records = []
        columns: dict[str, list[str]] = {
            "kind": [],
            "lesion_ml": [],
            "brain": [],
            "subtype": [],
            "atrophy": [],
        }
        indices = range(start, start + subjects)
        for index in progress_bar(indices, desc="cohort", unit="subject", disable=not progress):
            subject = make_subject(template, index, size, seed, VARIATIONS[variation])
            name = f"sub-{index:03d}"
            paths = {}
            for part in ("healthy", "pathological", "mask", "brain"):
                paths[part] = tmp / f"{name}_{part}.nii.gz"
                save_nifti(paths[part], getattr(subject, part), subject.affine)
            records.append(Record(name, paths["pathological"], paths["mask"], paths["healthy"]))
            columns["kind"].append(subject.kind)
            columns["lesion_ml"].append(f"{subject.lesion_ml:.3f}")
            columns["brain"].append(paths["brain"].name)
            columns["subtype"].append(subject.subtype)
            columns["atrophy"].append(f"{subject.atrophy:.3f}")
        fractions = HELD_OUT_FRACTIONS if held_out else SPLIT_FRACTIONS
        records = assign_splits(records, fractions, seed=seed)
        write_manifest(records, tmp / "manifest.csv", columns)
    return out / "manifest.csv"
