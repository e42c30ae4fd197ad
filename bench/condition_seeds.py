"""Condition over seeds: a brain generated for each held-out lesion mask, scored against the
real scan the mask belongs to.

For every ``--split`` scan with a lesion of ``--data`` and every seed, ``usbrain condition``'s
task generates one brain for the scan's mask; scored are its lesion contrast (mean inside the
mask over the median brain outside it; T1 lesions are dark), the real scan's contrast on the
same mask, their gap, their sharpness ratio and the share of lesion voxels inside the
generated brain; with ``--features`` (as ``usbrain benchmark``), also FID / MMD of the
generated brains, in model space, against the ``--split`` scans (``distribution``):

    python bench/condition_seeds.py --checkpoint base --data runs/heldout-base/manifest.csv \\
        --seeds 0,1,2 --out runs/seeds-base --features hdbet

Writes ``<out>/condition/seed-<S>.json`` (a seed already there is not run again), which
``bench/by_kind.py`` splits by lesion kind, and prints the medians over scans per seed.

``--set KEY=VALUE`` (repeatable) changes a sampling setting as ``usbrain condition --set``
does, to choose it on ``--split val`` into its own ``--out``, e.g.
``--set generation_condition_scale=2``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from usbrain.evaluate.benchmark import read_cases, read_scans, summarise
from usbrain.evaluate.generation import conditional_scores, model_space_images
from usbrain.evaluate.report import feature_network
from usbrain.evaluate.tasks import condition_scores
from usbrain.files import atomic_file
from usbrain.pipeline import pipeline_folder
from usbrain.tasks.condition import condition
from usbrain.tasks.run import TaskOptions, load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="pipeline folder, or base")
    parser.add_argument("--data", type=Path, required=True, help="held-out cohort manifest")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--features", default="none", help="as usbrain benchmark (default none)")
    parser.add_argument("--feature-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.set and args.split == "test":
        parser.error("--set chooses a setting: on --split val (the test split is the benchmark's)")
    options = TaskOptions(
        pipeline_folder(args.checkpoint),
        args.out,
        device=args.device,
        sampling_overrides=tuple(args.set),
    )
    pipe, sampling = load_pipeline(options)  # the task commands' `--set`, read the same way
    cases = read_cases(args.data, args.split)
    network = feature_network(args.features, args.feature_size)
    real = None if network is None else model_space_images(pipe, read_scans(args.data, args.split))
    for seed in (int(s) for s in args.seeds.split(",")):
        path = args.out / "condition" / f"seed-{seed}.json"
        if not path.is_file():
            rows, brains = [], []
            for case in cases:
                (result,) = condition(pipe, case.mask, 1, sampling, seed)
                brains.append(result.image)
                scores = condition_scores(result.image.data, case.mask.data, case.sick.data)
                rows.append(
                    {
                        "subject": case.subject,
                        **scores,
                        "contrast_gap": abs(scores["lesion_contrast"] - scores["real_contrast"]),
                        "lesion_in_brain": result.info["lesion_in_brain"],
                    }
                )
            scores = {"condition": {"usb": summarise(rows)}}
            if network is not None:
                generated = model_space_images(pipe, brains)
                scores["distribution"] = conditional_scores(real, generated, network)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, overwrite=True) as tmp:
                tmp.write_text(json.dumps(scores, indent=1))
        done = json.loads(path.read_text())
        medians = done["condition"]["usb"]["median"]
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
        if "distribution" in done:
            fid = done["distribution"]["fid"]
            print(f"  FID real vs real {fid['real_vs_real']:.3f}, vs USB {fid['real_vs_usb']:.3f}")


if __name__ == "__main__":
    main()
