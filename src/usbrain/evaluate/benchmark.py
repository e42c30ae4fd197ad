"""``usbrain benchmark``: every edit method on the same held-out scans, scored against ground
truth, written as ``results.json`` + ``report.md`` + figures.

Data: a manifest CSV (columns ``subject, image, mask, healthy_image, split, kind``, as the
built-in cohort writes) whose ``healthy_image`` is the known lesion-free version of ``image``.
Heal methods start from ``image`` + ``mask`` and are scored against ``healthy_image``; lesion
insertion methods start from ``healthy_image`` + ``mask`` and are scored against ``image``.

Methods (:mod:`usbrain.evaluate.baselines`), each run through the same loading and scoring:

- heal: ``usb`` (ACG + LCG), ``sdedit`` (same model, no guidance), ``inpaint`` (hard-mask latent
  replacement), ``wm-fill``, ``mirror-fill``;
- lesion: ``usb``, ``sdedit-acg`` (ACG, no LCG), ``paste`` (another test subject's lesion
  intensities), ``intensity-model`` (the cohort's own lesion model).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from usbrain.data.datasets import read_manifest
from usbrain.data.nifti import Volume, load_image, load_mask
from usbrain.data.pseudo import sample_lesion_ratio
from usbrain.errors import InputError
from usbrain.evaluate.baselines import (
    ablation_configs,
    fill_mirror,
    fill_white_matter,
    intensity_model_lesion,
    paste_lesion_intensities,
    replace_outside,
    sdedit_config,
)
from usbrain.evaluate.summary import nan_median
from usbrain.evaluate.tasks import heal_scores, lesion_scores
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


def _kinds(manifest: Path) -> dict[str, str]:
    """The optional ``kind`` column (stroke, wmh, …) the built-in cohort adds, by subject."""
    with manifest.open(newline="") as f:
        return {(r.get("subject") or "").strip(): r.get("kind") or "" for r in csv.DictReader(f)}


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
    kinds = _kinds(manifest)
    cases = []
    for r in records:
        if r.split != split or r.mask is None or r.healthy_image is None:
            continue
        mask = load_mask(r.mask)
        if mask.data.any():
            sick, healthy = load_image(r.image), load_image(r.healthy_image)
            cases.append(Case(r.subject, kinds.get(r.subject, ""), sick, healthy, mask))
    if not cases:
        raise InputError(f"{manifest}: no {split} scan with a lesion and a healthy_image")
    return cases


def read_scans(manifest: Path) -> list[Volume]:
    """Every ``image`` of the manifest (all splits): the real set of distribution scores."""
    return [load_image(r.image) for r in read_manifest(manifest)]


Method = Callable[[Case, int], np.ndarray]


def _usb_variants(pipe: Pipeline, edit, source: str, seed: int, ablations: bool):
    """``usb`` and, with ``ablations``, ``usb <ablation>`` for each of :func:`ablation_configs`."""
    s = pipe.config.sampling
    configs = {"usb": s}
    if ablations:
        more = ablation_configs(s, pipe.config.diffusion.timesteps)
        configs |= {f"usb {name}": cfg for name, cfg in more.items()}

    def method(cfg):
        return lambda c, _: edit(pipe, getattr(c, source), c.mask, cfg, seed).image.data

    return {name: method(cfg) for name, cfg in configs.items()}


def heal_methods(pipe: Pipeline, seed: int, ablations: bool = False) -> dict[str, Method]:
    s = pipe.config.sampling
    return {
        **_usb_variants(pipe, heal, "sick", seed, ablations),
        "sdedit": lambda c, _: heal(pipe, c.sick, c.mask, sdedit_config(s), seed).image.data,
        "inpaint": lambda c, _: (
            heal(pipe, c.sick, c.mask, s, seed, guidance_for=replace_outside).image.data
        ),
        "wm-fill": lambda c, _: fill_white_matter(c.sick.data, c.mask.data),
        "mirror-fill": lambda c, _: fill_mirror(c.sick.data, c.mask.data, c.sick.affine),
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
            lesion(pipe, c.healthy, c.mask, sdedit_config(s, keep_anatomy=True), seed).image.data
        ),
        "paste": paste,
        "intensity-model": modelled,
    }


@torch.inference_mode()
def run_benchmark(
    pipe: Pipeline,
    cases: list[Case],
    seed: int = 0,
    ablations: bool = False,
    only_usb: bool = False,
) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Scores of every method on every case, with medians and seconds per method; and each
    method's output for the first case (for figures). ``ablations`` adds USB's sampling
    ablations; ``only_usb`` runs USB alone (a trained variant's checkpoint)."""
    results: dict = {"heal": {}, "lesion": {}}
    examples: dict[str, dict[str, np.ndarray]] = {"heal": {}, "lesion": {}}
    tasks = {
        "heal": (
            heal_methods(pipe, seed, ablations),
            lambda c, out: heal_scores(out, c.sick.data, c.healthy.data, c.mask.data),
        ),
        "lesion": (
            lesion_methods(pipe, seed, cases, ablations),
            lambda c, out: lesion_scores(out, c.healthy.data, c.mask.data, c.sick.data),
        ),
    }
    for task, (methods, score) in tasks.items():
        for name, method in methods.items():
            if only_usb and name != "usb":
                continue
            start = time.perf_counter()
            per_case = []
            for i, case in enumerate(cases):
                out = method(case, i)
                per_case.append({"subject": case.subject, **score(case, out)})
                if i == 0:
                    examples[task][name] = out
            keys = [k for k in per_case[0] if k != "subject"]
            results[task][name] = {
                "median": {k: nan_median([r[k] for r in per_case]) for k in keys},
                "cases": per_case,
                "seconds": time.perf_counter() - start,
            }
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
