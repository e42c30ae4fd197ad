"""``train_paired`` as a separate process, so a test can kill it (``--overwrite`` safety)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.conftest import micro_config, random_latents
from usbrain.models.autoencoder import Autoencoder
from usbrain.train.checkpoint import save_checkpoint
from usbrain.train.distributed import World
from usbrain.train.latents import Latents, save_latents
from usbrain.train.run import train_paired

SHORT = ("train_diffusion.steps=3", "train_diffusion.batch_size=2", "train_diffusion.val_every=3")


def make_latents(root: Path) -> Path:
    """A latent folder of random latents and an untrained autoencoder they claim to come from."""
    config = micro_config(*SHORT)
    torch.manual_seed(0)
    autoencoder = Autoencoder(config.autoencoder)
    meta = {"scale_factor": 1.0}
    save_checkpoint(
        root / "ae", config, "autoencoder", 0, autoencoder, autoencoder, {}, extra_meta=meta
    )
    train, val = random_latents(6), random_latents(2, seed=1, split="val")
    both = Latents(
        torch.cat([train.x, val.x]),
        torch.cat([train.m, val.m]),
        [*train.subjects, "v0", "v1"],
        train.splits + val.splits,
        train.lesion_voxels + val.lesion_voxels,
    )
    return save_latents(both, root / "latents", {"autoencoder": "../ae", "data": "."})


def run(latents: Path, out: Path, overwrite: bool = False, *overrides: str) -> Path:
    config = micro_config(*SHORT, *overrides)
    return train_paired(config, latents, out, World(), overwrite=overwrite, progress=False)


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]), True, *sys.argv[3:])
