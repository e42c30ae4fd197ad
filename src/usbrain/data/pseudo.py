"""Pseudo-pathology: lesions grown or borrowed, embedded into healthy brains.

Two pieces, shared by the built-in cohort and ``usbrain pseudo``:

- :func:`fluid_lesion_shape` grows an irregular lesion by a fluid-like advection–diffusion of a
  seed map inside a tissue prior (the idea of "fluid-driven anomaly randomisation"), then keeps
  the most intense voxels up to a target volume;
- :func:`embed_lesion` paints a lesion into a healthy T1 with a lesion-to-white-matter intensity
  ratio, a mild texture and a partial-volume edge, changing nothing beyond one voxel outside the
  mask.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from usbrain.data.datasets import Record, discover_folder, write_manifest
from usbrain.data.nifti import Volume, check_same_grid, load_image, load_mask, save_nifti
from usbrain.data.preprocess import brain_mask, resample
from usbrain.errors import InputError, UsbrainError
from usbrain.files import atomic_dir, check_writable


class LesionKind(StrEnum):
    STROKE = "stroke"
    WMH = "wmh"


# T1 lesion-to-white-matter intensity ratios: chronic stroke cavities are CSF-dark, white-matter
# hyperintensities (bright on FLAIR) are mildly hypointense on T1.
LESION_RATIO: dict[LesionKind, tuple[float, float]] = {
    LesionKind.STROKE: (0.25, 0.55),
    LesionKind.WMH: (0.5, 0.7),
}
WM_PERCENTILE = 70.0  # T1 white matter is the brightest tissue: the top 30% of the brain


def sample_lesion_ratio(kind: LesionKind, rng: np.random.Generator) -> float:
    """A lesion-to-WM intensity ratio drawn uniformly from the T1 model of ``kind``."""
    low, high = LESION_RATIO[LesionKind(kind)]
    return float(rng.uniform(low, high))


def white_matter_mean(
    image: np.ndarray, brain: np.ndarray, exclude: np.ndarray | None = None
) -> float:
    """Robust white-matter intensity of a T1: the median of brain voxels above the brain's
    70th percentile, lesion voxels (``exclude``) left out."""
    keep = brain.astype(bool)
    if exclude is not None:
        keep &= ~exclude.astype(bool)
    values = image[keep]
    if values.size == 0:
        raise InputError("no brain voxels to estimate white-matter intensity from")
    return float(np.median(values[values >= np.percentile(values, WM_PERCENTILE)]))


def lesion_to_wm_ratio(image: np.ndarray, mask: np.ndarray, brain: np.ndarray) -> float:
    """Mean intensity inside ``mask`` over :func:`white_matter_mean` (lesion excluded)."""
    return float(image[mask > 0].mean() / white_matter_mean(image, brain, exclude=mask > 0))


def smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation, float32."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / max(float(field.std()), 1e-12)


def fluid_lesion_shape(
    seed_map: np.ndarray,
    prior: np.ndarray,
    target_voxels: int,
    rng: np.random.Generator,
    steps: int = 6,
    flow_sigma: float = 3.0,
    flow_voxels: float = 1.5,
    diffusion_sigma: float = 1.0,
    connected: bool = True,
) -> np.ndarray:
    """Grow a lesion from ``seed_map`` by advection–diffusion inside ``prior``.

    ``seed_map``: (I, J, K) float, e.g. Gaussian blobs at seed points. ``prior``: same shape,
    tissue probability in [0, 1]; the lesion never leaves ``prior > 0``. Each step moves the map
    along a random smooth velocity field (semi-Lagrangian, up to ``flow_voxels`` per step),
    blurs it and multiplies it by the prior. The lesion is the ``target_voxels`` most intense
    voxels (with ``connected``, of the component holding the peak). Returns uint8 {0, 1}.
    """
    field = seed_map.astype(np.float32)
    prior = prior.astype(np.float32)
    grid = np.indices(field.shape, dtype=np.float32)
    for _ in range(steps):
        flow = [smooth_noise(field.shape, flow_sigma, rng) * (flow_voxels / 3.0) for _ in grid]
        field = ndimage.map_coordinates(field, grid - np.stack(flow), order=1, mode="constant")
        field = ndimage.gaussian_filter(field, diffusion_sigma) * prior
    support = field > 0
    values = np.sort(field[support])[::-1]
    if values.size == 0:
        return np.zeros(field.shape, np.uint8)
    target = int(np.clip(target_voxels, 1, values.size))
    mask = field >= values[target - 1]
    if connected:
        labels, _ = ndimage.label(mask)
        peak = labels[np.unravel_index(np.argmax(field), field.shape)]
        mask = labels == peak
    return (mask & support).astype(np.uint8)


def embed_lesion(
    healthy: np.ndarray,
    mask: np.ndarray,
    lesion_intensity: float,
    rng: np.random.Generator,
    edge_sigma: float = 0.8,
    texture: float = 0.05,
) -> np.ndarray:
    """The pathological version of ``healthy`` (I, J, K) with a lesion where ``mask`` is 1.

    Inside the mask the intensity is ``lesion_intensity`` with a smooth ±``texture`` texture;
    in the one-voxel ring around it, a partial-volume blend (Gaussian of the mask). Every voxel
    farther than one voxel from the mask keeps its exact healthy value.
    """
    out = healthy.copy()
    lesion = mask > 0
    if not lesion.any():
        return out
    ring = ndimage.binary_dilation(lesion) & ~lesion
    soft = ndimage.gaussian_filter(lesion.astype(np.float32), edge_sigma)
    weight = np.where(lesion, 1.0, np.where(ring, soft, 0.0)).astype(np.float32)
    paint = lesion_intensity * (1.0 + texture * np.clip(smooth_noise(mask.shape, 1.5, rng), -2, 2))
    touched = weight > 0
    out[touched] = ((1.0 - weight) * healthy + weight * paint)[touched]
    return out


@dataclass(frozen=True)
class _LesionSource:
    mask: Path
    image: Path | None


def _read_lesion_sources(lesions: Path) -> list[_LesionSource]:
    if lesions.is_file():
        with lesions.open(newline="") as f:
            reader = csv.DictReader(f)
            if "mask" not in (reader.fieldnames or []):
                raise InputError(f"{lesions}: lesion manifest needs a 'mask' column")
            rows = list(reader)
        sources = []
        for row in rows:
            image = (row.get("image") or "").strip()
            sources.append(
                _LesionSource(
                    lesions.parent / row["mask"].strip(),
                    lesions.parent / image if image else None,
                )
            )
        return sources
    if lesions.is_dir():
        return [_LesionSource(r.image, None) for r in discover_folder(lesions)]
    raise InputError(f"{lesions}: not found (expected a folder of masks or a manifest CSV)")


def write_pseudo(
    healthy_dir: str | Path,
    lesions: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    overwrite: bool = False,
    threshold: float | None = None,
    progress: bool = True,
) -> Path:
    """``usbrain pseudo``: embed real lesion masks into healthy brains; returns the manifest.

    Healthy scans and lesion masks must be in the same space (e.g. MNI) but may be on different
    grids: each mask is resampled onto its healthy scan through world coordinates and cut to the
    healthy brain. The lesion intensity follows the source patient's lesion-to-WM ratio when its
    image is given, else the T1 stroke model. Every input is checked before anything is written.
    """
    out_dir = check_writable(out_dir, overwrite)
    healthy_dir, lesions = Path(healthy_dir), Path(lesions)
    if not healthy_dir.is_dir():
        raise InputError(f"{healthy_dir}: folder of healthy T1s not found")
    healthy_records = discover_folder(healthy_dir)
    sources = _read_lesion_sources(lesions)
    if not healthy_records:
        raise InputError(f"{healthy_dir}: no .nii/.nii.gz files")
    if not sources:
        raise InputError(f"{lesions}: no lesion masks")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources))
    assignment = [sources[order[i % len(sources)]] for i in range(len(healthy_records))]

    problems: list[str] = []
    ratios: dict[Path, float | None] = {}
    for source in sources:
        try:
            mask = load_mask(source.mask, threshold, require_lesion=True)
            ratios[source.mask] = None
            if source.image is not None:
                image = load_image(source.image)
                check_same_grid(mask, image)
                ratios[source.mask] = lesion_to_wm_ratio(
                    image.data, mask.data, brain_mask(image.data)
                )
        except UsbrainError as exc:
            problems.append(str(exc))
    for record, source in zip(healthy_records, assignment, strict=True):
        try:
            healthy = load_image(record.image)
            if source.mask in ratios:
                _place(load_mask(source.mask, threshold), healthy)
        except UsbrainError as exc:
            problems.append(str(exc))
    if problems:
        listing = "\n  ".join(dict.fromkeys(problems))
        raise InputError(f"{len(problems)} problems with the inputs:\n  {listing}")

    with atomic_dir(out_dir, overwrite) as tmp:
        written, kinds, volumes, ratio_col = [], [], [], []
        pairs = zip(healthy_records, assignment, strict=True)
        for record, source in tqdm(list(pairs), desc="embedding", disable=not progress):
            healthy = load_image(record.image)
            mask = _place(load_mask(source.mask, threshold), healthy)
            ratio = ratios[source.mask]
            if ratio is None:
                ratio = sample_lesion_ratio(LesionKind.STROKE, rng)
            brain = brain_mask(healthy.data)
            wm = white_matter_mean(healthy.data, brain)
            sick = embed_lesion(healthy.data, mask, ratio * wm, rng)
            s = record.subject
            paths = [tmp / f"{s}_{name}.nii.gz" for name in ("pathological", "mask", "healthy")]
            for path, data in zip(paths, (sick, mask, healthy.data), strict=True):
                save_nifti(path, data, healthy.affine, like=healthy)
            written.append(Record(s, paths[0], paths[1], paths[2]))
            kinds.append(str(source.mask))
            volumes.append(f"{mask.sum() * np.prod(healthy.spacing) / 1000:.3f}")
            ratio_col.append(f"{ratio:.3f}")
        write_manifest(
            written,
            tmp / "manifest.csv",
            {"lesion_source": kinds, "lesion_ml": volumes, "lesion_to_wm": ratio_col},
        )
    return out_dir / "manifest.csv"


def _place(mask: Volume, healthy: Volume) -> np.ndarray:
    """``mask`` resampled onto ``healthy``'s grid and cut to its brain; uint8 {0, 1}."""
    on_grid = resample(mask.data, mask.affine, healthy.affine, healthy.shape) >= 0.5
    placed = on_grid & brain_mask(healthy.data)
    if not placed.any():
        raise InputError(
            f"{mask.name}: no lesion voxel falls inside the brain of {healthy.name} "
            "(are both in the same space?)"
        )
    return placed.astype(np.uint8)
