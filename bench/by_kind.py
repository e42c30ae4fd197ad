"""The seeds benchmark split by lesion kind: does a method that wins overall also win on
cortical strokes, and is an inserted lesion as dark as the cohort's real ones of its kind?

Reads every ``<seeds>/seed-*/results.json`` that ``bench/seeds.py`` wrote (and
``<seeds>/condition/seed-*.json`` of ``bench/condition_seeds.py``, where run) and the cohort
manifest it scored (its ``kind`` and ``subtype`` columns: territorial strokes reach the cortex,
lacunar ones lie deep, WMH in the white matter):

    python bench/by_kind.py --seeds runs/seeds-base --data runs/heldout-base/manifest.csv

Each table gives, per method and kind, the median over that kind's scans, then median
[min – max] over seeds. The insertion table adds the real lesion: the pathological scan's own
lesion intensity over its healthy version's, the figure an inserted lesion should match.
Writes ``<seeds>/by_kind.md`` and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from usbrain.evaluate.benchmark import read_cases
from usbrain.evaluate.seeds import LESION_GROUPS, combine, group_medians, group_table, lesion_groups
from usbrain.evaluate.summary import nan_median
from usbrain.evaluate.tasks import lesion_scores
from usbrain.files import atomic_file

# (task, metric key, title, digits)
TABLES = (
    ("heal", "mae_ratio", "Heal: in-lesion MAE to the healthy scan, output / input", 3),
    ("heal", "psnr_outside", "Heal: PSNR outside the dilated lesion (dB)", 1),
    ("heal", "sharpness_ratio", "Heal: gradient magnitude in the lesion / the healthy scan's", 2),
    ("lesion", "intensity_ratio", "Insertion: lesion intensity after / before", 3),
    ("lesion", "psnr_outside", "Insertion: PSNR outside the dilated mask (dB)", 1),
    ("condition", "lesion_contrast", "Condition: lesion contrast of the generated brain", 3),
    ("condition", "real_contrast", "Condition: lesion contrast of the real scan", 3),
    ("condition", "contrast_gap", "Condition: |generated − real| lesion contrast", 3),
    ("condition", "lesion_in_brain", "Condition: lesion voxels inside the generated brain", 3),
    ("condition", "sharpness_ratio", "Condition: gradient magnitude in the brain / real's", 2),
)
REAL = "real lesion (pathological / healthy scan)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, required=True, help="bench/seeds.py --out folder")
    parser.add_argument("--data", type=Path, required=True, help="the manifest it scored")
    args = parser.parse_args()
    per_seed = {
        int(p.parent.name.removeprefix("seed-")): json.loads(p.read_text())
        for p in sorted(args.seeds.glob("seed-*/results.json"))
    }
    if not per_seed:
        raise SystemExit(f"{args.seeds}: no seed-*/results.json (run bench/seeds.py first)")
    for seed, results in per_seed.items():
        extra = args.seeds / "condition" / f"seed-{seed}.json"
        if extra.is_file():
            results |= json.loads(extra.read_text())
    group_of = lesion_groups(args.data)
    subjects = per_seed[min(per_seed)]["setup"]["cases"]
    sizes = {"all": len(subjects)}
    for name in dict.fromkeys(LESION_GROUPS.values()):
        sizes[name] = sum(group_of.get(s) == name for s in subjects)
    split = per_seed[min(per_seed)]["setup"]["split"]
    real = _real_ratios(args.data, split, group_of)
    lines = [
        f"# Benchmark by lesion kind: {len(subjects)} {split} scans of `{args.data}`, "
        f"seeds {', '.join(map(str, sorted(per_seed)))}",
        "",
        "Median over the kind's scans, then median [min – max] over seeds.",
    ]
    for task, key, title, digits in TABLES:
        if not all(task in r for r in per_seed.values()):
            continue
        medians = {s: group_medians(r, task, key, group_of) for s, r in per_seed.items()}
        if not all(medians.values()):
            continue  # a score the results of some seed do not have
        folded = combine(medians)
        if key == "intensity_ratio":
            folded[REAL] = {g: {"median": v, "min": v, "max": v} for g, v in real.items()}
        lines += ["", f"## {title}", "", *group_table(folded, sizes, digits)]
    with atomic_file(args.seeds / "by_kind.md", overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _real_ratios(manifest: Path, split: str, group_of: dict[str, str]) -> dict:
    """Group → median over its scans of the real lesion's intensity after / before."""
    ratios: dict[str, list[float]] = {"all": []}
    for case in read_cases(manifest, split):
        ratio = lesion_scores(case.sick.data, case.healthy.data, case.mask.data)["intensity_ratio"]
        ratios["all"].append(ratio)
        if group_of.get(case.subject):
            ratios.setdefault(group_of[case.subject], []).append(ratio)
    return {g: nan_median(v) for g, v in ratios.items()}


if __name__ == "__main__":
    main()
