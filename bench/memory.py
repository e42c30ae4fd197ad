"""Peak memory and time to encode and decode one volume with the autoencoder, whole-volume
against streamed (``Autoencoder.encode_streamed`` / ``decode_streamed``: block by block in slabs,
GroupNorm over the whole tensor), at the paper preset (160³). Each mode runs in its own process
so its peak RSS is its own; the streamed latent and decoded volume are compared with the
whole-volume ones (max |Δ|, the volume in its [0, 1] intensity range; random weights unless
--checkpoint).

    python bench/memory.py [--preset paper] [--rows N] [--checkpoint PIPELINE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from usbrain.config import load_config
from usbrain.models.autoencoder import Autoencoder


def _ae(preset: str, checkpoint: str | None) -> Autoencoder:
    if checkpoint:
        from usbrain.pipeline import Pipeline

        return Pipeline.from_pretrained(checkpoint).autoencoder
    torch.manual_seed(0)
    return Autoencoder(load_config(preset).autoencoder).eval()


def _volume(shape) -> torch.Tensor:
    """A smooth brain-like test volume in [0, 1] (a blurred random field inside an ellipsoid)."""
    g = torch.Generator().manual_seed(0)
    field = torch.rand((1, 1, *[s // 8 for s in shape]), generator=g)
    field = torch.nn.functional.interpolate(field, size=shape, mode="trilinear")
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s) for s in shape], indexing="ij"))
    inside = (grid.square().sum(0) < 0.8).float()
    return field * inside


def run_one(args: argparse.Namespace) -> None:
    mode = args.child
    ae = _ae(args.preset, args.checkpoint)
    x = _volume(tuple(load_config(args.preset).space.size))
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "whole":
            z = ae.encode(x)
            y = ae.decode(z)
        else:
            z = ae.encode_streamed(x, args.rows)
            y = ae.decode_streamed(z, args.rows)
    seconds = time.perf_counter() - start
    torch.save({"z": z, "y": y}, args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_gib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--rows", type=int, default=None, help="rows per slab (default: auto)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args)
        return
    results = {}
    for mode in ("whole", "streamed"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--preset",
            args.preset,
            "--out",
            f"/tmp/usbrain_memory_{mode}.pt",
        ]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.rows:
            cmd += ["--rows", str(args.rows)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(line.strip().splitlines()[-1])
    whole = torch.load("/tmp/usbrain_memory_whole.pt")
    streamed = torch.load("/tmp/usbrain_memory_streamed.pt")
    dz = float((whole["z"] - streamed["z"]).abs().max())
    dy = float((whole["y"].clamp(0, 1) - streamed["y"].clamp(0, 1)).abs().max())
    size = load_config(args.preset).space.size
    print(
        f"{args.preset} preset, {size} volume, {torch.get_num_threads()} threads, "
        f"{'trained' if args.checkpoint else 'random'} weights"
    )
    print(f"{'mode':<10}{'encode+decode s':>16}{'peak RSS GiB':>14}")
    for mode, r in results.items():
        print(f"{mode:<10}{r['seconds']:16.1f}{r['peak_gib']:14.2f}")
    print(f"streamed vs whole: latent max |Δ| {dz:.2e}, decoded volume max |Δ| {dy:.2e} of [0, 1]")
    w, st = results["whole"], results["streamed"]
    print(
        f"summary: streamed coding peaks at {st['peak_gib'] / w['peak_gib']:.2f}× the memory of "
        f"whole-volume coding ({st['peak_gib']:.2f} vs {w['peak_gib']:.2f} GiB) in "
        f"{st['seconds'] / w['seconds']:.2f}× its time, max |Δ| {dy:.1e}"
    )


if __name__ == "__main__":
    main()
