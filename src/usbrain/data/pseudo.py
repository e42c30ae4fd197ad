"""Pseudo-pathology: lesions grown or borrowed, embedded into healthy brains.

Shared by the built-in cohort and ``usbrain pseudo`` (docs/method.md §6):

- :func:`fluid_lesion_shape` grows an irregular lesion by a fluid-like advection–diffusion of a
  seed map inside a tissue prior (the idea of "fluid-driven anomaly randomisation"), then keeps
  exactly ``target_voxels`` voxels: the first ones a flood from the peak reaches, so the lesion is
  connected and its volume is controlled;
- :func:`embed_lesion` paints a lesion into a healthy T1 at a lesion-to-white-matter intensity
  ratio, with a mild texture and a partial-volume edge, and leaves every voxel more than one
  voxel from the mask bit-identical;
- :func:`write_pseudo` does both for folders of real files (the ``usbrain pseudo`` command).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> seed = np.zeros((24, 24, 24), np.float32); seed[12, 12, 12] = 1.0
>>> prior = np.ones((24, 24, 24), np.float32)
>>> int(fluid_lesion_shape(seed, prior, 100, rng).sum())
100
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
from scipy import ndimage

from usbrain.data.csvfile import read_rows
from usbrain.data.datasets import Record, Split, assign_splits, discover_folder, write_manifest
from usbrain.data.masks import lesion_ml
from usbrain.data.nifti import Volume, check_same_grid, load_image, load_mask, save_nifti
from usbrain.data.preprocess import brain_mask, resample
from usbrain.errors import InputError, UsbrainError, problems_error
from usbrain.files import atomic_dir
from usbrain.progress import progress_bar


class LesionKind(StrEnum):
    STROKE = "stroke"
    WMH = "wmh"


# T1 lesion-to-white-matter intensity ratios, drawn uniformly: chronic stroke cavities are nearly
# CSF-dark on T1; white-matter hyperintensities (bright on FLAIR) are only mildly T1-hypointense.
T1_LESION_RATIO: dict[LesionKind, tuple[float, float]] = {
    LesionKind.STROKE: (0.25, 0.55),
    LesionKind.WMH: (0.5, 0.7),
}
# T1 white matter is the brightest tissue and about 40% of a brain mask: the top 30% of brain
# voxels is white matter with a margin for partial volume and CSF inside the mask.
WM_PERCENTILE = 70.0
LESION_FILE_PARTS = ("healthy", "pathological", "mask")


def sample_lesion_ratio(kind: LesionKind | str, rng: np.random.Generator) -> float:
    """A lesion-to-WM intensity ratio drawn uniformly from the T1 model of ``kind``.

    >>> 0.25 <= sample_lesion_ratio("stroke", np.random.default_rng(0)) <= 0.55
    True
    """
    low, high = T1_LESION_RATIO[LesionKind(kind)]
    return float(rng.uniform(low, high))


def white_matter_mean(
    image: np.ndarray, brain: np.ndarray, exclude: np.ndarray | None = None
) -> float:
    """Robust white-matter intensity of a T1 image.

    Rule: the median of the brain voxels at or above the brain's 70th intensity percentile (WM is
    the brightest T1 tissue), ``exclude`` voxels (a lesion) left out of both. ``image``: (I, J, K)
    any unit; ``brain``, ``exclude``: same shape, nonzero = in. Raises :class:`InputError` when no
    brain voxel is left.
    """
    keep = brain.astype(bool)
    if exclude is not None:
        keep &= ~exclude.astype(bool)
    values = image[keep]
    if values.size == 0:
        raise InputError("no brain voxels to estimate the white-matter intensity from")
    return float(np.median(values[values >= np.percentile(values, WM_PERCENTILE)]))


def lesion_to_wm_ratio(image: np.ndarray, mask: np.ndarray, brain: np.ndarray) -> float:
    """Mean of ``image`` inside ``mask`` over :func:`white_matter_mean` (lesion excluded)."""
    lesion = mask.astype(bool)
    if not lesion.any():
        raise InputError("the lesion mask is empty: no lesion-to-white-matter ratio")
    return float(image[lesion].mean() / white_matter_mean(image, brain, exclude=lesion))


def smooth_noise(
    shape: tuple[int, ...], sigma: float | tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Gaussian-smoothed white noise (smoothing ``sigma`` voxels), unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return field / max(float(field.std()), 1e-12)


def gaussian_blobs(shape: tuple[int, int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    """A seed map: Gaussian blobs of peak ~1 at ``points`` ((N, 3) voxel indices), float32."""
    seed = np.zeros(shape, np.float32)
    seed[tuple(np.asarray(points, dtype=int).T)] = 1.0
    blobs = ndimage.gaussian_filter(seed, sigma)
    return blobs / max(float(blobs.max()), 1e-12)


def advect_diffuse(
    seed_map: np.ndarray,
    prior: np.ndarray,
    rng: np.random.Generator,
    steps: int = 8,
    flow_sigma: float = 3.0,
    speed: float = 1.5,
    diffusion_sigma: float = 0.7,
) -> np.ndarray:
    """Carry ``seed_map`` along a random smooth flow, diffusing it and weighting it by ``prior``.

    ``seed_map``, ``prior``: (I, J, K), the prior a tissue probability in [0, 1]. The velocity
    field is stationary smoothed Gaussian noise (``flow_sigma`` voxels), ``speed`` voxels per step
    RMS per axis, less its mean under the seed map. Each step is semi-Lagrangian advection (the
    map sampled at x − v by ``map_coordinates``), a Gaussian blur of ``diffusion_sigma`` voxels
    and a product with the prior, so the map is stretched into lobes, spreads into likely tissue
    and fades elsewhere. Returns a float32 field ≥ 0 (only its ordering matters).
    """
    field = seed_map.astype(np.float32)
    prior = prior.astype(np.float32)
    # One stationary flow: streamlines stretch the blob into lobes; fresh noise every step would
    # mostly average out into extra diffusion (and cost three filters a step).
    flow = np.stack([smooth_noise(field.shape, flow_sigma, rng) * speed for _ in range(3)])
    # Less the mean velocity under the seeds: the flow deforms a seed in place instead of carrying
    # it off (a deep seed would otherwise drift by several voxels a step).
    weight = field / max(float(field.sum()), 1e-12)
    flow -= np.tensordot(flow, weight, axes=3)[:, None, None, None]
    departure = np.indices(field.shape, dtype=np.float32) - flow
    for _ in range(steps):
        field = ndimage.map_coordinates(field, departure, order=1, mode="constant")
        field = ndimage.gaussian_filter(field, diffusion_sigma) * prior
    return field


def grow_region(
    field: np.ndarray, eligible: np.ndarray, region: np.ndarray, n_voxels: int
) -> np.ndarray:
    """``region`` grown by ``n_voxels`` eligible voxels, highest ``field`` first (priority flood).

    One voxel at a time, the eligible voxel bordering the region (6-connected) with the highest
    field value joins it: the growth follows the field's ridges, each added voxel touches the
    region, and exactly ``n_voxels`` are added unless the eligible voxels connected to the region
    run out. ``field``, ``eligible``, ``region``: (I, J, K). Returns bool (I, J, K).
    """
    shape = field.shape
    region = region.astype(bool)
    # A one-voxel ineligible border spares bounds checks; flat indices keep the loop cheap.
    padded = tuple(s + 2 for s in shape)
    ok = np.pad(eligible.astype(bool) & ~region, 1).ravel()
    values = np.pad(field.astype(np.float64), 1).ravel()
    inside = np.pad(region, 1).ravel()
    strides = (padded[1] * padded[2], padded[2], 1)
    offsets = [sign * s for s in strides for sign in (-1, 1)]
    frontier = np.flatnonzero(ok & np.pad(ndimage.binary_dilation(region), 1).ravel())
    queued = inside.copy()
    queued[frontier] = True
    heap = list(zip((-values[frontier]).tolist(), frontier.tolist(), strict=True))
    heapq.heapify(heap)  # ties break on the flat index: deterministic
    added = 0
    while heap and added < n_voxels:
        _, index = heapq.heappop(heap)
        inside[index] = True
        added += 1
        for offset in offsets:
            neighbour = index + offset
            if ok[neighbour] and not queued[neighbour]:
                queued[neighbour] = True
                heapq.heappush(heap, (-float(values[neighbour]), neighbour))
    return inside.reshape(padded)[1:-1, 1:-1, 1:-1].copy()


def flood_region(
    field: np.ndarray, eligible: np.ndarray, start: tuple[int, int, int], n_voxels: int
) -> np.ndarray:
    """The connected ``n_voxels`` voxels a priority flood from ``start`` reaches first
    (:func:`grow_region` from one voxel). Bool (I, J, K); empty if ``start`` is not eligible."""
    region = np.zeros(field.shape, bool)
    start = tuple(int(c) for c in start)
    if n_voxels < 1 or not eligible[start]:
        return region
    region[start] = True
    return grow_region(field, eligible, region, n_voxels - 1)


def top_voxels(field: np.ndarray, eligible: np.ndarray, n_voxels: int) -> np.ndarray:
    """The ``n_voxels`` eligible voxels of highest ``field`` (a threshold hitting the count
    exactly; ties broken by voxel order). Returns bool (I, J, K)."""
    flat = np.flatnonzero(eligible)
    order = np.argsort(-field.ravel()[flat], kind="stable")
    out = np.zeros(field.size, bool)
    out[flat[order[: max(int(n_voxels), 0)]]] = True
    return out.reshape(field.shape)


def fluid_lesion_shape(
    seed_map: np.ndarray,
    prior: np.ndarray,
    target_voxels: int,
    rng: np.random.Generator,
    steps: int = 8,
    flow_sigma: float = 3.0,
    speed: float = 1.5,
    diffusion_sigma: float = 0.7,
    prior_floor: float = 0.1,
    connected: bool = True,
) -> np.ndarray:
    """Grow a lesion of ``target_voxels`` voxels from ``seed_map`` inside ``prior``.

    ``seed_map``: (I, J, K) float ≥ 0, e.g. :func:`gaussian_blobs` at seed points. ``prior``: same
    shape, tissue probability in [0, 1]. The map is advected and diffused by
    :func:`advect_diffuse`; the lesion is then cut from voxels with ``prior > prior_floor``:
    with ``connected``, the :func:`flood_region` from the field's peak (one connected lesion);
    otherwise the :func:`top_voxels`, a plain threshold (possibly several pieces). Its size is
    exactly ``target_voxels`` unless fewer voxels are eligible (connected to the peak), then all
    of them. Deterministic given ``rng``'s state. Returns uint8 {0, 1} (I, J, K).
    """
    field = advect_diffuse(seed_map, prior, rng, steps, flow_sigma, speed, diffusion_sigma)
    eligible = (prior > prior_floor) & (field > 0)
    if not eligible.any() or target_voxels < 1:
        return np.zeros(field.shape, np.uint8)
    if not connected:
        return top_voxels(field, eligible, target_voxels).astype(np.uint8)
    peak = np.unravel_index(int(np.argmax(np.where(eligible, field, -1.0))), field.shape)
    return flood_region(field, eligible, peak, target_voxels).astype(np.uint8)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n))
        for s, n in zip(box, mask.shape, strict=True)
    )


def embed_lesion(
    healthy: np.ndarray,
    mask: np.ndarray,
    lesion_intensity: float,
    rng: np.random.Generator,
    edge_sigma: float = 0.8,
    texture: float = 0.05,
    texture_sigma: float = 1.5,
) -> np.ndarray:
    """The pathological version of ``healthy`` with a lesion where ``mask`` is nonzero.

    ``healthy``: (I, J, K) float, any unit; ``mask``: same shape, {0, 1}. Inside the mask the
    intensity is ``lesion_intensity`` times a smooth texture within ±``texture`` (5%); in the
    one-voxel ring around it a partial-volume blend ``(1 − w)·healthy + w·lesion`` with ``w`` the
    mask blurred by ``edge_sigma`` voxels. Every voxel outside the mask dilated by one voxel keeps
    its healthy value bit for bit. An empty mask returns a copy of ``healthy``.
    """
    lesion = mask > 0
    if not lesion.any():
        return healthy.copy()
    dtype = healthy.dtype if np.issubdtype(healthy.dtype, np.floating) else np.float32
    # Work in the lesion's bounding box (plus the blur's reach): a 1 mm brain has 8 M voxels.
    box = _bounding_box(lesion, margin=int(np.ceil(4 * max(edge_sigma, texture_sigma))) + 2)
    inside = lesion[box]
    touched = ndimage.binary_dilation(inside)  # the mask and its one-voxel ring
    soft = ndimage.gaussian_filter(inside.astype(np.float32), edge_sigma, mode="constant")
    weight = np.where(inside, 1.0, soft)
    grain = np.clip(smooth_noise(inside.shape, texture_sigma, rng), -2.0, 2.0) / 2.0
    paint = lesion_intensity * (1.0 + texture * grain)
    local = healthy[box]
    blended = (1.0 - weight) * local + weight * paint
    out = healthy.astype(dtype, copy=True)
    # np.where, not arithmetic on the whole image: untouched voxels are copied, never recomputed.
    out[box] = np.where(touched, blended, local)
    return out


@dataclass(frozen=True)
class LesionSource:
    """A real lesion to borrow: its ``mask`` file and, where given, the patient's T1 ``image``."""

    mask: Path
    image: Path | None = None


