"""Heal one synthetic scan end to end at paper scale (160³ at 1 mm), the way ``usbrain heal``
does it (``tasks.run.run_edit``): load the checkpoint and the scan, encode, edit with the preset's
sampling config, decode the change, write the result folder (NIfTI, montage, sidecar). Prints
time and peak RSS per phase, the total and a one-line summary against the goal (≤ 240 s,
≤ 4 GiB on 2 CPU cores); with --repeats, medians and the spread of the total.

The heal runs in a child process, so the peak RSS is its own (the parent only writes the inputs
and, without --checkpoint, a paper-preset pipeline with random weights: the costs are those of
the architecture, the output is noise). Volumes above ``sampling.stream_voxels`` are
coded in slabs (the whole-volume result in less memory) and edited whole; ``--crop`` runs the
approximate speed option instead (``sampling.edit_crop``: only a latent crop around the lesion
is encoded, denoised and decoded). ``--large-above`` moves the threshold, so a small run can
exercise the 160³ code path.

    python bench/heal_160.py                                   # paper preset, 160³
    python bench/heal_160.py --crop                            # the approximate crop
    python bench/heal_160.py --preset tiny --size 64 --steps 5 --large-above 100000  # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

GOAL_SECONDS, GOAL_GIB = 240.0, 4.0
BRAIN_SEMI_AXES_MM = np.array([68.0, 72.0, 60.0], np.float32)
LESION_CENTRE_MM = np.array([25.0, 7.0, 6.0], np.float32)  # in the right white matter


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def synthetic_scan(size: int, spacing: float, lesion_mm: float, seed: int = 0):
    """A skull-stripped T1-like scan of size³ voxels at ``spacing`` mm, float32 in [0, 1000]: an
    ellipsoid brain of MNI size (136 × 144 × 120 mm) with textured grey and brighter white
    matter, and a dark ball lesion (uint8 mask) of radius ``lesion_mm`` in the white matter.
    RAS affine centred on the origin."""
    g = torch.Generator().manual_seed(seed)
    shape = (size,) * 3
    texture = torch.rand((1, 1, *[max(size // 8, 2)] * 3), generator=g)
    texture = torch.nn.functional.interpolate(texture, size=shape, mode="trilinear")[0, 0].numpy()
    mm = np.stack(np.indices(shape, dtype=np.float32)) * spacing
    mm -= spacing * (size - 1) / 2
    r = np.sqrt(((mm / BRAIN_SEMI_AXES_MM[:, None, None, None]) ** 2).sum(0))
    image = np.where(r < 1.0, 550.0 + 100.0 * texture, 0.0)
    image[r < 0.75] += 300.0  # white matter
    ball = ((mm - LESION_CENTRE_MM[:, None, None, None]) ** 2).sum(0) <= lesion_mm**2
    image[ball] = 350.0
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (size - 1) / 2
    return image.astype(np.float32), ball.astype(np.uint8), affine


def prepare(args: argparse.Namespace, root: Path) -> Path:
    """Write the scan, its mask and (without --checkpoint) a random-weight pipeline into
    ``root``; return the checkpoint folder."""
    from usbrain.config import load_config
    from usbrain.data.nifti import save_nifti
    from usbrain.pipeline import Pipeline

    if args.checkpoint:
        config = load_config(path=Path(args.checkpoint) / "config.yaml")
    else:
        n = args.size
        config = load_config(args.preset, overrides=[f"space.size=[{n},{n},{n}]"])
    image, mask, affine = synthetic_scan(args.size, config.space.spacing, args.lesion_mm)
    save_nifti(root / "t1.nii.gz", image, affine)
    save_nifti(root / "mask.nii.gz", mask, affine)
    if args.checkpoint:
        return Path(args.checkpoint)
    torch.manual_seed(0)
    return Pipeline.build(config).save_pretrained(root / "pipeline")


def timed_phases(phases: dict[str, float], peaks: dict[str, float]) -> None:
    """Wrap the functions ``usbrain heal`` runs through so each adds its time and the RSS peak
    after it to ``phases`` / ``peaks`` under its label."""
    from usbrain.data.scan import Scan
    from usbrain.models.coder import LatentCoder
    from usbrain.pipeline import Pipeline
    from usbrain.tasks import editing, run

    targets = [
        ("load checkpoint", run, "load_pipeline"),
        ("read scan and mask", run, "load_image"),
        ("read scan and mask", run, "load_mask"),
        ("preprocess (model grid)", Scan, "load"),
        ("encode", LatentCoder, "encode"),
        ("encode empty mask", Pipeline, "empty_mask_latent"),
        ("denoise (brain chain)", editing, "sample_brain"),
        ("decode change", editing, "decode_change"),
        ("write back (native grid)", editing, "write_back"),
        ("write result folder", run, "write_result"),
    ]
    for label, module, name in targets:
        fn = getattr(module, name)

        def wrapped(*a, _fn=fn, _label=label, **k):
            start = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                phases[_label] = phases.get(_label, 0.0) + time.perf_counter() - start
                peaks[_label] = peak_rss_gib()

        setattr(module, name, wrapped)


def run_child(args: argparse.Namespace) -> None:
    from usbrain.config import load_config
    from usbrain.tasks.run import EditOptions, Job, TaskOptions, run_edit

    root = Path(args.child)
    config = load_config(path=Path(args.checkpoint_dir) / "config.yaml")
    space = config.space
    stream = config.sampling.stream_voxels if args.large_above is None else args.large_above
    phases: dict[str, float] = {}
    peaks: dict[str, float] = {}
    timed_phases(phases, peaks)
    overrides = [f"steps={args.steps}"] if args.steps else []
    overrides += [f"precision={args.precision}"] if args.precision else []
    overrides += ["edit_crop=true"] if args.crop else []
    overrides += [f"stream_voxels={args.large_above}"] if args.large_above is not None else []
    options = TaskOptions(
        Path(args.checkpoint_dir), root / "out", sampling_overrides=tuple(overrides), progress=False
    )
    job = Job(None, root / "t1.nii.gz", root / "mask.nii.gz")  # links to prepare()'s files
    start = time.perf_counter()
    run_edit("heal", options, [job], EditOptions())
    total = time.perf_counter() - start
    sidecar = json.loads((root / "out" / "usbrain.json").read_text())
    print(
        json.dumps(
            {
                "phases": phases,
                "peaks": peaks,
                "total": total,
                "peak_gib": peak_rss_gib(),
                "threads": torch.get_num_threads(),
                "steps_taken": sidecar["steps_taken"],
                "sampling": sidecar["parameters"],
                "decoded_latent_box": sidecar.get("decoded_latent_box"),
                "edited_latent_crop": sidecar.get("edited_latent_crop"),
                "large": math.prod(space.size) > stream,
                "model_size": list(space.size),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--size", type=int, default=160, help="voxels per axis of scan and model")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (preset's)")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="U-Nets")
    parser.add_argument("--crop", action="store_true", help="edit a latent crop (approximate)")
    parser.add_argument("--lesion-mm", type=float, default=10.0, help="lesion radius")
    parser.add_argument(
        "--checkpoint", default=None, help="a trained pipeline (its model grid and spacing apply)"
    )
    parser.add_argument(
        "--large-above", type=int, default=None, help="voxels above which coding is streamed"
    )
    parser.add_argument("--repeats", type=int, default=1, help="heals, each in a fresh process")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    runs = []
    with tempfile.TemporaryDirectory(prefix="usbrain_heal_bench_") as tmp:
        checkpoint = prepare(args, Path(tmp))
        for i in range(args.repeats):
            child = Path(tmp) / f"run{i}"
            child.mkdir()
            for name in ("t1.nii.gz", "mask.nii.gz"):
                (child / name).symlink_to(Path(tmp) / name)
            cmd = [sys.executable, __file__, *sys.argv[1:], "--child", str(child)]
            cmd += ["--checkpoint-dir", str(checkpoint)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"the heal failed:\n{done.stderr}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print_report(args, runs)


def print_report(args: argparse.Namespace, runs: list[dict]) -> None:
    r = runs[0]
    sampling = r["sampling"]
    coding = "whole volume"
    if r["large"]:
        box = r["decoded_latent_box"]
        region = "×".join(str(b - a) for a, b in box) + " latent box" if box else "whole volume"
        crop = r["edited_latent_crop"]
        edited = "×".join(str(b - a) for a, b in crop) + " latent crop" if crop else "whole volume"
        coding = f"edited in a {edited}, change kept in a {region}"
    model = "×".join(map(str, r["model_size"]))
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else f"{args.preset} preset"
    print(
        f"heal {args.size}³ scan, model grid {model}, {weights} "
        f"({'trained' if args.checkpoint else 'random'} weights), {r['threads']} threads; "
        f"{sampling['sampler']} {sampling['steps']} steps ({r['steps_taken']} from t_start "
        f"{sampling['t_start_heal']}), U-Nets {sampling['precision']}; {coding}; lesion radius "
        f"{args.lesion_mm:g} mm; median of {len(runs)} run(s)"
    )
    print(f"{'phase':<28}{'seconds':>10}{'peak RSS GiB':>14}")
    for label in r["phases"]:
        seconds = statistics.median(run["phases"][label] for run in runs)
        peak = max(run["peaks"][label] for run in runs)
        print(f"{label:<28}{seconds:10.1f}{peak:14.2f}")
    totals = [run["total"] for run in runs]
    other = statistics.median(run["total"] - sum(run["phases"].values()) for run in runs)
    total, peak = statistics.median(totals), max(run["peak_gib"] for run in runs)
    print(f"{'other':<28}{other:10.1f}")
    print(f"{'total':<28}{total:10.1f}{peak:14.2f}")
    spread = f" (runs {min(totals):.0f}–{max(totals):.0f} s)" if len(runs) > 1 else ""
    print(
        f"summary: heal {args.size}³: {total:.0f} s{spread}, {peak:.1f} GiB peak "
        f"(goal ≤ {GOAL_SECONDS:.0f} s, ≤ {GOAL_GIB:.0f} GiB)"
    )


if __name__ == "__main__":
    main()
