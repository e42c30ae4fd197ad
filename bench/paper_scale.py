"""Paper preset at full size on this machine: one training step of each U-Net and one
autoencoder forward at 160³, batch 1. Prints time and peak memory so the scale is known to work.

    python bench/paper_scale.py [--skip-ae] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from usbrain.config import load_config
from usbrain.diffusion.paired import PairedObjective
from usbrain.diffusion.schedule import NoiseSchedule
from usbrain.models.autoencoder import Autoencoder
from usbrain.models.denoiser import PairedDenoiser


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def timed(label: str, fn) -> None:
    start = time.perf_counter()
    fn()
    print(f"{label:<44} {time.perf_counter() - start:8.2f} s   peak RSS {peak_rss_gib():6.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ae", action="store_true", help="U-Nets only (the AE takes minutes)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    config = load_config("paper")
    torch.manual_seed(0)
    c, latent = config.autoencoder.latent_channels, config.latent_size
    print(
        f"paper preset: {config.space.size} volumes, latents {c}×{latent}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.precision}"
    )
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    denoiser = PairedDenoiser(config.unet, c)
    d = config.diffusion
    objective = PairedObjective(denoiser, NoiseSchedule.from_config(d), d.condition_clip)
    params = sum(p.numel() for p in denoiser.brain.parameters()) / 1e6
    print(f"U-Net: {params:.1f} M parameters each")
    batch = {
        "x0": torch.randn(1, c, *latent), "m0": torch.randn(1, c, *latent),
        "t": torch.tensor([500]), "eps_x": torch.randn(1, c, *latent),
        "eps_m": torch.randn(1, c, *latent), "keep": torch.ones(1),
    }  # fmt: skip

    def unet_step() -> None:
        with amp:
            losses = objective(**batch)
        losses["loss"].backward()

    timed("both U-Nets: forward + backward (1 step)", unet_step)
    timed("both U-Nets: forward + backward (again)", unet_step)

    if args.skip_ae:
        return
    ae = Autoencoder(config.autoencoder).eval()
    params = sum(p.numel() for p in ae.parameters()) / 1e6
    print(f"autoencoder: {params:.1f} M parameters")
    volume = torch.rand(1, 1, *config.space.size)

    def ae_forward() -> None:
        with torch.inference_mode(), amp:
            ae.decode(ae.encode(volume))

    timed("autoencoder: encode + decode 160³ (inference)", ae_forward)


if __name__ == "__main__":
    main()
