"""Quality against the number of sampling steps, for DDIM and DPM-Solver++ (2M), on the held-out
subjects of a demo run: heal in-lesion MAE to the known healthy scan (median) and, with
``--fid``, FID of generated volumes against the split's real scans (HD-BET features). Ends with the
fewest steps (≤ 50) whose heal MAE is within 1% of 300 DDIM steps, and its speed-up.

    python bench/steps_quality.py [--demo demo_out] [--steps 300,100,50,25,10] [--fid]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from usbrain.config import SamplerKind
from usbrain.data.csvfile import read_rows
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.scan import Scan
from usbrain.evaluate.distribution import frechet_distance
from usbrain.evaluate.features import extract_features, hdbet_encoder
from usbrain.evaluate.generation import model_space_images
from usbrain.evaluate.tasks import heal_scores
from usbrain.pipeline import Pipeline
from usbrain.tasks.generate import generate
from usbrain.tasks.heal import heal


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"))
    parser.add_argument("--steps", default="300,100,50,25,10")
    parser.add_argument("--fid", action="store_true", help="also FID of generated volumes")
    parser.add_argument("--feature-size", type=int, default=128)
    parser.add_argument("--split", default="val", help="val (choose settings) or test (report)")
    args = parser.parse_args()
    cohort = args.demo / "cohort"
    rows = [r.cells for r in read_rows(cohort / "manifest.csv")]
    cases = [r for r in rows if r["split"] == args.split and r["kind"] != "healthy"]
    pipe = Pipeline.from_pretrained(args.demo / "train" / "diffusion" / "pipeline")
    scans = [
        (
            load_image(cohort / r["image"]),
            load_mask(cohort / r["mask"]),
            load_image(cohort / r["healthy_image"]),
        )
        for r in cases
    ]
    real_feats = network = None
    if args.fid:
        network = hdbet_encoder(size=args.feature_size)
        held_out = [r for r in rows if r["split"] == args.split]  # never training scans
        real = model_space_images(pipe, [load_image(cohort / r["image"]) for r in held_out])
        real_feats = extract_features(network, real)
    print(f"{len(cases)} {args.split} subjects with a lesion; heal MAE: median in-lesion MAE")
    print(f"{'sampler':<10}{'steps':>6}{'heal MAE':>12}{'heal s':>9}{'FID':>9}{'gen s':>8}")
    table = {}
    for kind in (SamplerKind.DDIM, SamplerKind.DPMPP_2M):
        for steps in [int(s) for s in args.steps.split(",")]:
            sampling = replace(pipe.config.sampling, sampler=kind, steps=steps)
            start = time.perf_counter()
            maes = [
                heal_scores(
                    heal(pipe, Scan.load(s, pipe.config.space, m), sampling).image.data,
                    s.data,
                    h.data,
                    m.data,
                )["mae_lesion_output"]
                for s, m, h in scans
            ]
            heal_s = time.perf_counter() - start
            fid, gen_s = float("nan"), float("nan")
            if network is not None:
                start = time.perf_counter()
                made = generate(pipe, len(rows) // 2, sampling, seed=0)
                gen_s = time.perf_counter() - start
                vols = torch.stack([torch.from_numpy(r.image.data)[None] for r in made]).float()
                fid = frechet_distance(real_feats, extract_features(network, vols))
            table[(kind, steps)] = (float(np.median(maes)), heal_s)
            print(f"{kind:<10}{steps:>6}{np.median(maes):12.4f}{heal_s:9.1f}{fid:9.2f}{gen_s:8.1f}")
    ref_mae, ref_s = table.get((SamplerKind.DDIM, 300), (None, None))
    if ref_mae is None:
        return
    ok = [(s, k) for (k, s), (mae, _) in table.items() if s <= 50 and mae <= 1.01 * ref_mae]
    if not ok:
        print("summary: no step count ≤ 50 reaches 300 DDIM steps' heal MAE within 1%")
        return
    steps, kind = min(ok)
    mae, sec = table[(kind, steps)]
    print(
        f"summary: {kind} with {steps} steps heals as well as 300 DDIM steps, within 1% or better "
        f"(MAE {mae:.4f} vs {ref_mae:.4f}), {ref_s / sec:.1f}× faster"
    )


if __name__ == "__main__":
    main()
