"""The benchmark over several seeds: every headline figure as median [min – max].

Sampling seeds for a shipped model (one checkpoint, the seed of each benchmark run):

    python bench/seeds.py --checkpoint base --data runs/heldout/manifest.csv --seeds 0,1,2 \\
        --out runs/seeds-base

Training seeds for what ``make demo`` trains: ``--train-tiny`` runs the demo once per seed
(``usbrain demo --set seed=S``: the same cohort, another training run) and benchmarks each
run's pipeline, with the same seed, on ``--data``; ``--downstream`` adds the segmenters
trained on real, real + USB and real + copy-paste pairs of the demo's cohort (the data tiny
trained on) and scored on ``--data``, as ``usbrain benchmark --downstream``:

    python bench/seeds.py --train-tiny --data runs/heldout-tiny/manifest.csv --seeds 0,1,2 \\
        --out runs/seeds-tiny --downstream

``--data`` should be a held-out cohort (``usbrain cohort --start N --held-out``, N past the
training cohort's last subject): ≥ 24 test subjects with a lesion. A seed whose results exist
under ``--out`` is not run again, and within a seed the edit methods a killed run finished
are read back (``usbrain benchmark --resume``), so an interrupted run continues. Writes
``<out>/seed-<S>/`` (each benchmark), ``<out>/results.json`` (every figure folded over seeds,
:func:`usbrain.evaluate.seeds.combine`) and prints the headline table (``<out>/summary.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from usbrain.demo import run_demo
from usbrain.evaluate.report import benchmark_to_folder
from usbrain.evaluate.seeds import combine, headline_table
from usbrain.files import atomic_file
from usbrain.pipeline import pipeline_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="pipeline folder, or base (sampling seeds)")
    which.add_argument("--train-tiny", action="store_true", help="train the demo per seed")
    parser.add_argument("--data", type=Path, required=True, help="held-out cohort manifest")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--features", default="none", help="as usbrain benchmark (default none)")
    parser.add_argument("--downstream", action="store_true", help="as usbrain benchmark")
    parser.add_argument("--downstream-steps", type=int, help="as usbrain benchmark")
    parser.add_argument(
        "--downstream-train",
        type=Path,
        help="manifest whose train split the segmenters train on (default: with --train-tiny "
        "the demo's cohort, which tiny trained on; else --data)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    per_seed = {}
    for seed in seeds:
        folder = args.out / f"seed-{seed}"
        if not (folder / "results.json").is_file():
            demo = args.out / f"demo-{seed}"
            checkpoint = (
                pipeline_folder(args.checkpoint) if args.checkpoint else _trained_demo(demo, seed)
            )
            train = args.downstream_train
            if args.downstream and train is None and args.train_tiny:
                train = demo / "cohort" / "manifest.csv"
            benchmark_to_folder(
                checkpoint,
                args.data,
                folder,
                args.split,
                seed,
                args.device,
                overwrite=True,
                features=args.features,
                downstream=args.downstream,
                downstream_steps=args.downstream_steps,
                resume=True,
                downstream_train=train,
            )
        per_seed[seed] = json.loads((folder / "results.json").read_text())
    combined = combine(per_seed)
    with atomic_file(args.out / "results.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(combined, indent=1))
    cases = len(per_seed[seeds[0]]["setup"]["cases"])
    lines = [
        f"{cases} {args.split} scans with a lesion of `{args.data}`; medians over scans, then "
        "median [min – max] over seeds.",
        "",
        *headline_table(combined),
    ]
    with atomic_file(args.out / "summary.md", overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _trained_demo(out: Path, seed: int) -> Path:
    """The pipeline of ``usbrain demo --set seed=<seed>`` in ``out`` (run if not there)."""
    pipeline = out / "train" / "diffusion" / "pipeline"
    if not (pipeline / "meta.json").is_file():
        run_demo(out, overrides=[f"seed={seed}"], shipped=False)
    return pipeline


if __name__ == "__main__":
    main()