def read_lesion_sources(lesions: str | Path) -> list[LesionSource]:
    """The lesions at ``lesions``: a folder of binary masks, or a CSV with columns ``image,mask``
    (paths relative to the CSV's folder; ``image`` may be empty)."""
    lesions = Path(lesions)
    if lesions.is_dir():
        return [LesionSource(r.image) for r in discover_folder(lesions)]
    if not lesions.is_file():
        raise InputError(f"{lesions}: not found (expected a folder of lesion masks or a .csv)")
    if lesions.suffix.lower() != ".csv":
        raise InputError(f"{lesions}: expected a folder of lesion masks or a manifest .csv")
    return [
        LesionSource(row.file("mask", required=True), row.file("image"))
        for row in read_rows(lesions, ("mask",), "lesion manifest")
    ]


def place_lesion(mask: Volume, healthy: Volume) -> np.ndarray:
    """``mask`` resampled onto ``healthy``'s grid through world coordinates, cut to its brain.

    Linear interpolation of the mask (smoothed first where the target grid is coarser), lesion
    where the fraction is > 0.5; the brain is :func:`~usbrain.data.preprocess.brain_mask`. Returns
    uint8 {0, 1} of ``healthy.shape``; raises :class:`InputError` when no voxel is left.
    """
    fraction = resample(mask.data, mask.affine, healthy.affine, healthy.shape, order=1)
    placed = (fraction > 0.5) & brain_mask(healthy.data)
    if not placed.any():
        raise InputError(
            f"{mask.name}: no lesion voxel falls inside the brain of {healthy.name} "
            "(are both in the same space, e.g. MNI?)"
        )
    return placed.astype(np.uint8)


