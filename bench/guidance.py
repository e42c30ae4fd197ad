"""Edit guidance variants side by side on the held-out subjects of a demo run.

For each variant (docs/method.md §5's choices: ACG/LCG on or off, the pull target, the soft lesion
map, the number of steps) heal and lesion-insert every ``--split`` (val) subject with a lesion,
and print the median scores of :mod:`usbrain.evaluate.tasks`: heal in-lesion MAE output/input
(lower is better), lesion intensity after/before (lower: a clearer lesion) and PSNR outside the
dilated lesion (higher: anatomy kept).

    python bench/guidance.py [--demo demo_out] [--variants default,no-acg,alpha0=5+t_start_heal=500]

``--tasks lesion --subtype territorial`` scores insertion of cortical strokes alone (beside the
real lesions' intensity ratio, its target); ``--cohort DIR`` another cohort (a folder with a
manifest.csv, e.g. ``usbrain cohort --held-out``'s), with ``--pipeline models/base``.

``--pipeline DIR`` scores another pipeline on the demo's cohort, e.g. one trained with ``usbrain
train --latents demo_out/train/latents --out runs/x --set …`` (default: the demo's own).

``--large`` codes every scan the way large (e.g. 160³) scans are coded (in slabs,
``Autoencoder.encode_streamed``), to check it gives the whole-volume scores.

``--crop-context N`` edits every scan the way ``sampling.edit_crop`` edits large (e.g. 160³)
scans: in a crop of N latent voxels of context around the lesion (``tasks.editing.edit_region``),
to compare with the whole-volume edits of a run without it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
import yaml

from usbrain.config import LesionMap, PullTarget
from usbrain.data.csvfile import read_rows
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.scan import Scan
from usbrain.evaluate.summary import nan_median
from usbrain.evaluate.tasks import heal_scores, lesion_scores
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion

NAMED = {
    "default": "",
    "no-acg": "anatomy=false",
    "no-lcg": "lesion=false",
    "no-guidance": "anatomy=false+lesion=false",
    "noised-target": "pull_target=noised",
    "latent-map": "lesion_map=latent",
    "steps=300": "steps=300",
}


def variant(base, spec: str):
    """``base`` with ``key=value[+key=value…]`` applied; keys of SamplingConfig or its guidance
    (e.g. ``alpha0=5+t_start_heal=500``); a name from NAMED stands for its spec."""
    spec = NAMED.get(spec, spec)
    sampling, guidance = {}, {}
    for item in filter(None, spec.split("+")):
        key, text = item.split("=", 1)
        value = yaml.safe_load(text)
        if key in {f.name for f in fields(base.guidance)}:
            guidance[key] = value
        else:
            sampling[key] = value
    out = replace(base, **sampling)
    g = replace(base.guidance, **guidance)
    if "pull_target" in guidance:
        g = replace(g, pull_target=PullTarget(guidance["pull_target"]))
    if "lesion_map" in guidance:
        g = replace(g, lesion_map=LesionMap(guidance["lesion_map"]))
    return replace(out, guidance=g)


def lesioned_rows(cohort: Path, split: str, subtype: str | None = None) -> list[dict[str, str]]:
    """The manifest rows of ``cohort``'s ``split`` that carry a lesion (of ``subtype`` only,
    e.g. ``territorial``, when given)."""
    rows = [r.cells for r in read_rows(cohort / "manifest.csv") if r.get("split") == split]
    rows = [r for r in rows if r.get("kind") != "healthy"]
    return [r for r in rows if subtype is None or r.get("subtype") == subtype]


@torch.inference_mode()
def score(pipe, sampling, rows, cohort: Path, tasks: set[str]) -> dict[str, float]:
    """Median scores of ``tasks`` (``heal``, ``lesion``) over ``rows``; insertion beside the
    real lesions' intensity ratio (pathological / healthy scan in the mask), its target."""
    heals, lesions, real = [], [], []
    for row in rows:
        sick, mask = load_image(cohort / row["image"]), load_mask(cohort / row["mask"])
        healthy = load_image(cohort / row["healthy_image"])
        if "heal" in tasks:
            healed = heal(pipe, Scan.load(sick, pipe.config.space, mask), sampling).image.data
            heals.append(heal_scores(healed, sick.data, healthy.data, mask.data))
        if "lesion" in tasks:
            scan = Scan.load(healthy, pipe.config.space, mask)
            inserted = lesion(pipe, scan, sampling).image.data
            lesions.append(lesion_scores(inserted, healthy.data, mask.data, sick.data))
            real.append(lesion_scores(sick.data, healthy.data, mask.data)["intensity_ratio"])
    scores = {}
    if heals:
        scores["heal MAE ratio"] = nan_median([h["mae_ratio"] for h in heals])
        scores["heal PSNR out"] = nan_median([h["psnr_outside"] for h in heals])
    if lesions:
        scores["lesion int. ratio"] = nan_median([s["intensity_ratio"] for s in lesions])
        scores["real int. ratio"] = nan_median(real)
        scores["lesion PSNR out"] = nan_median([s["psnr_outside"] for s in lesions])
        scores["lesion MAE ratio"] = nan_median(
            [s["mae_lesion_output"] / s["mae_lesion_input"] for s in lesions]
        )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"))
    parser.add_argument("--pipeline", type=Path, default=None, help="default: the demo's")
    parser.add_argument("--variants", default=None, help="comma-separated names (default all)")
    parser.add_argument("--split", default="val", help="val (choose settings) or test (report)")
    parser.add_argument("--crop-context", type=int, default=None, help="force crop edits")
    parser.add_argument("--large", action="store_true", help="force the large-volume coding")
    parser.add_argument("--subtype", default=None, help="only lesions of this subtype")
    parser.add_argument("--tasks", default="heal,lesion", help="heal, lesion or both")
    parser.add_argument("--cohort", type=Path, default=None, help="default: the demo's")
    args = parser.parse_args()
    cohort = args.cohort or args.demo / "cohort"
    rows = lesioned_rows(cohort, args.split, args.subtype)
    pipe = Pipeline.from_pretrained(args.pipeline or args.demo / "train" / "diffusion" / "pipeline")
    names = args.variants.split(",") if args.variants else list(NAMED)
    kind = f" {args.subtype}" if args.subtype else ""
    print(f"{len(rows)} {args.split} subjects with a{kind} lesion; medians")
    header = None
    for name in names:
        start = time.perf_counter()
        sampling = variant(pipe.config.sampling, name)
        if args.large:  # every volume counts as large: coded in slabs
            sampling = replace(sampling, stream_voxels=0)
        if args.crop_context is not None:
            sampling = replace(
                sampling, stream_voxels=0, edit_crop=True, crop_context=args.crop_context
            )
        scores = score(pipe, sampling, rows, cohort, set(args.tasks.split(",")))
        if header is None:
            header = ["variant", *scores, "seconds"]
            print(" | ".join(f"{h:>17}" for h in header))
        cells = [f"{v:17.3f}" for v in scores.values()]
        print(f"{name:>17} | " + " | ".join(cells) + f" | {time.perf_counter() - start:17.1f}")


if __name__ == "__main__":
    main()
