"""One paired denoising step (lesion U-Net + brain U-Net + both chain updates): usbrain's
sampler against a reference loop written the way the authors' code does it, same networks and
weights, batch 1. Prints per-configuration median and spread over repeats, whether the outputs
agree when run in the same precision, and a one-line summary ratio.

The reference recomputes everything each step (``(1 - betas).cumprod()`` and index_select for
both timesteps, ``model.eval()``, moving tensors), runs under ``torch.no_grad`` in fp32. Ours
runs under ``torch.inference_mode``, with the schedule precomputed, in fp32 or under bf16
autocast (``AutocastDenoiser``).

    python bench/step.py [--preset tiny|paper] [--repeats 5] [--device cuda] [--compile]

On a GPU (``--device cuda``) fp16 autocast is timed too, and each timing waits for the device;
with ``--compile`` also compiled under fp16 autocast and compiled with CUDA graphs (the paper
preset's step is launch-bound on an H100: graphs gave 2.7×).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from usbrain.config import load_config
from usbrain.diffusion.paired import lesion_condition
from usbrain.diffusion.samplers import DDIMSampler
from usbrain.diffusion.schedule import NoiseSchedule
from usbrain.models.denoiser import AutocastDenoiser, CompiledDenoiser, PairedDenoiser


def _alpha(betas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    betas = torch.cat([torch.zeros(1, device=betas.device), betas], dim=0)
    return (1 - betas).cumprod(dim=0).index_select(0, t.long() + 1).view(-1, 1, 1, 1, 1)


def reference_step(lesion, brain, x_t, m_t, t, t_next, betas, clip):
    """The authors' pattern (utils/denoise.py), paired: lesion model, then brain model."""
    lesion.eval()
    brain.eval()
    with torch.no_grad():
        t, t_next, betas = t.to(x_t.device), t_next.to(x_t.device), betas.to(x_t.device)
        a_t, a_next = _alpha(betas, t), _alpha(betas, t_next)
        eps_m = lesion(torch.cat([m_t, x_t], 1), t)
        m0 = (m_t - eps_m * (1 - a_t).sqrt()) / a_t.sqrt()
        m_next = a_next.sqrt() * m0 + (1 - a_next).sqrt() * eps_m
        cond = m0.clamp(-clip, clip)  # usbrain's clamp, so both compute the same thing
        eps_x = brain(torch.cat([x_t, cond], 1), t)
        x0 = (x_t - eps_x * (1 - a_t).sqrt()) / a_t.sqrt()
        x_next = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps_x
    return x_next, m_next


def our_step(denoiser, sampler, x_t, m_t, t: int, clip):
    with torch.inference_mode():
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        # ε-predicting U-Nets, as in the reference loop: their raw outputs are ε̂
        eps_m = denoiser.predict_lesion(m_t, tt, x_t)
        m0_hat = lesion_condition(sampler.schedule, m_t, tt, eps_m, clip)
        eps_x = denoiser.predict_brain(x_t, tt, m0_hat)
        return sampler.step(eps_x, t, x_t).prev_sample, sampler.step(eps_m, t, m_t).prev_sample


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float, object]:
    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    run()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (max(times) - min(times)) / 2, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = load_config(args.preset)
    torch.manual_seed(0)
    c = config.autoencoder.latent_channels
    denoiser = PairedDenoiser(config.unet, c).eval().to(device)
    with torch.no_grad():  # non-trivial weights (MONAI zero-initialises the output layers)
        for p in denoiser.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    d = config.diffusion
    schedule = NoiseSchedule.from_config(d)
    sampler = DDIMSampler(schedule)
    sampler.set_timesteps(config.sampling.steps)
    t = sampler.timesteps[len(sampler.timesteps) // 2]
    t_next = sampler.previous_timestep(t)
    g = torch.Generator().manual_seed(0)
    shape = (1, c, *config.latent_size)
    x_t, m_t = (torch.randn(shape, generator=g).to(device) for _ in range(2))
    clip = d.condition_clip
    print(
        f"{args.preset} preset: latents {shape[1:]}, U-Nets {config.unet.channels}, "
        f"t = {t} → {t_next}, {device.type} ({torch.get_num_threads()} CPU threads), "
        f"{args.repeats} repeats"
    )

    def reference() -> tuple[torch.Tensor, torch.Tensor]:
        return reference_step(
            denoiser.lesion,
            denoiser.brain,
            x_t,
            m_t,
            torch.tensor([float(t)]),
            torch.tensor([float(t_next)]),
            schedule.betas.float(),
            clip,
        )

    ref_t, ref_s, ref_out = timed(reference, args.repeats, device)
    rows = [("reference loop (fp32)", ref_t, ref_s, 0.0)]
    channels_last = copy.deepcopy(denoiser).to_channels_last()
    # (label, denoiser, the precision its outputs are compared in: the reference runs under the
    # same autocast for that comparison, untimed)
    variants: list[tuple[str, object, torch.dtype | None]] = [
        ("usbrain (fp32)", denoiser, None),
        ("usbrain (fp32, channels-last)", channels_last, None),
        ("usbrain (bf16 autocast)", AutocastDenoiser(denoiser, torch.bfloat16), torch.bfloat16),
    ]
    if device.type == "cuda":
        fp16 = AutocastDenoiser(denoiser, torch.float16)
        variants.append(("usbrain (fp16 autocast)", fp16, torch.float16))

    def add_compiled(label: str, net, dtype: torch.dtype | None) -> None:
        """Compile ``net`` by running one step (once per process), then time it with the rest."""
        start = time.perf_counter()
        our_step(net, sampler, x_t, m_t, t, clip)
        print(f"{label}: {time.perf_counter() - start:.0f} s to compile")
        variants.append((label, net, dtype))

    if args.compile:

        def fresh() -> PairedDenoiser:  # each compiled copy freezes its own weights
            return copy.deepcopy(channels_last)

        add_compiled("usbrain (fp32, channels-last, compiled)", CompiledDenoiser(fresh()), None)
        if device.type == "cuda":
            fp16_compiled = AutocastDenoiser(CompiledDenoiser(fresh()), torch.float16)
            add_compiled("usbrain (fp16, channels-last, compiled)", fp16_compiled, torch.float16)
            graphs = CompiledDenoiser(fresh(), cuda_graphs=True)
            try:  # a graph capture can fail where plain compilation works: report, go on
                add_compiled("usbrain (fp32, compiled, CUDA graphs)", graphs, None)
            except Exception as error:
                print(f"torch.compile with CUDA graphs failed: {error!r:.300}")
    for label, net, dtype in variants:
        sec, spread, out = timed(
            lambda net=net: our_step(net, sampler, x_t, m_t, t, clip), args.repeats, device
        )
        expected = ref_out
        if dtype is not None:
            with torch.autocast(device.type, dtype=dtype):
                expected = reference()
        diff = max(float((a - b.float()).abs().max()) for a, b in zip(out, expected, strict=True))
        rows.append((label, sec, spread, diff))
    scale = max(float(a.abs().max()) for a in ref_out)
    print(f"outputs: max |value| {scale:.2f}; Δ is against the reference in the same precision")
    print(f"{'':<40}{'median s':>10}{'± s':>8}{'speed-up':>10}{'max |Δ| vs ref':>16}")
    for label, sec, spread, diff in rows:
        print(f"{label:<40}{sec:10.3f}{spread:8.3f}{ref_t / sec:9.2f}×{diff:16.2e}")
    best = min(rows[1:], key=lambda r: r[1])
    print(f"summary: {best[0]} is {ref_t / best[1]:.2f}× the reference loop per paired step")


if __name__ == "__main__":
    main()
