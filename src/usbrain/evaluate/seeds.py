"""Benchmark results over several seeds: every figure as median [min – max].

One seed is one draw: of the sampling noise for a shipped model, of the whole training run for
a model trained on the spot (``make demo``'s ``tiny``). A figure worth citing is the median over
seeds with the range beside it. :func:`combine` folds the ``results.json`` of each seed into one
dict of the same shape in which every number became ``{"median", "min", "max", "values"}``;
:func:`headline_table` renders the figures a README quotes; :func:`group_medians` splits one
seed's per-case scores by lesion kind (a method can win overall and lose on cortical strokes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from usbrain.data.datasets import read_manifest
from usbrain.evaluate.summary import format_value, nan_median

# The built-in cohort's (kind, subtype) columns → the groups its scores are split into:
# territorial strokes reach the cortex, lacunar ones lie deep, WMH sit in the white matter.
LESION_GROUPS = {
    ("stroke", "territorial"): "cortical stroke",
    ("stroke", "lacunar"): "lacunar stroke",
    ("wmh", "periventricular"): "WMH",
    ("wmh", "periventricular+deep"): "WMH",
    ("wmh", "deep"): "WMH",
}

# (task, method, metric key, title, digits): the figures the README quotes.
HEADLINE: tuple[tuple[str, str, str, str, int], ...] = (
    ("heal", "usb", "mae_ratio", "heal: in-lesion MAE output / input", 3),
    ("heal", "usb", "psnr_outside", "heal: PSNR outside the lesion (dB)", 1),
    ("heal", "usb", "sharpness_ratio", "heal: gradient magnitude in the lesion / truth's", 2),
    ("heal", "usb", "brats_ssim", "heal: BraTS SSIM in the mask", 3),
    ("heal", "usb", "brats_psnr", "heal: BraTS PSNR in the mask (dB)", 2),
    ("heal", "wm-fill", "mae_ratio", "heal, white-matter fill: MAE output / input", 3),
    ("heal", "inpaint", "mae_ratio", "heal, hard-mask inpainting: MAE output / input", 3),
    ("heal", "sdedit", "mae_ratio", "heal, SDEdit: MAE output / input", 3),
    ("heal", "mirror-fill", "mae_ratio", "heal, mirror fill: MAE output / input", 3),
    (
        "heal",
        "floor: true latent",
        "mae_ratio",
        "heal, floor (a perfect denoiser): MAE output / input",
        3,
    ),
    ("lesion", "usb", "intensity_ratio", "insertion: lesion intensity after / before", 3),
    ("lesion", "usb", "psnr_outside", "insertion: PSNR outside the mask (dB)", 1),
    ("lesion", "usb", "psnr_lesion", "insertion: PSNR to the real lesion scan, lesion (dB)", 1),
    ("round_trip", "usb", "insert_heal_mae_ratio", "insert → heal: inserted change left", 3),
    (
        "round_trip",
        "usb",
        "heal_insert_intensity_ratio",
        "heal → insert: lesion intensity / real",
        3,
    ),
)


def _fold(values: list[Any]) -> Any:
    """The per-seed ``values`` of one place in the results, folded."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, int | float | dict | list):
        return first  # names, flags: the same for every seed
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(v, dict) and k in v for v in values)]
        return {k: _fold([v[k] for v in values]) for k in keys}
    if isinstance(first, list):
        return values  # per-case lists stay per seed
    numbers = [float(v) for v in values]
    finite = [v for v in numbers if not math.isnan(v)]
    return {
        "median": nan_median(numbers),
        "min": min(finite) if finite else math.nan,
        "max": max(finite) if finite else math.nan,
        "values": numbers,
    }


def combine(per_seed: dict[int, dict]) -> dict:
    """``results.json`` dicts by seed → one dict; each number → median / min / max / values.

    Keys missing from some seed are dropped; lists (per-case rows) are kept as one list per
    seed; strings and booleans are taken from the first seed. ``seeds`` lists the seeds.
    """
    if not per_seed:
        raise ValueError("combine: no results")
    seeds = sorted(per_seed)
    return {**_fold([per_seed[s] for s in seeds]), "seeds": seeds}


def spread(figure: dict, digits: int) -> str:
    """``median [min – max]`` of a folded figure."""
    cells = (format_value(figure[k], digits) for k in ("median", "min", "max"))
    return "{} [{} – {}]".format(*cells)


def headline_table(combined: dict) -> list[str]:
    """Markdown rows of :data:`HEADLINE` (medians over scans, then over seeds) that
    ``combined`` has, then the downstream segmenters' mean test Dice per training set."""
    lines = [
        f"| figure | median [min – max] over seeds {', '.join(map(str, combined['seeds']))} |",
        "|---|---|",
    ]
    for task, method, key, title, digits in HEADLINE:
        figure = combined.get(task, {}).get(method, {}).get("median", {}).get(key)
        if figure is not None:
            lines.append(f"| {title} | {spread(figure, digits)} |")
    for name, scores in combined.get("downstream", {}).get("sets", {}).items():
        title = f"downstream: segmenter trained on {name}, mean test Dice"
        lines.append(f"| {title} | {spread(scores['dice_mean'], 3)} |")
    return lines


def lesion_groups(manifest: Path) -> dict[str, str]:
    """Subject → its :data:`LESION_GROUPS` name, from a manifest's ``kind`` and ``subtype``
    columns (a subject of another kind, or a manifest without them, maps to "")."""
    return {
        r.subject: LESION_GROUPS.get((r.columns.get("kind", ""), r.columns.get("subtype", "")), "")
        for r in read_manifest(manifest)
    }


def group_medians(
    results: dict, task: str, key: str, group_of: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Method → group → the median of ``key`` over that group's cases of ``results[task]``.

    ``group_of``: subject → group name; the group ``all`` holds every case, a subject without
    a group counts there only. NaNs are skipped; a method without ``key`` is left out.
    """
    out: dict[str, dict[str, float]] = {}
    for method, scores in results.get(task, {}).items():
        cases = [c for c in scores.get("cases", []) if key in c]
        if not cases:
            continue
        groups: dict[str, list[dict]] = {"all": cases}
        for case in cases:
            if group_of.get(case["subject"]):
                groups.setdefault(group_of[case["subject"]], []).append(case)
        out[method] = {g: nan_median([float(c[key]) for c in cs]) for g, cs in groups.items()}
    return out


def group_table(
    folded: dict[str, dict[str, dict]], sizes: dict[str, int], digits: int
) -> list[str]:
    """Markdown rows: one per method of :func:`group_medians` folded over seeds
    (:func:`combine`), one column per group of ``sizes`` (group → cases, in that order)."""
    lines = [
        "| method | " + " | ".join(f"{g} (n = {n})" for g, n in sizes.items()) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for method, groups in folded.items():
        if method == "seeds":
            continue
        cells = [spread(groups[g], digits) if g in groups else "–" for g in sizes]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines
