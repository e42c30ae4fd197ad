"""Paired-diffusion training steps per second: from cached latents (what ``usbrain encode`` +
``usbrain train`` do) against encoding every batch with the autoencoder (what training without
a latent cache would do). Same networks, batch, optimizer; measured side by side in one run.

    python bench/train_rate.py [--preset tiny|paper] [--steps 10] [--batch 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from usbrain.config import load_config
from usbrain.diffusion.paired import PairedObjective
from usbrain.diffusion.schedule import NoiseSchedule, antithetic_timesteps
from usbrain.models.autoencoder import Autoencoder
from usbrain.models.denoiser import PairedDenoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    config = load_config(args.preset)
    torch.manual_seed(0)
    c, b = config.autoencoder.latent_channels, args.batch
    ae = Autoencoder(config.autoencoder).eval()
    denoiser = PairedDenoiser(config.unet, c)
    d = config.diffusion
    schedule = NoiseSchedule.from_config(d)
    objective = PairedObjective(denoiser, schedule, d.condition_clip)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-4)
    images = torch.rand(b, 1, *config.space.size)
    masks = (torch.rand(b, 1, *config.space.size) > 0.99).float()
    with torch.inference_mode():
        cached = ae.encode(torch.cat([images, masks]))
    cached = cached.clone()  # out of inference mode, as a latent file would load

    def step(encode_batch: bool) -> None:
        if encode_batch:
            with torch.no_grad():
                z = ae.encode(torch.cat([images, masks]))
        else:
            z = cached
        x0, m0 = z[:b], z[b:]
        t = antithetic_timesteps(b, d.timesteps)
        losses = objective(x0, m0, t, torch.randn_like(x0), torch.randn_like(m0), torch.ones(b))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()

    rates = {}
    for label, encode_batch in (("cached latents", False), ("encode every batch", True)):
        step(encode_batch)  # warm-up
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step(encode_batch)
            times.append(time.perf_counter() - start)
        rates[label] = (1 / statistics.median(times), (max(times) - min(times)) / 2)
    print(
        f"{args.preset} preset, batch {b}, volumes {config.space.size}, latents "
        f"{c}×{config.latent_size}, {torch.get_num_threads()} threads, {args.steps} steps each"
    )
    print(f"{'':<22}{'steps/s':>10}{'step time ± s':>16}")
    for label, (rate, spread) in rates.items():
        print(f"{label:<22}{rate:10.2f}{1 / rate:10.3f} ±{spread:.3f}")
    ratio = rates["cached latents"][0] / rates["encode every batch"][0]
    print(f"summary: cached latents train at {ratio:.1f}× the step rate of encoding each batch")


if __name__ == "__main__":
    main()
