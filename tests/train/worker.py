"""Training runs launched as separate processes by the tests (SIGKILL resume, torchrun DDP)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.conftest import micro_config, random_latents
from usbrain.train.diffusion import DiffusionJob
from usbrain.train.distributed import close_world, init_world
from usbrain.train.loop import train

STEPS = 30


def job_and_config(*overrides: str):
    config = micro_config(
        f"train_diffusion.steps={STEPS}",
        "train_diffusion.save_every=1",
        "train_diffusion.val_every=10",
        *overrides,
    )
    return DiffusionJob(config, random_latents(12), random_latents(4, seed=1, split="val")), config


def run(out: Path, resume: bool = False, *overrides: str):
    torch.use_deterministic_algorithms(True)
    job, config = job_and_config(*overrides)
    world = init_world("cpu")
    try:
        return train(job, config, config.train_diffusion, out, world, resume=resume, progress=False)
    finally:
        close_world(world)


if __name__ == "__main__":
    run(Path(sys.argv[1]), False, *sys.argv[2:])
