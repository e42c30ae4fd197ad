"""Peak memory and time to encode and decode one volume with the autoencoder, whole-volume
against tiled (MONAI sliding window, Gaussian-blended overlap), at the paper preset (160³).
Each mode runs in its own process so its peak RSS is its own; the tiled output is compared with
the whole-volume one (PSNR of the decoded volume; random weights unless --checkpoint).

    python bench/memory.py [--preset paper] [--tile 12] [--overlap 0.25] [--checkpoint PIPELINE]
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
    mode, tile = args.child, args.tile
    ae = _ae(args.preset, args.checkpoint)
    x = _volume(tuple(load_config(args.preset).space.size))
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "whole":
            y = ae.decode(ae.encode(x))
        else:
            y = ae.decode_tiled(ae.encode_tiled(x, tile, args.overlap), tile, args.overlap)
    seconds = time.perf_counter() - start
    torch.save(y, args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_gib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--tile", type=int, default=12, help="latent voxels per window")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args)
        return
    results = {}
    for mode in ("whole", "tiled"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--preset",
            args.preset,
            "--tile",
            str(args.tile),
            "--overlap",
            str(args.overlap),
            "--out",
            f"/tmp/usbrain_memory_{mode}.pt",
        ]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(line.strip().splitlines()[-1])
    whole = torch.load("/tmp/usbrain_memory_whole.pt")
    tiled = torch.load("/tmp/usbrain_memory_tiled.pt")
    mse = float((whole - tiled).square().mean())
    rng = float(whole.max() - whole.min())
    psnr = 10 * torch.log10(torch.tensor(rng**2 / mse)).item() if mse > 0 else float("inf")
    size = load_config(args.preset).space.size
    print(
        f"{args.preset} preset, {size} volume, tile {args.tile} latent voxels, overlap "
        f"{args.overlap}, "
        f"{torch.get_num_threads()} threads, {'trained' if args.checkpoint else 'random'} weights"
    )
    print(f"{'mode':<8}{'encode+decode s':>16}{'peak RSS GiB':>14}")
    for mode, r in results.items():
        print(f"{mode:<8}{r['seconds']:16.1f}{r['peak_gib']:14.2f}")
    print(f"tiled vs whole decoded volume: PSNR {psnr:.1f} dB")
    ratio = results["whole"]["peak_gib"] / results["tiled"]["peak_gib"]
    print(
        f"summary: tiled coding peaks at {1 / ratio:.2f}× the memory of whole-volume coding "
        f"({results['tiled']['peak_gib']:.2f} vs {results['whole']['peak_gib']:.2f} GiB)"
    )


if __name__ == "__main__":
    main()