def split_before_embedding(
    healthy: list[Record], sources: list[LesionSource], seed: int
) -> tuple[list[Record], list[LesionSource]]:
    """Each healthy scan's split and the lesion it gets, so that no lesion is in two splits.

    Lesion sources are split first (:func:`~usbrain.data.datasets.assign_splits` on their mask
    file names, so the split does not depend on where the data lies; with three or more
    sources validation and test each get one), healthy scans likewise by subject, and each
    healthy scan gets a lesion of its own split: a seeded shuffle of that split's lesions,
    cycled over its scans in subject order. A split left without a lesion (fewer than three
    sources) sends its healthy scans to train. Returns the healthy records with their split
    and, aligned with them, their lesions.
    """
    unique = list(dict.fromkeys(sources))
    names = [s.mask.name for s in unique]
    keys = names if len(set(names)) == len(names) else [str(s.mask) for s in unique]
    split_of = {
        r.subject: r.split
        for r in assign_splits(
            [Record(k, s.mask) for k, s in zip(keys, unique, strict=True)], seed=seed
        )
    }
    own = {
        split: [s for k, s in zip(keys, unique, strict=True) if split_of[k] is split]
        for split in Split
    }
    counters = dict.fromkeys(Split, 0)
    orders = {
        split: np.random.default_rng([seed, i]).permutation(len(own[split]))
        for i, split in enumerate(Split)
    }
    records = [
        replace(r, split=r.split if own[r.split] else Split.TRAIN)
        for r in assign_splits(healthy, seed=seed)
    ]
    lesion_of: dict[str, LesionSource] = {}
    for record in sorted(records, key=lambda r: r.subject):  # whatever order they came in
        pool, order = own[record.split], orders[record.split]
        lesion_of[record.subject] = pool[order[counters[record.split] % len(pool)]]
        counters[record.split] += 1
    assignment = [lesion_of[r.subject] for r in records]
    return records, assignment


def _subject_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _check_inputs(
    healthy: list[Record],
    sources: list[LesionSource],
    assignment: list[LesionSource],
    threshold: float | None,
) -> dict[Path, float | None]:
    """Load every input once; return each lesion's source ratio (None: no image) or raise one
    :class:`InputError` listing every problem."""
    problems: list[str] = []
    ratios: dict[Path, float | None] = {}
    for source in dict.fromkeys(sources):
        try:
            mask = load_mask(source.mask, threshold, require_lesion=True)
            ratio = None
            if source.image is not None:
                image = load_image(source.image)
                check_same_grid(mask, image)
                ratio = lesion_to_wm_ratio(image.data, mask.data, brain_mask(image.data))
            ratios[source.mask] = ratio
        except UsbrainError as exc:
            problems.append(str(exc))
    seen: dict[str, Path] = {}
    for record, source in zip(healthy, assignment, strict=True):
        if record.subject in seen:
            problems.append(
                f"{record.image}: subject name {record.subject!r} also used by "
                f"{seen[record.subject]}; rename one"
            )
        seen[record.subject] = record.image
        try:
            volume = load_image(record.image)
            if source.mask in ratios:  # an unreadable mask is reported once, above
                place_lesion(load_mask(source.mask, threshold), volume)
        except UsbrainError as exc:
            problems.append(str(exc))
    if problems:
        count = len(dict.fromkeys(problems))
        raise problems_error(f"{count} problem(s) with the inputs, nothing written", problems)
    return ratios


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

    ``healthy_dir``: skull-stripped healthy T1s (``*.nii``, ``*.nii.gz``). ``lesions``: a folder
    of binary masks or a CSV ``image,mask`` (see :func:`read_lesion_sources`). All in the same
    space (e.g. MNI) but possibly on different grids: each mask is resampled onto its healthy scan
    (:func:`place_lesion`). Each healthy scan gets one lesion of its own split, and each lesion
    belongs to one split (:func:`split_before_embedding`): a lesion shape shared by training and
    test scans would let a model score well by remembering it. The lesion-to-WM ratio is the
    source patient's when its image is given, else drawn from the T1 stroke model. Every input
    is checked before anything is written; ``out_dir`` appears whole (``atomic_dir``) with, per
    subject, ``<subject>_{healthy,pathological,mask}.nii.gz`` (the healthy scan's header) and a
    ``manifest.csv``: ``subject,image,mask,healthy_image,split,lesion_source,lesion_ml,
    lesion_to_wm`` (``image`` is the pathological scan).
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite) as tmp:
        healthy_dir = Path(healthy_dir)
        if not healthy_dir.is_dir():
            raise InputError(f"{healthy_dir}: folder of healthy T1s not found")
        healthy = discover_folder(healthy_dir)
        if not healthy:
            raise InputError(f"{healthy_dir}: no .nii/.nii.gz files")
        sources = read_lesion_sources(lesions)
        if not sources:
            raise InputError(f"{lesions}: no lesion masks")
        healthy, assignment = split_before_embedding(healthy, sources, seed)
        ratios = _check_inputs(healthy, sources, assignment, threshold)

        records, columns = [], {"lesion_source": [], "lesion_ml": [], "lesion_to_wm": []}
        pairs = list(enumerate(zip(healthy, assignment, strict=True)))
        for index, (record, source) in progress_bar(pairs, desc="embedding", disable=not progress):
            rng = _subject_rng(seed, index)
            scan = load_image(record.image)
            mask = place_lesion(load_mask(source.mask, threshold), scan)
            ratio = ratios[source.mask]
            if ratio is None:
                ratio = sample_lesion_ratio(LesionKind.STROKE, rng)
            wm = white_matter_mean(scan.data, brain_mask(scan.data))
            sick = embed_lesion(scan.data, mask, ratio * wm, rng)
            paths = {p: tmp / f"{record.subject}_{p}.nii.gz" for p in LESION_FILE_PARTS}
            for part, data in zip(LESION_FILE_PARTS, (scan.data, sick, mask), strict=True):
                save_nifti(paths[part], data, scan.affine, like=scan)
            records.append(
                Record(
                    record.subject,
                    paths["pathological"],
                    paths["mask"],
                    paths["healthy"],
                    record.split,
                )
            )
            columns["lesion_source"].append(str(source.mask))
            columns["lesion_ml"].append(f"{lesion_ml(mask, scan.spacing):.3f}")
            columns["lesion_to_wm"].append(f"{ratio:.4f}")
        write_manifest(records, tmp / "manifest.csv", columns)
    return out_dir / "manifest.csv"
