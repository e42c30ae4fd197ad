"""Benchmark results over several seeds: every figure as median [min – max].

One seed is one draw: of the sampling noise for a shipped model, of the whole training run for
a model trained on the spot (``make demo``'s ``tiny``). A figure worth citing is the median over
seeds with the range beside it. :func:`combine` folds the ``results.json`` of each seed into one
dict of the same shape in which every number became ``{"median", "min", "max", "values"}``;
:func:`headline_table` renders the figures a README quotes.
"""

from __future__ import annotations

import math
from typing import Any

from usbrain.evaluate.summary import format_value, nan_median

# (task, method, metric key, title, digits): the figures the README quotes.
HEADLINE: tuple[tuple[str, str, str, str, int], ...] = (
    ("heal", "usb", "mae_ratio", "heal: in-lesion MAE output / input", 3),
    ("heal", "usb", "psnr_outside", "heal: PSNR outside the lesion (dB)", 1),
    ("heal", "usb", "brats_ssim", "heal: BraTS SSIM in the mask", 3),
    ("heal", "usb", "brats_psnr", "heal: BraTS PSNR in the mask (dB)", 2),
    ("heal", "wm-fill", "mae_ratio", "heal, white-matter fill: MAE output / input", 3),
    ("heal", "inpaint", "mae_ratio", "heal, hard-mask inpainting: MAE output / input", 3),
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
    ``combined`` has."""
    lines = [
        f"| figure | median [min – max] over seeds {', '.join(map(str, combined['seeds']))} |",
        "|---|---|",
    ]
    for task, method, key, title, digits in HEADLINE:
        figure = combined.get(task, {}).get(method, {}).get("median", {}).get(key)
        if figure is not None:
            lines.append(f"| {title} | {spread(figure, digits)} |")
    return lines
