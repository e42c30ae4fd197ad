"""``usbrain benchmark``: every edit method on the same held-out scans, scored against ground
truth, written as ``results.json`` + ``report.md`` + figures.

Data: a manifest CSV (columns ``subject, image, mask, healthy_image, split, kind``, as the
built-in cohort writes) whose ``healthy_image`` is the known lesion-free version of ``image``.
Heal methods start from ``image`` + ``mask`` and are scored against ``healthy_image``; lesion
insertion methods start from ``healthy_image`` + ``mask`` and are scored against ``image``.

Methods (:mod:`usbrain.evaluate.baselines`), each run through the same loading and scoring:

- heal: ``usb`` (ACG + LCG), ``sdedit`` (same model, no guidance), ``inpaint`` (hard-mask latent
  replacement), ``wm-fill``, ``mirror-fill``, and ``floor: true latent`` (``heal`` ending at the
  healthy scan's own latent: the best a denoiser can do through this autoencoder and grid);
- lesion: ``usb``, ``sdedit-acg`` (ACG, no LCG), ``paste`` (another test subject's lesion
  intensities), ``intensity-model`` (the cohort's own lesion model).

USB's own edits also make both round trips (:mod:`usbrain.evaluate.round_trips`): insert then
heal must give back the healthy scan, heal then insert the lesion.

With a lesion segmenter (:class:`SegmenterScores`), every output is also brought to model space
and segmented: heal methods are scored by the lesion still found inside the dilated original
lesion, next to what the segmenter finds there in the input; lesion methods by the Dice and
volume error of what it finds against the target mask. Its scores on the ground truth (the real
healthy and pathological scans) are the reference rows: what a perfect method would get.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from usbrain.config import ModelSpace
from usbrain.data.datasets import read_manifest
from usbrain.data.masks import voxel_ml
from usbrain.data.nifti import Volume, load_image, load_mask
from usbrain.data.preprocess import VolumeKind, preprocess, to_model
from usbrain.data.pseudo import sample_lesion_ratio
from usbrain.data.scan import Scan
from usbrain.diffusion.guidance import end_at, hard_mask_hooks
from usbrain.errors import InputError
from usbrain.evaluate.baselines import (
    ablation_configs,
    fill_mirror,
    fill_white_matter,
    intensity_model_lesion,
    paste_lesion_intensities,
    sdedit_config,
)
from usbrain.evaluate.lesions import (
    absolute_volume_error_ml,
    lesion_dice,
    relative_volume_error,
    residual_lesion,
)
from usbrain.evaluate.resume import FinishedMethods
from usbrain.evaluate.round_trips import round_trip_scores
from usbrain.evaluate.segmenter import (
    META_FILE,
    Segmenter,
    load_segmenter,
    segment,
    segmenter_space,
)
from usbrain.evaluate.summary import nan_median
from usbrain.evaluate.tasks import OUTSIDE_DILATION, heal_scores, lesion_scores
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion

GROUND_TRUTH = ("mask", "healthy_image", "split")


@dataclass(frozen=True)
class Case:
    """One held-out scan with ground truth (native grid)."""

    subject: str
    kind: str
    sick: Volume
    healthy: Volume
    mask: Volume


def read_cases(manifest: Path, split: str) -> list[Case]:
    """The ``split`` scans of a manifest (:func:`~usbrain.data.datasets.read_manifest`) with a
    lesion and a known healthy image."""
    records = read_manifest(manifest)
    missing = [c for c in GROUND_TRUTH if all(getattr(r, c) is None for r in records)]
    if missing:
        raise InputError(
            f"{manifest}: missing column(s) {', '.join(missing)} (no row has a value); the "
            "benchmark needs each scan's lesion mask, healthy version and split"
        )
    cases = []
    for r in records:
        if r.split != split or r.mask is None or r.healthy_image is None:
            continue
        mask = load_mask(r.mask)
        if mask.data.any():
            sick, healthy = load_image(r.image), load_image(r.healthy_image)
            cases.append(Case(r.subject, r.columns.get("kind", ""), sick, healthy, mask))
    if not cases:
        raise InputError(f"{manifest}: no {split} scan with a lesion and a healthy_image")
    return cases


MIN_REAL_SCANS = 4  # two halves of two: the fewest a covariance-based distance can use


def read_scans(manifest: Path, split: str) -> list[Volume]:
    """Every ``image`` of the manifest's ``split``: the real set of distribution scores.

    Held-out scans only: a generator that reproduced its training scans would otherwise score
    as close to "real" as the data itself.
    """
    images = [r.image for r in read_manifest(manifest) if r.split == split]
    if len(images) < MIN_REAL_SCANS:
        raise InputError(
            f"{manifest}: {len(images)} {split} scan(s); distribution scores compare two halves "
            f"of the held-out scans and need at least {MIN_REAL_SCANS}"
        )
    return [load_image(image) for image in images]


Method = Callable[[Case, int], np.ndarray]

NAN = float("nan")


class SegmenterScores:
    """Lesion fidelity of edits as a trained lesion segmenter sees it, in model space.

    Each scan (an edit's output, or a real scan) is brought to the segmenter's model space with
    its own geometry (:func:`~usbrain.data.preprocess.preprocess`, as ``usbrain prepare`` would),
    the case's lesion mask with it, and the segmenter's finding is compared with that mask.
    Volumes are in mL of model-space voxels; the residual region is the mask dilated by
    :data:`~usbrain.evaluate.tasks.OUTSIDE_DILATION` model voxels. A lesion that vanishes at the
    model's resolution scores NaN (skipped by the medians).

    Keys: heal ``seg_residual_ml`` / ``seg_residual_fraction`` (found in the output, per original
    lesion voxel), ``seg_input_ml`` / ``seg_input_fraction`` (found in the input: the segmenter's
    own sensitivity), ``seg_residual_of_input`` (residual / found in the input; NaN when nothing
    was found in the input); lesion ``seg_dice``, ``seg_volume_error_ml``,
    ``seg_relative_volume_error``.

    >>> from usbrain.evaluate.segmenter import SegmenterConfig, build_network
    >>> config = SegmenterConfig(channels=(4, 8))
    >>> space = {"size": [16, 16, 16], "spacing": 12.0}
    >>> scores = SegmenterScores(Segmenter(build_network(config), config, {"space": space}))
    >>> scores.space
    ModelSpace(size=(16, 16, 16), spacing=12.0)
    """

    def __init__(self, segmenter: Segmenter, path: str | Path | None = None) -> None:
        space = segmenter_space(segmenter)
        if space is None:
            where = Path(path) / META_FILE if path is not None else "the segmenter"
            raise InputError(f"{where}: does not say which model space it was trained on")
        self.segmenter = segmenter
        self.path = None if path is None else Path(path)
        self.space = space
        self.voxel_ml = voxel_ml(space.spacing)
        self._inputs: dict[str, dict[str, float]] = {}  # by subject: found in the input

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SegmenterScores:
        """The segmenter folder at ``path`` (:func:`~usbrain.evaluate.segmenter.load_segmenter`)."""
        return cls(load_segmenter(path, device), path)

    def check_space(self, space: ModelSpace, checkpoint: str | Path) -> None:
        """Refuse a segmenter trained on another model space than the pipeline's ``space``."""
        mine = (tuple(self.space.size), float(self.space.spacing))
        theirs = (tuple(int(s) for s in space.size), float(space.spacing))
        if mine != theirs:
            where = self.path / META_FILE if self.path is not None else "the segmenter"
            raise InputError(
                f"{where}: the segmenter was trained on a {mine[0]} grid at {mine[1]:g} mm, but "
                f"checkpoint {checkpoint} works on a {theirs[0]} grid at {theirs[1]:g} mm; train "
                "one (`usbrain train-seg`) on a cache prepared in the checkpoint's model space"
            )

    def find(self, scan: Volume, mask: Volume) -> tuple[np.ndarray, np.ndarray]:
        """(found, mask): what the segmenter finds in ``scan`` and ``mask`` (on ``scan``'s grid),
        both uint8 (D, H, W) in model space."""
        prepared = preprocess(scan, self.space, mask)
        return segment(self.segmenter, prepared.image), prepared.mask

    def residual(self, scan: Volume, mask: Volume) -> tuple[float, float]:
        """(mL, fraction of the mask's voxels) found in ``scan`` inside the dilated ``mask``."""
        found, mask_m = self.find(scan, mask)
        if not mask_m.any():
            return NAN, NAN
        left = residual_lesion(mask_m, found, self.voxel_ml, OUTSIDE_DILATION)
        return left.ml, left.fraction

    def _input(self, case: Case) -> dict[str, float]:
        if case.subject not in self._inputs:
            ml, fraction = self.residual(case.sick, case.mask)
            self._inputs[case.subject] = {"seg_input_ml": ml, "seg_input_fraction": fraction}
        return self._inputs[case.subject]

    def heal(self, case: Case, output: np.ndarray) -> dict[str, float]:
        """Scores of a healed ``output`` (native array on the case's grid)."""
        found_in = self._input(case)
        ml, fraction = self.residual(Volume(output, case.sick.affine), case.mask)
        ratio = ml / found_in["seg_input_ml"] if found_in["seg_input_ml"] > 0 else NAN
        return {
            "seg_residual_ml": ml,
            "seg_residual_fraction": fraction,
            **found_in,
            "seg_residual_of_input": ratio,
        }

    def lesion(self, case: Case, output: np.ndarray) -> dict[str, float]:
        """Scores of an ``output`` with a lesion inserted where ``case.mask`` says."""
        found, target = self.find(Volume(output, case.healthy.affine), case.mask)
        if not target.any():
            return dict.fromkeys(
                ("seg_dice", "seg_volume_error_ml", "seg_relative_volume_error"), NAN
            )
        return {
            "seg_dice": lesion_dice(target, found),
            "seg_volume_error_ml": absolute_volume_error_ml(target, found, self.voxel_ml),
            "seg_relative_volume_error": relative_volume_error(target, found),
        }

    def reference(self, cases: list[Case]) -> dict[str, dict]:
        """The ground-truth rows: heal scored on the true healthy scans (what the segmenter
        still finds where nothing is left: its false positives), lesion on the real
        pathological scans (its ceiling)."""
        rows = {}
        for task, score, truth in (
            ("heal", self.heal, "healthy"),
            ("lesion", self.lesion, "sick"),
        ):
            per_case = [{"subject": c.subject, **score(c, getattr(c, truth).data)} for c in cases]
            rows[task] = summarise(per_case)
        return rows


def _scan(pipe: Pipeline, volume: Volume, case: Case) -> Scan:
    """``volume`` (the case's sick or healthy scan) with the case's lesion, in model space."""
    return Scan.load(volume, pipe.config.space, case.mask)


def _usb_variants(pipe: Pipeline, edit, source: str, seed: int, ablations: bool):
    """``usb`` and, with ``ablations``, ``usb <ablation>`` for each of :func:`ablation_configs`."""
    s = pipe.config.sampling
    configs = {"usb": s}
    if ablations:
        more = ablation_configs(s, pipe.config.diffusion.timesteps)
        configs |= {f"usb {name}": cfg for name, cfg in more.items()}

    def method(cfg):
        return lambda c, _: edit(pipe, _scan(pipe, getattr(c, source), c), cfg, seed).image.data

    return {name: method(cfg) for name, cfg in configs.items()}


def heal_methods(pipe: Pipeline, seed: int, ablations: bool = False) -> dict[str, Method]:
    s = pipe.config.sampling

    def floor(c: Case, _: int) -> np.ndarray:
        scan = _scan(pipe, c.sick, c)
        healthy = pipe.coder(s).encode(to_model(c.healthy, scan.geometry, VolumeKind.IMAGE))
        return heal(pipe, scan, s, seed, hooks=end_at(healthy)).image.data

    return {
        **_usb_variants(pipe, heal, "sick", seed, ablations),
        "sdedit": lambda c, _: (
            heal(pipe, _scan(pipe, c.sick, c), sdedit_config(s), seed).image.data
        ),
        "inpaint": lambda c, _: (
            heal(pipe, _scan(pipe, c.sick, c), s, seed, hooks=hard_mask_hooks).image.data
        ),
        "wm-fill": lambda c, _: fill_white_matter(c.sick.data, c.mask.data),
        "mirror-fill": lambda c, _: fill_mirror(c.sick.data, c.mask.data, c.sick.affine),
        "floor: true latent": floor,
    }


def lesion_methods(
    pipe: Pipeline, seed: int, cases: list[Case], ablations: bool = False
) -> dict[str, Method]:
    s = pipe.config.sampling
    rng = np.random.default_rng(seed)

    def paste(c: Case, i: int) -> np.ndarray:
        donor = cases[(i + 1) % len(cases)]  # another subject's real lesion
        return paste_lesion_intensities(
            c.healthy.data, c.mask.data, donor.sick.data, donor.mask.data, rng
        )

    def modelled(c: Case, _: int) -> np.ndarray:
        ratio = sample_lesion_ratio(c.kind if c.kind in ("stroke", "wmh") else "stroke", rng)
        return intensity_model_lesion(c.healthy.data, c.mask.data, ratio, rng)

    return {
        **_usb_variants(pipe, lesion, "healthy", seed, ablations),
        "sdedit-acg": lambda c, _: (
            lesion(
                pipe, _scan(pipe, c.healthy, c), sdedit_config(s, keep_anatomy=True), seed
            ).image.data
        ),
        "paste": paste,
        "intensity-model": modelled,
    }


def summarise(per_case: list[dict]) -> dict:
    """``{"median": {key: median over cases}, "cases": per_case}`` (NaNs skipped)."""
    keys = [k for k in per_case[0] if k != "subject"]
    return {"median": {k: nan_median([r[k] for r in per_case]) for k in keys}, "cases": per_case}


@torch.inference_mode()
def run_benchmark(
    pipe: Pipeline,
    cases: list[Case],
    seed: int = 0,
    ablations: bool = False,
    only_usb: bool = False,
    segmenter: SegmenterScores | None = None,
    finished: FinishedMethods | None = None,
) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Scores of every method on every case, with medians and seconds per method; and each
    method's output for the first case (for figures). ``ablations`` adds USB's sampling
    ablations; ``only_usb`` runs USB alone (a trained variant's checkpoint). With a
    ``segmenter``, each case also gets its lesion scores and ``results["segmenter_reference"]``
    its scores on the ground truth. ``finished`` keeps each method's results as it completes
    and gives back those an interrupted run with the same settings completed."""
    results: dict = {"heal": {}, "lesion": {}}
    examples: dict[str, dict[str, np.ndarray]] = {"heal": {}, "lesion": {}}
    # USB's own edit of every case: the first edit of each round trip (not kept by a resume).
    usb: dict[str, list[np.ndarray]] = {"heal": [], "lesion": []}

    def heal_score(c: Case, out: np.ndarray) -> dict[str, float]:
        scores = heal_scores(out, c.sick.data, c.healthy.data, c.mask.data)
        return scores | (segmenter.heal(c, out) if segmenter else {})

    def lesion_score(c: Case, out: np.ndarray) -> dict[str, float]:
        scores = lesion_scores(out, c.healthy.data, c.mask.data, c.sick.data)
        return scores | (segmenter.lesion(c, out) if segmenter else {})

    tasks = {
        "heal": (heal_methods(pipe, seed, ablations), heal_score),
        "lesion": (lesion_methods(pipe, seed, cases, ablations), lesion_score),
    }
    for task, (methods, score) in tasks.items():
        for name, method in methods.items():
            if only_usb and name != "usb":
                continue
            done = finished.get(task, name) if finished else None
            if done is not None:
                results[task][name], examples[task][name] = done
                continue
            start = time.perf_counter()
            per_case = []
            for i, case in enumerate(cases):
                out = method(case, i)
                per_case.append({"subject": case.subject, **score(case, out)})
                if name == "usb":
                    usb[task].append(out)
                if i == 0:
                    examples[task][name] = out
            results[task][name] = {
                **summarise(per_case),
                "seconds": time.perf_counter() - start,
            }
            if finished:
                finished.put(task, name, results[task][name], examples[task][name])

    def dice_of(c: Case) -> Callable[[np.ndarray], float] | None:
        if segmenter is None:
            return None
        return lambda out: segmenter.lesion(c, out)["seg_dice"]

    done = finished.get("round_trip", "usb") if finished else None
    if done is not None:
        results["round_trip"] = {"usb": done[0]}
    elif not only_usb:
        made = len(usb["heal"]) == len(usb["lesion"]) == len(cases)
        per_case = [
            {
                "subject": c.subject,
                **round_trip_scores(
                    pipe,
                    c.healthy,
                    c.sick,
                    c.mask,
                    seed,
                    dice_of(c),
                    (usb["lesion"][i], usb["heal"][i]) if made else None,
                ),
            }
            for i, c in enumerate(cases)
        ]
        results["round_trip"] = {"usb": summarise(per_case)}
        if finished:
            finished.put("round_trip", "usb", results["round_trip"]["usb"], None)
    if segmenter is not None:
        results["segmenter_reference"] = segmenter.reference(cases)
    return results, examples


def write_results(results: dict, path: Path) -> None:
    """``results.json``; infinities (identical regions) as the string "inf"."""

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return str(v)
        return v

    path.write_text(json.dumps(clean(results), indent=1) + "\n")
