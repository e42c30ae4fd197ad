"""Heal without a mask on the held-out subjects of a demo run: how well the lesion is found.

For every subject of ``--split`` with a lesion, heal the scan with no mask (ACG alone), then
score the lesion the model found two ways against the true mask: the anomaly map |input −
healed| over the scan's intensity window thresholded at each of ``--thresholds`` (Dice per
threshold), and the lesion chain run with the brain fixed to the scan (``find_lesion=segment``,
the joint model as a segmenter). Also printed: heal's in-lesion MAE ratio and PSNR outside the
dilated lesion (``usbrain.evaluate.tasks.heal_scores``). Choose the mode and threshold on
``--split val`` (the default), then read the test split once with them.

    python bench/heal_without_mask.py [--demo demo_out] [--split val] [--variant alpha0=4]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from guidance import lesioned_rows, variant  # bench/guidance.py, beside this script

from usbrain.config import FindLesion
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.preprocess import brain_mask
from usbrain.data.scan import Scan
from usbrain.evaluate.lesions import lesion_dice
from usbrain.evaluate.summary import nan_median
from usbrain.evaluate.tasks import heal_scores
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal

THRESHOLDS = "0.02,0.05,0.1,0.15,0.2,0.3,0.4"


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"))
    parser.add_argument("--pipeline", type=Path, default=None, help="default: the demo's")
    parser.add_argument("--split", default="val")
    parser.add_argument("--thresholds", default=THRESHOLDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant",
        default="",
        help="sampling changes as bench/guidance.py takes them, e.g. alpha0=4",
    )
    args = parser.parse_args()
    cohort = args.demo / "cohort"
    rows = lesioned_rows(cohort, args.split)
    pipe = Pipeline.from_pretrained(args.pipeline or args.demo / "train" / "diffusion" / "pipeline")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    sampling = variant(pipe.config.sampling, args.variant)
    segment = replace(sampling, find_lesion=FindLesion.SEGMENT)
    dice = {t: [] for t in thresholds}
    seg_dice, ratio, psnr = [], [], []
    start = time.perf_counter()
    for row in rows:
        sick, mask = load_image(cohort / row["image"]), load_mask(cohort / row["mask"])
        healthy = load_image(cohort / row["healthy_image"])
        healed = heal(pipe, Scan.load(sick, pipe.config.space), segment, seed=args.seed)
        low, high = healed.info["intensity_window"]
        relative = healed.maps["anomaly"] / (high - low)
        brain = brain_mask(sick.data)
        for t in thresholds:
            dice[t].append(lesion_dice(mask.data, (relative > t) & brain))
        seg_dice.append(lesion_dice(mask.data, healed.mask.data))
        scores = heal_scores(healed.image.data, sick.data, healthy.data, mask.data)
        ratio.append(scores["mae_ratio"])
        psnr.append(scores["psnr_outside"])
        print(
            f"{row['subject']:>12}  {row['kind']:>8}  MAE ratio {scores['mae_ratio']:.3f}  "
            f"PSNR out {scores['psnr_outside']:.1f} dB  segmenter Dice {seg_dice[-1]:.3f}  "
            "anomaly Dice " + " ".join(f"{d[-1]:.3f}" for d in dice.values())
        )
    print(
        f"{len(rows)} {args.split} subjects with a lesion, seed {args.seed}, "
        f"sampling {args.variant or 'as set'}; medians"
    )
    print(
        f"heal without a mask: in-lesion MAE ratio {nan_median(ratio):.3f}, "
        f"PSNR outside the dilated lesion {nan_median(psnr):.1f} dB"
    )
    for t in thresholds:
        print(f"anomaly > {t:<5} of the intensity window: Dice {np.median(dice[t]):.3f}")
    best = max(thresholds, key=lambda t: np.median(dice[t]))
    print(
        f"best threshold {best} (Dice {np.median(dice[best]):.3f}); "
        f"segmenter (lesion chain, brain fixed) Dice {np.median(seg_dice):.3f}"
    )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
